//! Config validation: defaults, overrides, and an error naming its key for every mistake.

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn problems(text: &str) -> Vec<String> {
    match parse(text, &no_env) {
        Ok(_) => Vec::new(),
        Err(p) => p.iter().map(|p| p.to_string()).collect(),
    }
}

fn svc(fields: &str) -> String {
    format!(r#"{{"services": [{{"name": "web", "vip": "192.0.2.10:80", {fields}}}]}}"#)
}

#[test]
fn the_documented_example_parses_with_its_defaults() {
    let text = r#"{
      "consul": {"address": "http://127.0.0.1:8500", "token_file": null, "datacenter": null,
                 "interval_ms": 1000, "timeout_ms": 2000},
      "check": {"interval_ms": 2000, "timeout_ms": 1000, "rise": 2, "fall": 3},
      "resync_interval_ms": 10000,
      "state_file": null,
      "services": [
        {"name": "rabbitmq", "vip": "192.0.2.10:5672", "protocol": "tcp", "scheduler": "wlc",
         "forward": "nat", "persistence_s": 0, "drain_timeout_s": null,
         "consul": {"service": "rabbitmq", "tags": ["amqp"]},
         "check": {"port": 5672, "send": "", "expect": ""},
         "allowed_backends": ["203.0.113.0/24"]}
      ]
    }"#;
    let c = parse(text, &no_env).unwrap();
    assert_eq!(c.consul.address, "http://127.0.0.1:8500");
    assert_eq!(c.resync_interval, Duration::from_secs(10));
    let s = &c.services[0];
    assert_eq!(
        s.source,
        Source::Consul {
            service: "rabbitmq".into(),
            tags: vec!["amqp".into()]
        }
    );
    let check = s.check.as_ref().unwrap();
    assert_eq!((check.rise, check.fall, check.port), (2, 3, Some(5672)));
    assert!(s.allows("203.0.113.7".parse().unwrap()));
    assert!(!s.allows("198.51.100.7".parse().unwrap()));
}

