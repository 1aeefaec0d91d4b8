//! IPVS generic netlink messages as bytes and back, with no socket: builds the
//! request for each [`Op`], for the two dumps and for the family lookup, and
//! decodes one received netlink message into a [`Reply`]. No I/O here; the
//! transport in `netlink.rs` sends what this builds and feeds back what it
//! receives.
//!
//! Constants, byte orders and required attributes come from
//! `include/uapi/linux/ip_vs.h` and `net/netfilter/ipvs/ip_vs_ctl.c`
//! (`ip_vs_genl_parse_service`, `ip_vs_genl_parse_dest`, `ip_vs_genl_fill_*`),
//! as summarised in `/work/shared/reference/ipvs-netlink.md`.

use crate::model::{
    DestSpec, DestStats, Forward, KernelDest, Op, Protocol, ServiceKey, ServiceSpec,
};
use neli::{
    attr::Attribute,
    consts::genl::{Cmd, CtrlAttr, CtrlCmd, NlAttrType},
    consts::nl::{NlmF, Nlmsg},
    genl::{AttrTypeBuilder, GenlAttrHandle, Genlmsghdr, GenlmsghdrBuilder, Nlattr, NlattrBuilder},
    neli_enum,
    nl::{NlPayload, Nlmsghdr, NlmsghdrBuilder},
    types::{Buffer, GenlBuffer},
    FromBytes, FromBytesWithInput, Size, ToBytes,
};
use std::fmt;
use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `IPVS_GENL_NAME`: the generic netlink family to resolve.
pub const FAMILY_NAME: &str = "IPVS";
/// `IPVS_GENL_VERSION`; the kernel does not check it.
const IPVS_VERSION: u8 = 1;
/// The controller expects version 2 for `CTRL_CMD_GETFAMILY` (neli does the same).
const CTRL_VERSION: u8 = 2;
/// `GENL_ID_CTRL`, the fixed `nlmsg_type` of the generic netlink controller.
pub const GENL_ID_CTRL: u16 = libc::GENL_ID_CTRL as u16;

const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;

/// `IP_VS_SVC_F_PERSISTENT`.
pub const SVC_F_PERSISTENT: u32 = 0x1;
/// `IP_VS_SVC_F_HASHED`: kernel-internal, present in replies, never ours to compare.
pub const SVC_F_HASHED: u32 = 0x2;

/// `IPVS_CMD_*` (`genlmsghdr.cmd`).
#[neli_enum(serialized_type = "u8")]
pub enum IpvsCmd {
    NewService = 1,
    SetService = 2,
    DelService = 3,
    GetService = 4,
    NewDest = 5,
    SetDest = 6,
    DelDest = 7,
    GetDest = 8,
    SetInfo = 14,
    GetInfo = 15,
}
impl Cmd for IpvsCmd {}

/// `IPVS_CMD_ATTR_*`: the top-level attributes.
#[neli_enum(serialized_type = "u16")]
pub enum CmdAttr {
    Service = 1,
    Dest = 2,
}
impl NlAttrType for CmdAttr {}

/// `IPVS_SVC_ATTR_*`, nested in `IPVS_CMD_ATTR_SERVICE`.
#[neli_enum(serialized_type = "u16")]
pub enum SvcAttr {
    Af = 1,
    Protocol = 2,
    Addr = 3,
    Port = 4,
    Fwmark = 5,
    SchedName = 6,
    Flags = 7,
    Timeout = 8,
    Netmask = 9,
    Stats = 10,
    PeName = 11,
    Stats64 = 12,
}
impl NlAttrType for SvcAttr {}

/// `IPVS_DEST_ATTR_*`, nested in `IPVS_CMD_ATTR_DEST`.
#[neli_enum(serialized_type = "u16")]
pub enum DestAttr {
    Addr = 1,
    Port = 2,
    FwdMethod = 3,
    Weight = 4,
    UThresh = 5,
    LThresh = 6,
    ActiveConns = 7,
    InactConns = 8,
    PersistConns = 9,
    Stats = 10,
    AddrFamily = 11,
    Stats64 = 12,
    TunType = 13,
    TunPort = 14,
    TunFlags = 15,
}
impl NlAttrType for DestAttr {}

/// The generic netlink part of an IPVS message (no family header: hdrsize 0).
pub type IpvsGenl = Genlmsghdr<IpvsCmd, CmdAttr>;
/// A complete IPVS request; `nl_type` is the resolved family id.
pub type Request = Nlmsghdr<u16, IpvsGenl>;
/// A complete `CTRL_CMD_GETFAMILY` request.
pub type FamilyRequest = Nlmsghdr<u16, Genlmsghdr<CtrlCmd, CtrlAttr>>;
/// A received message, payload left raw so that any reply (including an
/// error echoing a request) parses; [`decode`] types it.
pub type Received = Nlmsghdr<u16, Buffer>;

/// A message could not be built or a reply could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

fn wire_err(what: &str, e: impl fmt::Display) -> WireError {
    WireError(format!("{what}: {e}"))
}

/// One service as a dump reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    pub key: ServiceKey,
    pub spec: ServiceSpec,
    /// `IP_VS_SVC_F_*` with `HASHED` stripped.
    pub flags: u32,
}

/// What one received netlink message means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `NLMSG_ERROR` with error 0: the request succeeded.
    Ack,
    /// `NLMSG_ERROR` with a (positive) errno.
    Error(i32),
    /// `NLMSG_DONE` ending a dump: 0, or the errno the dump failed with.
    Done(i32),
    /// A `NEW_SERVICE` dump entry for a TCP/UDP address service.
    Service(ServiceEntry),
    /// A service we do not model (fwmark, SCTP, unknown family): skipped.
    ForeignService,
    /// A `NEW_DEST` dump entry: the dest's address and what the kernel holds.
    Dest(SocketAddr, KernelDest),
    /// The controller's answer to the family lookup: the family id.
    Family(u16),
    /// Anything else (`NLMSG_NOOP`, a command we did not ask for).
    Other,
}

// ---------------------------------------------------------------- encoding

