//! The generic netlink transport to the kernel's IPVS family: one blocking
//! `NETLINK_GENERIC` socket (neli's `NlSocketHandle`, no router thread), the
//! family id resolved once per socket, one request and its complete answer at
//! a time. Does socket I/O; every byte sent or parsed is built and read by
//! `wire.rs`.
//!
//! Each doit command carries `NLM_F_ACK` and is read until its ACK or error;
//! each dump is read until `NLMSG_DONE`. Messages with another sequence number
//! (the late answer to a request that timed out) are skipped. A receive
//! timeout (`SO_RCVTIMEO`) turns a lost reply into a transport error; after
//! any transport error the socket is replaced before the next request, so a
//! half-read dump cannot confuse (or `EBUSY`) the next one.

use super::wire::{self, Received, Reply};
use super::{Kernel, KernelError};
use crate::model::{KernelDest, KernelService, KernelTable, Op, ServiceKey};
use log::debug;
use neli::consts::socket::NlFamily;
use neli::err::SocketError;
use neli::nl::Nlmsghdr;
use neli::socket::synchronous::NlSocketHandle;
use neli::types::Buffer;
use neli::utils::Groups;
use neli::{Size, ToBytes};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::net::SocketAddr;
use std::os::unix::io::AsRawFd;
use std::time::Duration;

/// How long one `recv` may wait for the kernel. The kernel answers IPVS
/// requests synchronously, so only a lost message ever waits this long.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// The operation name used in errors about resolving the family.
const RESOLVE: &str = "resolve generic netlink family \"IPVS\"";

/// A connection to the kernel's IPVS over generic netlink.
pub struct Netlink {
    sock: NlSocketHandle,
    family: u16,
    seq: u32,
    /// Set by a transport error: the socket may hold half an answer.
    broken: bool,
    /// keepalived retries its first request after the module loads once,
    /// because that request can fail; we retry the first service dump.
    first_get: bool,
}

/// How a request is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// Data (if any), then `NLMSG_ERROR` 0 (the ACK) or an errno.
    Ack,
    /// Data messages, then `NLMSG_DONE`; or an `NLMSG_ERROR` if it never started.
    Dump,
}

impl Netlink {
    /// Opens the socket and resolves the IPVS family. `NoIpvs` when the kernel
    /// does not know the family (no `ip_vs`, or a kernel too old to autoload it).
    pub fn open() -> Result<Netlink, KernelError> {
        let mut nl = Netlink::connect()?;
        nl.family = nl.resolve()?;
        debug!("netlink: IPVS generic netlink family id {}", nl.family);
        Ok(nl)
    }

    /// The socket alone, family not yet resolved.
    fn connect() -> Result<Netlink, KernelError> {
        let sock = NlSocketHandle::connect(NlFamily::Generic, None, Groups::empty())
            .map_err(|e| socket_error("open netlink socket", e))?;
        set_recv_timeout(&sock, RECV_TIMEOUT)?;
        Ok(Netlink {
            sock,
            family: 0,
            seq: 0,
            broken: false,
            first_get: true,
        })
    }

    /// The IPVS family id (`CTRL_CMD_GETFAMILY`). `ENOENT` means no IPVS.
    fn resolve(&mut self) -> Result<u16, KernelError> {
        self.resolve_named(wire::FAMILY_NAME)
    }

