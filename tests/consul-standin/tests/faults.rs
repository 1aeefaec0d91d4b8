//! Every fault mode as a raw client sees it, plus the guarantees around them:
//! writes and `/v1/_standin/*` keep working during a fault, a refused port comes
//! back on the same number, and a fault switched on cuts a blocked read short.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use consul_standin::client::{self, Reply};
use consul_standin::{Fault, Standin};
use serde_json::json;

fn standin_with_web() -> Standin {
    let s = Standin::start();
    s.register(
        json!({"ID": "a", "Name": "web", "Address": "192.0.2.10", "Port": 80,
        "Check": {"TTL": "9s", "Status": "passing"}}),
    );
    s
}

fn health(s: &Standin) -> std::io::Result<Reply> {
    client::request(
        "GET",
        &format!("{}/v1/health/service/web", s.url()),
        None,
        &[],
        Duration::from_secs(5),
    )
}

/// Sends a raw GET and returns the stream, for reading the answer by hand.
fn raw_get(s: &Standin, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    stream
}

fn read_all(stream: &mut TcpStream, timeout: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    bytes
}

fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok()
}

#[test]
fn refuse_closes_the_port_and_reopens_the_same_one() {
    let s = standin_with_web();
    let addr = s.addr();
    s.set_fault(Fault::Refuse);
    let err = TcpStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    s.set_fault(Fault::None);
    assert_eq!(s.addr(), addr);
    assert_eq!(health(&s).unwrap().status, 200);
}

#[test]
fn refuse_drops_a_blocked_read() {
    let s = standin_with_web();
    let url = format!(
        "{}/v1/health/service/web?index={}&wait=30s",
        s.url(),
        s.index("web")
    );
    let reader = thread::spawn(move || client::get(&url));
    assert!(s.wait_for_parked_reads(1, Duration::from_secs(10)));
    s.set_fault(Fault::Refuse);
    assert!(
        reader.join().unwrap().is_err(),
        "connection dropped without an answer"
    );
}

#[test]
fn refuse_can_be_set_and_cleared_through_the_control_port() {
    let s = standin_with_web();
    let control = s.start_control("127.0.0.1:0".parse().unwrap());
    let ctl = |mode: &str| {
        client::put(
            &format!("http://{control}/v1/_standin/fault?mode={mode}"),
            None,
        )
        .unwrap()
    };
    assert_eq!(ctl("refuse").status, 200);
    assert_eq!(
        TcpStream::connect(s.addr()).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
    let current = client::get(&format!("http://{control}/v1/_standin/fault")).unwrap();
    assert_eq!(current.text(), "refuse");
    assert_eq!(ctl("none").status, 200);
    assert_eq!(health(&s).unwrap().status, 200);
    let consul_on_control =
        client::get(&format!("http://{control}/v1/health/service/web")).unwrap();
    assert_eq!(
        consul_on_control.status, 404,
        "control port serves only /v1/_standin/"
    );
}

#[test]
fn refuse_over_the_main_port_needs_a_control_listener() {
    let s = standin_with_web();
    let r = client::put(&format!("{}/v1/_standin/fault?mode=refuse", s.url()), None).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(s.fault(), Fault::None);
}

#[test]
fn error500_says_no_cluster_leader_while_writes_still_work() {
    let s = standin_with_web();
    s.set_fault(Fault::Error500);
    let r = health(&s).unwrap();
    assert_eq!((r.status, r.text().as_str()), (500, "No cluster leader"));
    let reg = client::put(
        &format!("{}/v1/agent/service/register", s.url()),
        Some(br#"{"Name": "db"}"#),
    )
    .unwrap();
    assert_eq!(reg.status, 200);
    s.set_fault(Fault::None);
    assert_eq!(health(&s).unwrap().status, 200);
}

#[test]
fn malformed_is_200_with_a_body_that_is_not_json() {
    let s = standin_with_web();
    s.set_fault(Fault::Malformed);
    let r = health(&s).unwrap();
    assert_eq!(r.status, 200);
    assert!(!is_json(&r.body));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
}

#[test]
fn truncated_is_an_honest_length_prefix_of_the_real_body() {
    let s = standin_with_web();
    let full = health(&s).unwrap().body;
    s.set_fault(Fault::Truncated);
    let r = health(&s).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Length"),
        Some(r.body.len().to_string().as_str())
    );
    assert!(r.body.len() < full.len() && full.starts_with(&r.body));
    assert!(!is_json(&r.body));
}

#[test]
fn close_mid_body_promises_more_than_it_sends() {
    let s = standin_with_web();
    s.set_fault(Fault::CloseMidBody);
    let err = health(&s).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    let bytes = read_all(
        &mut raw_get(&s, "/v1/health/service/web"),
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let announced: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(body.len() < announced, "{} of {announced}", body.len());
}

#[test]
fn hang_holds_the_answer_until_cleared_while_control_works() {
    let s = standin_with_web();
    s.set_fault(Fault::Hang);
    let mut stream = raw_get(&s, "/v1/health/service/web");
    assert!(s.wait_for_parked_reads(1, Duration::from_secs(10)));
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut byte = [0u8; 1];
    let err = stream.read(&mut byte).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );
    let ctl = client::get(&format!("{}/v1/_standin/fault", s.url())).unwrap();
    assert_eq!(ctl.text(), "hang", "control endpoints answer during a hang");
    s.set_fault(Fault::None);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = stream.read(&mut byte).unwrap();
    assert_eq!(
        (n, byte[0]),
        (1, b'H'),
        "the held request is answered after clearing"
    );
}

#[test]
fn slow_answers_correctly_after_the_delay() {
    let s = standin_with_web();
    s.set_fault(Fault::Slow(Duration::from_millis(300)));
    let started = Instant::now();
    let r = health(&s).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.json().unwrap()[0]["Service"]["ID"], "a");
}

