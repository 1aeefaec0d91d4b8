//! Table-driven tests of the pure core with synthetic time.

use super::*;

use crate::config;
use crate::model::{DestStats, Forward, KernelDest, Protocol, ServiceSpec};

fn cfg(services: &str) -> Config {
    let text = format!(r#"{{"check": {{"rise": 2, "fall": 3}}, "services": [{services}]}}"#);
    config::parse(&text, &|_| None).expect("test config is valid")
}

/// A Consul-backed service with probes off unless `check` says otherwise.
fn consul_svc(extra: &str) -> String {
    format!(
        r#"{{"name": "rabbitmq", "vip": "192.0.2.10:5672", "scheduler": "wlc", "check": false,
            "consul": {{"service": "rabbitmq"}} {extra}}}"#
    )
}

fn key() -> ServiceKey {
    ServiceKey {
        protocol: Protocol::Tcp,
        vip: "192.0.2.10:5672".parse().unwrap(),
    }
}

fn addr(last: u8) -> SocketAddr {
    format!("203.0.113.{last}:5672").parse().unwrap()
}

fn dest(last: u8) -> DestKey {
    DestKey {
        service: key(),
        addr: addr(last),
    }
}

fn backend(last: u8, weight: u32, health: SourceHealth) -> Backend {
    Backend {
        addr: addr(last),
        weight,
        health,
    }
}

fn kd(weight: u32, conns: u32) -> KernelDest {
    KernelDest {
        spec: DestSpec {
            weight,
            forward: Forward::Nat,
        },
        stats: DestStats {
            active_conns: conns,
            inactive_conns: 0,
        },
    }
}

fn kernel(sched: &str, dests: &[(u8, KernelDest)]) -> KernelTable {
    let svc = KernelService {
        spec: ServiceSpec {
            scheduler: sched.into(),
            persistence_s: 0,
        },
        dests: dests.iter().map(|(a, d)| (addr(*a), *d)).collect(),
    };
    [(key(), svc)].into_iter().collect()
}

/// Applies the plan to `k` as a successful kernel would, returning the ops.
fn step(e: &mut Engine, k: &mut KernelTable, now: Instant) -> Vec<Op> {
    let ops: Vec<Op> = e.plan(k, now).into_iter().map(|p| p.op).collect();
    for op in &ops {
        op.apply_to(k);
    }
    ops
}

fn spec(weight: u32) -> DestSpec {
    DestSpec {
        weight,
        forward: Forward::Nat,
    }
}

#[test]
fn adoption_of_a_matching_kernel_table_is_zero_ops() {
    let c = cfg(&consul_svc(""));
    let mut k = kernel("wlc", &[(11, kd(3, 5)), (12, kd(1, 0))]);
    let mut e = Engine::new(&c, &k);
    e.on_source(
        &key(),
        vec![
            backend(11, 3, SourceHealth::Passing),
            backend(12, 1, SourceHealth::Passing),
        ],
        &k,
    );
    assert_eq!(step(&mut e, &mut k, Instant::now()), vec![]);
}

#[test]
fn service_is_untouched_until_the_first_good_answer() {
    let c = cfg(&consul_svc(""));
    let k = kernel("rr", &[(11, kd(9, 0))]);
    let mut e = Engine::new(&c, &k);
    assert!(e.plan(&k, Instant::now()).is_empty());
    assert!(!e.has_answer(&key()));
}

#[test]
fn new_service_is_added_with_its_backends() {
    let c = cfg(&consul_svc(""));
    let mut k = KernelTable::new();
    let mut e = Engine::new(&c, &k);
    e.on_source(&key(), vec![backend(11, 3, SourceHealth::Passing)], &k);
    let ops = step(&mut e, &mut k, Instant::now());
    assert_eq!(
        ops,
        vec![
            Op::AddService(
                key(),
                ServiceSpec {
                    scheduler: "wlc".into(),
                    persistence_s: 0
                }
            ),
            Op::AddDest(dest(11), spec(3)),
        ]
    );
    assert_eq!(step(&mut e, &mut k, Instant::now()), vec![], "converged");
}

