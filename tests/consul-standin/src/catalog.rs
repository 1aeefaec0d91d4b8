//! The stand-in's catalog: one agent node (`standin-node`) with its `serfHealth`
//! check, the service instances registered on it, their checks, and the Raft-like
//! indexes that blocking queries watch. Writes follow the agent API's semantics and
//! error texts (reference §5); every write bumps the affected services' index, as
//! the brief asks, even when nothing visible changed. Pure data; no I/O, no clock.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::register::{parse_registration, STATUSES};

/// First index handed out; starting above 1 leaves room to go backwards.
const FIRST_INDEX: u64 = 10;
/// Index of the node's own registration and its `serfHealth` check.
const NODE_INDEX: u64 = 5;
/// The agent's default maintenance notes (agent/agent.go).
const DEFAULT_SERVICE_REASON: &str =
    "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";
const DEFAULT_NODE_REASON: &str =
    "Maintenance mode is enabled for this node, but no reason was provided. This is a default message.";

/// An HTTP-level failure of a write or read: status code and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn bad(message: &str) -> ApiError {
        ApiError {
            status: 400,
            message: message.to_string(),
        }
    }

    pub fn not_found(message: String) -> ApiError {
        ApiError {
            status: 404,
            message,
        }
    }
}

/// One health check, node-level when `service_id` is empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub id: String,
    pub name: String,
    pub status: String,
    pub notes: String,
    pub output: String,
    pub service_id: String,
    /// Consul's `Type`: `ttl`, `http`, `tcp`, `grpc`, `maintenance` or `""`.
    pub kind: String,
    pub interval: String,
    pub timeout: String,
    pub definition: Map<String, Value>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// One registered service instance with its own checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub address: String,
    pub port: u16,
    pub meta: Map<String, Value>,
    pub weights: (u32, u32),
    pub enable_tag_override: bool,
    pub checks: Vec<Check>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// The node every instance lives on.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub address: String,
    pub checks: Vec<Check>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// Everything the HTTP API reads and writes.
#[derive(Debug, Clone)]
pub struct Store {
    pub node: Node,
    pub instances: BTreeMap<String, Instance>,
    index: u64,
    /// Index of the last deregistration that left a service with no instances;
    /// unknown services report it (agent/consul/state/catalog.go).
    extinction: u64,
    /// Per-service index keyed by lower-cased name (Consul's indexes ignore case).
    service_index: HashMap<String, u64>,
}

impl Store {
    pub fn new(node_address: &str) -> Store {
        let node = Node {
            id: "8d3c1c5e-6a0f-4b7e-9c2d-5f1a3b4c6d7e".to_string(),
            name: "standin-node".to_string(),
            address: node_address.to_string(),
            checks: vec![serf_health()],
            create_index: NODE_INDEX,
            modify_index: NODE_INDEX,
        };
        Store {
            node,
            instances: BTreeMap::new(),
            index: FIRST_INDEX,
            extinction: 1,
            service_index: HashMap::new(),
        }
    }

    /// The index a blocking query on this service compares against; never 0
    /// (agent/http.go `setIndex` rewrites 0 to 1).
    pub fn index_of(&self, service: &str) -> u64 {
        let own = self.service_index.get(&service.to_lowercase()).copied();
        own.unwrap_or(self.extinction).max(1)
    }

    /// The highest index anywhere, for catalog-wide reads.
    pub fn global_index(&self) -> u64 {
        self.index.max(1)
    }

