//! Keeps `tests/fixtures/` honest: every file is a JSON array listed in the
//! README, uses only documentation addresses, shows what the README says it
//! shows, and `health-passing.json` carries exactly the keys the stand-in emits
//! (so fixtures and stand-in cannot drift apart unnoticed).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use consul_standin::client;
use consul_standin::Standin;
use serde_json::{json, Value};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn json_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

fn checks(entry: &Value) -> &Vec<Value> {
    entry["Checks"].as_array().expect("Checks is an array")
}

#[test]
fn every_fixture_is_an_array_listed_in_the_readme() {
    let readme = std::fs::read_to_string(dir().join("README.md")).unwrap();
    let files = json_files();
    assert!(files.len() >= 10);
    for name in files {
        assert!(load(&name).is_array(), "{name}");
        assert!(
            readme.contains(&format!("`{name}`")),
            "{name} missing from README"
        );
    }
}

/// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 (RFC 5737), 2001:db8::/32 (RFC 3849).
fn is_documentation(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(
            v4.octets(),
            [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]
        ),
        IpAddr::V6(v6) => v6.segments()[..2] == [0x2001, 0x0db8],
    }
}

fn addresses_in(v: &Value, out: &mut Vec<IpAddr>) {
    match v {
        Value::String(s) => {
            let host = s
                .split("://")
                .nth(1)
                .map_or(s.as_str(), |rest| rest.split('/').next().unwrap_or(""));
            let ip = host
                .parse::<IpAddr>()
                .ok()
                .or_else(|| host.parse::<SocketAddr>().ok().map(|a| a.ip()));
            out.extend(ip);
        }
        Value::Array(items) => items.iter().for_each(|i| addresses_in(i, out)),
        Value::Object(map) => map.values().for_each(|i| addresses_in(i, out)),
        _ => {}
    }
}

#[test]
fn fixtures_use_only_documentation_addresses() {
    for name in json_files() {
        let mut found = Vec::new();
        addresses_in(&load(&name), &mut found);
        for ip in found {
            assert!(
                is_documentation(ip),
                "{name}: {ip} is not a documentation address"
            );
        }
    }
}

#[test]
fn each_fixture_shows_its_case() {
    let v = load("health-empty-service-address.json");
    assert_eq!(v[0]["Service"]["Address"], "");
    assert!(v[0]["Node"]["Address"]
        .as_str()
        .unwrap()
        .parse::<IpAddr>()
        .is_ok());

    assert!(load("health-missing-port.json")[0]["Service"]
        .get("Port")
        .is_none());

    let v = load("health-warning.json");
    assert!(checks(&v[0]).iter().any(|c| c["Status"] == "warning"));
    assert_eq!(v[0]["Service"]["Weights"]["Warning"], 1);

    let v = load("health-critical.json");
    assert!(checks(&v[0]).iter().any(|c| c["Status"] == "critical"));

    let v = load("health-maintenance.json");
    let m = checks(&v[0])
        .iter()
        .find(|c| c["CheckID"] == "_service_maintenance:db-5432")
        .unwrap();
    assert_eq!(
        (&m["Status"], &m["ServiceID"]),
        (&json!("critical"), &v[0]["Service"]["ID"])
    );

    let v = load("health-node-maintenance.json");
    let m = checks(&v[1])
        .iter()
        .find(|c| c["CheckID"] == "_node_maintenance")
        .unwrap();
    assert_eq!(
        (&m["Status"], &m["ServiceID"]),
        (&json!("critical"), &json!(""))
    );

    let v = load("health-ipv6.json");
    assert!(v[0]["Node"]["Address"]
        .as_str()
        .unwrap()
        .parse::<std::net::Ipv6Addr>()
        .is_ok());
    assert_eq!(v[1]["Service"]["Address"], "");

    let v = load("health-hostname-address.json");
    assert!(v[0]["Service"]["Address"]
        .as_str()
        .unwrap()
        .parse::<IpAddr>()
        .is_err());
    assert!(v[1]["Node"]["Address"]
        .as_str()
        .unwrap()
        .parse::<IpAddr>()
        .is_err());

    let v = load("health-null-maps.json");
    assert!(v[0]["Node"]["Meta"].is_null() && v[0]["Service"]["Meta"].is_null());
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn passing_fixture_has_exactly_the_stand_in_keys() {
    let s = Standin::start();
    s.register(json!({"ID": "x", "Name": "x", "Address": "192.0.2.5", "Port": 1, "Check": {"TCP": "192.0.2.5:1"}}));
    let ours = client::get(&format!("{}/v1/health/service/x", s.url()))
        .unwrap()
        .json()
        .unwrap();
    let fixture = load("health-passing.json");
    for part in ["Node", "Service"] {
        assert_eq!(keys(&ours[0][part]), keys(&fixture[0][part]), "{part}");
    }
    assert_eq!(
        keys(&ours[0]["Checks"][1]),
        keys(&fixture[0]["Checks"][1]),
        "Checks"
    );
}

#[test]
fn unknown_fields_fixture_has_keys_the_stand_in_never_emits() {
    let v = load("health-unknown-fields.json");
    let fixture_keys = keys(&v[0]["Service"]);
    let known = keys(&load("health-passing.json")[0]["Service"]);
    assert!(
        fixture_keys.difference(&known).count() >= 3,
        "{fixture_keys:?}"
    );
}
