//! Loopback tests of the probe engine (`consul_ipvs::probe::Prober`): real
//! sockets on 127.0.0.1 and ::1 only, a mio `Poll` loop driven by the test
//! under a hard limit, and peers played by scoped threads with blocking std
//! sockets (also bounded). The tests take a shared lock and run one at a time,
//! so the fd-leak check counts only its own file descriptors. No assertion
//! depends on how fast the machine is, except generous upper limits.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use consul_ipvs::probe::{ProbeResult, ProbeSpec, Prober};
use mio::{Events, Poll};

const TOKEN_BASE: usize = 16;
/// Hard limit for each test's loop and for each peer; far above what any probe here needs.
const LIMIT: Duration = Duration::from_secs(20);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    // A test that panicked while holding the lock leaves nothing shared behind.
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn spec(addr: SocketAddr, send: &[u8], expect: &[u8], timeout_ms: u64) -> ProbeSpec {
    ProbeSpec {
        addr,
        send: send.to_vec(),
        expect: expect.to_vec(),
        timeout: Duration::from_millis(timeout_ms),
    }
}

/// The test's stand-in for the daemon loop.
struct Harness {
    poll: Poll,
    events: Events,
    prober: Prober,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            poll: Poll::new().expect("create mio poll"),
            events: Events::with_capacity(256),
            prober: Prober::new(TOKEN_BASE),
        }
    }

    fn start(&mut self, id: u64, spec: &ProbeSpec) -> bool {
        self.prober
            .start(self.poll.registry(), id, spec, Instant::now())
    }

    /// Waits for readiness (at most `timeout`); returns how many events came.
    fn poll(&mut self, timeout: Duration) -> usize {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => self.events.iter().count(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => panic!("mio poll: {e}"),
        }
    }

    /// Hands the polled events to the prober, as the daemon does.
    fn dispatch(&mut self) {
        let now = Instant::now();
        for event in self.events.iter() {
            assert!(self.prober.owns(event.token()), "foreign token {event:?}");
            self.prober.handle_event(self.poll.registry(), event, now);
        }
    }

    /// Runs the loop (events first, then expire) until no probe is in flight.
    fn run(&mut self) -> Vec<(u64, ProbeResult)> {
        let limit = Instant::now() + LIMIT;
        let mut results = self.prober.take_results();
        while self.prober.in_flight() > 0 {
            let now = Instant::now();
            assert!(
                now < limit,
                "{} probes still in flight after {LIMIT:?}",
                self.prober.in_flight()
            );
            let wake = self.prober.next_deadline().unwrap_or(limit).min(limit);
            self.poll(wake.saturating_duration_since(now));
            self.dispatch();
            self.prober.expire(self.poll.registry(), Instant::now());
            results.extend(self.prober.take_results());
        }
        results
    }
}

fn probe_once(spec: &ProbeSpec) -> ProbeResult {
    let mut h = Harness::new();
    assert!(h.start(7, spec));
    let results = h.run();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].0, 7);
    results[0].1.clone()
}

fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
}

fn addr_of(l: &TcpListener) -> SocketAddr {
    l.local_addr().expect("listener address")
}

