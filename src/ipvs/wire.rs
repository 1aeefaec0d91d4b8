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
mod tests;