    /// Instances of one service (case-insensitive name), ordered by ID.
    pub fn instances_of<'a>(&'a self, service: &'a str) -> impl Iterator<Item = &'a Instance> + 'a {
        self.instances
            .values()
            .filter(move |i| i.name.eq_ignore_ascii_case(service))
    }

    fn next_index(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    /// Marks a service name as changed at `idx`, or extinct if it has no instances.
    fn touch(&mut self, service: &str, idx: u64) {
        if self.instances_of(service).next().is_some() {
            self.service_index.insert(service.to_lowercase(), idx);
        } else if self.service_index.remove(&service.to_lowercase()).is_some() {
            self.extinction = idx;
        }
    }

    /// A node-level change touches every service on the node.
    fn touch_all(&mut self, idx: u64) {
        for v in self.service_index.values_mut() {
            *v = idx;
        }
    }

    /// `PUT /v1/agent/service/register`. Re-registering an ID replaces the
    /// instance and its checks but keeps its maintenance check, as the agent does.
    pub fn register(&mut self, body: &Value) -> Result<(), ApiError> {
        let mut instance = parse_registration(body)?;
        let idx = self.next_index();
        let old = self.instances.remove(&instance.id);
        instance.create_index = old.as_ref().map_or(idx, |o| o.create_index);
        instance.modify_index = idx;
        for c in &mut instance.checks {
            (c.create_index, c.modify_index) = (idx, idx);
        }
        if let Some(m) = old.as_ref().and_then(|o| maintenance_check(o).cloned()) {
            instance.checks.push(m);
        }
        let name = instance.name.clone();
        self.instances.insert(instance.id.clone(), instance);
        if let Some(o) = old.filter(|o| !o.name.eq_ignore_ascii_case(&name)) {
            self.touch(&o.name, idx);
        }
        self.touch(&name, idx);
        Ok(())
    }

    /// `PUT /v1/agent/service/deregister/<id>`; modern agents 404 unknown IDs.
    pub fn deregister(&mut self, id: &str) -> Result<(), ApiError> {
        let gone = self
            .instances
            .remove(id)
            .ok_or_else(|| unknown_service(id))?;
        let idx = self.next_index();
        self.touch(&gone.name, idx);
        Ok(())
    }

    /// TTL update (`check/pass|warn|fail`, `check/update`). Over HTTP only TTL
    /// checks may be updated (500 otherwise, as in agent/agent.go `updateTTLCheck`);
    /// the library may set any check, `serfHealth` included, to fake node failure.
    pub fn update_check(
        &mut self,
        id: &str,
        status: &str,
        output: Option<&str>,
        ttl_only: bool,
    ) -> Result<(), ApiError> {
        if !STATUSES.contains(&status) {
            return Err(ApiError::bad(&format!("Invalid check status: '{status}'")));
        }
        let idx = self.index + 1;
        let (check, service) = self.find_check(id).ok_or_else(|| unknown_check(id))?;
        if ttl_only && check.kind != "ttl" {
            return Err(ApiError {
                status: 500,
                message: format!("CheckID \"{id}\" does not have associated TTL"),
            });
        }
        check.status = status.to_string();
        check.output = output.unwrap_or_default().to_string();
        check.modify_index = idx;
        self.index = idx;
        match service {
            Some(name) => self.touch(&name, idx),
            None => self.touch_all(idx),
        }
        Ok(())
    }

    /// Finds a check and the name of its service (None for node checks).
    fn find_check(&mut self, id: &str) -> Option<(&mut Check, Option<String>)> {
        if let Some(c) = self.node.checks.iter_mut().find(|c| c.id == id) {
            return Some((c, None));
        }
        self.instances.values_mut().find_map(|i| {
            let name = i.name.clone();
            let c = i
                .checks
                .iter_mut()
                .find(|c| c.id == id && c.kind != "maintenance")?;
            Some((c, Some(name)))
        })
    }

    /// `PUT /v1/agent/service/maintenance/<id>`: adds or removes the critical
    /// `_service_maintenance:<id>` check (agent/agent.go `EnableServiceMaintenance`).
    pub fn service_maintenance(
        &mut self,
        id: &str,
        enable: bool,
        reason: &str,
    ) -> Result<(), ApiError> {
        if id.is_empty() {
            return Err(ApiError::bad("Missing service ID"));
        }
        if !self.instances.contains_key(id) {
            return Err(ApiError::not_found(format!(
                "No service registered with ID \"{id}\""
            )));
        }
        let idx = self.next_index();
        let instance = self.instances.get_mut(id).expect("checked above");
        instance.checks.retain(|c| c.kind != "maintenance");
        if enable {
            let reason = if reason.is_empty() {
                DEFAULT_SERVICE_REASON
            } else {
                reason
            };
            let mut check = maintenance(
                &format!("_service_maintenance:{id}"),
                "Service Maintenance Mode",
                reason,
                idx,
            );
            check.service_id = id.to_string();
            instance.checks.push(check);
        }
        let name = instance.name.clone();
        self.touch(&name, idx);
        Ok(())
    }

    /// `PUT /v1/agent/maintenance`: the node-wide `_node_maintenance` check.
    pub fn node_maintenance(&mut self, enable: bool, reason: &str) {
        let idx = self.next_index();
        self.node.checks.retain(|c| c.id != "_node_maintenance");
        if enable {
            let reason = if reason.is_empty() {
                DEFAULT_NODE_REASON
            } else {
                reason
            };
            let check = maintenance("_node_maintenance", "Node Maintenance Mode", reason, idx);
            self.node.checks.push(check);
        }
        self.touch_all(idx);
    }

    /// A write that changes nothing but the index, like an idempotent
    /// re-registration or an output-only check update on real Consul: blocked
    /// readers wake to an identical list. For a service with no instances it
    /// moves the extinction index, which every unknown-service watcher shares.
    pub fn bump(&mut self, service: &str) {
        let idx = self.next_index();
        match self.service_index.get_mut(&service.to_lowercase()) {
            Some(v) => *v = idx,
            None => self.extinction = idx,
        }
    }

    /// Simulates a snapshot restore from older state: every index is halved, so
    /// each answer afterwards carries a lower `X-Consul-Index` than before (for any
    /// index that was at least 2; the store starts at 10 to make that the norm).
    pub fn rebase_indexes(&mut self) {
        let half = |v: &mut u64| *v = (*v / 2).max(1);
        half(&mut self.index);
        half(&mut self.extinction);
        self.service_index.values_mut().for_each(half);
        for i in self.instances.values_mut() {
            half(&mut i.create_index);
            half(&mut i.modify_index);
            for c in &mut i.checks {
                half(&mut c.create_index);
                half(&mut c.modify_index);
            }
        }
    }
}