/// Accepts `count` connections on `listener`, giving up after `LIMIT`, and
/// hands each one to `serve` (blocking, with a read timeout so it ends too).
fn accept(listener: &TcpListener, count: usize, serve: impl Fn(TcpStream)) {
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let limit = Instant::now() + LIMIT;
    let mut accepted = 0;
    while accepted < count && Instant::now() < limit {
        match listener.accept() {
            Ok((stream, _)) => {
                accepted += 1;
                stream.set_nonblocking(false).expect("blocking peer socket");
                stream
                    .set_read_timeout(Some(LIMIT))
                    .expect("peer read timeout");
                serve(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2))
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    assert_eq!(accepted, count, "peer accepted too few connections");
}

/// Reads until the prober closes its end (EOF, reset or the read timeout).
fn wait_for_close(mut stream: TcpStream) {
    let mut buf = [0u8; 256];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

fn banner(text: &'static [u8]) -> impl Fn(TcpStream) {
    move |mut stream| {
        stream.write_all(text).expect("peer writes banner");
        wait_for_close(stream);
    }
}

fn echo(mut stream: TcpStream) {
    let mut buf = [0u8; 256];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

fn down_reason(result: &ProbeResult) -> &str {
    match result {
        ProbeResult::Down(reason) => reason,
        ProbeResult::Up => panic!("expected Down, got Up"),
    }
}

fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

#[test]
fn connect_only_probe_is_up_when_peer_listens() {
    let _serial = serial();
    let l = listener();
    thread::scope(|s| {
        s.spawn(|| accept(&l, 1, drop));
        assert_eq!(
            probe_once(&spec(addr_of(&l), b"", b"", 5000)),
            ProbeResult::Up
        );
    });
}

#[test]
fn closed_port_is_down_with_connection_refused() {
    let _serial = serial();
    let addr = addr_of(&listener()); // the listener is dropped at once: the port is closed
    let result = probe_once(&spec(addr, b"", b"", 5000));
    assert!(down_reason(&result).contains("refused"), "{result:?}");
}

#[test]
fn silent_peer_times_out_while_reading() {
    let _serial = serial();
    let l = listener();
    thread::scope(|s| {
        s.spawn(|| accept(&l, 1, wait_for_close));
        let started = Instant::now();
        let result = probe_once(&spec(addr_of(&l), b"", b"RFB", 300));
        assert_eq!(down_reason(&result), "timeout after 300 ms (reading)");
        // A lower bound only: the deadline cannot fire early.
        assert!(started.elapsed() >= Duration::from_millis(300));
    });
}

#[test]
fn wrong_banner_is_down() {
    let _serial = serial();
    let l = listener();
    thread::scope(|s| {
        s.spawn(|| accept(&l, 1, banner(b"HELLO")));
        let result = probe_once(&spec(addr_of(&l), b"", b"RFB", 5000));
        assert!(
            down_reason(&result).contains("did not start with the expected bytes"),
            "{result:?}"
        );
    });
}

#[test]
fn matching_banner_is_up() {
    let _serial = serial();
    let l = listener();
    thread::scope(|s| {
        s.spawn(|| accept(&l, 1, banner(b"RFB 003.008\n")));
        assert_eq!(
            probe_once(&spec(addr_of(&l), b"", b"RFB", 5000)),
            ProbeResult::Up
        );
    });
}

#[test]
fn send_then_expect_echo_is_up() {
    let _serial = serial();
    let l = listener();
    thread::scope(|s| {
        s.spawn(|| accept(&l, 1, echo));
        let result = probe_once(&spec(addr_of(&l), b"PING\n", b"PING", 5000));
        assert_eq!(result, ProbeResult::Up);
    });
}

#[test]
fn large_send_is_written_in_full_before_the_reply_counts() {
    let _serial = serial();
    let l = listener();
    // Bigger than the loopback socket buffers, so the probe's write has to wait
    // for the peer (WouldBlock, then writable events). The peer answers only
    // once every byte has arrived.
    let send = vec![b'x'; 16 << 20];
    let len = send.len();
    thread::scope(|s| {
        s.spawn(|| {
            accept(&l, 1, |mut stream| {
                let mut buf = vec![0u8; 64 << 10];
                let mut total = 0;
                while total < len {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => total += n,
                    }
                }
                stream.write_all(b"OK").expect("peer answers");
                wait_for_close(stream);
            })
        });
        let result = probe_once(&spec(addr_of(&l), &send, b"OK", 15_000));
        assert_eq!(result, ProbeResult::Up);
    });
}

#[test]
fn peer_closing_before_the_full_reply_is_down() {
    let _serial = serial();
    let l = listener();
    thread::scope(|s| {
        s.spawn(|| {
            accept(&l, 1, |mut stream| {
                stream.write_all(b"RF").expect("peer writes")
            })
        });
        let result = probe_once(&spec(addr_of(&l), b"", b"RFB", 5000));
        assert_eq!(
            down_reason(&result),
            "closed before expected reply (got 2 of 3 bytes)"
        );
    });
}

#[test]
fn ipv6_loopback_probe_is_up() {
    let _serial = serial();
    let l = match TcpListener::bind("[::1]:0") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skipping ipv6_loopback_probe_is_up: cannot bind [::1]:0: {e}");
            return;
        }
    };
    thread::scope(|s| {
        s.spawn(|| accept(&l, 1, banner(b"RFB 003.008\n")));
        assert_eq!(
            probe_once(&spec(addr_of(&l), b"", b"RFB", 5000)),
            ProbeResult::Up
        );
    });
}

#[test]
fn immediate_connect_failure_is_a_queued_down() {
    let _serial = serial();
    let mut h = Harness::new();
    // A link-local address without a scope id: the kernel refuses the connect
    // (EINVAL) before any packet leaves; without IPv6 the socket call fails.
    let addr: SocketAddr = "[fe80::1]:9".parse().expect("address");
    assert!(h.start(3, &spec(addr, b"", b"", 5000)));
    assert_eq!(h.prober.in_flight(), 0);
    let results = h.prober.take_results();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].0, 3);
    assert!(!down_reason(&results[0].1).is_empty());
}

