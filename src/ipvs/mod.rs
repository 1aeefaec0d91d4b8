//! The kernel boundary: the [`Kernel`] trait the daemon programs IPVS through,
//! its error type, and the two implementations that do no netlink themselves:
//! [`DryRun`] (prints each write in `ipvsadm` syntax and keeps an in-memory
//! table) and, in `netlink`, the real generic-netlink transport.

pub mod netlink;
pub mod wire;

use crate::model::{KernelTable, Op, ServiceKey};
use std::fmt;

/// Reads and writes the kernel's IPVS table.
pub trait Kernel {
    /// The services among `keys` that exist in the kernel, with their dests and
    /// connection counters. Services not named in `keys` are never read into
    /// the result: what the config does not name is not ours to look at.
    fn dump(&mut self, keys: &[ServiceKey]) -> Result<KernelTable, KernelError>;
    /// One write.
    fn apply(&mut self, op: &Op) -> Result<(), KernelError>;
}

/// Why a kernel operation failed.
#[derive(Debug)]
pub enum KernelError {
    /// The kernel has no IPVS (the generic netlink family "IPVS" is unknown).
    NoIpvs,
    /// The kernel answered the operation with an errno.
    Os { op: String, errno: i32 },
    /// The transport failed (socket, serialisation, a malformed reply).
    Transport { op: String, detail: String },
}

impl KernelError {
    /// The errno the kernel answered with, if it answered with one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            KernelError::Os { errno, .. } => Some(*errno),
            KernelError::NoIpvs => Some(libc::ENOENT),
            KernelError::Transport { .. } => None,
        }
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::NoIpvs => f.write_str(
                "the kernel has no IPVS (generic netlink family \"IPVS\" not found); try: modprobe ip_vs",
            ),
            KernelError::Os { op, errno } => {
                let text = std::io::Error::from_raw_os_error(*errno);
                write!(f, "{op}: {text}")?;
                if *errno == libc::EPERM {
                    f.write_str(" (IPVS needs CAP_NET_ADMIN)")?;
                }
                Ok(())
            }
            KernelError::Transport { op, detail } => write!(f, "{op}: netlink: {detail}"),
        }
    }
}

impl std::error::Error for KernelError {}

/// Whether a failed write still left the kernel as we wanted it: "already
/// exists" on an add, "not found" on a delete (keepalived's `ipvs_talk` does
/// the same). A missing service is `ESRCH`, a missing dest `ENOENT`
/// (net/netfilter/ipvs/ip_vs_ctl.c).
pub fn already_done(op: &Op, err: &KernelError) -> bool {
    let Some(errno) = err.errno() else {
        return false;
    };
    if matches!(err, KernelError::NoIpvs) {
        return false;
    }
    match op {
        Op::AddService(..) | Op::AddDest(..) => errno == libc::EEXIST,
        Op::DelService(..) => errno == libc::ESRCH,
        Op::DelDest(..) => errno == libc::ENOENT || errno == libc::ESRCH,
        Op::EditService(..) | Op::EditDest(..) => false,
    }
}

/// A kernel that only prints: each write goes to stdout in `ipvsadm` syntax
/// and into an in-memory table, so the next diff does not print it again.
pub struct DryRun<W: std::io::Write> {
    pub table: KernelTable,
    pub out: W,
}

impl<W: std::io::Write> Kernel for DryRun<W> {
    fn dump(&mut self, keys: &[ServiceKey]) -> Result<KernelTable, KernelError> {
        Ok(self
            .table
            .iter()
            .filter(|(k, _)| keys.contains(k))
            .map(|(k, v)| (*k, v.clone()))
            .collect())
    }

    fn apply(&mut self, op: &Op) -> Result<(), KernelError> {
        writeln!(self.out, "{op}")
            .and_then(|_| self.out.flush())
            .map_err(|e| KernelError::Transport {
                op: op.to_string(),
                detail: format!("stdout: {e}"),
            })?;
        op.apply_to(&mut self.table);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn dest() -> DestKey {
        DestKey {
            service: ServiceKey {
                protocol: Protocol::Tcp,
                vip: "192.0.2.10:80".parse().unwrap(),
            },
            addr: "203.0.113.1:80".parse().unwrap(),
        }
    }

    fn os(errno: i32) -> KernelError {
        KernelError::Os {
            op: "x".into(),
            errno,
        }
    }

    #[test]
    fn exists_on_add_and_not_found_on_delete_count_as_done() {
        let spec = DestSpec {
            weight: 1,
            forward: Forward::Nat,
        };
        assert!(already_done(&Op::AddDest(dest(), spec), &os(libc::EEXIST)));
        assert!(already_done(&Op::DelDest(dest()), &os(libc::ENOENT)));
        assert!(already_done(
            &Op::DelService(dest().service),
            &os(libc::ESRCH)
        ));
        assert!(!already_done(
            &Op::EditDest(dest(), spec),
            &os(libc::ENOENT)
        ));
        assert!(!already_done(&Op::AddDest(dest(), spec), &os(libc::EINVAL)));
        assert!(!already_done(&Op::DelDest(dest()), &KernelError::NoIpvs));
    }

    #[test]
    fn dry_run_prints_and_remembers() {
        let mut k = DryRun {
            table: KernelTable::new(),
            out: Vec::new(),
        };
        let key = dest().service;
        k.apply(&Op::AddService(
            key,
            ServiceSpec {
                scheduler: "wlc".into(),
                persistence_s: 0,
            },
        ))
        .unwrap();
        assert_eq!(
            String::from_utf8(k.out.clone()).unwrap(),
            "ipvsadm -A -t 192.0.2.10:80 -s wlc\n"
        );
        assert_eq!(k.dump(&[key]).unwrap().len(), 1);
        assert!(k.dump(&[]).unwrap().is_empty());
    }

    #[test]
    fn missing_ipvs_message_has_the_modprobe_hint() {
        assert!(KernelError::NoIpvs.to_string().contains("modprobe ip_vs"));
    }
}