fn attr<T: NlAttrType, P: Size + ToBytes>(t: T, p: P) -> Result<Nlattr<T, Buffer>, WireError> {
    let ty = AttrTypeBuilder::default()
        .nla_type(t)
        .build()
        .map_err(|e| wire_err("attribute type", e))?;
    NlattrBuilder::default()
        .nla_type(ty)
        .nla_payload(p)
        .build()
        .map_err(|e| wire_err("attribute", e))
}

/// A nested attribute; neli's `nest` sets `NLA_F_NESTED`, which the kernel
/// masks off (`nla_parse_nested_deprecated`).
fn nest<T: NlAttrType, C: NlAttrType>(
    t: T,
    children: Vec<Nlattr<C, Buffer>>,
) -> Result<Nlattr<T, Buffer>, WireError> {
    let mut outer = attr(t, Buffer::new())?;
    for c in &children {
        outer = outer.nest(c).map_err(|e| wire_err("nested attribute", e))?;
    }
    Ok(outer)
}

fn af(ip: IpAddr) -> u16 {
    match ip {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// `union nf_inet_addr` as replies carry it: 16 bytes, IPv4 in the first 4
/// (network order). The kernel `memset`s and copies, so 16 is right for both.
fn addr16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            b
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// AF, PROTOCOL, ADDR, PORT: how the kernel finds a service.
fn service_identity(key: &ServiceKey) -> Result<Vec<Nlattr<SvcAttr, Buffer>>, WireError> {
    let ip = key.vip.ip();
    Ok(vec![
        attr(SvcAttr::Af, af(ip))?,
        attr(SvcAttr::Protocol, key.protocol.number())?,
        attr(SvcAttr::Addr, &addr16(ip)[..])?,
        // __be16 (nla_get_be16): never the native-endian u16.
        attr(SvcAttr::Port, &key.vip.port().to_be_bytes()[..])?,
    ])
}

/// The full entry NEW_SERVICE and SET_SERVICE require: identity plus
/// SCHED_NAME, FLAGS, TIMEOUT and NETMASK (`ip_vs_genl_parse_service`).
/// SET_SERVICE replaces all of it; we never use a persistence engine, so
/// leaving PE_NAME out (which removes one) is what we want.
fn service_full(
    key: &ServiceKey,
    spec: &ServiceSpec,
) -> Result<Vec<Nlattr<SvcAttr, Buffer>>, WireError> {
    let mut attrs = service_identity(key)?;
    let flags = if spec.persistence_s > 0 {
        SVC_F_PERSISTENT
    } else {
        0
    };
    // struct ip_vs_flags { __u32 flags; __u32 mask; }, host order. Mask ~0
    // replaces every flag bit, as ipvsadm, keepalived and moby do.
    let mut flags_struct = [0u8; 8];
    flags_struct[..4].copy_from_slice(&flags.to_ne_bytes());
    flags_struct[4..].copy_from_slice(&u32::MAX.to_ne_bytes());
    attrs.push(attr(SvcAttr::SchedName, spec.scheduler.as_str())?);
    attrs.push(attr(SvcAttr::Flags, &flags_struct[..])?);
    attrs.push(attr(SvcAttr::Timeout, spec.persistence_s)?);
    attrs.push(match key.vip {
        // IPv4: the mask's octets in network order (read with nla_get_be32).
        SocketAddr::V4(_) => attr(SvcAttr::Netmask, &[0xffu8; 4][..])?,
        // IPv6: a host-order prefix length, 1..128.
        SocketAddr::V6(_) => attr(SvcAttr::Netmask, 128u32)?,
    });
    Ok(attrs)
}

/// ADDR and PORT, plus ADDR_FAMILY only for a dest whose family differs from
/// its service's (a mixed-family tunnel dest; without it the kernel assumes
/// the service's family and would not find the dest).
fn dest_identity(
    service: &ServiceKey,
    addr: SocketAddr,
) -> Result<Vec<Nlattr<DestAttr, Buffer>>, WireError> {
    let mut attrs = vec![
        attr(DestAttr::Addr, &addr16(addr.ip())[..])?,
        attr(DestAttr::Port, &addr.port().to_be_bytes()[..])?,
    ];
    if af(addr.ip()) != af(service.vip.ip()) {
        attrs.push(attr(DestAttr::AddrFamily, af(addr.ip()))?);
    }
    Ok(attrs)
}

/// The full dest NEW_DEST and SET_DEST require (`ip_vs_genl_parse_dest`).
/// SET_DEST is a full replacement, and the kernel zeroes what is absent: the
/// tunnel attributes (TUN_TYPE/PORT/FLAGS) are left out on purpose, because
/// the zero they reset to is IPIP, port 0, no flags, the only tunnel we use.
fn dest_full(
    addr: SocketAddr,
    spec: &DestSpec,
) -> Result<Vec<Nlattr<DestAttr, Buffer>>, WireError> {
    Ok(vec![
        attr(DestAttr::Addr, &addr16(addr.ip())[..])?,
        attr(DestAttr::Port, &addr.port().to_be_bytes()[..])?,
        attr(DestAttr::FwdMethod, spec.forward.number())?,
        attr(DestAttr::Weight, spec.weight)?,
        // No connection limits: U_THRESH 0 disables the check.
        attr(DestAttr::UThresh, 0u32)?,
        attr(DestAttr::LThresh, 0u32)?,
        // Linux >= 3.18; older kernels ignore it (liberal parsing).
        attr(DestAttr::AddrFamily, af(addr.ip()))?,
    ])
}

fn genl(cmd: IpvsCmd, attrs: Vec<Nlattr<CmdAttr, Buffer>>) -> Result<IpvsGenl, WireError> {
    GenlmsghdrBuilder::default()
        .cmd(cmd)
        .version(IPVS_VERSION)
        .attrs(attrs.into_iter().collect::<GenlBuffer<CmdAttr, Buffer>>())
        .build()
        .map_err(|e| wire_err("genl header", e))
}

fn nlmsg<P: Size>(
    nl_type: u16,
    flags: NlmF,
    seq: u32,
    payload: P,
) -> Result<Nlmsghdr<u16, P>, WireError> {
    NlmsghdrBuilder::default()
        .nl_type(nl_type)
        .nl_flags(flags)
        .nl_seq(seq)
        .nl_pid(0)
        .nl_payload(NlPayload::Payload(payload))
        .build()
        .map_err(|e| wire_err("netlink header", e))
}

/// Flags of every doit command: always ACK, or a success sends nothing at all.
fn doit_flags() -> NlmF {
    NlmF::REQUEST | NlmF::ACK
}

/// Flags of a dump: no ACK, the kernel ends a dump with `NLMSG_DONE` only.
fn dump_flags() -> NlmF {
    NlmF::REQUEST | NlmF::DUMP
}

/// The command and top-level attributes that carry `op`.
pub fn op_payload(op: &Op) -> Result<IpvsGenl, WireError> {
    match op {
        Op::AddService(k, s) => genl(
            IpvsCmd::NewService,
            vec![nest(CmdAttr::Service, service_full(k, s)?)?],
        ),
        Op::EditService(k, s) => genl(
            IpvsCmd::SetService,
            vec![nest(CmdAttr::Service, service_full(k, s)?)?],
        ),
        Op::DelService(k) => genl(
            IpvsCmd::DelService,
            vec![nest(CmdAttr::Service, service_identity(k)?)?],
        ),
        Op::AddDest(d, s) | Op::EditDest(d, s) => {
            let cmd = if matches!(op, Op::AddDest(..)) {
                IpvsCmd::NewDest
            } else {
                IpvsCmd::SetDest
            };
            genl(
                cmd,
                vec![
                    nest(CmdAttr::Service, service_identity(&d.service)?)?,
                    nest(CmdAttr::Dest, dest_full(d.addr, s)?)?,
                ],
            )
        }
        Op::DelDest(d) => genl(
            IpvsCmd::DelDest,
            vec![
                nest(CmdAttr::Service, service_identity(&d.service)?)?,
                nest(CmdAttr::Dest, dest_identity(&d.service, d.addr)?)?,
            ],
        ),
    }
}

/// The request for one write, with `NLM_F_ACK`.
pub fn op_request(op: &Op, family: u16, seq: u32) -> Result<Request, WireError> {
    nlmsg(family, doit_flags(), seq, op_payload(op)?)
}

/// GET_SERVICE dump of every service in the netns. The kernel ignores
/// attributes on this dump, so none are sent (as ipvsadm's libipvs does).
pub fn service_dump_request(family: u16, seq: u32) -> Result<Request, WireError> {
    nlmsg(
        family,
        dump_flags(),
        seq,
        genl(IpvsCmd::GetService, vec![])?,
    )
}

/// GET_DEST dump of one service's dests; GET_DEST has only a dumpit, and the
/// service is named by its identity. A missing service gives an empty dump.
pub fn dest_dump_request(key: &ServiceKey, family: u16, seq: u32) -> Result<Request, WireError> {
    let attrs = vec![nest(CmdAttr::Service, service_identity(key)?)?];
    nlmsg(family, dump_flags(), seq, genl(IpvsCmd::GetDest, attrs)?)
}

/// `CTRL_CMD_GETFAMILY` for `name` ([`FAMILY_NAME`]); answered with a
/// `NEWFAMILY` message (then the ACK), or `ENOENT` when the kernel has no
/// such family.
pub fn family_request(name: &str, seq: u32) -> Result<FamilyRequest, WireError> {
    let attrs: GenlBuffer<CtrlAttr, Buffer> =
        std::iter::once(attr(CtrlAttr::FamilyName, name)?).collect();
    let payload = GenlmsghdrBuilder::default()
        .cmd(CtrlCmd::Getfamily)
        .version(CTRL_VERSION)
        .attrs(attrs)
        .build()
        .map_err(|e| wire_err("genl header", e))?;
    nlmsg(GENL_ID_CTRL, doit_flags(), seq, payload)
}

/// The bytes `NlSocketHandle::send` puts on the wire for `msg`.
pub fn to_bytes<P: Size + ToBytes + fmt::Debug>(
    msg: &Nlmsghdr<u16, P>,
) -> Result<Vec<u8>, WireError> {
    let mut buf = Cursor::new(vec![0u8; msg.padded_size()]);
    msg.to_bytes(&mut buf)
        .map_err(|e| wire_err("serialise", e))?;
    Ok(buf.into_inner())
}

// ---------------------------------------------------------------- decoding

/// Every netlink message in one received datagram (what `NlSocketHandle::recv`
/// iterates over); used by tests to feed hand-built replies to [`decode`].
pub fn parse_datagram(bytes: &[u8]) -> Result<Vec<Received>, WireError> {
    let mut cur = Cursor::new(bytes);
    let mut out = Vec::new();
    while (cur.position() as usize) < bytes.len() {
        out.push(Received::from_bytes(&mut cur).map_err(|e| wire_err("netlink message", e))?);
    }
    Ok(out)
}

/// What `msg` means. `family` is the IPVS family id (`nl_type` of IPVS
/// replies); `service` is the service whose dests are being dumped, whose
/// family a dest takes when the kernel sends no ADDR_FAMILY (< 3.18).
pub fn decode(
    msg: &Received,
    family: u16,
    service: Option<&ServiceKey>,
) -> Result<Reply, WireError> {
    match msg.nl_payload() {
        NlPayload::Ack(_) => Ok(Reply::Ack),
        NlPayload::Err(e) => Ok(Reply::Error(-*e.error())),
        NlPayload::DumpExtAck(e) => Ok(Reply::Done(-*e.error())),
        NlPayload::Empty => Ok(if *msg.nl_type() == u16::from(Nlmsg::Done) {
            Reply::Done(0)
        } else {
            Reply::Other
        }),
        NlPayload::Payload(buf) => {
            let ty = *msg.nl_type();
            if ty == u16::from(Nlmsg::Done) {
                // NLMSG_DONE without NLM_F_MULTI: the int is still the status.
                let errno = buf.as_ref().get(..4).map_or(0, |b| -ne_i32(b));
                Ok(Reply::Done(errno))
            } else if ty == family && family != 0 {
                decode_ipvs(buf.as_ref(), service)
            } else if ty == GENL_ID_CTRL {
                decode_ctrl(buf.as_ref())
            } else {
                Ok(Reply::Other)
            }
        }
    }
}

fn ne_i32(b: &[u8]) -> i32 {
    i32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

fn parse_genl<C, T>(bytes: &[u8]) -> Result<Genlmsghdr<C, T>, WireError>
where
    C: Cmd + neli::TypeSize,
    T: NlAttrType,
{
    Genlmsghdr::<C, T>::from_bytes_with_input(&mut Cursor::new(bytes), bytes.len())
        .map_err(|e| wire_err("genl message", e))
}

fn decode_ctrl(bytes: &[u8]) -> Result<Reply, WireError> {
    let g = parse_genl::<CtrlCmd, CtrlAttr>(bytes)?;
    if *g.cmd() != CtrlCmd::Newfamily {
        return Ok(Reply::Other);
    }
    let attrs = g.attrs().get_attr_handle();
    let id = attrs
        .get_attribute(CtrlAttr::FamilyId)
        .and_then(|a| {
            a.payload()
                .as_ref()
                .get(..2)
                .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        })
        .ok_or_else(|| WireError("family reply without CTRL_ATTR_FAMILY_ID".into()))?;
    Ok(Reply::Family(id))
}

fn decode_ipvs(bytes: &[u8], service: Option<&ServiceKey>) -> Result<Reply, WireError> {
    let g = parse_genl::<IpvsCmd, CmdAttr>(bytes)?;
    let top = g.attrs().get_attr_handle();
    match g.cmd() {
        IpvsCmd::NewService => {
            let svc = top
                .get_nested_attributes::<SvcAttr>(CmdAttr::Service)
                .map_err(|e| wire_err("service entry", e))?;
            decode_service(&svc)
        }
        IpvsCmd::NewDest => {
            let dest = top
                .get_nested_attributes::<DestAttr>(CmdAttr::Dest)
                .map_err(|e| wire_err("dest entry", e))?;
            decode_dest(&dest, service.map(|k| af(k.vip.ip())))
        }
        _ => Ok(Reply::Other),
    }
}

/// A raw attribute payload, required.
fn raw<'a, T: NlAttrType + fmt::Debug>(
    h: &'a GenlAttrHandle<'a, T>,
    t: T,
) -> Result<&'a [u8], WireError> {
    h.get_attribute(t)
        .map(|a| a.payload().as_ref())
        .ok_or_else(|| WireError(format!("missing attribute {t:?}")))
}

fn fixed<const N: usize>(b: &[u8], what: &str) -> Result<[u8; N], WireError> {
    b.get(..N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| WireError(format!("{what}: {} bytes, want {N}", b.len())))
}

fn get_u16<T: NlAttrType + fmt::Debug>(h: &GenlAttrHandle<'_, T>, t: T) -> Result<u16, WireError> {
    Ok(u16::from_ne_bytes(fixed(raw(h, t)?, &format!("{t:?}"))?))
}

fn get_u32<T: NlAttrType + fmt::Debug>(h: &GenlAttrHandle<'_, T>, t: T) -> Result<u32, WireError> {
    Ok(u32::from_ne_bytes(fixed(raw(h, t)?, &format!("{t:?}"))?))
}

/// A `__be16` port.
fn get_port<T: NlAttrType + fmt::Debug>(h: &GenlAttrHandle<'_, T>, t: T) -> Result<u16, WireError> {
    Ok(u16::from_be_bytes(fixed(raw(h, t)?, &format!("{t:?}"))?))
}

/// An address of family `af` from a `nf_inet_addr` payload (16 bytes in
/// replies; IPv4 is the first 4). `None` for a family we do not know.
fn ip_of(af_: u16, b: &[u8]) -> Result<Option<IpAddr>, WireError> {
    Ok(match af_ {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::from(fixed::<4>(b, "IPv4 address")?))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(fixed::<16>(b, "IPv6 address")?))),
        _ => None,
    })
}

