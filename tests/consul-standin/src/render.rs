//! Renders the catalog in Consul's wire shapes: `CheckServiceNode` for
//! `/v1/health/service`, the name→tags map of `/v1/catalog/services`, and a small
//! `/v1/agent/self` (field names from agent/structs/structs.go; reference §1.2).
//! Details a client must cope with are kept: `Port` is omitted when 0, `Tags`,
//! `Checks` and `ServiceTags` are never null, `Weights` is always present.
//! Pure; no I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use crate::catalog::{Check, Instance, Node, Store};

/// The only datacenter the stand-in knows.
pub const DATACENTER: &str = "dc1";

/// What `/v1/health/service/<name>` filters on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthFilter {
    /// Every tag must be present, compared case-insensitively
    /// (agent/consul/state/catalog.go `serviceTagFilter`).
    pub tags: Vec<String>,
    /// Keep only instances whose every check is passing (warning is dropped).
    pub passing: bool,
}

/// The array for `/v1/health/service/<name>`, ordered by service ID.
pub fn health_service(store: &Store, service: &str, filter: &HealthFilter) -> Value {
    let entries = store
        .instances_of(service)
        .filter(|i| has_tags(i, &filter.tags))
        .map(|i| check_service_node(&store.node, i))
        .filter(|e| !filter.passing || all_passing(e))
        .collect();
    Value::Array(entries)
}

fn has_tags(i: &Instance, wanted: &[String]) -> bool {
    wanted
        .iter()
        .all(|w| i.tags.iter().any(|t| t.eq_ignore_ascii_case(w)))
}

fn all_passing(entry: &Value) -> bool {
    entry["Checks"]
        .as_array()
        .is_some_and(|cs| cs.iter().all(|c| c["Status"] == "passing"))
}

/// One `CheckServiceNode`: node, service, node checks then service checks.
pub fn check_service_node(node: &Node, i: &Instance) -> Value {
    let checks: Vec<Value> = node
        .checks
        .iter()
        .map(|c| check(node, c, None))
        .chain(i.checks.iter().map(|c| check(node, c, Some(i))))
        .collect();
    json!({"Node": node_json(node), "Service": service_json(i), "Checks": checks})
}

fn node_json(node: &Node) -> Value {
    json!({
        "ID": node.id,
        "Node": node.name,
        "Address": node.address,
        "Datacenter": DATACENTER,
        "TaggedAddresses": node_tagged_addresses(&node.address),
        "Meta": {"consul-network-segment": ""},
        "CreateIndex": node.create_index,
        "ModifyIndex": node.modify_index,
    })
}

/// The agent tags its own address as lan/wan plus the family-specific keys.
fn node_tagged_addresses(address: &str) -> Value {
    let mut m = Map::new();
    let family = family_suffix(address);
    for scope in ["lan", "wan"] {
        m.insert(scope.to_string(), json!(address));
        if let Some(f) = family {
            m.insert(format!("{scope}_{f}"), json!(address));
        }
    }
    Value::Object(m)
}

fn family_suffix(address: &str) -> Option<&'static str> {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => Some("ipv4"),
        Ok(IpAddr::V6(_)) => Some("ipv6"),
        Err(_) => None,
    }
}

fn service_json(i: &Instance) -> Value {
    let mut s = json!({
        "ID": i.id,
        "Service": i.name,
        "Tags": i.tags,
        "Address": i.address,
        "Meta": i.meta,
        "Weights": {"Passing": i.weights.0, "Warning": i.weights.1},
        "EnableTagOverride": i.enable_tag_override,
        "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
        "Connect": {},
        "PeerName": "",
        "CreateIndex": i.create_index,
        "ModifyIndex": i.modify_index,
    });
    // `Port` carries `omitempty` in NodeService: a port of 0 is absent, not 0.
    if i.port != 0 {
        s["Port"] = json!(i.port);
    }
    if let Some(tagged) = service_tagged_addresses(i) {
        s["TaggedAddresses"] = tagged;
    }
    s
}

/// The agent adds lan_/wan_ipvN entries for a service registered with an IP
/// address (agent/agent.go `addServiceInternal`); omitted when empty.
fn service_tagged_addresses(i: &Instance) -> Option<Value> {
    let family = family_suffix(&i.address)?;
    let entry = json!({"Address": i.address, "Port": i.port});
    Some(json!({format!("lan_{family}"): entry, format!("wan_{family}"): entry}))
}