/// The service's maintenance check, if maintenance is on.
pub fn maintenance_check(i: &Instance) -> Option<&Check> {
    i.checks.iter().find(|c| c.kind == "maintenance")
}

fn unknown_service(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Unknown service ID \"{id}\". Ensure that the service ID is passed, not the service name."
    ))
}

fn unknown_check(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Unknown check ID \"{id}\". Ensure that the check ID is passed, not the check name."
    ))
}

fn serf_health() -> Check {
    Check {
        id: "serfHealth".to_string(),
        name: "Serf Health Status".to_string(),
        status: "passing".to_string(),
        notes: String::new(),
        output: "Agent alive and reachable".to_string(),
        service_id: String::new(),
        kind: String::new(),
        interval: String::new(),
        timeout: String::new(),
        definition: Map::new(),
        create_index: NODE_INDEX,
        modify_index: NODE_INDEX,
    }
}

fn maintenance(id: &str, name: &str, reason: &str, idx: u64) -> Check {
    Check {
        id: id.to_string(),
        name: name.to_string(),
        status: "critical".to_string(),
        notes: reason.to_string(),
        kind: "maintenance".to_string(),
        create_index: idx,
        modify_index: idx,
        ..serf_health()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store_with_web() -> Store {
        let mut s = Store::new("127.0.0.1");
        s.register(
            &json!({"ID": "w1", "Name": "web", "Check": {"TTL": "1s", "Status": "passing"}}),
        )
        .unwrap();
        s
    }

    #[test]
    fn every_write_bumps_the_service_index() {
        let mut s = store_with_web();
        let mut last = s.index_of("web");
        let writes: [fn(&mut Store); 5] = [
            |s| s.update_check("service:w1", "passing", None, true).unwrap(),
            |s| s.service_maintenance("w1", true, "").unwrap(),
            |s| s.service_maintenance("w1", false, "").unwrap(),
            |s| s.node_maintenance(true, "x"),
            |s| s.register(&json!({"ID": "w2", "Name": "web"})).unwrap(),
        ];
        for w in writes {
            w(&mut s);
            assert!(s.index_of("web") > last);
            last = s.index_of("web");
        }
    }

    #[test]
    fn names_are_case_insensitive() {
        let s = store_with_web();
        assert_eq!(s.index_of("WEB"), s.index_of("web"));
        assert_eq!(s.instances_of("Web").count(), 1);
    }

    #[test]
    fn last_deregistration_sets_the_extinction_index() {
        let mut s = store_with_web();
        let before = s.index_of("nonexistent");
        s.deregister("w1").unwrap();
        assert!(s.index_of("nonexistent") > before);
        assert_eq!(s.index_of("web"), s.index_of("nonexistent"));
        assert_eq!(s.deregister("w1").unwrap_err().status, 404);
    }

    #[test]
    fn ttl_updates_need_a_ttl_check_over_http() {
        let mut s = Store::new("127.0.0.1");
        s.register(
            &json!({"ID": "h", "Name": "h", "Check": {"HTTP": "http://x/", "Interval": "1s"}}),
        )
        .unwrap();
        assert_eq!(
            s.update_check("service:h", "passing", None, true)
                .unwrap_err()
                .status,
            500
        );
        s.update_check("service:h", "passing", Some("ok"), false)
            .unwrap();
        assert_eq!(
            s.update_check("nope", "passing", None, true)
                .unwrap_err()
                .status,
            404
        );
        assert_eq!(
            s.update_check("service:h", "up", None, false)
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn maintenance_survives_reregistration_and_disables_cleanly() {
        let mut s = store_with_web();
        s.service_maintenance("w1", true, "deploy").unwrap();
        s.register(&json!({"ID": "w1", "Name": "web"})).unwrap();
        let m = maintenance_check(&s.instances["w1"]).unwrap();
        assert_eq!(
            (m.id.as_str(), m.status.as_str(), m.notes.as_str()),
            ("_service_maintenance:w1", "critical", "deploy")
        );
        s.service_maintenance("w1", false, "").unwrap();
        assert!(maintenance_check(&s.instances["w1"]).is_none());
        assert_eq!(
            s.service_maintenance("zz", true, "").unwrap_err().status,
            404
        );
    }

    #[test]
    fn rebase_lowers_every_index() {
        let mut s = store_with_web();
        let (web, none) = (s.index_of("web"), s.index_of("none"));
        s.rebase_indexes();
        assert!(s.index_of("web") < web);
        assert!(s.index_of("none") <= none);
        s.update_check("service:w1", "warning", None, true).unwrap();
        assert!(
            s.index_of("web") < web,
            "writes continue from the lower base"
        );
    }
}
