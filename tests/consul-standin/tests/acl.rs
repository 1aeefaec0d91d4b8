//! ACLs on reads: an unknown token is refused, a token without read rights gets a
//! filtered (empty) list flagged by `X-Consul-Results-Filtered-By-ACLs`, a full
//! token reads normally, whichever way the token is sent.

use std::time::Duration;

use consul_standin::client::{self, Reply};
use consul_standin::{Acl, Options, Standin};
use serde_json::json;

fn with_acl() -> Standin {
    let acl = Acl {
        full: vec!["full-token".into()],
        no_read: vec!["weak-token".into()],
    };
    let s = Standin::start_with(Options {
        tokens: Some(acl),
        ..Options::default()
    });
    s.register(
        json!({"ID": "a", "Name": "web", "Port": 80, "Check": {"TTL": "9s", "Status": "passing"}}),
    );
    s
}

fn read(s: &Standin, headers: &[(&str, &str)]) -> Reply {
    let url = format!("{}/v1/health/service/web", s.url());
    client::request("GET", &url, None, headers, Duration::from_secs(5)).unwrap()
}

#[test]
fn unknown_token_is_403_acl_not_found() {
    let s = with_acl();
    let r = read(&s, &[("X-Consul-Token", "who-knows")]);
    assert_eq!((r.status, r.text().as_str()), (403, "ACL not found"));
}

#[test]
fn token_without_read_gets_a_flagged_empty_list() {
    let s = with_acl();
    let r = read(&s, &[("X-Consul-Token", "weak-token")]);
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    assert_eq!(r.header("X-Consul-Results-Filtered-By-ACLs"), Some("true"));
    assert_eq!(r.index(), Some(s.index("web")));
}

#[test]
fn full_token_reads_normally_by_header_or_bearer() {
    let s = with_acl();
    for h in [
        ("X-Consul-Token", "full-token"),
        ("Authorization", "Bearer full-token"),
    ] {
        let r = read(&s, &[h]);
        assert_eq!(r.status, 200);
        assert_eq!(r.json().unwrap().as_array().unwrap().len(), 1, "{h:?}");
        assert_eq!(r.header("X-Consul-Results-Filtered-By-ACLs"), None);
    }
}

#[test]
fn no_token_reads_as_anonymous_without_the_flag() {
    let s = with_acl();
    let r = read(&s, &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    assert_eq!(r.header("X-Consul-Results-Filtered-By-ACLs"), None);
    assert_eq!(r.header("X-Consul-Default-ACL-Policy"), Some("deny"));
}

#[test]
fn without_acls_any_token_reads() {
    let s = Standin::start();
    s.register(json!({"ID": "a", "Name": "web"}));
    let r = read(&s, &[("X-Consul-Token", "anything")]);
    assert_eq!(r.json().unwrap().as_array().unwrap().len(), 1);
}