fn check(node: &Node, c: &Check, owner: Option<&Instance>) -> Value {
    json!({
        "Node": node.name,
        "CheckID": c.id,
        "Name": c.name,
        "Status": c.status,
        "Notes": c.notes,
        "Output": c.output,
        "ServiceID": c.service_id,
        "ServiceName": owner.map_or("", |i| i.name.as_str()),
        "ServiceTags": owner.map_or(&[][..], |i| &i.tags[..]),
        "Type": c.kind,
        "Interval": c.interval,
        "Timeout": c.timeout,
        "ExposedPort": 0,
        "Definition": c.definition,
        "CreateIndex": c.create_index,
        "ModifyIndex": c.modify_index,
    })
}

/// `/v1/catalog/services`: each name with the union of its instances' tags.
pub fn catalog_services(store: &Store) -> Value {
    let mut names: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for i in store.instances.values() {
        let tags = names.entry(i.name.as_str()).or_default();
        for t in &i.tags {
            if !tags.contains(&t.as_str()) {
                tags.push(t);
            }
        }
    }
    json!(names)
}

/// The slice of `/v1/agent/self` consumers read at start-up (reference §5.6).
pub fn agent_self(store: &Store) -> Value {
    json!({
        "Config": {
            "Datacenter": DATACENTER,
            "NodeName": store.node.name,
            "NodeID": store.node.id,
            "Server": true,
            "Version": "1.21.0-standin",
        },
        "Member": {"Name": store.node.name, "Addr": store.node.address, "Port": 8301, "Status": 1},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Store;

    fn store() -> Store {
        let mut s = Store::new("192.0.2.1");
        let regs = [
            json!({"ID": "a", "Name": "web", "Tags": ["Primary", "lb"], "Address": "192.0.2.10", "Port": 80,
                   "Check": {"TTL": "1s", "Status": "passing"}}),
            json!({"ID": "b", "Name": "web", "Tags": ["lb"], "Weights": {"Passing": 5, "Warning": 2},
                   "Check": {"TTL": "1s", "Status": "warning"}}),
            json!({"ID": "c", "Name": "db"}),
        ];
        for r in regs {
            s.register(&r).unwrap();
        }
        s
    }

    fn ids(v: &Value) -> Vec<&str> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["Service"]["ID"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn tag_filter_is_case_insensitive_and() {
        let s = store();
        let f = |tags: &[&str]| HealthFilter {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            passing: false,
        };
        assert_eq!(ids(&health_service(&s, "web", &f(&["primary"]))), ["a"]);
        assert_eq!(ids(&health_service(&s, "web", &f(&["LB"]))), ["a", "b"]);
        assert!(ids(&health_service(&s, "web", &f(&["lb", "nope"]))).is_empty());
    }

    #[test]
    fn passing_drops_warning_instances() {
        let s = store();
        let f = HealthFilter {
            tags: vec![],
            passing: true,
        };
        assert_eq!(ids(&health_service(&s, "web", &f)), ["a"]);
    }

    #[test]
    fn shape_matches_consul() {
        let s = store();
        let all = health_service(&s, "web", &HealthFilter::default());
        let (a, b) = (&all[0], &all[1]);
        assert_eq!(a["Service"]["Port"], 80);
        assert!(b["Service"].get("Port").is_none(), "port 0 is omitted");
        assert_eq!(
            b["Service"]["Address"], "",
            "no address: clients use Node.Address"
        );
        assert_eq!(b["Node"]["Address"], "192.0.2.1");
        assert_eq!(b["Service"]["Weights"], json!({"Passing": 5, "Warning": 2}));
        assert_eq!(a["Service"]["Weights"], json!({"Passing": 1, "Warning": 1}));
        assert_eq!(
            a["Service"]["TaggedAddresses"]["lan_ipv4"]["Address"],
            "192.0.2.10"
        );
        assert_eq!(a["Node"]["TaggedAddresses"]["lan_ipv4"], "192.0.2.1");
        let checks = a["Checks"].as_array().unwrap();
        assert_eq!(checks[0]["CheckID"], "serfHealth");
        assert_eq!(checks[0]["ServiceTags"], json!([]));
        assert_eq!(checks[1]["CheckID"], "service:a");
        assert_eq!(checks[1]["ServiceTags"], json!(["Primary", "lb"]));
        assert_eq!(checks[1]["Type"], "ttl");
    }

    #[test]
    fn catalog_services_unions_tags() {
        let v = catalog_services(&store());
        assert_eq!(v, json!({"db": [], "web": ["Primary", "lb"]}));
    }
}
