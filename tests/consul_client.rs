//! The Consul client against a real HTTP server on 127.0.0.1.
//!
//! The server is hand-rolled here (a `TcpListener` and one thread that plays
//! a canned script per connection), so these tests depend on nothing but std
//! and exercise minreq's real socket, timeout and body handling. Every test is
//! bounded: the client timeout is 1 s and no script sleeps longer than 3 s.

use consul_ipvs::config::{ConsulConfig, Secret, ServiceConfig, Source};
use consul_ipvs::consul::client::{ConsulClient, FetchError, Response};
use consul_ipvs::consul::poll::{Outcome, Poller};
use consul_ipvs::model::{Forward, Protocol, ServiceKey, ServiceSpec};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const TOKEN: &str = "s3cr3t-token-4242";

/// One canned behaviour for a connection, after the request head was read.
type Script = Box<dyn Fn(&mut TcpStream) + Send + Sync>;

struct Server {
    url: String,
    /// Request heads received, in order.
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Serves `conns` connections with `script`, then stops listening.
    fn start(conns: usize, script: Script) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        thread::spawn(move || {
            for _ in 0..conns {
                let Ok((mut s, _)) = listener.accept() else {
                    return;
                };
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                seen.lock().unwrap().push(read_head(&mut s));
                script(&mut s);
            }
        });
        Server { url, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A complete response with `Content-Length` and extra header lines.
fn reply(status: &str, headers: &str, body: &[u8]) -> Script {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    Box::new(move |s| {
        let _ = s.write_all(&out);
    })
}

/// Exactly these bytes, then close.
fn raw(bytes: &'static [u8]) -> Script {
    Box::new(move |s| {
        let _ = s.write_all(bytes);
    })
}

fn config(url: &str, token: Option<&str>, dc: Option<&str>) -> ConsulConfig {
    ConsulConfig {
        address: url.into(),
        token: token.map(|t| Secret(t.into())),
        token_file: None,
        datacenter: dc.map(String::from),
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(1000),
    }
}

fn client(url: &str) -> ConsulClient {
    ConsulClient::new(&config(url, Some(TOKEN), None))
}

fn svc() -> ServiceConfig {
    ServiceConfig {
        name: "rabbitmq".into(),
        key: ServiceKey {
            protocol: Protocol::Tcp,
            vip: "192.0.2.10:5672".parse().unwrap(),
        },
        spec: ServiceSpec {
            scheduler: "wlc".into(),
            persistence_s: 0,
        },
        forward: Forward::Nat,
        drain_timeout: None,
        source: Source::Consul {
            service: "rabbitmq".into(),
            tags: vec!["amqp".into()],
        },
        check: None,
        allowed_backends: vec![],
    }
}

const ONE: &[u8] = br#"[{"Node":{"Node":"n1","Address":"127.0.0.1"},"Service":{"ID":"r1","Service":"rabbitmq","Tags":["amqp"],"Address":"127.0.0.1","Port":5672,"Weights":{"Passing":3,"Warning":1}},"Checks":[{"CheckID":"serfHealth","Status":"passing"}]}]"#;

fn fetch(c: &ConsulClient) -> Result<Response, FetchError> {
    c.fetch("rabbitmq", &["amqp".to_string()])
}

#[test]
fn ok_answer_returns_body_index_and_filter_flag() {
    let s = Server::start(1, reply("200 OK", "X-Consul-Index: 42\r\n", ONE));
    let r = fetch(&client(&s.url)).unwrap();
    assert_eq!(r.index, Some(42));
    assert!(!r.filtered_by_acls);
    assert_eq!(r.body, ONE);
}

#[test]
fn missing_or_bad_index_is_none() {
    for h in ["", "X-Consul-Index: abc\r\n"] {
        let s = Server::start(1, reply("200 OK", h, b"[]"));
        assert_eq!(fetch(&client(&s.url)).unwrap().index, None, "{h:?}");
    }
}

#[test]
fn request_carries_token_header_stale_tags_and_dc_but_no_token_in_url() {
    let s = Server::start(1, reply("200 OK", "", b"[]"));
    let c = ConsulClient::new(&config(&s.url, Some(TOKEN), Some("eu-west")));
    c.fetch("rabbit mq", &["amqp".into(), "v=2".into()])
        .unwrap();
    let head = &s.requests()[0];
    let line = head.lines().next().unwrap();
    assert_eq!(
        line,
        "GET /v1/health/service/rabbit%20mq?stale&tag=amqp&tag=v%3D2&dc=eu-west HTTP/1.1"
    );
    assert!(
        head.lines()
            .any(|l| l.eq_ignore_ascii_case(&format!("x-consul-token: {TOKEN}"))),
        "{head}"
    );
    assert_eq!(head.matches(TOKEN).count(), 1, "token only in its header");
}

#[test]
fn no_token_sends_no_token_header() {
    let s = Server::start(1, reply("200 OK", "", b"[]"));
    ConsulClient::new(&config(&s.url, None, None))
        .fetch("web", &[])
        .unwrap();
    let head = s.requests()[0].to_ascii_lowercase();
    assert!(!head.contains("x-consul-token"), "{head}");
    assert!(
        head.starts_with("get /v1/health/service/web?stale http/1.1"),
        "{head}"
    );
}

#[test]
fn status_500_is_an_error_with_consuls_reason() {
    let s = Server::start(
        1,
        reply("500 Internal Server Error", "", b"No cluster leader\n"),
    );
    let e = fetch(&client(&s.url)).unwrap_err();
    assert_eq!(
        e,
        FetchError::Status {
            code: 500,
            body: "No cluster leader".into()
        }
    );
    assert_eq!(e.to_string(), "HTTP 500: No cluster leader");
}

#[test]
fn long_error_body_is_capped() {
    let body = "x".repeat(100_000);
    let s = Server::start(1, reply("503 Service Unavailable", "", body.as_bytes()));
    match fetch(&client(&s.url)).unwrap_err() {
        FetchError::Status { code: 503, body } => assert!(body.chars().count() <= 201),
        other => panic!("{other:?}"),
    }
}

#[test]
fn error_texts_never_show_the_token_even_if_echoed() {
    let echoed = format!("ACL not found: token {TOKEN}");
    let s = Server::start(1, reply("403 Forbidden", "", echoed.as_bytes()));
    let e = fetch(&client(&s.url)).unwrap_err();
    assert!(matches!(e, FetchError::Status { code: 403, .. }), "{e:?}");
    assert!(!e.to_string().contains(TOKEN), "{e}");
    assert!(!format!("{e:?}").contains(TOKEN), "{e:?}");
    assert!(!format!("{:?}", client(&s.url)).contains(TOKEN));
}

#[test]
fn redirect_is_not_followed() {
    let s = Server::start(2, reply("302 Found", "Location: /v1/elsewhere\r\n", b""));
    let e = fetch(&client(&s.url)).unwrap_err();
    assert!(matches!(e, FetchError::Status { code: 302, .. }), "{e:?}");
    thread::sleep(Duration::from_millis(50));
    assert_eq!(s.requests().len(), 1);
}

#[test]
fn refused_port_is_a_connect_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let e = fetch(&client(&url)).unwrap_err();
    assert!(matches!(e, FetchError::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains(&url), "{e}");
}

#[test]
fn hanging_server_times_out_within_the_timeout() {
    let s = Server::start(1, Box::new(|_| thread::sleep(Duration::from_secs(3))));
    let t = Instant::now();
    let e = fetch(&client(&s.url)).unwrap_err();
    assert_eq!(
        e,
        FetchError::Timeout {
            after: Duration::from_secs(1)
        }
    );
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn slow_body_is_bounded_by_the_same_deadline() {
    // Headers at once, then one byte every 200 ms: each read succeeds, but the
    // whole answer would take 4 s.
    let s = Server::start(
        1,
        Box::new(|s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n");
            for _ in 0..20 {
                thread::sleep(Duration::from_millis(200));
                if s.write_all(b" ").is_err() {
                    return;
                }
            }
        }),
    );
    let t = Instant::now();
    let e = fetch(&client(&s.url)).unwrap_err();
    assert!(matches!(e, FetchError::Timeout { .. }), "{e:?}");
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn declared_oversized_body_is_refused_unread() {
    // The server announces 64 MiB and then sends nothing: only a client that
    // refuses on the header returns before its timeout.
    let s = Server::start(
        1,
        Box::new(|s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n");
            thread::sleep(Duration::from_secs(3));
        }),
    );
    let t = Instant::now();
    let e = fetch(&client(&s.url)).unwrap_err();
    assert_eq!(e, FetchError::TooLarge { limit: 16 << 20 });
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn undeclared_oversized_body_is_cut_at_the_cap() {
    // No Content-Length: the body ends when the server closes. 1 MiB against
    // a 64 KiB cap.
    let s = Server::start(
        1,
        Box::new(|s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..16 {
                if s.write_all(&chunk).is_err() {
                    return;
                }
            }
        }),
    );
    let e = fetch(&client(&s.url).with_max_body(64 * 1024)).unwrap_err();
    assert_eq!(e, FetchError::TooLarge { limit: 64 * 1024 });
}

#[test]
fn chunked_oversized_body_is_cut_at_the_cap() {
    let s = Server::start(
        1,
        Box::new(|s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            let chunk = [b"400\r\n".as_slice(), &[b'x'; 0x400], b"\r\n"].concat();
            for _ in 0..200 {
                if s.write_all(&chunk).is_err() {
                    return;
                }
            }
            let _ = s.write_all(b"0\r\n\r\n");
        }),
    );
    let e = fetch(&client(&s.url).with_max_body(4096)).unwrap_err();
    assert_eq!(e, FetchError::TooLarge { limit: 4096 });
}

#[test]
fn body_exactly_at_the_cap_is_accepted() {
    let s = Server::start(1, reply("200 OK", "", ONE));
    let r = fetch(&client(&s.url).with_max_body(ONE.len())).unwrap();
    assert_eq!(r.body.len(), ONE.len());
}

#[test]
fn chunked_answer_is_read_whole() {
    let s = Server::start(
        1,
        raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Consul-Index: 9\r\n\r\n1\r\n[\r\n1\r\n]\r\n0\r\n\r\n"),
    );
    let r = fetch(&client(&s.url)).unwrap();
    assert_eq!((r.index, r.body.as_slice()), (Some(9), b"[]".as_slice()));
}

#[test]
fn connection_closed_before_content_length_is_an_error() {
    let s = Server::start(
        1,
        raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[{\"Node\":"),
    );
    let e = fetch(&client(&s.url)).unwrap_err();
    assert_eq!(
        e,
        FetchError::Io {
            error: "body ended after 9 of 100 bytes".into()
        }
    );
}

/// minreq takes EOF inside the headers for their end, so the fetch may
/// "succeed" with an empty, close-delimited body; the poller must refuse it.
#[test]
fn connection_closed_before_headers_end_never_reaches_the_table() {
    let s = Server::start(1, raw(b"HTTP/1.1 200 OK\r\nContent-Le"));
    let t0 = Instant::now();
    let mut p = Poller::new(Duration::from_secs(1), t0);
    let resp = fetch(&client(&s.url));
    assert_eq!(p.on_response(resp, &svc(), t0), Outcome::Failed);
    assert!(!p.has_answer());
}

/// minreq reports a chunked body cut mid-chunk as a normal end, so the fetch
/// itself may succeed with half a body; the poller must still refuse it.
#[test]
fn chunked_body_closed_mid_chunk_never_reaches_the_table() {
    let s = Server::start(
        1,
        raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n[{\"Node\":{\"Node\":\"n1\""),
    );
    let t0 = Instant::now();
    let mut p = Poller::new(Duration::from_secs(1), t0);
    let resp = fetch(&client(&s.url));
    assert_eq!(p.on_response(resp, &svc(), t0), Outcome::Failed);
    assert!(!p.has_answer());
}

#[test]
fn garbage_200_fails_the_poll_and_keeps_the_last_answer() {
    let good = Server::start(1, reply("200 OK", "X-Consul-Index: 5\r\n", ONE));
    let bad = Server::start(
        1,
        reply(
            "200 OK",
            "X-Consul-Index: 6\r\n",
            b"<html>proxy error</html>",
        ),
    );
    let t0 = Instant::now();
    let mut p = Poller::new(Duration::from_secs(1), t0);
    let Outcome::Changed(parsed) = p.on_response(fetch(&client(&good.url)), &svc(), t0) else {
        panic!("first answer should be a change");
    };
    assert_eq!(parsed.backends.len(), 1);
    assert_eq!(parsed.backends[0].weight, 3);
    assert_eq!(
        p.on_response(fetch(&client(&bad.url)), &svc(), t0),
        Outcome::Failed
    );
    assert!(p.has_answer());
    assert_eq!(p.error_streak(), 1);
}

#[test]
fn acl_filtered_empty_answer_is_flagged_and_fails_the_poll() {
    let s = Server::start(
        1,
        reply(
            "200 OK",
            "X-Consul-Index: 8\r\nX-Consul-Results-Filtered-By-ACLs: true\r\n",
            b"[]",
        ),
    );
    let resp = fetch(&client(&s.url));
    assert!(resp.as_ref().unwrap().filtered_by_acls);
    let t0 = Instant::now();
    let mut p = Poller::new(Duration::from_secs(1), t0);
    assert_eq!(p.on_response(resp, &svc(), t0), Outcome::Failed);
    assert!(!p.has_answer());
}

#[test]
fn timeout_is_rounded_up_to_whole_seconds() {
    let mut cfg = config("http://127.0.0.1:1", None, None);
    cfg.timeout = Duration::from_millis(1500);
    assert_eq!(ConsulClient::new(&cfg).timeout(), Duration::from_secs(2));
    cfg.timeout = Duration::from_millis(200);
    assert_eq!(ConsulClient::new(&cfg).timeout(), Duration::from_secs(1));
}