/// The scheduler name: NUL-terminated (NLA_NUL_STRING); read up to the NUL.
fn nul_string(b: &[u8]) -> Result<String, WireError> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8(b[..end].to_vec()).map_err(|e| wire_err("scheduler name", e))
}

fn decode_service(h: &GenlAttrHandle<'_, SvcAttr>) -> Result<Reply, WireError> {
    let af_ = get_u16(h, SvcAttr::Af)?;
    // A fwmark service carries FWMARK instead of PROTOCOL/ADDR/PORT.
    if h.get_attribute(SvcAttr::Fwmark).is_some() {
        return Ok(Reply::ForeignService);
    }
    let Some(protocol) = Protocol::from_number(get_u16(h, SvcAttr::Protocol)?) else {
        return Ok(Reply::ForeignService);
    };
    let Some(ip) = ip_of(af_, raw(h, SvcAttr::Addr)?)? else {
        return Ok(Reply::ForeignService);
    };
    let port = get_port(h, SvcAttr::Port)?;
    let scheduler = nul_string(raw(h, SvcAttr::SchedName)?)?;
    // struct ip_vs_flags: flags first. Replies always include HASHED.
    let flags = u32::from_ne_bytes(fixed(raw(h, SvcAttr::Flags)?, "FLAGS")?) & !SVC_F_HASHED;
    let timeout = get_u32(h, SvcAttr::Timeout)?;
    let persistence_s = if flags & SVC_F_PERSISTENT != 0 {
        timeout
    } else {
        0
    };
    Ok(Reply::Service(ServiceEntry {
        key: ServiceKey {
            protocol,
            vip: SocketAddr::new(ip, port),
        },
        spec: ServiceSpec {
            scheduler,
            persistence_s,
        },
        flags,
    }))
}