#[test]
fn every_error_names_its_key() {
    let cases = [
        (
            svc(r#""backends": [], "colour": 1"#),
            "services[0].colour: unknown key",
        ),
        (
            svc(r#""backends": [], "check": {"prot": 1}"#),
            "services[0].check.prot: unknown key",
        ),
        (
            svc(r#""backends": [], "protocol": "sctp""#),
            "services[0].protocol:",
        ),
        (
            svc(r#""backends": [], "forward": "gre""#),
            "services[0].forward:",
        ),
        (
            svc(r#""backends": ["203.0.113.1"]"#),
            "services[0].backends[0]:",
        ),
        (
            svc(r#""backends": [{"address": "203.0.113.1:80", "weight": -1}]"#),
            "services[0].backends[0].weight:",
        ),
        (
            svc(r#""backends": [], "allowed_backends": ["nonsense"]"#),
            "services[0].allowed_backends[0]:",
        ),
        (
            svc(r#""backends": [], "check": {"rise": 0}"#),
            "services[0].check.rise:",
        ),
        (
            svc(r#""backends": [], "scheduler": "w l c""#),
            "services[0].scheduler:",
        ),
        (
            svc(r#""backends": [], "drain_timeout_s": "soon""#),
            "services[0].drain_timeout_s:",
        ),
        (
            svc(r#""consul": {"tags": ["x"]}"#),
            "services[0].consul.service:",
        ),
        (
            svc(r#""consul": {"service": "a"}, "backends": []"#),
            "services[0]: needs exactly one",
        ),
        (
            svc(r#""scheduler": "wlc""#),
            "services[0]: needs exactly one",
        ),
        (
            r#"{"services": [], "consul": {"interval_ms": 0}}"#.into(),
            "consul.interval_ms:",
        ),
        (
            r#"{"services": [], "consul": {"address": "https://c:8501"}}"#.into(),
            "consul.address:",
        ),
        (
            r#"{"services": [], "resync_ms": 5}"#.into(),
            "resync_ms: unknown key",
        ),
        (r#"{}"#.into(), "services: is required"),
        (
            r#"{"services": [{"vip": "192.0.2.1:80", "backends": []}]}"#.into(),
            "services[0].name:",
        ),
    ];
    for (text, want) in cases {
        let got = problems(&text);
        assert!(
            got.iter().any(|p| p.starts_with(want)),
            "{text}\n wanted {want:?}\n got {got:?}"
        );
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = svc(r#""backends": [], "protocol": "x", "forward": "y", "bogus": 1"#);
    assert_eq!(problems(&text).len(), 3, "{:?}", problems(&text));
}

#[test]
fn duplicate_services_and_backends_are_errors() {
    let text = r#"{"services": [
        {"name": "a", "vip": "192.0.2.10:80", "backends": ["203.0.113.1:80", "203.0.113.1:80"]},
        {"name": "a", "vip": "192.0.2.10:80", "backends": []}]}"#;
    let got = problems(text);
    assert!(
        got.iter()
            .any(|p| p.starts_with("services[0].backends[1]: 203.0.113.1:80 is listed twice")),
        "{got:?}"
    );
    assert!(
        got.iter().any(|p| p.starts_with("services[1].name:")),
        "{got:?}"
    );
    assert!(
        got.iter().any(|p| p.starts_with("services[1].vip:")),
        "{got:?}"
    );
}

#[test]
fn static_backends_must_fit_the_service() {
    let cases = [
        (
            r#""backends": ["[2001:db8::1]:80"]"#,
            "not of the VIP's address family",
        ),
        (
            r#""forward": "dr", "backends": ["203.0.113.1:8080"]"#,
            "cannot change the port",
        ),
        (
            r#""allowed_backends": ["198.51.100.0/24"], "backends": ["203.0.113.1:80"]"#,
            "outside allowed_backends",
        ),
    ];
    for (fields, want) in cases {
        let got = problems(&svc(fields));
        assert!(
            got.iter()
                .any(|p| p.starts_with("services[0].backends[0]") && p.contains(want)),
            "{got:?}"
        );
    }
    assert!(problems(&svc(
        r#""forward": "tun", "backends": ["[2001:db8::1]:80"]"#
    ))
    .is_empty());
}

#[test]
fn udp_services_need_a_check_port_or_no_check() {
    let got = problems(&svc(r#""protocol": "udp", "backends": []"#));
    assert!(
        got.iter().any(|p| p.starts_with("services[0].check:")),
        "{got:?}"
    );
    assert!(problems(&svc(r#""protocol": "udp", "backends": [], "check": false"#)).is_empty());
    assert!(problems(&svc(
        r#""protocol": "udp", "backends": [], "check": {"port": 53}"#
    ))
    .is_empty());
}

#[test]
fn service_check_overrides_fields_of_the_top_level_defaults() {
    let text = r#"{"check": {"rise": 5, "timeout_ms": 300},
        "services": [{"name": "db", "vip": "192.0.2.10:3306", "backends": [],
                      "check": {"fall": 1, "expect": "\u0000J"}}]}"#;
    let c = parse(text, &no_env).unwrap();
    let check = c.services[0].check.clone().unwrap();
    assert_eq!(
        (check.rise, check.fall, check.timeout),
        (5, 1, Duration::from_millis(300))
    );
    assert_eq!(check.expect, vec![0, b'J']);
    let off = parse(&svc(r#""backends": [], "check": false"#), &no_env).unwrap();
    assert!(off.services[0].check.is_none());
}

#[test]
fn consul_address_and_token_come_from_the_environment() {
    let env = |k: &str| match k {
        "CONSUL_HTTP_ADDR" => Some("127.0.0.1:18500".to_string()),
        "CONSUL_HTTP_TOKEN" => Some("s3cret".to_string()),
        _ => None,
    };
    let c = parse(r#"{"services": []}"#, &env).unwrap();
    assert_eq!(c.consul.address, "http://127.0.0.1:18500");
    assert_eq!(c.consul.token, Some(Secret("s3cret".into())));
    assert!(
        !format!("{c:?}").contains("s3cret"),
        "the token never shows in Debug"
    );
    let c = parse(
        r#"{"services": [], "consul": {"address": "http://10.0.0.1:8500/"}}"#,
        &env,
    )
    .unwrap();
    assert_eq!(
        c.consul.address, "http://10.0.0.1:8500",
        "the file wins over the environment"
    );
}

#[test]
fn cidr_matching() {
    let c = Cidr::parse("203.0.113.128/25").unwrap();
    assert!(c.contains("203.0.113.200".parse().unwrap()));
    assert!(!c.contains("203.0.113.100".parse().unwrap()));
    assert!(!c.contains("2001:db8::1".parse().unwrap()));
    let v6 = Cidr::parse("2001:db8::/32").unwrap();
    assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
    assert!(Cidr::parse("10.0.0.0/33").is_none());
    assert!(Cidr::parse("0.0.0.0/0")
        .unwrap()
        .contains("198.51.100.1".parse().unwrap()));
}