#[test]
fn oversized_is_valid_json_of_the_requested_size() {
    let s = standin_with_web();
    let normal = health(&s).unwrap().json().unwrap();
    s.set_fault(Fault::Oversized(200_000));
    let r = health(&s).unwrap();
    assert_eq!(r.body.len(), 200_000);
    assert_eq!(r.header("Content-Length"), Some("200000"));
    assert_eq!(r.json().unwrap(), normal);
}

#[test]
fn index_backwards_lowers_the_index_and_wakes_blocked_reads() {
    let s = standin_with_web();
    let before = s.index("web");
    let url = format!("{}/v1/health/service/web?index={before}&wait=30s", s.url());
    let reader = thread::spawn(move || client::get(&url).unwrap());
    assert!(s.wait_for_parked_reads(1, Duration::from_secs(10)));
    s.set_fault(Fault::IndexBackwards);
    let woken = reader.join().unwrap();
    assert!(
        woken.index().unwrap() < before,
        "{:?} < {before}",
        woken.index()
    );
    assert!(health(&s).unwrap().index().unwrap() < before);
}

#[test]
fn acl_filtered_is_an_empty_flagged_list() {
    let s = standin_with_web();
    s.set_fault(Fault::AclFiltered);
    let r = health(&s).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    assert_eq!(r.header("X-Consul-Results-Filtered-By-ACLs"), Some("true"));
}

#[test]
fn a_fault_switched_on_cuts_a_blocked_read_short() {
    let s = standin_with_web();
    let url = format!(
        "{}/v1/health/service/web?index={}&wait=30s",
        s.url(),
        s.index("web")
    );
    let reader = thread::spawn(move || client::get(&url).unwrap());
    assert!(s.wait_for_parked_reads(1, Duration::from_secs(10)));
    s.set_fault(Fault::Error500);
    assert_eq!(reader.join().unwrap().status, 500);
}

#[test]
fn faults_are_settable_over_http() {
    let s = standin_with_web();
    let set = |q: &str| client::put(&format!("{}/v1/_standin/fault?{q}", s.url()), None).unwrap();
    assert_eq!(set("mode=slow&delay_ms=250").status, 200);
    assert_eq!(s.fault(), Fault::Slow(Duration::from_millis(250)));
    assert_eq!(set("mode=oversized&bytes=4096").status, 200);
    assert_eq!(s.fault(), Fault::Oversized(4096));
    let bad = set("mode=explode");
    assert_eq!(bad.status, 400);
    assert_eq!(set("mode=slow").status, 400, "slow needs delay_ms");
    assert_eq!(set("mode=none").status, 200);
    assert_eq!(s.fault(), Fault::None);
}

#[test]
fn refuse_over_the_main_port_answers_before_closing() {
    let s = standin_with_web();
    s.start_control("127.0.0.1:0".parse().unwrap());
    let r = client::put(&format!("{}/v1/_standin/fault?mode=refuse", s.url()), None).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        TcpStream::connect(s.addr()).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
    s.set_fault(Fault::None);
    assert_eq!(health(&s).unwrap().status, 200);
}

#[test]
fn dropping_the_standin_ends_a_parked_read() {
    let s = standin_with_web();
    let url = format!(
        "{}/v1/health/service/web?index={}&wait=5m",
        s.url(),
        s.index("web")
    );
    let reader = thread::spawn(move || client::get(&url));
    assert!(s.wait_for_parked_reads(1, Duration::from_secs(10)));
    drop(s);
    assert!(reader.join().unwrap().is_err());
}