fn decode_dest(
    h: &GenlAttrHandle<'_, DestAttr>,
    service_af: Option<u16>,
) -> Result<Reply, WireError> {
    // ADDR_FAMILY is Linux >= 3.18; before it a dest has its service's family.
    let af_ = match h.get_attribute(DestAttr::AddrFamily) {
        Some(_) => get_u16(h, DestAttr::AddrFamily)?,
        None => service_af
            .ok_or_else(|| WireError("dest without ADDR_FAMILY outside a service dump".into()))?,
    };
    let ip = ip_of(af_, raw(h, DestAttr::Addr)?)?
        .ok_or_else(|| WireError(format!("dest of unknown address family {af_}")))?;
    let addr = SocketAddr::new(ip, get_port(h, DestAttr::Port)?);
    let spec = DestSpec {
        weight: get_u32(h, DestAttr::Weight)?,
        forward: Forward::from_number(get_u32(h, DestAttr::FwdMethod)?),
    };
    // Required, not defaulted: a drained dest is deleted once these are 0.
    let stats = DestStats {
        active_conns: get_u32(h, DestAttr::ActiveConns)?,
        inactive_conns: get_u32(h, DestAttr::InactConns)?,
    };
    Ok(Reply::Dest(addr, KernelDest { spec, stats }))
}

