//! The agent write endpoints over HTTP: register, deregister, maintenance and
//! TTL check updates, with Consul's status codes and texts, 405/404 routing, and
//! the rule that every write bumps the service's index and wakes blocked readers.

use std::thread;
use std::time::Duration;

use consul_standin::client::{self, Reply};
use consul_standin::Standin;

fn put(s: &Standin, path: &str, body: &str) -> Reply {
    let body = (!body.is_empty()).then_some(body.as_bytes());
    client::put(&format!("{}{path}", s.url()), body).expect("stand-in answers")
}

fn get(s: &Standin, path: &str) -> Reply {
    client::get(&format!("{}{path}", s.url())).expect("stand-in answers")
}

const WEB: &str = r#"{"ID": "web-1", "Name": "web", "Tags": ["lb"], "Address": "192.0.2.11", "Port": 80,
    "Weights": {"Passing": 10, "Warning": 1}, "Check": {"TTL": "15s"}}"#;

fn status_of(s: &Standin, check: &str) -> String {
    let v = get(s, "/v1/health/service/web").json().unwrap();
    let checks = v[0]["Checks"].as_array().unwrap().clone();
    let c = checks
        .iter()
        .find(|c| c["CheckID"] == check)
        .expect("check listed");
    c["Status"].as_str().unwrap().to_string()
}

#[test]
fn register_answers_empty_200_and_check_starts_critical() {
    let s = Standin::start();
    let r = put(&s, "/v1/agent/service/register", WEB);
    assert_eq!(
        (r.status, r.body.len(), r.header("Content-Type")),
        (200, 0, None)
    );
    assert_eq!(status_of(&s, "service:web-1"), "critical");
    let v = get(&s, "/v1/health/service/web").json().unwrap();
    assert_eq!(v[0]["Service"]["Weights"]["Passing"], 10);
}

#[test]
fn register_rejects_like_consul() {
    let s = Standin::start();
    let r = put(&s, "/v1/agent/service/register", r#"{"ID": "x"}"#);
    assert_eq!((r.status, r.text().as_str()), (400, "Missing service name"));
    let r = put(&s, "/v1/agent/service/register", "{not json");
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("Request decode failed: "));
}

#[test]
fn ttl_updates_change_status_and_output() {
    let s = Standin::start();
    put(&s, "/v1/agent/service/register", WEB);
    assert_eq!(
        put(&s, "/v1/agent/check/pass/service:web-1?note=all+good", "").status,
        200
    );
    assert_eq!(status_of(&s, "service:web-1"), "passing");
    put(&s, "/v1/agent/check/warn/service:web-1", "");
    assert_eq!(status_of(&s, "service:web-1"), "warning");
    put(
        &s,
        "/v1/agent/check/update/service:web-1",
        r#"{"Status": "critical", "Output": "x"}"#,
    );
    assert_eq!(status_of(&s, "service:web-1"), "critical");
    let r = put(&s, "/v1/agent/check/fail/nope", "");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text(),
        "Unknown check ID \"nope\". Ensure that the check ID is passed, not the check name."
    );
}

#[test]
fn deregister_unknown_is_404_with_consul_text() {
    let s = Standin::start();
    put(&s, "/v1/agent/service/register", WEB);
    assert_eq!(
        put(&s, "/v1/agent/service/deregister/web-1", "").status,
        200
    );
    assert_eq!(get(&s, "/v1/health/service/web").text(), "[]");
    let r = put(&s, "/v1/agent/service/deregister/web-1", "");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text(),
        "Unknown service ID \"web-1\". Ensure that the service ID is passed, not the service name."
    );
}

#[test]
fn maintenance_endpoint_toggles_the_check_and_validates_enable() {
    let s = Standin::start();
    put(&s, "/v1/agent/service/register", WEB);
    let r = put(
        &s,
        "/v1/agent/service/maintenance/web-1?enable=true&reason=deploying",
        "",
    );
    assert_eq!(r.status, 200);
    assert_eq!(status_of(&s, "_service_maintenance:web-1"), "critical");
    let v = get(&s, "/v1/health/service/web").json().unwrap();
    assert!(v[0]["Checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["Notes"] == "deploying"));
    put(&s, "/v1/agent/service/maintenance/web-1?enable=false", "");
    let v = get(&s, "/v1/health/service/web").json().unwrap();
    assert_eq!(
        v[0]["Checks"].as_array().unwrap().len(),
        2,
        "serfHealth + TTL only"
    );
    assert_eq!(
        put(&s, "/v1/agent/service/maintenance/web-1", "").text(),
        "Missing value for enable"
    );
    assert_eq!(
        put(&s, "/v1/agent/service/maintenance/web-1?enable=on", "").text(),
        "Invalid value for enable: \"on\""
    );
    assert_eq!(
        put(&s, "/v1/agent/service/maintenance/zz?enable=true", "").status,
        404
    );
}

#[test]
fn node_maintenance_marks_every_instance() {
    let s = Standin::start();
    put(&s, "/v1/agent/service/register", WEB);
    put(&s, "/v1/agent/maintenance?enable=true", "");
    assert_eq!(status_of(&s, "_node_maintenance"), "critical");
    put(&s, "/v1/agent/maintenance?enable=false", "");
    let v = get(&s, "/v1/health/service/web").json().unwrap();
    assert!(!v[0]["Checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["CheckID"] == "_node_maintenance"));
}

#[test]
fn wrong_method_is_405_and_unknown_path_404() {
    let s = Standin::start();
    let r = get(&s, "/v1/agent/service/register");
    assert_eq!(
        (r.status, r.header("Allow"), r.text().as_str()),
        (405, Some("PUT,OPTIONS"), "method GET not allowed")
    );
    let r = put(&s, "/v1/health/service/web", "");
    assert_eq!((r.status, r.header("Allow")), (405, Some("GET,OPTIONS")));
    let r = get(&s, "/v1/kv/thing");
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "Invalid URL path: not a recognized HTTP API endpoint")
    );
    assert_eq!(get(&s, "/health").status, 404);
}

#[test]
fn http_write_wakes_a_blocked_reader() {
    let s = Standin::start();
    put(&s, "/v1/agent/service/register", WEB);
    let idx = s.index("web");
    let url = format!("{}/v1/health/service/web?index={idx}&wait=30s", s.url());
    let reader = thread::spawn(move || client::get(&url).unwrap());
    assert!(s.wait_for_parked_reads(1, Duration::from_secs(10)));
    put(&s, "/v1/agent/check/pass/service:web-1", "");
    let r = reader.join().unwrap();
    assert!(r.index().unwrap() > idx);
    assert_eq!(r.index(), Some(s.index("web")));
}

#[test]
fn every_write_bumps_the_index() {
    let s = Standin::start();
    let writes = [
        ("/v1/agent/service/register", WEB),
        ("/v1/agent/check/pass/service:web-1", ""),
        ("/v1/agent/check/pass/service:web-1", ""),
        ("/v1/agent/service/maintenance/web-1?enable=true", ""),
        ("/v1/agent/service/maintenance/web-1?enable=false", ""),
        ("/v1/agent/service/deregister/web-1", ""),
    ];
    let mut last = s.index("web");
    for (path, body) in writes {
        assert_eq!(put(&s, path, body).status, 200, "{path}");
        assert!(s.index("web") > last, "{path} bumps the index");
        last = s.index("web");
    }
}