#[test]
fn source_health_sets_the_weight() {
    let c = cfg(&consul_svc(""));
    let cases = [
        (SourceHealth::Passing, 5),
        (SourceHealth::Warning, 2),
        (SourceHealth::Critical, 0),
        (SourceHealth::Maintenance, 0),
    ];
    for (health, want) in cases {
        let mut k = kernel("wlc", &[(11, kd(7, 0))]);
        let mut e = Engine::new(&c, &k);
        // The parser hands over Weights.Warning as the weight of a warning backend.
        let w = if health == SourceHealth::Warning {
            2
        } else {
            5
        };
        e.on_source(&key(), vec![backend(11, w, health)], &k);
        assert_eq!(
            step(&mut e, &mut k, Instant::now()),
            vec![Op::EditDest(dest(11), spec(want))],
            "{health:?}"
        );
    }
}

#[test]
fn deregistered_backend_drains_and_is_deleted_after_its_connections_end() {
    let c = cfg(&consul_svc(""));
    let t0 = Instant::now();
    let mut k = kernel("wlc", &[(11, kd(1, 4)), (12, kd(1, 0))]);
    let mut e = Engine::new(&c, &k);
    e.on_source(&key(), vec![backend(12, 1, SourceHealth::Passing)], &k);
    let plan = e.plan(&k, t0);
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].op, Op::EditDest(dest(11), spec(0)));
    assert_eq!(
        plan[0].line,
        "tcp/192.0.2.10:5672 -> 203.0.113.11:5672 weight 1 -> 0 (deregistered)"
    );
    plan[0].op.apply_to(&mut k);
    // The counters we hold predate the weight change: no delete on them.
    k.get_mut(&key())
        .unwrap()
        .dests
        .get_mut(&addr(11))
        .unwrap()
        .stats
        .active_conns = 0;
    assert_eq!(
        step(&mut e, &mut k, t0),
        vec![],
        "no delete before a dump at weight 0"
    );
    // A dump at weight 0 still shows sessions: keep waiting.
    k.get_mut(&key())
        .unwrap()
        .dests
        .get_mut(&addr(11))
        .unwrap()
        .stats
        .active_conns = 2;
    e.on_dump(&k, &[key()]);
    assert_eq!(e.draining_services(), vec![key()]);
    assert_eq!(
        step(&mut e, &mut k, t0 + Duration::from_secs(3600)),
        vec![],
        "null drain timeout waits"
    );
    // The sessions end.
    k.get_mut(&key())
        .unwrap()
        .dests
        .get_mut(&addr(11))
        .unwrap()
        .stats
        .active_conns = 0;
    e.on_dump(&k, &[key()]);
    assert_eq!(step(&mut e, &mut k, t0), vec![Op::DelDest(dest(11))]);
    assert_eq!(step(&mut e, &mut k, t0), vec![]);
    assert!(e.draining_services().is_empty());
}