/// Kernel-format bytes built by hand, independent of neli's encoder.
#[cfg(test)]
pub(crate) mod fixtures {
    /// A netlink attribute as the kernel writes it: len, type, payload, pad to 4.
    pub fn nla(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(payload);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    pub fn nlmsg_bytes(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = ((16 + payload.len()) as u32).to_ne_bytes().to_vec();
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&4242u32.to_ne_bytes()); // our port id
        v.extend_from_slice(payload);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::model::DestKey;

    /// Hex with any whitespace, to bytes.
    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    fn dump(b: &[u8]) -> String {
        b.chunks(4)
            .map(|c| c.iter().map(|x| format!("{x:02x}")).collect::<String>())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn assert_bytes(got: &[u8], want: &str) {
        let want = hex(want);
        assert_eq!(
            dump(got),
            dump(&want),
            "got {} bytes, want {}",
            got.len(),
            want.len()
        );
    }

    fn tcp(vip: &str) -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            vip: vip.parse().unwrap(),
        }
    }

    fn spec(sched: &str, persistence_s: u32) -> ServiceSpec {
        ServiceSpec {
            scheduler: sched.into(),
            persistence_s,
        }
    }

    fn dest(svc: &str, addr: &str) -> DestKey {
        DestKey {
            service: tcp(svc),
            addr: addr.parse().unwrap(),
        }
    }

    fn op_bytes(op: &Op, seq: u32) -> Vec<u8> {
        to_bytes(&op_request(op, 0x1234, seq).unwrap()).unwrap()
    }

    // The service identity of tcp/10.0.0.1:80, shared by several goldens:
    // nest len 48, type 0x8001 (NLA_F_NESTED | IPVS_CMD_ATTR_SERVICE).
    const SVC_10_0_0_1_80: &str = "
        30000180
        06000100 02000000                             AF = 2 (AF_INET), u16 + 2 pad
        06000200 06000000                             PROTOCOL = 6 (TCP)
        14000300 0a000001 00000000 00000000 00000000  ADDR: 10.0.0.1 in 16 bytes
        06000400 00500000                             PORT = 00 50 (80, big-endian) + pad";

    // Golden bytes below are host-order where the protocol says host order,
    // written for little-endian (x86-64, aarch64), like the reference's dump.
    #[cfg(target_endian = "little")]
    mod golden {
        use super::*;

        /// Exactly the dump in §1.10 of the reference (104 bytes).
        #[test]
        fn new_service_matches_the_reference_dump() {
            let op = Op::AddService(tcp("10.0.0.1:80"), spec("wrr", 0));
            assert_bytes(
                &op_bytes(&op, 1),
                "68000000 34120500 01000000 00000000
                 01010000
                 54000180
                 06000100 02000000
                 06000200 06000000
                 14000300 0a000001 00000000 00000000 00000000
                 06000400 00500000
                 08000600 77727200
                 0c000700 00000000 ffffffff
                 08000800 00000000
                 08000900 ffffffff",
            );
        }

        #[test]
        fn new_dest_ipv4_nat_weight_3() {
            let op = Op::AddDest(
                dest("10.0.0.1:80", "10.0.0.2:8080"),
                DestSpec {
                    weight: 3,
                    forward: Forward::Nat,
                },
            );
            // len 140 = 16 + 4 + 48 + 72; flags 0x0005 = REQUEST|ACK; seq 2.
            let want = format!(
                "8c000000 34120500 02000000 00000000
                 05010000                          cmd 5 NEW_DEST, version 1
                 {SVC_10_0_0_1_80}
                 48000280                          nest len 72, NLA_F_NESTED|IPVS_CMD_ATTR_DEST
                 14000100 0a000002 00000000 00000000 00000000  ADDR 10.0.0.2
                 06000200 1f900000                 PORT 8080 = 1f 90 big-endian
                 08000300 00000000                 FWD_METHOD 0 (MASQ)
                 08000400 03000000                 WEIGHT 3
                 08000500 00000000                 U_THRESH 0
                 08000600 00000000                 L_THRESH 0
                 06000b00 02000000                 ADDR_FAMILY 2"
            );
            assert_bytes(&op_bytes(&op, 2), &strip_notes(&want));
        }

        #[test]
        fn set_dest_dr_weight_0() {
            let op = Op::EditDest(
                dest("10.0.0.1:80", "10.0.0.2:80"),
                DestSpec {
                    weight: 0,
                    forward: Forward::Dr,
                },
            );
            let want = format!(
                "8c000000 34120500 03000000 00000000
                 06010000                          cmd 6 SET_DEST
                 {SVC_10_0_0_1_80}
                 48000280
                 14000100 0a000002 00000000 00000000 00000000
                 06000200 00500000                 PORT 80
                 08000300 03000000                 FWD_METHOD 3 (DROUTE)
                 08000400 00000000                 WEIGHT 0 (drain)
                 08000500 00000000
                 08000600 00000000
                 06000b00 02000000"
            );
            assert_bytes(&op_bytes(&op, 3), &strip_notes(&want));
        }

