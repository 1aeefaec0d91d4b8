//! Tests of `netlink`.

use super::*;
use crate::ipvs::wire::fixtures::{nla, nlmsg_bytes};
use crate::model::Protocol;

const FAMILY: u16 = 0x1234;
const PID: u32 = 4242; // the port id the fixtures put in every message

fn one(bytes: &[u8]) -> Received {
    wire::parse_datagram(bytes).unwrap().remove(0)
}

fn ack(seq: u32) -> Received {
    let mut p = 0i32.to_ne_bytes().to_vec();
    p.extend(nlmsg_bytes(FAMILY, 0x5, seq, &[]));
    one(&nlmsg_bytes(2, 0x100, seq, &p))
}

fn error(seq: u32, errno: i32) -> Received {
    let mut p = (-errno).to_ne_bytes().to_vec();
    p.extend(nlmsg_bytes(FAMILY, 0x5, seq, &[1, 1, 0, 0]));
    one(&nlmsg_bytes(2, 0, seq, &p))
}

fn done(seq: u32, errno: i32) -> Received {
    one(&nlmsg_bytes(3, 0x2, seq, &(-errno).to_ne_bytes()))
}

fn dest_entry(seq: u32) -> Received {
    let mut d = nla(1, &[10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    d.extend(nla(2, &80u16.to_be_bytes()));
    d.extend(nla(3, &0u32.to_ne_bytes()));
    d.extend(nla(4, &1u32.to_ne_bytes()));
    d.extend(nla(7, &0u32.to_ne_bytes()));
    d.extend(nla(8, &0u32.to_ne_bytes()));
    d.extend(nla(11, &2u16.to_ne_bytes()));
    let mut p = vec![5u8, 1, 0, 0];
    p.extend(nla(2, &d));
    one(&nlmsg_bytes(FAMILY, 0x2, seq, &p))
}

fn run(m: &Received, seq: u32, answer: Answer) -> Step {
    step(m, seq, PID, FAMILY, answer, None).unwrap()
}

#[test]
fn doit_ends_on_its_ack_or_error() {
    assert_eq!(run(&ack(5), 5, Answer::Ack), Step::Finish(Ok(())));
    assert_eq!(
        run(&error(5, libc::ESRCH), 5, Answer::Ack),
        Step::Finish(Err(libc::ESRCH))
    );
}

#[test]
fn dump_ends_on_done_and_reports_its_status() {
    assert_eq!(run(&done(6, 0), 6, Answer::Dump), Step::Finish(Ok(())));
    assert_eq!(
        run(&done(6, libc::EPERM), 6, Answer::Dump),
        Step::Finish(Err(libc::EPERM))
    );
    // A dump refused before it starts is answered with NLMSG_ERROR.
    assert_eq!(
        run(&error(6, libc::EPERM), 6, Answer::Dump),
        Step::Finish(Err(libc::EPERM))
    );
    assert!(matches!(
        run(&dest_entry(6), 6, Answer::Dump),
        Step::Data(Reply::Dest(..))
    ));
}

#[test]
fn stale_answers_are_skipped() {
    // The late ACK or dump entry of an earlier request that timed out.
    assert_eq!(run(&ack(4), 5, Answer::Ack), Step::Skip);
    assert_eq!(run(&error(4, libc::EEXIST), 5, Answer::Ack), Step::Skip);
    assert_eq!(run(&dest_entry(4), 5, Answer::Dump), Step::Skip);
    // A message for another port id.
    let m = ack(5);
    assert_eq!(
        step(&m, 5, PID + 1, FAMILY, Answer::Ack, None).unwrap(),
        Step::Skip
    );
}

#[test]
fn stray_ack_does_not_end_a_dump() {
    assert_eq!(run(&ack(6), 6, Answer::Dump), Step::Skip);
    assert_eq!(run(&done(5, 0), 5, Answer::Ack), Step::Skip);
}

#[test]
fn timeouts_are_transport_errors_and_eperm_is_an_errno() {
    let timeout = io_error("x", &io::Error::from_raw_os_error(libc::EAGAIN));
    assert!(
        matches!(timeout, KernelError::Transport { ref detail, .. } if detail.contains("within 5 s"))
    );
    let eperm = io_error("x", &io::Error::from_raw_os_error(libc::EPERM));
    assert_eq!(eperm.errno(), Some(libc::EPERM));
    assert!(io_error("x", &io::Error::from_raw_os_error(libc::ENOBUFS))
        .errno()
        .is_none());
}

/// This host's kernel has no IPVS, so opening (or the first dump, if the
/// family were found but we lacked CAP_NET_ADMIN) must say so, and nothing
/// else. On a kernel that has IPVS (the family resolved, which autoloads
/// `ip_vs` on >= 5.16), success is accepted only with `/proc/net/ip_vs`
/// present, so a false "success" on this host still fails the test.
#[test]
fn live_open_reports_no_ipvs_or_eperm() {
    let key = ServiceKey {
        protocol: Protocol::Tcp,
        vip: "192.0.2.10:80".parse().unwrap(),
    };
    let result = Netlink::open().and_then(|mut nl| nl.dump(&[key]));
    match result {
        Err(KernelError::NoIpvs) => {}
        Err(KernelError::Os { errno, .. }) if errno == libc::EPERM => {}
        Ok(_) if std::path::Path::new("/proc/net/ip_vs").exists() => {}
        other => panic!("expected NoIpvs or EPERM, got {other:?}"),
    }
}

/// The real kernel's ACK path: the controller always knows itself.
#[test]
fn live_resolve_of_nlctrl_reads_reply_and_ack() {
    let mut nl = Netlink::connect().unwrap();
    assert_eq!(nl.resolve_named("nlctrl").unwrap(), wire::GENL_ID_CTRL);
    // The same socket stays usable: the next answer is matched by seq.
    assert_eq!(nl.resolve_named("nlctrl").unwrap(), wire::GENL_ID_CTRL);
    assert!(matches!(nl.resolve(), Err(KernelError::NoIpvs) | Ok(_)));
}

/// The real kernel's dump path: a controller dump of every family, which
/// spans several messages (often several datagrams) and ends in NLMSG_DONE.
#[test]
fn live_controller_dump_reads_until_done() {
    use neli::consts::genl::{CtrlAttr, CtrlCmd};
    use neli::consts::nl::NlmF;
    use neli::genl::GenlmsghdrBuilder;
    use neli::nl::{NlPayload, NlmsghdrBuilder};
    let mut nl = Netlink::connect().unwrap();
    let seq = nl.next_seq();
    let genl = GenlmsghdrBuilder::<CtrlCmd, CtrlAttr>::default()
        .cmd(CtrlCmd::Getfamily)
        .version(2)
        .build()
        .unwrap();
    let msg = NlmsghdrBuilder::default()
        .nl_type(wire::GENL_ID_CTRL)
        .nl_flags(NlmF::REQUEST | NlmF::DUMP)
        .nl_seq(seq)
        .nl_payload(NlPayload::Payload(genl))
        .build()
        .unwrap();
    let mut ids = Vec::new();
    nl.exchange("dump families", &msg, Answer::Dump, None, |r| {
        if let Reply::Family(id) = r {
            ids.push(id)
        }
    })
    .unwrap();
    assert!(ids.contains(&wire::GENL_ID_CTRL), "{ids:?}");
    assert!(ids.len() > 1, "{ids:?}");
    // And the socket answers the next request correctly afterwards.
    assert_eq!(nl.resolve_named("nlctrl").unwrap(), wire::GENL_ID_CTRL);
}
