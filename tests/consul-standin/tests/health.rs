//! `GET /v1/health/service/<name>` over real loopback HTTP: parameter errors with
//! Consul's texts, the response shape and headers, filters, and blocking queries
//! (wake on change with a new index, time out with the same one).

use std::thread;
use std::time::{Duration, Instant};

use consul_standin::client::{self, Reply};
use consul_standin::{Options, Standin};
use serde_json::json;

fn get(s: &Standin, path: &str) -> Reply {
    client::get(&format!("{}{path}", s.url())).expect("stand-in answers")
}

fn web(s: &Standin, id: &str, tags: &[&str], status: &str) {
    s.register(
        json!({"ID": id, "Name": "web", "Tags": tags, "Address": "192.0.2.10", "Port": 8080,
        "Check": {"TTL": "30s", "Status": status}}),
    );
}

fn ids(r: &Reply) -> Vec<String> {
    let v = r.json().expect("JSON body");
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["Service"]["ID"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn bad_parameters_get_consul_400_texts() {
    let s = Standin::start();
    let cases = [
        ("?wait=60", 400, "Invalid wait time"),
        ("?wait=10sec", 400, "Invalid wait time"),
        ("?index=abc", 400, "Invalid index"),
        (
            "?stale&consistent",
            400,
            "Cannot specify ?stale with ?consistent, conflicting semantics.",
        ),
        ("?passing=yes", 400, "Invalid value for ?passing"),
        ("?dc=dc9", 500, "No path to datacenter"),
    ];
    for (query, status, text) in cases {
        let r = get(&s, &format!("/v1/health/service/web{query}"));
        assert_eq!((r.status, r.text().as_str()), (status, text), "{query}");
    }
}

#[test]
fn unknown_service_is_200_empty_array_with_consul_headers() {
    let s = Standin::start();
    let r = get(&s, "/v1/health/service/nothing-here?dc=dc1");
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    assert!(r.index().unwrap() >= 1);
    assert_eq!(r.header("X-Consul-KnownLeader"), Some("true"));
    assert_eq!(r.header("X-Consul-LastContact"), Some("0"));
    assert_eq!(r.header("X-Consul-Effective-Consistency"), Some("leader"));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("Content-Length"), Some("2"));
}

#[test]
fn consistency_header_follows_the_mode() {
    let s = Standin::start();
    for (q, want) in [
        ("?stale", "stale"),
        ("?consistent", "consistent"),
        ("", "leader"),
    ] {
        let r = get(&s, &format!("/v1/health/service/web{q}"));
        assert_eq!(r.header("X-Consul-Effective-Consistency"), Some(want));
    }
}

#[test]
fn entry_has_consul_shape_and_node_address_fallback() {
    let s = Standin::start_with(Options {
        node_address: "198.51.100.7".into(),
        ..Options::default()
    });
    s.register(json!({"ID": "bare", "Name": "web"}));
    let r = get(&s, "/v1/health/service/web");
    let e = &r.json().unwrap()[0];
    assert_eq!(e["Node"]["Node"], "standin-node");
    assert_eq!(e["Node"]["Address"], "198.51.100.7");
    assert_eq!(e["Node"]["Datacenter"], "dc1");
    assert_eq!(e["Service"]["Address"], "");
    assert!(
        e["Service"].get("Port").is_none(),
        "Port 0 is omitted, as Consul does"
    );
    assert_eq!(e["Service"]["Weights"], json!({"Passing": 1, "Warning": 1}));
    assert_eq!(e["Service"]["Tags"], json!([]));
    assert_eq!(e["Checks"][0]["CheckID"], "serfHealth");
    assert_eq!(
        e["Checks"].as_array().unwrap().len(),
        1,
        "no checks of its own"
    );
    assert_eq!(r.index(), Some(s.index("web")));
}

#[test]
fn tag_filter_is_case_insensitive_and_repeatable() {
    let s = Standin::start();
    web(&s, "a", &["Primary", "lb"], "passing");
    web(&s, "b", &["lb"], "passing");
    assert_eq!(ids(&get(&s, "/v1/health/service/web?tag=primary")), ["a"]);
    assert_eq!(ids(&get(&s, "/v1/health/service/web?tag=LB")), ["a", "b"]);
    assert_eq!(
        ids(&get(&s, "/v1/health/service/web?tag=lb&tag=PRIMARY")),
        ["a"]
    );
    assert!(ids(&get(&s, "/v1/health/service/web?tag=lb&tag=other")).is_empty());
}

#[test]
fn passing_filter_drops_warning_and_critical() {
    let s = Standin::start();
    web(&s, "ok", &[], "passing");
    web(&s, "warn", &[], "warning");
    web(&s, "bad", &[], "critical");
    assert_eq!(ids(&get(&s, "/v1/health/service/web?passing")), ["ok"]);
    assert_eq!(ids(&get(&s, "/v1/health/service/web?passing=1")), ["ok"]);
    assert_eq!(
        ids(&get(&s, "/v1/health/service/web?passing=false")).len(),
        3
    );
}

#[test]
fn maintenance_adds_a_critical_check() {
    let s = Standin::start();
    web(&s, "a", &[], "passing");
    s.maintenance("a", true);
    let r = get(&s, "/v1/health/service/web");
    let checks = r.json().unwrap()[0]["Checks"].clone();
    let m = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["CheckID"] == "_service_maintenance:a")
        .cloned();
    let m = m.expect("maintenance check present");
    assert_eq!(
        (m["Status"].as_str(), m["ServiceID"].as_str()),
        (Some("critical"), Some("a"))
    );
    assert!(ids(&get(&s, "/v1/health/service/web?passing")).is_empty());
    s.maintenance("a", false);
    assert_eq!(ids(&get(&s, "/v1/health/service/web?passing")), ["a"]);
}