        #[test]
        fn del_dest_sends_only_the_dest_identity() {
            let op = Op::DelDest(dest("10.0.0.1:80", "10.0.0.2:8080"));
            // len 100 = 16 + 4 + 48 + 32.
            let want = format!(
                "64000000 34120500 04000000 00000000
                 07010000                          cmd 7 DEL_DEST
                 {SVC_10_0_0_1_80}
                 20000280                          nest len 32
                 14000100 0a000002 00000000 00000000 00000000
                 06000200 1f900000"
            );
            assert_bytes(&op_bytes(&op, 4), &strip_notes(&want));
        }

        #[test]
        fn del_service_sends_only_the_identity() {
            let op = Op::DelService(tcp("10.0.0.1:80"));
            let want = format!(
                "44000000 34120500 05000000 00000000   len 68
                 03010000                          cmd 3 DEL_SERVICE
                 {SVC_10_0_0_1_80}"
            );
            assert_bytes(&op_bytes(&op, 5), &strip_notes(&want));
        }

        #[test]
        fn ipv6_service_has_a_host_order_prefix_netmask() {
            let op = Op::AddService(tcp("[2001:db8::10]:443"), spec("wlc", 0));
            assert_bytes(
                &op_bytes(&op, 6),
                &strip_notes(
                    "68000000 34120500 06000000 00000000
                     01010000
                     54000180                      nest len 84
                     06000100 0a000000             AF 10 (AF_INET6)
                     06000200 06000000
                     14000300 20010db8 00000000 00000000 00000010   2001:db8::10
                     06000400 01bb0000             PORT 443 = 01 bb
                     08000600 776c6300             \"wlc\\0\"
                     0c000700 00000000 ffffffff
                     08000800 00000000
                     08000900 80000000             NETMASK 128, host-order u32",
                ),
            );
        }

        #[test]
        fn udp_persistent_service_edit() {
            let key = ServiceKey {
                protocol: Protocol::Udp,
                vip: "10.0.0.1:53".parse().unwrap(),
            };
            let op = Op::EditService(key, spec("sh", 300));
            assert_bytes(
                &op_bytes(&op, 7),
                &strip_notes(
                    "68000000 34120500 07000000 00000000
                     02010000                      cmd 2 SET_SERVICE
                     54000180
                     06000100 02000000
                     06000200 11000000             PROTOCOL 17 (UDP)
                     14000300 0a000001 00000000 00000000 00000000
                     06000400 00350000             PORT 53
                     07000600 73680000             \"sh\\0\" (len 7) + 1 pad
                     0c000700 01000000 ffffffff    FLAGS PERSISTENT, mask ~0
                     08000800 2c010000             TIMEOUT 300 = 0x12c
                     08000900 ffffffff",
                ),
            );
        }

        #[test]
        fn dest_dump_request_names_the_service_and_has_no_ack() {
            let msg = dest_dump_request(&tcp("10.0.0.1:80"), 0x1234, 8).unwrap();
            let want = format!(
                "44000000 34120103 08000000 00000000   flags 0x0301 = REQUEST|DUMP
                 08010000                          cmd 8 GET_DEST
                 {SVC_10_0_0_1_80}"
            );
            assert_bytes(&to_bytes(&msg).unwrap(), &strip_notes(&want));
        }

        #[test]
        fn service_dump_request_is_bare() {
            let msg = service_dump_request(0x1234, 9).unwrap();
            assert_bytes(
                &to_bytes(&msg).unwrap(),
                "14000000 34120103 09000000 00000000 04010000",
            );
        }

        #[test]
        fn family_request_asks_the_controller_for_ipvs() {
            let msg = family_request(FAMILY_NAME, 1).unwrap();
            assert_bytes(
                &to_bytes(&msg).unwrap(),
                &strip_notes(
                    "20000000 10000500 01000000 00000000   type 0x10 GENL_ID_CTRL
                     03020000                      CTRL_CMD_GETFAMILY, version 2
                     09000200 49505653 00000000    FAMILY_NAME \"IPVS\\0\" + 3 pad",
                ),
            );
        }
    }

