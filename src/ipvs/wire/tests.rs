//! Tests of `wire`.

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
