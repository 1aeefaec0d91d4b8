//! The daemon's Consul client and poller against the Consul stand-in over
//! loopback, one test per fault knob: whatever Consul does wrong, the last
//! good backends stand and the poller backs off; when it recovers, the
//! client sees the change. Also: token, datacenter and tags reach Consul.

use consul_ipvs::config::{self, Config, ServiceConfig};
use consul_ipvs::consul::client::ConsulClient;
use consul_ipvs::consul::poll::{Outcome, Poller};
use consul_standin::{Acl, Fault, Options, Standin};
use serde_json::json;
use std::time::{Duration, Instant};

fn cfg(url: &str, token: Option<&str>) -> Config {
    let text = format!(
        r#"{{"consul": {{"address": "{url}", "timeout_ms": 1000, "datacenter": "dc1"}},
            "services": [{{"name": "rabbitmq", "vip": "127.0.0.100:5672",
                           "consul": {{"service": "rabbitmq", "tags": ["amqp"]}}}}]}}"#
    );
    let env = |k: &str| {
        (k == "CONSUL_HTTP_TOKEN")
            .then(|| token.map(String::from))
            .flatten()
    };
    config::parse(&text, &env).expect("valid")
}

fn register(s: &Standin, id: &str, ip: &str) {
    s.register(
        json!({"ID": id, "Name": "rabbitmq", "Address": ip, "Port": 5672, "Tags": ["amqp"],
                      "Weights": {"Passing": 2, "Warning": 1}}),
    );
}

/// One client and poller, polled by hand.
struct Watch {
    client: ConsulClient,
    poller: Poller,
    svc: ServiceConfig,
}

impl Watch {
    fn new(s: &Standin, token: Option<&str>) -> Watch {
        let c = cfg(&s.url(), token);
        Watch {
            client: ConsulClient::new(&c.consul).with_max_body(64 * 1024),
            poller: Poller::new(Duration::from_millis(100), Instant::now()),
            svc: c.services[0].clone(),
        }
    }

    fn poll(&mut self) -> Outcome {
        let resp = self.client.fetch("rabbitmq", &["amqp".to_string()]);
        self.poller.on_response(resp, &self.svc, Instant::now())
    }

    /// Polls and returns the backend addresses of a Changed outcome.
    fn changed(&mut self) -> Vec<String> {
        match self.poll() {
            Outcome::Changed(p) => p.backends.iter().map(|b| b.addr.to_string()).collect(),
            other => panic!("expected a change, got {}", name(&other)),
        }
    }

    fn failed(&mut self) {
        let now = Instant::now();
        match self.poll() {
            Outcome::Failed => assert!(self.poller.due() > now, "a failure backs off"),
            other => panic!("expected a failure, got {}", name(&other)),
        }
    }
}

fn name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Changed(_) => "Changed",
        Outcome::Unchanged => "Unchanged",
        Outcome::Failed => "Failed",
    }
}

/// The fault keeps the last answer; clearing it shows the change made meanwhile.
fn survives(fault: Fault) {
    let s = Standin::start();
    register(&s, "r1", "127.0.0.11");
    let mut w = Watch::new(&s, None);
    assert_eq!(w.changed(), vec!["127.0.0.11:5672"]);
    s.set_fault(fault.clone());
    register(&s, "r2", "127.0.0.12");
    let started = Instant::now();
    w.failed();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{fault:?} bounded by the timeout"
    );
    assert!(w.poller.has_answer());
    s.set_fault(Fault::None);
    assert_eq!(
        w.changed(),
        vec!["127.0.0.11:5672", "127.0.0.12:5672"],
        "{fault:?}"
    );
}

#[test]
fn error_500_keeps_the_last_answer() {
    survives(Fault::Error500);
}

#[test]
fn malformed_json_keeps_the_last_answer() {
    survives(Fault::Malformed);
}

#[test]
fn truncated_body_keeps_the_last_answer() {
    survives(Fault::Truncated);
}

#[test]
fn close_mid_body_keeps_the_last_answer() {
    survives(Fault::CloseMidBody);
}

#[test]
fn hung_request_times_out_and_keeps_the_last_answer() {
    survives(Fault::Hang);
}

#[test]
fn oversized_body_is_refused() {
    survives(Fault::Oversized(1 << 20));
}

#[test]
fn acl_filtered_empty_answer_keeps_the_last_answer() {
    survives(Fault::AclFiltered);
}