    fn resolve_named(&mut self, name: &str) -> Result<u16, KernelError> {
        let seq = self.next_seq();
        let msg = wire::family_request(name, seq).map_err(|e| encode_error(RESOLVE, e))?;
        let mut id = None;
        let result = self.exchange(RESOLVE, &msg, Answer::Ack, None, |r| {
            if let Reply::Family(f) = r {
                id = Some(f);
            }
        });
        match result {
            Err(KernelError::Os { errno, .. }) if errno == libc::ENOENT => Err(KernelError::NoIpvs),
            Err(e) => Err(e),
            Ok(()) => id.ok_or_else(|| KernelError::Transport {
                op: RESOLVE.into(),
                detail: "the controller acknowledged without a family id".into(),
            }),
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Replaces a socket that saw a transport error.
    fn ensure_ready(&mut self) -> Result<(), KernelError> {
        if self.broken {
            debug!("netlink: reopening the socket after a transport error");
            let first_get = self.first_get;
            *self = Netlink::open()?;
            self.first_get = first_get;
        }
        Ok(())
    }

    /// Sends `msg` and reads its whole answer, handing data replies to `each`.
    /// A transport error marks the socket for replacement.
    fn exchange<P: Size + ToBytes + Debug>(
        &mut self,
        op: &str,
        msg: &Nlmsghdr<u16, P>,
        answer: Answer,
        service: Option<&ServiceKey>,
        each: impl FnMut(Reply),
    ) -> Result<(), KernelError> {
        let r = self.exchange_inner(op, msg, answer, service, each);
        if matches!(r, Err(KernelError::Transport { .. })) {
            self.broken = true;
        }
        r
    }

    fn exchange_inner<P: Size + ToBytes + Debug>(
        &mut self,
        op: &str,
        msg: &Nlmsghdr<u16, P>,
        answer: Answer,
        service: Option<&ServiceKey>,
        mut each: impl FnMut(Reply),
    ) -> Result<(), KernelError> {
        let seq = *msg.nl_seq();
        self.sock.send(msg).map_err(|e| socket_error(op, e))?;
        let pid = self.sock.pid();
        loop {
            let (msgs, _) = match self.sock.recv::<u16, Buffer>() {
                Ok(r) => r,
                Err(SocketError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(socket_error(op, e)),
            };
            for m in msgs {
                let m: Received = m.map_err(|e| transport(op, format!("malformed reply: {e}")))?;
                let step = step(&m, seq, pid, self.family, answer, service)
                    .map_err(|e| transport(op, format!("malformed reply: {e}")))?;
                match step {
                    Step::Skip => {}
                    Step::Data(reply) => each(reply),
                    Step::Finish(Ok(())) => return Ok(()),
                    Step::Finish(Err(errno)) => {
                        return Err(KernelError::Os {
                            op: op.to_string(),
                            errno,
                        })
                    }
                }
            }
        }
    }

    /// Runs `f`; if it fails with `ENOENT`, re-resolves the family once and, if
    /// the id changed (`ip_vs` was reloaded), runs `f` again. The same id means
    /// the `ENOENT` was the command's own (no such dest, unknown scheduler).
    fn with_family_retry<T>(
        &mut self,
        mut f: impl FnMut(&mut Self) -> Result<T, KernelError>,
    ) -> Result<T, KernelError> {
        match f(self) {
            Err(e @ KernelError::Os { errno, .. }) if errno == libc::ENOENT => {
                let old = self.family;
                let new = self.resolve()?;
                if new == old {
                    return Err(e);
                }
                debug!("netlink: IPVS family id changed {old} -> {new}; retrying");
                self.family = new;
                f(self)
            }
            r => r,
        }
    }

    /// GET_SERVICE dump, keeping only the services named in `keys`.
    fn dump_services(
        &mut self,
        keys: &[ServiceKey],
    ) -> Result<Vec<wire::ServiceEntry>, KernelError> {
        let op = "dump IPVS services";
        let seq = self.next_seq();
        let msg = wire::service_dump_request(self.family, seq).map_err(|e| encode_error(op, e))?;
        let mut found = Vec::new();
        self.exchange(op, &msg, Answer::Dump, None, |r| match r {
            Reply::Service(s) if keys.contains(&s.key) => found.push(s),
            _ => {}
        })?;
        Ok(found)
    }

    /// GET_DEST dump of one service.
    fn dump_dests(
        &mut self,
        key: &ServiceKey,
    ) -> Result<BTreeMap<SocketAddr, KernelDest>, KernelError> {
        let op = format!("dump IPVS dests of {key}");
        let seq = self.next_seq();
        let msg =
            wire::dest_dump_request(key, self.family, seq).map_err(|e| encode_error(&op, e))?;
        let mut dests = BTreeMap::new();
        self.exchange(&op, &msg, Answer::Dump, Some(key), |r| {
            if let Reply::Dest(addr, d) = r {
                dests.insert(addr, d);
            }
        })?;
        Ok(dests)
    }

    /// The first service dump, retried once on failure (see `first_get`).
    fn dump_services_first(
        &mut self,
        keys: &[ServiceKey],
    ) -> Result<Vec<wire::ServiceEntry>, KernelError> {
        let r = self.with_family_retry(|nl| nl.dump_services(keys));
        if !std::mem::replace(&mut self.first_get, false) {
            return r;
        }
        match r {
            Err(e) if !matches!(e, KernelError::NoIpvs) && e.errno() != Some(libc::EPERM) => {
                debug!("netlink: first IPVS request failed ({e}); retrying once");
                self.ensure_ready()?;
                self.with_family_retry(|nl| nl.dump_services(keys))
            }
            r => r,
        }
    }
}

impl Kernel for Netlink {
    fn dump(&mut self, keys: &[ServiceKey]) -> Result<KernelTable, KernelError> {
        self.ensure_ready()?;
        let services = self.dump_services_first(keys)?;
        let mut table = KernelTable::new();
        for s in services {
            let dests = self.with_family_retry(|nl| nl.dump_dests(&s.key))?;
            table.insert(
                s.key,
                KernelService {
                    spec: s.spec,
                    dests,
                },
            );
        }
        Ok(table)
    }

    fn apply(&mut self, op: &Op) -> Result<(), KernelError> {
        self.ensure_ready()?;
        let name = op.to_string();
        self.with_family_retry(|nl| {
            let seq = nl.next_seq();
            let msg = wire::op_request(op, nl.family, seq).map_err(|e| encode_error(&name, e))?;
            debug!("netlink: {name}");
            nl.exchange(&name, &msg, Answer::Ack, None, |_| {})
        })
    }
}

/// What the read loop does with one received message.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Not an answer to this request (stale seq, foreign sender) or nothing to act on.
    Skip,
    /// A data message of the answer.
    Data(Reply),
    /// The end of the answer: success, or the errno.
    Finish(Result<(), i32>),
}

/// Decides what `m` means for the request `seq` sent from port `pid`.
fn step(
    m: &Received,
    seq: u32,
    pid: u32,
    family: u16,
    answer: Answer,
    service: Option<&ServiceKey>,
) -> Result<Step, wire::WireError> {
    // Kernel replies carry the requester's port id; a late answer to a
    // request that timed out carries an older seq.
    if *m.nl_seq() != seq || (*m.nl_pid() != pid && *m.nl_pid() != 0) {
        debug!(
            "netlink: skipping message seq {} pid {} (want seq {seq})",
            m.nl_seq(),
            m.nl_pid()
        );
        return Ok(Step::Skip);
    }
    Ok(match (wire::decode(m, family, service)?, answer) {
        (Reply::Error(errno), _) => Step::Finish(Err(errno)),
        (Reply::Ack, Answer::Ack) => Step::Finish(Ok(())),
        (Reply::Done(0), Answer::Dump) => Step::Finish(Ok(())),
        (Reply::Done(errno), Answer::Dump) => Step::Finish(Err(errno)),
        // The kernel acks no dump and ends no doit with DONE: ignore strays.
        (Reply::Ack | Reply::Done(_) | Reply::Other, _) => Step::Skip,
        (data, _) => Step::Data(data),
    })
}

/// `SO_RCVTIMEO`, which neli does not wrap, on the raw fd.
fn set_recv_timeout(sock: &NlSocketHandle, t: Duration) -> Result<(), KernelError> {
    let tv = libc::timeval {
        tv_sec: t.as_secs() as _,
        tv_usec: t.subsec_micros() as _,
    };
    // SAFETY: a valid fd we own, and a pointer to a live timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io_error(
            "set SO_RCVTIMEO on the netlink socket",
            &io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn transport(op: &str, detail: String) -> KernelError {
    KernelError::Transport {
        op: op.to_string(),
        detail,
    }
}

fn encode_error(op: &str, e: wire::WireError) -> KernelError {
    transport(op, format!("encoding the request: {e}"))
}

/// EPERM from a syscall is the kernel refusing us, as it would be in an
/// `NLMSG_ERROR`; a receive timeout is a lost reply; the rest is transport.
fn io_error(op: &str, e: &io::Error) -> KernelError {
    match e.raw_os_error() {
        Some(errno) if errno == libc::EPERM => KernelError::Os {
            op: op.to_string(),
            errno,
        },
        _ if e.kind() == io::ErrorKind::WouldBlock => transport(
            op,
            format!(
                "no reply from the kernel within {} s",
                RECV_TIMEOUT.as_secs()
            ),
        ),
        _ => transport(op, e.to_string()),
    }
}

fn socket_error(op: &str, e: SocketError) -> KernelError {
    match e {
        SocketError::Io(io) => io_error(op, &io),
        other => transport(op, other.to_string()),
    }
}

#[cfg(test)]
mod tests;