#[test]
fn second_start_for_an_id_in_flight_is_refused() {
    let _serial = serial();
    let l = listener();
    let probe = spec(addr_of(&l), b"", b"", 5000);
    thread::scope(|s| {
        s.spawn(|| accept(&l, 2, drop));
        let mut h = Harness::new();
        assert!(h.start(1, &probe));
        assert!(!h.start(1, &probe));
        assert_eq!(h.prober.in_flight(), 1);
        assert_eq!(h.run(), vec![(1, ProbeResult::Up)]);
        assert!(h.start(1, &probe), "id is free again once its probe ended");
        assert_eq!(h.run(), vec![(1, ProbeResult::Up)]);
    });
}

#[test]
fn many_probes_leave_no_sockets_behind() {
    let _serial = serial();
    let l = listener();
    let mut h = Harness::new();
    let before = open_fds();
    thread::scope(|s| {
        s.spawn(|| accept(&l, 200, drop));
        // Connect-only probes in four waves of 50 at once, which keeps the
        // listener's backlog comfortably short.
        for wave in 0..4u64 {
            for id in wave * 50..(wave + 1) * 50 {
                assert!(h.start(id, &spec(addr_of(&l), b"", b"", 10_000)));
            }
            let results = h.run();
            assert_eq!(results.len(), 50);
            assert!(
                results.iter().all(|(_, r)| *r == ProbeResult::Up),
                "{results:?}"
            );
        }
    });
    assert_eq!(h.prober.in_flight(), 0);
    assert_eq!(h.prober.next_deadline(), None);
    let after = open_fds();
    assert!(after <= before, "fds before {before}, after {after}");
}

/// Starts one banner probe (100 ms timeout) whose connect and reply reach the
/// kernel, then stays away from the loop until its deadline has passed, like
/// the daemon during a slow HTTP call. Returns the harness, ready to poll.
fn late_probe(l: &TcpListener, written: &mpsc::Receiver<()>) -> Harness {
    let mut h = Harness::new();
    assert!(h.start(1, &spec(addr_of(l), b"", b"RFB", 100)));
    let deadline = h.prober.next_deadline().expect("probe in flight");
    written.recv_timeout(LIMIT).expect("peer wrote its banner");
    thread::sleep(deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(50));
    assert!(Instant::now() > deadline);
    assert!(h.poll(Duration::ZERO) > 0, "the reply is already waiting");
    h
}

#[test]
fn reply_received_while_loop_was_blocked_counts_if_events_come_before_expire() {
    let _serial = serial();
    let l = listener();
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        s.spawn(|| {
            accept(&l, 2, |mut stream| {
                stream
                    .write_all(b"RFB 003.008\n")
                    .expect("peer writes banner");
                tx.send(()).expect("signal test");
                wait_for_close(stream);
            })
        });
        // The daemon's order: pending events first, then expire.
        let mut h = late_probe(&l, &rx);
        h.dispatch();
        h.prober.expire(h.poll.registry(), Instant::now());
        assert_eq!(h.prober.take_results(), vec![(1, ProbeResult::Up)]);
        drop(h);
        // The other order times out, so the first result really came from the event.
        let mut h = late_probe(&l, &rx);
        h.prober.expire(h.poll.registry(), Instant::now());
        h.dispatch();
        let results = h.prober.take_results();
        assert_eq!(results.len(), 1);
        // Never told of the connect, the prober still counts it as connecting.
        assert_eq!(
            down_reason(&results[0].1),
            "timeout after 100 ms (connecting)"
        );
        drop(h);
    });
}