#[test]
fn refused_connections_keep_the_last_answer() {
    survives(Fault::Refuse);
}

#[test]
fn a_slow_answer_within_the_timeout_is_used() {
    let s = Standin::start();
    register(&s, "r1", "127.0.0.11");
    let mut w = Watch::new(&s, None);
    s.set_fault(Fault::Slow(Duration::from_millis(300)));
    assert_eq!(w.changed(), vec!["127.0.0.11:5672"]);
}

#[test]
fn a_slow_answer_past_the_timeout_fails() {
    let s = Standin::start();
    register(&s, "r1", "127.0.0.11");
    let mut w = Watch::new(&s, None);
    assert_eq!(w.changed().len(), 1);
    s.set_fault(Fault::Slow(Duration::from_millis(2500)));
    w.failed();
}

#[test]
fn an_index_that_goes_backwards_is_followed() {
    let s = Standin::start();
    register(&s, "r1", "127.0.0.11");
    let mut w = Watch::new(&s, None);
    assert_eq!(w.changed().len(), 1);
    s.set_fault(Fault::IndexBackwards);
    s.set_fault(Fault::None);
    register(&s, "r2", "127.0.0.12");
    assert_eq!(
        w.changed().len(),
        2,
        "a lower index is a new answer, not an old one"
    );
}

#[test]
fn an_unchanged_index_is_unchanged() {
    let s = Standin::start();
    register(&s, "r1", "127.0.0.11");
    let mut w = Watch::new(&s, None);
    assert_eq!(w.changed().len(), 1);
    assert!(matches!(w.poll(), Outcome::Unchanged));
    s.bump_index("rabbitmq");
    assert!(
        matches!(w.poll(), Outcome::Unchanged),
        "a new index with the same backends"
    );
}

#[test]
fn token_datacenter_and_tags_reach_consul_and_the_token_is_checked() {
    let opts = Options {
        tokens: Some(Acl {
            full: vec!["good".into()],
            no_read: vec!["weak".into()],
        }),
        ..Default::default()
    };
    let s = Standin::start_with(opts);
    register(&s, "r1", "127.0.0.11");
    let mut w = Watch::new(&s, Some("good"));
    assert_eq!(w.changed().len(), 1);
    let req = s.health_requests().pop().expect("a request");
    assert_eq!(req.header("X-Consul-Token"), Some("good"));
    assert!(
        !req.path_and_query.contains("good"),
        "the token is never in the URL"
    );
    let q = req.query();
    assert!(q.contains(&("dc".into(), "dc1".into())), "{q:?}");
    assert!(q.contains(&("tag".into(), "amqp".into())), "{q:?}");

    let mut bad = Watch::new(&s, Some("wrong"));
    bad.failed();
    let mut weak = Watch::new(&s, Some("weak"));
    weak.failed();
    assert!(
        !weak.poller.has_answer(),
        "a filtered empty first answer is no answer"
    );
}

#[test]
fn empty_service_address_uses_the_node_address() {
    let s = Standin::start_with(Options {
        node_address: "127.0.0.9".into(),
        ..Default::default()
    });
    s.register(json!({"ID": "r1", "Name": "rabbitmq", "Port": 5672, "Tags": ["amqp"]}));
    let mut w = Watch::new(&s, None);
    assert_eq!(w.changed(), vec!["127.0.0.9:5672"]);
}

#[test]
fn maintenance_and_critical_checks_reach_the_backends_health() {
    use consul_ipvs::consul::SourceHealth;
    let s = Standin::start();
    s.register(json!({"ID": "r1", "Name": "rabbitmq", "Address": "127.0.0.11", "Port": 5672, "Tags": ["amqp"],
                      "Check": {"CheckID": "r1-ttl", "TTL": "30s", "Status": "passing"}}));
    let mut w = Watch::new(&s, None);
    let health = |w: &mut Watch| match w.poll() {
        Outcome::Changed(p) => p.backends[0].health,
        other => panic!("expected a change, got {}", name(&other)),
    };
    assert_eq!(health(&mut w), SourceHealth::Passing);
    s.set_check("r1-ttl", "critical");
    assert_eq!(health(&mut w), SourceHealth::Critical);
    s.set_check("r1-ttl", "passing");
    s.maintenance("r1", true);
    assert_eq!(health(&mut w), SourceHealth::Maintenance);
}