#[test]
fn blocking_query_returns_on_change_with_a_new_index() {
    let s = Standin::start();
    web(&s, "a", &[], "passing");
    let idx = s.index("web");
    let url = format!("{}/v1/health/service/web?index={idx}&wait=30s", s.url());
    let reader = thread::spawn(move || client::get(&url).unwrap());
    assert!(
        s.wait_for_parked_reads(1, Duration::from_secs(10)),
        "read parks"
    );
    s.set_check("service:a", "critical");
    let r = reader.join().unwrap();
    assert!(r.index().unwrap() > idx);
    assert_eq!(r.json().unwrap()[0]["Checks"][1]["Status"], "critical");
}

#[test]
fn blocking_query_times_out_with_the_same_index() {
    let s = Standin::start();
    web(&s, "a", &[], "passing");
    let idx = s.index("web");
    let started = Instant::now();
    let r = get(&s, &format!("/v1/health/service/web?index={idx}&wait=1s"));
    let took = started.elapsed();
    assert_eq!(r.index(), Some(idx));
    assert!(
        took >= Duration::from_secs(1),
        "held for the wait: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "not much longer: {took:?}");
}

#[test]
fn stale_or_zero_index_answers_at_once() {
    let s = Standin::start();
    web(&s, "a", &[], "passing");
    let idx = s.index("web");
    for index in [0, idx - 1] {
        let started = Instant::now();
        let r = get(&s, &format!("/v1/health/service/web?index={index}&wait=5s"));
        assert_eq!(r.index(), Some(idx));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

#[test]
fn request_log_records_query_and_headers() {
    let s = Standin::start();
    let url = format!("{}/v1/health/service/web?dc=dc1&tag=lb&stale", s.url());
    client::request(
        "GET",
        &url,
        None,
        &[("X-Consul-Token", "secret")],
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(s.wait_for_health_requests(1, Duration::from_secs(5)));
    let last = s.health_requests().pop().unwrap();
    assert_eq!(
        last.path_and_query,
        "/v1/health/service/web?dc=dc1&tag=lb&stale"
    );
    assert_eq!(last.header("x-consul-token"), Some("secret"));
    assert!(last
        .query()
        .contains(&("tag".to_string(), "lb".to_string())));
    let logged = get(&s, "/v1/_standin/requests?path_prefix=/v1/health/")
        .json()
        .unwrap();
    assert_eq!(
        logged[0]["path_and_query"],
        "/v1/health/service/web?dc=dc1&tag=lb&stale"
    );
}

#[test]
fn catalog_services_and_agent_self() {
    let s = Standin::start();
    web(&s, "a", &["lb"], "passing");
    assert_eq!(
        get(&s, "/v1/catalog/services").json().unwrap(),
        json!({"web": ["lb"]})
    );
    assert_eq!(
        get(&s, "/v1/agent/self").json().unwrap()["Config"]["Datacenter"],
        "dc1"
    );
}

#[test]
fn serves_on_ipv6_loopback() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    drop(probe);
    let s = Standin::start_with(Options {
        listen: "[::1]:0".parse().unwrap(),
        node_address: "2001:db8::1".into(),
        ..Options::default()
    });
    assert!(s.url().starts_with("http://[::1]:"));
    s.register(json!({"ID": "a", "Name": "web", "Port": 80}));
    let r = get(&s, "/v1/health/service/web");
    assert_eq!(
        r.json().unwrap()[0]["Node"]["TaggedAddresses"]["lan_ipv6"],
        "2001:db8::1"
    );
}

#[test]
fn bump_wakes_a_blocked_read_with_a_new_index_and_the_same_list() {
    let s = Standin::start();
    web(&s, "a", &[], "passing");
    let first = get(&s, "/v1/health/service/web");
    let idx = first.index().unwrap();
    let url = format!("{}/v1/health/service/web?index={idx}&wait=30s", s.url());
    let reader = thread::spawn(move || client::get(&url).unwrap());
    assert!(s.wait_for_parked_reads(1, Duration::from_secs(10)));
    s.bump_index("web");
    let r = reader.join().unwrap();
    assert!(r.index().unwrap() > idx);
    assert_eq!(r.body, first.body);
    let over_http = client::put(&format!("{}/v1/_standin/index/web", s.url()), None).unwrap();
    assert_eq!(over_http.status, 200);
    assert!(
        get(&s, "/v1/_standin/index/web")
            .text()
            .parse::<u64>()
            .unwrap()
            > r.index().unwrap()
    );
}
