//! Turns the body of `GET /v1/health/service/<name>` into [`Backend`]s.
//!
//! Input: the raw JSON bytes and the [`ServiceConfig`] they are for; output: the
//! backends sorted by address, plus one human-readable warning per instance
//! that was left out (and why). Pure: no I/O, no clock, no DNS.
//!
//! Consul's data is read leniently: unknown fields are ignored everywhere (never
//! `deny_unknown_fields`), and one malformed instance is skipped with a warning
//! instead of spoiling the whole answer. Only a body that is not a JSON array
//! at all is an error. Field facts are from Consul's `agent/structs/structs.go`
//! (`CheckServiceNode`), summarised in `reference/consul-http-api.md` §1.2.

use super::{Backend, SourceHealth};
use crate::config::{backend_misfit, ServiceConfig, Source};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The agent's check IDs for maintenance mode (Consul `api/health.go`:
/// `NodeMaint`, `ServiceMaintPrefix`). Maintenance is not a wire status; it is
/// an extra critical check with one of these IDs.
const NODE_MAINTENANCE: &str = "_node_maintenance";
const SERVICE_MAINTENANCE_PREFIX: &str = "_service_maintenance:";

/// IPVS takes the weight as a signed 32-bit number (`IPVS_DEST_ATTR_WEIGHT`);
/// Consul itself only allows up to 65535.
const MAX_WEIGHT: u32 = i32::MAX as u32;

/// What one health answer yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Usable backends, sorted by address, at most one per address.
    pub backends: Vec<Backend>,
    /// One warning per instance left out, naming the node and service ID.
    pub skipped: Vec<String>,
}