    /// Drops the explanatory words after the hex on each golden line.
    fn strip_notes(s: &str) -> String {
        s.lines()
            .flat_map(|l| {
                l.split_whitespace()
                    .take_while(|w| w.len() == 8 && w.bytes().all(|b| b.is_ascii_hexdigit()))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn ipv4_mixed_family_dest_delete_names_its_family() {
        let op = Op::DelDest(DestKey {
            service: tcp("10.0.0.1:80"),
            addr: "[2001:db8::2]:80".parse().unwrap(),
        });
        let bytes = op_bytes(&op, 1);
        // ... 06000b00 0a000000 closes the message: ADDR_FAMILY = AF_INET6.
        assert_eq!(&bytes[bytes.len() - 8..], &hex("06000b00 0a000000")[..]);
    }

    // ------------------------------------------------ kernel-style replies

    /// A genl message from the IPVS family (id 0x1234): NLM_F_MULTI as in a dump.
    fn ipvs_msg(cmd: u8, attrs: &[u8]) -> Vec<u8> {
        let mut p = vec![cmd, 1, 0, 0];
        p.extend_from_slice(attrs);
        nlmsg_bytes(0x1234, 0x2, 7, &p)
    }

    fn addr16_v4(a: [u8; 4]) -> Vec<u8> {
        let mut v = a.to_vec();
        v.resize(16, 0);
        v
    }

    /// STATS64 the way `nla_put_u64_64bit` writes it where unaligned access is
    /// slow: a zero-length PAD (type 11) before each u64.
    fn stats64() -> Vec<u8> {
        let mut s = Vec::new();
        for (ty, val) in [(1u16, 42u64), (4, 1u64 << 40), (5, 7)] {
            s.extend(nla(11, &[]));
            s.extend(nla(ty, &val.to_ne_bytes()));
        }
        s
    }

    /// STATS: u32 counters, u64 byte counts.
    fn stats32() -> Vec<u8> {
        let mut s = nla(1, &42u32.to_ne_bytes());
        s.extend(nla(4, &(1u64 << 40).to_ne_bytes()));
        s
    }

    fn decode_one(bytes: &[u8], svc: Option<&ServiceKey>) -> Reply {
        let msgs = parse_datagram(bytes).unwrap();
        assert_eq!(msgs.len(), 1);
        decode(&msgs[0], 0x1234, svc).unwrap()
    }

    /// `ip_vs_genl_fill_dest`: every attribute it sends, in its order.
    fn kernel_dest(
        addr: [u8; 4],
        port: u16,
        fwd: u32,
        weight: u32,
        active: u32,
        inact: u32,
    ) -> Vec<u8> {
        let mut d = nla(1, &addr16_v4(addr));
        d.extend(nla(2, &port.to_be_bytes()));
        d.extend(nla(3, &fwd.to_ne_bytes()));
        d.extend(nla(4, &weight.to_ne_bytes()));
        d.extend(nla(13, &[0])); // TUN_TYPE u8: len 5 + 3 pad
        d.extend(nla(14, &0u16.to_be_bytes()));
        d.extend(nla(15, &0u16.to_ne_bytes()));
        d.extend(nla(5, &0u32.to_ne_bytes()));
        d.extend(nla(6, &0u32.to_ne_bytes()));
        d.extend(nla(7, &active.to_ne_bytes()));
        d.extend(nla(8, &inact.to_ne_bytes()));
        d.extend(nla(9, &0u32.to_ne_bytes()));
        d.extend(nla(11, &2u16.to_ne_bytes()));
        d.extend(nla(10, &stats32()));
        d.extend(nla(12, &stats64()));
        ipvs_msg(5, &nla(2, &d))
    }

    #[test]
    fn dest_dump_entry_with_padded_stats64_decodes() {
        let bytes = kernel_dest([10, 0, 0, 2], 8080, 3, 5, 7, 3);
        let svc = tcp("10.0.0.1:80");
        assert_eq!(
            decode_one(&bytes, Some(&svc)),
            Reply::Dest(
                "10.0.0.2:8080".parse().unwrap(),
                KernelDest {
                    spec: DestSpec {
                        weight: 5,
                        forward: Forward::Dr
                    },
                    stats: DestStats {
                        active_conns: 7,
                        inactive_conns: 3
                    },
                }
            )
        );
    }

    #[test]
    fn nest_flag_on_a_reply_nest_is_accepted() {
        // The kernel uses nla_nest_start_noflag, but a parser must not care.
        let mut bytes = kernel_dest([10, 0, 0, 2], 80, 0, 1, 2, 0);
        assert_eq!(&bytes[22..24], &[0x02, 0x00], "the DEST nest's type");
        bytes[23] |= 0x80; // type 0x8002: NLA_F_NESTED | IPVS_CMD_ATTR_DEST
        let Reply::Dest(_, d) = decode_one(&bytes, None) else {
            panic!("not a dest")
        };
        assert_eq!(d.stats.active_conns, 2);
    }

    #[test]
    fn a_datagram_of_dest_entries_and_done_frames_correctly() {
        let mut dgram = kernel_dest([10, 0, 0, 2], 80, 0, 1, 0, 0);
        dgram.extend(kernel_dest([10, 0, 0, 3], 80, 2, 0, 1, 9));
        dgram.extend(nlmsg_bytes(3, 0x2, 7, &0i32.to_ne_bytes()));
        let msgs = parse_datagram(&dgram).unwrap();
        let got: Vec<Reply> = msgs
            .iter()
            .map(|m| decode(m, 0x1234, None).unwrap())
            .collect();
        assert_eq!(got.len(), 3);
        assert!(matches!(&got[1], Reply::Dest(a, d)
            if *a == "10.0.0.3:80".parse::<SocketAddr>().unwrap()
            && d.spec.forward == Forward::Tun && d.stats.inactive_conns == 9));
        assert_eq!(got[2], Reply::Done(0));
        assert!(msgs.iter().all(|m| *m.nl_seq() == 7));
    }

    /// Service identity attributes as the kernel writes them (ADDR 16 bytes).
    fn ident(af_: u16, proto: u16, addr: &[u8], port: u16) -> Vec<u8> {
        let mut s = nla(1, &af_.to_ne_bytes());
        s.extend(nla(2, &proto.to_ne_bytes()));
        s.extend(nla(3, addr));
        s.extend(nla(4, &port.to_be_bytes()));
        s
    }

    /// `ip_vs_genl_fill_service` for an address service, in its order.
    fn kernel_service(
        ident: Vec<u8>,
        sched: &str,
        flags: u32,
        timeout: u32,
        netmask: &[u8],
    ) -> Vec<u8> {
        let mut s = ident;
        s.extend(nla(6, format!("{sched}\0").as_bytes()));
        let mut f = flags.to_ne_bytes().to_vec();
        f.extend(u32::MAX.to_ne_bytes());
        s.extend(nla(7, &f));
        s.extend(nla(8, &timeout.to_ne_bytes()));
        s.extend(nla(9, netmask));
        s.extend(nla(10, &stats32()));
        s.extend(nla(12, &stats64()));
        ipvs_msg(1, &nla(1, &s))
    }

    #[test]
    fn service_entry_strips_hashed_and_reads_persistence() {
        let bytes = kernel_service(
            ident(2, 6, &addr16_v4([192, 0, 2, 10]), 5672),
            "wlc",
            SVC_F_HASHED | SVC_F_PERSISTENT,
            600,
            &[0xff; 4],
        );
        assert_eq!(
            decode_one(&bytes, None),
            Reply::Service(ServiceEntry {
                key: tcp("192.0.2.10:5672"),
                spec: spec("wlc", 600),
                flags: SVC_F_PERSISTENT,
            })
        );
    }

    #[test]
    fn ipv6_udp_service_entry_decodes() {
        let ip: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let bytes = kernel_service(
            ident(10, 17, &ip.octets(), 53),
            "sh",
            SVC_F_HASHED,
            0,
            &128u32.to_ne_bytes(),
        );
        let Reply::Service(e) = decode_one(&bytes, None) else {
            panic!("not a service")
        };
        assert_eq!(e.key.protocol, Protocol::Udp);
        assert_eq!(e.key.vip, "[2001:db8::10]:53".parse().unwrap());
        assert_eq!(
            (e.spec.scheduler.as_str(), e.spec.persistence_s, e.flags),
            ("sh", 0, 0)
        );
    }

    #[test]
    fn timeout_without_persistent_flag_is_no_persistence() {
        let bytes = kernel_service(
            ident(2, 6, &addr16_v4([10, 0, 0, 1]), 80),
            "rr",
            SVC_F_HASHED,
            300,
            &[0xff; 4],
        );
        let Reply::Service(e) = decode_one(&bytes, None) else {
            panic!("not a service")
        };
        assert_eq!(e.spec.persistence_s, 0);
    }

    #[test]
    fn fwmark_and_sctp_services_are_foreign() {
        let mut s = nla(1, &2u16.to_ne_bytes());
        s.extend(nla(5, &7u32.to_ne_bytes()));
        s.extend(nla(6, b"wlc\0"));
        assert_eq!(
            decode_one(&ipvs_msg(1, &nla(1, &s)), None),
            Reply::ForeignService
        );
        let sctp = kernel_service(
            ident(2, 132, &addr16_v4([10, 0, 0, 1]), 80),
            "rr",
            0,
            0,
            &[0xff; 4],
        );
        assert_eq!(decode_one(&sctp, None), Reply::ForeignService);
    }

    #[test]
    fn dest_without_addr_family_takes_the_services() {
        let ip: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut d = nla(1, &ip.octets());
        d.extend(nla(2, &443u16.to_be_bytes()));
        d.extend(nla(3, &0u32.to_ne_bytes()));
        d.extend(nla(4, &1u32.to_ne_bytes()));
        d.extend(nla(7, &0u32.to_ne_bytes()));
        d.extend(nla(8, &0u32.to_ne_bytes()));
        let bytes = ipvs_msg(5, &nla(2, &d));
        let svc = tcp("[2001:db8::10]:443");
        let Reply::Dest(addr, _) = decode_one(&bytes, Some(&svc)) else {
            panic!("not a dest")
        };
        assert_eq!(addr, "[2001:db8::2]:443".parse().unwrap());
        assert!(decode(&parse_datagram(&bytes).unwrap()[0], 0x1234, None).is_err());
    }

    #[test]
    fn dest_without_connection_counters_is_an_error_not_zero() {
        let mut d = nla(1, &addr16_v4([10, 0, 0, 2]));
        d.extend(nla(2, &80u16.to_be_bytes()));
        d.extend(nla(3, &0u32.to_ne_bytes()));
        d.extend(nla(4, &1u32.to_ne_bytes()));
        d.extend(nla(11, &2u16.to_ne_bytes()));
        let msgs = parse_datagram(&ipvs_msg(5, &nla(2, &d))).unwrap();
        assert!(decode(&msgs[0], 0x1234, None).is_err());
    }

    #[test]
    fn error_echoing_the_request_gives_the_errno() {
        let req = op_bytes(&Op::AddService(tcp("10.0.0.1:80"), spec("wrr", 0)), 1);
        let mut p = (-17i32).to_ne_bytes().to_vec();
        p.extend_from_slice(&req);
        let bytes = nlmsg_bytes(2, 0, 1, &p);
        assert_eq!(decode_one(&bytes, None), Reply::Error(libc::EEXIST));
    }

    #[test]
    fn capped_ack_is_an_ack() {
        let req = op_bytes(&Op::DelService(tcp("10.0.0.1:80")), 3);
        let mut p = 0i32.to_ne_bytes().to_vec();
        p.extend_from_slice(&req[..16]); // header only, NLM_F_CAPPED
        let bytes = nlmsg_bytes(2, 0x100, 3, &p);
        assert_eq!(decode_one(&bytes, None), Reply::Ack);
    }

    #[test]
    fn done_carries_the_dump_status() {
        let ok = nlmsg_bytes(3, 0x2, 7, &0i32.to_ne_bytes());
        assert_eq!(decode_one(&ok, None), Reply::Done(0));
        let failed = nlmsg_bytes(3, 0x2, 7, &(-libc::EPERM).to_ne_bytes());
        assert_eq!(decode_one(&failed, None), Reply::Done(libc::EPERM));
    }

    #[test]
    fn controller_reply_gives_the_family_id() {
        let mut a = nla(2, b"IPVS\0");
        a.extend(nla(1, &0x1234u16.to_ne_bytes()));
        a.extend(nla(3, &1u32.to_ne_bytes()));
        a.extend(nla(4, &0u32.to_ne_bytes()));
        a.extend(nla(5, &6u32.to_ne_bytes()));
        // CTRL_ATTR_OPS: nested op descriptions we do not read.
        a.extend(nla(
            6,
            &nla(
                1,
                &[nla(1, &1u32.to_ne_bytes()), nla(2, &0x1u32.to_ne_bytes())].concat(),
            ),
        ));
        let mut p = vec![1u8, 2, 0, 0]; // CTRL_CMD_NEWFAMILY, version 2
        p.extend(a);
        let bytes = nlmsg_bytes(GENL_ID_CTRL, 0, 1, &p);
        let msgs = parse_datagram(&bytes).unwrap();
        assert_eq!(decode(&msgs[0], 0, None).unwrap(), Reply::Family(0x1234));
    }

    #[test]
    fn messages_of_other_families_and_commands_are_other() {
        let bytes = kernel_dest([10, 0, 0, 2], 80, 0, 1, 0, 0);
        let msgs = parse_datagram(&bytes).unwrap();
        assert_eq!(decode(&msgs[0], 0x1235, None).unwrap(), Reply::Other);
        let info = ipvs_msg(14, &nla(1, &0x010201u32.to_ne_bytes()));
        assert_eq!(decode_one(&info, None), Reply::Other);
    }
}
