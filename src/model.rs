//! The IPVS table as plain data: what the kernel holds and what we want it to hold.
//!
//! Inside the IPVS code we use the kernel's words: a *service* (protocol + VIP +
//! port) has *dests* (real servers). `…Key` is identity, `…Spec` is settings we
//! own, `…Stats` is what we only observe. No I/O here.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

/// Transport protocol of an IPVS service (`IPVS_SVC_ATTR_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The `IPPROTO_*` number the kernel uses.
    pub fn number(self) -> u16 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    pub fn from_number(n: u16) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Forwarding method of a dest (`IPVS_DEST_ATTR_FWD_METHOD`, `IP_VS_CONN_F_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Forward {
    /// Masquerading (`IP_VS_CONN_F_MASQ` = 0).
    Nat,
    /// Direct routing (`IP_VS_CONN_F_DROUTE` = 3).
    Dr,
    /// IP-in-IP tunnelling (`IP_VS_CONN_F_TUNNEL` = 2).
    Tun,
    /// Any other method found in the kernel (local node 1, bypass 4); we never set one.
    Other(u32),
}

impl Forward {
    pub fn number(self) -> u32 {
        match self {
            Forward::Nat => 0,
            Forward::Tun => 2,
            Forward::Dr => 3,
            Forward::Other(n) => n,
        }
    }

    pub fn from_number(n: u32) -> Forward {
        // The kernel masks the method with IP_VS_CONN_F_FWD_MASK (0x7).
        match n & 0x7 {
            0 => Forward::Nat,
            2 => Forward::Tun,
            3 => Forward::Dr,
            other => Forward::Other(other),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Forward::Nat => "nat",
            Forward::Dr => "dr",
            Forward::Tun => "tun",
            Forward::Other(_) => "other",
        }
    }
}

/// Identity of an IPVS service: protocol, VIP and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub protocol: Protocol,
    pub vip: SocketAddr,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol.name(), self.vip)
    }
}

/// Identity of a dest inside one service: `tcp/192.0.2.10:5672 -> 203.0.113.11:5672`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DestKey {
    pub service: ServiceKey,
    pub addr: SocketAddr,
}

impl fmt::Display for DestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.service, self.addr)
    }
}

/// Settings of a service that we own and compare with the kernel's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Kernel scheduler name (`wlc`, `wrr`, …).
    pub scheduler: String,
    /// Persistence timeout in seconds; 0 means not persistent.
    pub persistence_s: u32,
}

/// Settings of a dest that we own and compare with the kernel's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestSpec {
    pub weight: u32,
    pub forward: Forward,
}

/// What we only observe about a dest: the kernel's connection counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestStats {
    pub active_conns: u32,
    pub inactive_conns: u32,
}

impl DestStats {
    /// A draining dest may be deleted once this is zero.
    pub fn total(&self) -> u64 {
        u64::from(self.active_conns) + u64::from(self.inactive_conns)
    }
}

/// One dest as the kernel reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelDest {
    pub spec: DestSpec,
    pub stats: DestStats,
}

/// One service as the kernel reports it, with its dests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelService {
    pub spec: ServiceSpec,
    pub dests: BTreeMap<SocketAddr, KernelDest>,
}

/// The part of the kernel's IPVS table we look at: only services the config names.
pub type KernelTable = BTreeMap<ServiceKey, KernelService>;

/// One kernel write. The diff produces these; the netlink layer, the dry-run
/// printer and the in-memory mirror consume them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    AddService(ServiceKey, ServiceSpec),
    EditService(ServiceKey, ServiceSpec),
    DelService(ServiceKey),
    AddDest(DestKey, DestSpec),
    EditDest(DestKey, DestSpec),
    DelDest(DestKey),
}

impl Op {
    /// Applies a successful write to an in-memory copy of the table, so the
    /// next diff sees it without a new dump.
    pub fn apply_to(&self, table: &mut KernelTable) {
        match self {
            Op::AddService(key, spec) | Op::EditService(key, spec) => {
                let svc = table.entry(*key).or_insert_with(|| KernelService {
                    spec: spec.clone(),
                    dests: BTreeMap::new(),
                });
                svc.spec = spec.clone();
            }
            Op::DelService(key) => {
                table.remove(key);
            }
            Op::AddDest(key, spec) | Op::EditDest(key, spec) => {
                if let Some(svc) = table.get_mut(&key.service) {
                    let stats = svc
                        .dests
                        .get(&key.addr)
                        .map(|d| d.stats)
                        .unwrap_or_default();
                    svc.dests
                        .insert(key.addr, KernelDest { spec: *spec, stats });
                }
            }
            Op::DelDest(key) => {
                if let Some(svc) = table.get_mut(&key.service) {
                    svc.dests.remove(&key.addr);
                }
            }
        }
    }
}

/// `ipvsadm`'s flag for the protocol: `-t` or `-u`.
fn proto_flag(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "-t",
        Protocol::Udp => "-u",
    }
}

/// `ipvsadm`'s flag for the forwarding method.
fn forward_flag(f: Forward) -> String {
    match f {
        Forward::Nat => "-m".into(),
        Forward::Dr => "-g".into(),
        Forward::Tun => "-i".into(),
        Forward::Other(n) => format!("--fwd-method {n}"),
    }
}

fn service_args(key: &ServiceKey, spec: &ServiceSpec) -> String {
    let mut s = format!(
        "{} {} -s {}",
        proto_flag(key.protocol),
        key.vip,
        spec.scheduler
    );
    if spec.persistence_s > 0 {
        s.push_str(&format!(" -p {}", spec.persistence_s));
    }
    s
}

fn dest_args(key: &DestKey, spec: &DestSpec) -> String {
    format!(
        "{} {} -r {} {} -w {}",
        proto_flag(key.service.protocol),
        key.service.vip,
        key.addr,
        forward_flag(spec.forward),
        spec.weight
    )
}

/// The operation in `ipvsadm` syntax: what `--dry-run` prints.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::AddService(k, s) => write!(f, "ipvsadm -A {}", service_args(k, s)),
            Op::EditService(k, s) => write!(f, "ipvsadm -E {}", service_args(k, s)),
            Op::DelService(k) => write!(f, "ipvsadm -D {} {}", proto_flag(k.protocol), k.vip),
            Op::AddDest(k, s) => write!(f, "ipvsadm -a {}", dest_args(k, s)),
            Op::EditDest(k, s) => write!(f, "ipvsadm -e {}", dest_args(k, s)),
            Op::DelDest(k) => write!(
                f,
                "ipvsadm -d {} {} -r {}",
                proto_flag(k.service.protocol),
                k.service.vip,
                k.addr
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            vip: "192.0.2.10:5672".parse().unwrap(),
        }
    }

    #[test]
    fn dest_key_display_is_the_log_identifier() {
        let k = DestKey {
            service: svc(),
            addr: "203.0.113.11:5672".parse().unwrap(),
        };
        assert_eq!(k.to_string(), "tcp/192.0.2.10:5672 -> 203.0.113.11:5672");
    }

    #[test]
    fn ops_print_in_ipvsadm_syntax() {
        let spec = ServiceSpec {
            scheduler: "wrr".into(),
            persistence_s: 0,
        };
        assert_eq!(
            Op::AddService(svc(), spec).to_string(),
            "ipvsadm -A -t 192.0.2.10:5672 -s wrr"
        );
        let d = DestKey {
            service: svc(),
            addr: "203.0.113.11:5672".parse().unwrap(),
        };
        let ds = DestSpec {
            weight: 1,
            forward: Forward::Nat,
        };
        assert_eq!(
            Op::AddDest(d, ds).to_string(),
            "ipvsadm -a -t 192.0.2.10:5672 -r 203.0.113.11:5672 -m -w 1"
        );
        assert_eq!(
            Op::DelDest(d).to_string(),
            "ipvsadm -d -t 192.0.2.10:5672 -r 203.0.113.11:5672"
        );
    }

    #[test]
    fn ipv6_udp_persistent_prints_brackets_and_p() {
        let k = ServiceKey {
            protocol: Protocol::Udp,
            vip: "[2001:db8::10]:53".parse().unwrap(),
        };
        let spec = ServiceSpec {
            scheduler: "sh".into(),
            persistence_s: 300,
        };
        assert_eq!(
            Op::EditService(k, spec).to_string(),
            "ipvsadm -E -u [2001:db8::10]:53 -s sh -p 300"
        );
    }

    #[test]
    fn forward_numbers_round_trip_and_mask() {
        for f in [Forward::Nat, Forward::Dr, Forward::Tun] {
            assert_eq!(Forward::from_number(f.number()), f);
        }
        assert_eq!(Forward::from_number(0x100 | 3), Forward::Dr);
        assert_eq!(Forward::from_number(1), Forward::Other(1));
    }

    #[test]
    fn apply_to_keeps_stats_on_edit_and_removes_on_delete() {
        let mut t = KernelTable::new();
        let spec = ServiceSpec {
            scheduler: "wlc".into(),
            persistence_s: 0,
        };
        Op::AddService(svc(), spec).apply_to(&mut t);
        let d = DestKey {
            service: svc(),
            addr: "203.0.113.11:5672".parse().unwrap(),
        };
        Op::AddDest(
            d,
            DestSpec {
                weight: 1,
                forward: Forward::Nat,
            },
        )
        .apply_to(&mut t);
        t.get_mut(&svc())
            .unwrap()
            .dests
            .get_mut(&d.addr)
            .unwrap()
            .stats
            .active_conns = 4;
        Op::EditDest(
            d,
            DestSpec {
                weight: 0,
                forward: Forward::Nat,
            },
        )
        .apply_to(&mut t);
        let kd = t[&svc()].dests[&d.addr];
        assert_eq!((kd.spec.weight, kd.stats.active_conns), (0, 4));
        Op::DelDest(d).apply_to(&mut t);
        assert!(t[&svc()].dests.is_empty());
    }
}