/// Why a body could not be read at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON (garbage, a truncated body, an HTML error page).
    NotJson { len: usize, error: String },
    /// JSON, but the top level is not the array Consul always sends.
    NotAnArray { found: &'static str },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotJson { len, error } => {
                write!(f, "health answer ({len} bytes) is not JSON: {error}")
            }
            ParseError::NotAnArray { found } => {
                write!(f, "health answer is a JSON {found}, not an array")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// One `CheckServiceNode`. Only the fields we use; everything else is ignored.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct Entry {
    node: Option<Node>,
    service: Option<Service>,
    checks: Option<Vec<Check>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct Node {
    node: Option<String>,
    address: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct Service {
    #[serde(rename = "ID")]
    id: Option<String>,
    kind: Option<String>,
    address: Option<String>,
    /// `omitempty` in Consul: a port of 0 is absent.
    port: Option<u16>,
    tags: Option<Vec<String>>,
    weights: Option<Weights>,
}

/// Consul stores `{"Passing":1,"Warning":1}` when a registration gives none.
#[derive(Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Weights {
    passing: u32,
    warning: u32,
}

impl Default for Weights {
    fn default() -> Weights {
        Weights {
            passing: 1,
            warning: 1,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct Check {
    #[serde(rename = "CheckID")]
    check_id: Option<String>,
    status: Option<String>,
}

/// Parses a health answer for `svc`. See the module comment for the rules.
pub fn parse_health(body: &[u8], svc: &ServiceConfig) -> Result<Parsed, ParseError> {
    let items = top_level(body)?;
    let mut skipped = Vec::new();
    let mut found: Vec<(Backend, String)> = Vec::new();
    for item in items {
        match instance(item, svc) {
            Ok(b) => found.push(b),
            Err((who, why)) => skipped.push(format!("{who} skipped: {why}")),
        }
    }
    let backends = dedup(found, &mut skipped);
    Ok(Parsed { backends, skipped })
}

fn top_level(body: &[u8]) -> Result<Vec<Value>, ParseError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ParseError::NotJson {
        len: body.len(),
        error: e.to_string(),
    })?;
    match v {
        Value::Array(items) => Ok(items),
        other => Err(ParseError::NotAnArray {
            found: json_kind(&other),
        }),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `(who, why)` for an instance that is left out.
type Skip = (String, String);

/// One instance as a backend, with its `node/service-id` name for warnings.
fn instance(item: Value, svc: &ServiceConfig) -> Result<(Backend, String), Skip> {
    let who_raw = who(&item);
    let entry: Entry = serde_json::from_value(item)
        .map_err(|e| (who_raw.clone(), format!("malformed entry: {e}")))?;
    let skip = |why: String| (who_raw.clone(), why);
    let node = entry.node.unwrap_or_default();
    let service = entry.service.unwrap_or_default();
    if let Some(kind) = service.kind.as_deref().filter(|k| !k.is_empty()) {
        return Err(skip(format!(
            "is a {kind}, not an ordinary service instance"
        )));
    }
    if let Some(tag) = missing_tag(svc, service.tags.as_deref().unwrap_or(&[])) {
        return Err(skip(format!("lacks the configured tag {tag:?}")));
    }
    let addr = address(&node, &service).map_err(skip)?;
    if let Some(why) = backend_misfit(svc, addr) {
        return Err(skip(why));
    }
    let health = aggregate(entry.checks.as_deref().unwrap_or(&[]));
    let weight = weight(service.weights.unwrap_or_default(), health);
    Ok((
        Backend {
            addr,
            weight,
            health,
        },
        who_raw,
    ))
}

/// `node web-01, service ID web-8080`, read from the raw JSON so that even a
/// malformed entry can be named.
fn who(item: &Value) -> String {
    let node = item
        .pointer("/Node/Node")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let id = item
        .pointer("/Service/ID")
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!("node {node}, service ID {id}")
}

/// The first configured tag the instance lacks. Consul already filters by
/// `?tag=`, case-insensitively (`agent/consul/state/catalog.go`); checking again
/// here means a proxy or a future Consul that ignores the deprecated `tag`
/// parameter cannot hand us every instance of the service.
fn missing_tag<'a>(svc: &'a ServiceConfig, have: &[String]) -> Option<&'a str> {
    let Source::Consul { tags, .. } = &svc.source else {
        return None;
    };
    tags.iter()
        .find(|want| !have.iter().any(|h| h.eq_ignore_ascii_case(want)))
        .map(String::as_str)
}

/// `Service.Address`, or `Node.Address` when that is empty (catalog docs:
/// "if it is empty the node address should be used"), and `Service.Port`.
fn address(node: &Node, service: &Service) -> Result<SocketAddr, String> {
    let port = match service.port {
        Some(p) if p != 0 => p,
        _ => return Err("has no port".into()),
    };
    let text = service
        .address
        .as_deref()
        .filter(|a| !a.is_empty())
        .or(node.address.as_deref())
        .filter(|a| !a.is_empty())
        .ok_or("has neither a service nor a node address")?;
    // IPVS needs an IP; resolving names here would block the loop and make the
    // table depend on DNS, so a hostname is left out instead.
    let ip: IpAddr = text.parse().map_err(|_| {
        format!("address {text:?} is not an IP address (hostnames are not resolved)")
    })?;
    Ok(SocketAddr::new(ip, port))
}

/// Consul's `HealthChecks.AggregatedStatus()` (`api/health.go`): any
/// maintenance check ID wins, then critical, then warning, else passing (also
/// for no checks at all).
fn aggregate(checks: &[Check]) -> SourceHealth {
    let mut worst = SourceHealth::Passing;
    for c in checks {
        let id = c.check_id.as_deref().unwrap_or("");
        if id == NODE_MAINTENANCE || id.starts_with(SERVICE_MAINTENANCE_PREFIX) {
            return SourceHealth::Maintenance;
        }
        worst = worst.max(status(c.status.as_deref()));
    }
    worst
}

/// A status Consul does not define makes `AggregatedStatus()` return `""`,
/// which no consumer treats as healthy; for a load balancer the safe reading
/// is critical (drain), not passing. Unlike the Go code we still let a later
/// maintenance check win, which only changes the name, not the weight 0.
fn status(s: Option<&str>) -> SourceHealth {
    match s {
        Some("passing") => SourceHealth::Passing,
        Some("warning") => SourceHealth::Warning,
        _ => SourceHealth::Critical,
    }
}

/// Consul DNS's rule (`agent/dns.go` `findWeight`): warning instances get
/// `Weights.Warning`. Critical and maintenance keep `Weights.Passing` here; the
/// daemon sets weight 0 from `health`, and uses this weight on recovery.
fn weight(w: Weights, health: SourceHealth) -> u32 {
    let w = match health {
        SourceHealth::Warning => w.warning,
        _ => w.passing,
    };
    w.min(MAX_WEIGHT)
}

/// One backend per address: the healthiest, then the heaviest, then the
/// instance whose name sorts first, so the choice never depends on Consul's
/// (unspecified) order. Returns them sorted by address.
fn dedup(found: Vec<(Backend, String)>, skipped: &mut Vec<String>) -> Vec<Backend> {
    let mut by_addr: BTreeMap<SocketAddr, Vec<(Backend, String)>> = BTreeMap::new();
    for (b, who) in found {
        by_addr.entry(b.addr).or_default().push((b, who));
    }
    let mut out = Vec::with_capacity(by_addr.len());
    for (addr, mut group) in by_addr {
        group.sort_by(|(a, wa), (b, wb)| {
            (a.health, std::cmp::Reverse(a.weight), wa).cmp(&(
                b.health,
                std::cmp::Reverse(b.weight),
                wb,
            ))
        });
        let mut group = group.into_iter();
        let Some((keep, kept_who)) = group.next() else {
            continue;
        };
        for (_, who) in group {
            skipped.push(format!(
                "{who} skipped: {addr} is also registered by {kept_who}, which is kept ({}, weight {})",
                keep.health.name(),
                keep.weight
            ));
        }
        out.push(keep);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cidr;
    use crate::model::{Forward, Protocol, ServiceKey, ServiceSpec};
    use serde_json::json;

    fn svc(vip: &str, tags: &[&str]) -> ServiceConfig {
        ServiceConfig {
            name: "rabbitmq".into(),
            key: ServiceKey {
                protocol: Protocol::Tcp,
                vip: vip.parse().unwrap(),
            },
            spec: ServiceSpec {
                scheduler: "wlc".into(),
                persistence_s: 0,
            },
            forward: Forward::Nat,
            drain_timeout: None,
            source: Source::Consul {
                service: "rabbitmq".into(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
            },
            check: None,
            allowed_backends: Vec::new(),
        }
    }

    fn nat() -> ServiceConfig {
        svc("192.0.2.10:5672", &[])
    }

    /// One instance in Consul's real shape (reference §1.2), with the node's
    /// `serfHealth` check and one service check.
    fn entry(node: &str, node_addr: &str, id: &str, addr: &str, port: u16, status: &str) -> Value {
        json!({
            "Node": {
                "ID": "40e4a748-2192-161a-0510-9bf59fe950b5",
                "Node": node, "Address": node_addr, "Datacenter": "dc1",
                "TaggedAddresses": {"lan": node_addr, "wan": node_addr},
                "Meta": {"consul-network-segment": ""},
                "CreateIndex": 13, "ModifyIndex": 15
            },
            "Service": {
                "ID": id, "Service": "rabbitmq", "Tags": ["amqp"],
                "Address": addr, "Meta": null, "Port": port,
                "Weights": {"Passing": 10, "Warning": 2},
                "EnableTagOverride": false,
                "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
                "Connect": {}, "PeerName": "",
                "CreateIndex": 20, "ModifyIndex": 20
            },
            "Checks": [
                {"Node": node, "CheckID": "serfHealth", "Name": "Serf Health Status",
                 "Status": "passing", "Notes": "", "Output": "Agent alive and reachable",
                 "ServiceID": "", "ServiceName": "", "ServiceTags": [], "Type": "",
                 "Interval": "", "Timeout": "", "ExposedPort": 0, "Definition": {},
                 "CreateIndex": 13, "ModifyIndex": 13},
                {"Node": node, "CheckID": format!("service:{id}"), "Name": "Service check",
                 "Status": status, "Notes": "", "Output": "",
                 "ServiceID": id, "ServiceName": "rabbitmq", "ServiceTags": ["amqp"],
                 "Type": "tcp", "Interval": "10s", "Timeout": "1s", "ExposedPort": 0,
                 "Definition": {}, "CreateIndex": 21, "ModifyIndex": 40}
            ]
        })
    }

    fn run(entries: Vec<Value>, svc: &ServiceConfig) -> Parsed {
        let body = serde_json::to_vec(&Value::Array(entries)).unwrap();
        parse_health(&body, svc).unwrap()
    }

    fn one(e: Value, svc: &ServiceConfig) -> Result<Backend, String> {
        let p = run(vec![e], svc);
        match (p.backends.as_slice(), p.skipped.as_slice()) {
            ([b], []) => Ok(b.clone()),
            ([], [why]) => Err(why.clone()),
            _ => panic!("expected one backend or one skip: {p:?}"),
        }
    }

    fn backend(addr: &str, weight: u32, health: SourceHealth) -> Backend {
        Backend {
            addr: addr.parse().unwrap(),
            weight,
            health,
        }
    }

    fn set(mut e: Value, ptr: &str, v: Value) -> Value {
        *e.pointer_mut(ptr).unwrap() = v;
        e
    }

    fn add_check(mut e: Value, id: &str, status: &str) -> Value {
        e["Checks"]
            .as_array_mut()
            .unwrap()
            .push(json!({"CheckID": id, "Status": status, "Name": id}));
        e
    }

    #[test]
    fn passing_instance_uses_service_address_and_passing_weight() {
        let e = entry("n1", "10.0.0.1", "r1", "10.0.0.11", 5672, "passing");
        assert_eq!(
            one(e, &nat()),
            Ok(backend("10.0.0.11:5672", 10, SourceHealth::Passing))
        );
    }

    #[test]
    fn health_and_weight_follow_aggregated_status() {
        let base = || entry("n1", "10.0.0.1", "r1", "10.0.0.11", 5672, "passing");
        let cases: Vec<(&str, Value, u32, SourceHealth)> = vec![
            (
                "warning",
                set(base(), "/Checks/1/Status", json!("warning")),
                2,
                SourceHealth::Warning,
            ),
            (
                "critical",
                set(base(), "/Checks/1/Status", json!("critical")),
                10,
                SourceHealth::Critical,
            ),
            (
                "critical beats warning",
                add_check(
                    set(base(), "/Checks/1/Status", json!("warning")),
                    "other",
                    "critical",
                ),
                10,
                SourceHealth::Critical,
            ),
            (
                "node check critical",
                set(base(), "/Checks/0/Status", json!("critical")),
                10,
                SourceHealth::Critical,
            ),
            (
                "service maintenance",
                add_check(base(), "_service_maintenance:r1", "critical"),
                10,
                SourceHealth::Maintenance,
            ),
            (
                "node maintenance",
                add_check(base(), "_node_maintenance", "critical"),
                10,
                SourceHealth::Maintenance,
            ),
            (
                "maintenance beats critical",
                add_check(
                    set(base(), "/Checks/1/Status", json!("critical")),
                    "_node_maintenance",
                    "critical",
                ),
                10,
                SourceHealth::Maintenance,
            ),
            (
                "no checks",
                set(base(), "/Checks", json!([])),
                10,
                SourceHealth::Passing,
            ),
            (
                "null checks",
                set(base(), "/Checks", json!(null)),
                10,
                SourceHealth::Passing,
            ),
            (
                "unknown status",
                set(base(), "/Checks/1/Status", json!("bogus")),
                10,
                SourceHealth::Critical,
            ),
        ];
        for (name, e, weight, health) in cases {
            assert_eq!(
                one(e, &nat()),
                Ok(backend("10.0.0.11:5672", weight, health)),
                "{name}"
            );
        }
    }

    #[test]
    fn missing_status_counts_as_critical() {
        let mut e = entry("n1", "10.0.0.1", "r1", "10.0.0.11", 5672, "passing");
        e["Checks"][1].as_object_mut().unwrap().remove("Status");
        assert_eq!(one(e, &nat()).unwrap().health, SourceHealth::Critical);
    }

    #[test]
    fn empty_service_address_falls_back_to_node_address() {
        let e = entry("n1", "10.0.0.1", "r1", "", 5672, "passing");
        assert_eq!(
            one(e, &nat()).unwrap().addr,
            "10.0.0.1:5672".parse().unwrap()
        );
        let mut e = entry("n1", "10.0.0.1", "r1", "", 5672, "passing");
        e["Service"].as_object_mut().unwrap().remove("Address");
        assert_eq!(
            one(e, &nat()).unwrap().addr,
            "10.0.0.1:5672".parse().unwrap()
        );
    }

    #[test]
    fn missing_or_zero_port_is_skipped() {
        let mut e = entry("n1", "10.0.0.1", "r1", "10.0.0.11", 5672, "passing");
        e["Service"].as_object_mut().unwrap().remove("Port");
        let why = one(e, &nat()).unwrap_err();
        assert!(
            why.contains("node n1, service ID r1") && why.contains("no port"),
            "{why}"
        );
        let e = entry("n1", "10.0.0.1", "r1", "10.0.0.11", 0, "passing");
        assert!(one(e, &nat()).unwrap_err().contains("no port"));
    }

    #[test]
    fn missing_weights_default_to_one() {
        let mut e = entry("n1", "10.0.0.1", "r1", "10.0.0.11", 5672, "warning");
        e["Service"].as_object_mut().unwrap().remove("Weights");
        assert_eq!(one(e, &nat()).unwrap().weight, 1);
        let e = set(
            entry("n1", "10.0.0.1", "r1", "10.0.0.11", 5672, "passing"),
            "/Service/Weights",
            json!({"Passing": 7}),
        );
        assert_eq!(one(e, &nat()).unwrap().weight, 7);
    }

    #[test]
    fn warning_weight_zero_is_kept_as_zero() {
        let e = set(
            entry("n1", "10.0.0.1", "r1", "10.0.0.11", 5672, "warning"),
            "/Service/Weights",
            json!({"Passing": 5, "Warning": 0}),
        );
        assert_eq!(one(e, &nat()).unwrap().weight, 0);
    }

    #[test]
    fn unknown_fields_are_tolerated_everywhere() {
        let mut e = entry("n1", "10.0.0.1", "r1", "10.0.0.11", 5672, "passing");
        e["FutureTopLevel"] = json!({"x": [1, 2]});
        e["Node"]["Locality"] = json!({"Region": "eu"});
        e["Service"]["SocketPath"] = json!("/tmp/x");
        e["Service"]["Weights"]["Future"] = json!(3);
        e["Service"]["TaggedAddresses"] =
            json!({"lan_ipv4": {"Address": "10.0.0.11", "Port": 5672}});
        e["Checks"][0]["PeerName"] = json!("");
        assert_eq!(
            one(e, &nat()),
            Ok(backend("10.0.0.11:5672", 10, SourceHealth::Passing))
        );
    }

    #[test]
    fn ipv6_address_is_accepted_for_an_ipv6_vip() {
        let v6 = svc("[2001:db8::10]:5672", &[]);
        let e = entry("n1", "2001:db8::1", "r1", "2001:db8::11", 5672, "passing");
        assert_eq!(
            one(e, &v6).unwrap().addr,
            "[2001:db8::11]:5672".parse().unwrap()
        );
    }

    #[test]
    fn hostname_is_skipped_without_dns() {
        let e = entry(
            "n1",
            "10.0.0.1",
            "r1",
            "rabbit-1.example.com",
            5672,
            "passing",
        );
        let why = one(e, &nat()).unwrap_err();
        assert!(
            why.contains("rabbit-1.example.com") && why.contains("not an IP"),
            "{why}"
        );
        let e = entry("n1", "node1.example.com", "r1", "", 5672, "passing");
        assert!(one(e, &nat()).unwrap_err().contains("node1.example.com"));
    }

    #[test]
    fn no_address_at_all_is_skipped() {
        let e = entry("n1", "", "r1", "", 5672, "passing");
        assert!(one(e, &nat()).unwrap_err().contains("neither"));
    }

    #[test]
    fn misfits_are_skipped_with_the_config_reason() {
        let mut s = nat();
        s.allowed_backends = vec![Cidr::parse("10.0.0.0/24").unwrap()];
        let e = entry("n1", "10.0.0.1", "r1", "10.9.0.11", 5672, "passing");
        assert!(one(e, &s).unwrap_err().contains("outside allowed_backends"));
        let e = entry("n1", "10.0.0.1", "r1", "10.0.0.11", 5672, "passing");
        assert!(one(e, &s).is_ok());

        let e = entry("n1", "10.0.0.1", "r1", "2001:db8::11", 5672, "passing");
        assert!(one(e, &nat()).unwrap_err().contains("address family"));

        let mut dr = nat();
        dr.forward = Forward::Dr;
        let e = entry("n1", "10.0.0.1", "r1", "10.0.0.11", 5673, "passing");
        assert!(one(e, &dr).unwrap_err().contains("cannot change the port"));
    }

    #[test]
    fn non_empty_kind_is_skipped() {
        let mut e = entry("n1", "10.0.0.1", "r1-proxy", "10.0.0.11", 21000, "passing");
        e["Service"]["Kind"] = json!("connect-proxy");
        assert!(one(e, &nat()).unwrap_err().contains("connect-proxy"));
        let mut e = entry("n1", "10.0.0.1", "r1", "10.0.0.11", 5672, "passing");
        e["Service"]["Kind"] = json!("");
        assert!(one(e, &nat()).is_ok());
    }

    #[test]
    fn instance_without_a_configured_tag_is_skipped() {
        let tagged = svc("192.0.2.10:5672", &["AMQP"]);
        let e = entry("n1", "10.0.0.1", "r1", "10.0.0.11", 5672, "passing");
        assert!(one(e, &tagged).is_ok(), "tags match case-insensitively");
        let tagged = svc("192.0.2.10:5672", &["amqp", "primary"]);
        let e = entry("n1", "10.0.0.1", "r1", "10.0.0.11", 5672, "passing");
        assert!(one(e, &tagged).unwrap_err().contains("\"primary\""));
    }

    #[test]
    fn malformed_instance_is_skipped_not_fatal() {
        let bad = set(
            entry("n2", "10.0.0.2", "r2", "10.0.0.12", 5672, "passing"),
            "/Service/Port",
            json!("5672"),
        );
        let good = entry("n1", "10.0.0.1", "r1", "10.0.0.11", 5672, "passing");
        let p = run(vec![bad, good, json!(42)], &nat());
        assert_eq!(
            p.backends,
            vec![backend("10.0.0.11:5672", 10, SourceHealth::Passing)]
        );
        assert_eq!(p.skipped.len(), 2, "{:?}", p.skipped);
        assert!(
            p.skipped[0].contains("node n2, service ID r2"),
            "{:?}",
            p.skipped
        );
    }

    #[test]
    fn duplicate_address_keeps_the_healthiest_then_heaviest_in_any_order() {
        let a = set(
            entry("n1", "10.0.0.1", "a", "10.0.0.11", 5672, "passing"),
            "/Service/Weights",
            json!({"Passing": 3, "Warning": 1}),
        );
        let b = entry("n2", "10.0.0.2", "b", "10.0.0.11", 5672, "passing");
        let c = entry("n3", "10.0.0.3", "c", "10.0.0.11", 5672, "critical");
        let want = backend("10.0.0.11:5672", 10, SourceHealth::Passing);
        for order in [
            vec![a.clone(), b.clone(), c.clone()],
            vec![c.clone(), b.clone(), a.clone()],
            vec![b.clone(), c.clone(), a.clone()],
        ] {
            let p = run(order, &nat());
            assert_eq!(p.backends, vec![want.clone()]);
            assert_eq!(p.skipped.len(), 2);
            assert!(p
                .skipped
                .iter()
                .all(|s| s.contains("also registered by node n2, service ID b")));
        }
    }

    #[test]
    fn result_is_sorted_by_address() {
        let p = run(
            vec![
                entry("n3", "10.0.0.3", "r3", "", 5672, "passing"),
                entry("n1", "10.0.0.1", "r1", "", 5673, "passing"),
                entry("n2", "10.0.0.2", "r2", "", 5672, "passing"),
                entry("n1", "10.0.0.1", "r0", "", 5672, "passing"),
            ],
            &nat(),
        );
        let addrs: Vec<String> = p.backends.iter().map(|b| b.addr.to_string()).collect();
        assert_eq!(
            addrs,
            [
                "10.0.0.1:5672",
                "10.0.0.1:5673",
                "10.0.0.2:5672",
                "10.0.0.3:5672"
            ]
        );
    }

    #[test]
    fn empty_array_is_no_backends() {
        assert_eq!(
            parse_health(b"[]", &nat()),
            Ok(Parsed {
                backends: vec![],
                skipped: vec![]
            })
        );
    }

    #[test]
    fn not_an_array_is_an_error() {
        let cases: [(&[u8], &str); 5] = [
            (b"{\"Node\":{}}", "object"),
            (b"null", "null"),
            (b"\"No cluster leader\"", "string"),
            (b"No cluster leader", "not JSON"),
            (b"[{\"Node\":", "not JSON"),
        ];
        for (body, want) in cases {
            let e = parse_health(body, &nat()).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    #[test]
    fn weight_is_capped_at_the_kernel_maximum() {
        let e = set(
            entry("n1", "10.0.0.1", "r1", "10.0.0.11", 5672, "passing"),
            "/Service/Weights",
            json!({"Passing": 4_000_000_000u64, "Warning": 1}),
        );
        assert_eq!(one(e, &nat()).unwrap().weight, i32::MAX as u32);
    }
}