#[test]
fn drain_timeout_deletes_a_dest_that_still_has_connections() {
    let c = cfg(&consul_svc(r#", "drain_timeout_s": 30"#));
    let t0 = Instant::now();
    let mut k = kernel("wlc", &[(11, kd(1, 4))]);
    let mut e = Engine::new(&c, &k);
    e.on_source(&key(), vec![], &k);
    assert_eq!(
        step(&mut e, &mut k, t0),
        vec![Op::EditDest(dest(11), spec(0))]
    );
    e.on_dump(&k, &[key()]);
    assert_eq!(e.next_deadline(t0), Some(t0 + Duration::from_secs(30)));
    assert_eq!(
        e.next_deadline(t0 + Duration::from_secs(30)),
        None,
        "a passed deadline wakes no one"
    );
    assert_eq!(step(&mut e, &mut k, t0 + Duration::from_secs(29)), vec![]);
    let plan = e.plan(&k, t0 + Duration::from_secs(30));
    assert_eq!(
        plan.iter().map(|p| p.op.clone()).collect::<Vec<_>>(),
        vec![Op::DelDest(dest(11))]
    );
    assert!(
        plan[0]
            .line
            .contains("drain timeout of 30 s passed with 4 connections"),
        "{}",
        plan[0].line
    );
}

#[test]
fn reregistered_while_draining_is_restored_in_place() {
    let c = cfg(&consul_svc(""));
    let t0 = Instant::now();
    let mut k = kernel("wlc", &[(11, kd(2, 4))]);
    let mut e = Engine::new(&c, &k);
    e.on_source(&key(), vec![], &k);
    assert_eq!(
        step(&mut e, &mut k, t0),
        vec![Op::EditDest(dest(11), spec(0))]
    );
    e.on_source(&key(), vec![backend(11, 2, SourceHealth::Passing)], &k);
    assert_eq!(
        step(&mut e, &mut k, t0),
        vec![Op::EditDest(dest(11), spec(2))]
    );
    assert!(e.draining_services().is_empty());
}

#[test]
fn foreign_services_are_never_touched() {
    let c = cfg(&consul_svc(""));
    let mut k = kernel("wlc", &[]);
    let foreign = ServiceKey {
        protocol: Protocol::Tcp,
        vip: "198.51.100.1:80".parse().unwrap(),
    };
    k.insert(
        foreign,
        KernelService {
            spec: ServiceSpec {
                scheduler: "rr".into(),
                persistence_s: 0,
            },
            dests: [(addr(99), kd(1, 0))].into_iter().collect(),
        },
    );
    let mut e = Engine::new(&c, &k);
    e.on_source(&key(), vec![backend(11, 1, SourceHealth::Passing)], &k);
    let ops = step(&mut e, &mut k, Instant::now());
    assert_eq!(ops, vec![Op::AddDest(dest(11), spec(1))]);
    assert!(!e.managed_keys().contains(&foreign));
    assert_eq!(k[&foreign].dests.len(), 1);
}

#[test]
fn settings_changes_are_edits_in_place() {
    let c = cfg(&consul_svc(r#", "persistence_s": 300"#));
    let mut k = kernel("rr", &[(11, kd(1, 3))]);
    let mut e = Engine::new(&c, &k);
    e.on_source(&key(), vec![backend(11, 1, SourceHealth::Passing)], &k);
    assert_eq!(
        step(&mut e, &mut k, Instant::now()),
        vec![Op::EditService(
            key(),
            ServiceSpec {
                scheduler: "wlc".into(),
                persistence_s: 300
            }
        )]
    );
}

#[test]
fn forwarding_method_change_is_a_dest_edit() {
    let c = cfg(&consul_svc(r#", "forward": "dr""#));
    let mut k = kernel("wlc", &[(11, kd(1, 3))]);
    let mut e = Engine::new(&c, &k);
    e.on_source(&key(), vec![backend(11, 1, SourceHealth::Passing)], &k);
    assert_eq!(
        step(&mut e, &mut k, Instant::now()),
        vec![Op::EditDest(
            dest(11),
            DestSpec {
                weight: 1,
                forward: Forward::Dr
            }
        )]
    );
}

#[test]
fn drift_is_repaired() {
    let c = cfg(&consul_svc(""));
    let mut k = kernel("wlc", &[(11, kd(1, 0)), (12, kd(1, 0))]);
    let mut e = Engine::new(&c, &k);
    e.on_source(
        &key(),
        vec![
            backend(11, 1, SourceHealth::Passing),
            backend(12, 1, SourceHealth::Passing),
        ],
        &k,
    );
    assert_eq!(step(&mut e, &mut k, Instant::now()), vec![]);
    // By hand: one dest deleted, one re-weighted, then a resync dump.
    k.get_mut(&key()).unwrap().dests.remove(&addr(11));
    k.get_mut(&key())
        .unwrap()
        .dests
        .get_mut(&addr(12))
        .unwrap()
        .spec
        .weight = 9;
    assert_eq!(
        step(&mut e, &mut k, Instant::now()),
        vec![
            Op::AddDest(dest(11), spec(1)),
            Op::EditDest(dest(12), spec(1))
        ]
    );
    // And the whole service deleted by hand.
    k.clear();
    assert_eq!(step(&mut e, &mut k, Instant::now()).len(), 3);
}

fn probe_cfg() -> Config {
    cfg(r#"{"name": "rabbitmq", "vip": "192.0.2.10:5672", "consul": {"service": "rabbitmq"}}"#)
}

fn probe_id(e: &mut Engine) -> u64 {
    let t = e.probe_targets();
    assert_eq!(t.len(), 1);
    t[0].id
}

#[test]
fn new_backend_joins_at_weight_zero_and_rises_after_probes() {
    let c = probe_cfg();
    let mut k = kernel("wlc", &[]);
    let mut e = Engine::new(&c, &k);
    e.on_source(&key(), vec![backend(11, 4, SourceHealth::Passing)], &k);
    assert_eq!(
        step(&mut e, &mut k, Instant::now()),
        vec![Op::AddDest(dest(11), spec(0))]
    );
    let id = probe_id(&mut e);
    assert!(e.on_probe(id, true, "").is_empty());
    assert_eq!(step(&mut e, &mut k, Instant::now()), vec![]);
    assert_eq!(
        e.on_probe(id, true, ""),
        vec!["tcp/192.0.2.10:5672 -> 203.0.113.11:5672 probe up after 2 successes"]
    );
    assert_eq!(
        step(&mut e, &mut k, Instant::now()),
        vec![Op::EditDest(dest(11), spec(4))]
    );
}

#[test]
fn failing_probes_take_the_weight_to_zero_and_keep_the_entry() {
    let c = probe_cfg();
    let mut k = kernel("wlc", &[(11, kd(4, 2))]);
    let mut e = Engine::new(&c, &k);
    e.on_source(&key(), vec![backend(11, 4, SourceHealth::Passing)], &k);
    assert_eq!(
        step(&mut e, &mut k, Instant::now()),
        vec![],
        "weight above 0 is adopted as up"
    );
    let id = probe_id(&mut e);
    e.on_probe(id, false, "connection refused");
    e.on_probe(id, false, "connection refused");
    assert_eq!(step(&mut e, &mut k, Instant::now()), vec![]);
    let lines = e.on_probe(id, false, "connection refused");
    assert_eq!(lines, vec!["tcp/192.0.2.10:5672 -> 203.0.113.11:5672 probe down after 3 failures: connection refused"]);
    assert_eq!(
        step(&mut e, &mut k, Instant::now()),
        vec![Op::EditDest(dest(11), spec(0))]
    );
    e.on_dump(&k, &[key()]);
    assert_eq!(
        step(&mut e, &mut k, Instant::now()),
        vec![],
        "a down backend is never deleted"
    );
}

#[test]
fn restart_adopts_weight_zero_as_down_without_writes() {
    let c = probe_cfg();
    let mut k = kernel("wlc", &[(11, kd(0, 0)), (12, kd(4, 0))]);
    let mut e = Engine::new(&c, &k);
    e.on_source(
        &key(),
        vec![
            backend(11, 4, SourceHealth::Passing),
            backend(12, 4, SourceHealth::Passing),
        ],
        &k,
    );
    assert_eq!(step(&mut e, &mut k, Instant::now()), vec![]);
}

#[test]
fn backends_shared_by_services_are_probed_once() {
    let c = cfg(
        r#"{"name": "a", "vip": "192.0.2.10:5672", "consul": {"service": "rabbitmq"}},
           {"name": "b", "vip": "192.0.2.11:5672", "consul": {"service": "rabbitmq"}, "check": {"interval_ms": 500}}"#,
    );
    let k = KernelTable::new();
    let mut e = Engine::new(&c, &k);
    let other = ServiceKey {
        protocol: Protocol::Tcp,
        vip: "192.0.2.11:5672".parse().unwrap(),
    };
    e.on_source(&key(), vec![backend(11, 1, SourceHealth::Passing)], &k);
    e.on_source(&other, vec![backend(11, 1, SourceHealth::Passing)], &k);
    let t = e.probe_targets();
    assert_eq!(t.len(), 1);
    assert_eq!(
        t[0].interval,
        Duration::from_millis(500),
        "the shortest interval wins"
    );
    e.on_probe(t[0].id, true, "");
    assert_eq!(
        e.on_probe(t[0].id, true, "").len(),
        2,
        "both services see the result"
    );
}

#[test]
fn reload_that_removes_a_service_drains_then_deletes_it() {
    let c = cfg(&consul_svc(""));
    let t0 = Instant::now();
    let mut k = kernel("wlc", &[(11, kd(1, 1))]);
    let mut e = Engine::new(&c, &k);
    e.on_source(&key(), vec![backend(11, 1, SourceHealth::Passing)], &k);
    let empty: Config = config::parse(r#"{"services": []}"#, &|_| None).unwrap();
    let lines = e.reload(&empty, &k);
    assert_eq!(lines.len(), 1);
    assert_eq!(
        step(&mut e, &mut k, t0),
        vec![Op::EditDest(dest(11), spec(0))]
    );
    e.on_dump(&k, &[key()]);
    assert_eq!(step(&mut e, &mut k, t0), vec![], "still one connection");
    k.get_mut(&key())
        .unwrap()
        .dests
        .get_mut(&addr(11))
        .unwrap()
        .stats
        .active_conns = 0;
    e.on_dump(&k, &[key()]);
    assert_eq!(step(&mut e, &mut k, t0), vec![Op::DelDest(dest(11))]);
    assert_eq!(step(&mut e, &mut k, t0), vec![Op::DelService(key())]);
    assert_eq!(step(&mut e, &mut k, t0), vec![]);
    assert!(e.managed_keys().is_empty());
}

#[test]
fn reload_keeping_a_service_keeps_its_backends_and_health() {
    let c = probe_cfg();
    let mut k = kernel("wlc", &[(11, kd(4, 0))]);
    let mut e = Engine::new(&c, &k);
    e.on_source(&key(), vec![backend(11, 4, SourceHealth::Passing)], &k);
    assert!(e.reload(&c, &k).is_empty());
    assert!(e.has_answer(&key()));
    assert_eq!(step(&mut e, &mut k, Instant::now()), vec![]);
}

#[test]
fn static_backends_need_no_source_answer() {
    let c = cfg(
        r#"{"name": "web", "vip": "[2001:db8::10]:80", "check": false,
            "backends": ["[2001:db8::11]:80", {"address": "[2001:db8::12]:80", "weight": 3}]}"#,
    );
    let mut k = KernelTable::new();
    let mut e = Engine::new(&c, &k);
    let ops = step(&mut e, &mut k, Instant::now());
    let v6 = ServiceKey {
        protocol: Protocol::Tcp,
        vip: "[2001:db8::10]:80".parse().unwrap(),
    };
    let d = |a: &str| DestKey {
        service: v6,
        addr: a.parse().unwrap(),
    };
    assert_eq!(
        ops,
        vec![
            Op::AddService(
                v6,
                ServiceSpec {
                    scheduler: "wlc".into(),
                    persistence_s: 0
                }
            ),
            Op::AddDest(d("[2001:db8::11]:80"), spec(1)),
            Op::AddDest(d("[2001:db8::12]:80"), spec(3)),
        ]
    );
}

#[test]
fn snapshot_reports_weights_health_and_drains() {
    let c = probe_cfg();
    let t0 = Instant::now();
    let mut k = kernel("wlc", &[(11, kd(4, 2)), (12, kd(1, 1))]);
    let mut e = Engine::new(&c, &k);
    e.on_source(&key(), vec![backend(11, 4, SourceHealth::Passing)], &k);
    step(&mut e, &mut k, t0);
    let snap = e.snapshot(&k, t0 + Duration::from_secs(5));
    let b = &snap["services"][0]["backends"];
    assert_eq!(b[0]["address"], "203.0.113.11:5672");
    assert_eq!(b[0]["probe"], "up");
    assert_eq!(b[0]["desired_weight"], 4);
    assert_eq!(b[1]["kernel_weight"], 0);
    assert_eq!(b[1]["draining_for_s"], 5);
    assert_eq!(b[1]["active_conns"], 1);
}

#[test]
fn reload_that_turns_probes_on_adopts_live_backends_as_up() {
    let mut k = kernel("wlc", &[(11, kd(4, 3))]);
    let mut e = Engine::new(&cfg(&consul_svc("")), &k);
    e.on_source(&key(), vec![backend(11, 4, SourceHealth::Passing)], &k);
    assert_eq!(step(&mut e, &mut k, Instant::now()), vec![]);
    e.reload(&probe_cfg(), &k);
    assert_eq!(
        step(&mut e, &mut k, Instant::now()),
        vec![],
        "turning probes on must not take serving backends to weight 0"
    );
    assert_eq!(e.probe_targets().len(), 1);
}
