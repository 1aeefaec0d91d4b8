//! Turns a `PUT /v1/agent/service/register` body into an instance and its checks,
//! with the agent's defaults and its 400 texts (reference §5.1; agent/agent_endpoint.go,
//! agent/structs/structs.go `ValidateWeights`). Keys match the way Go's decoder does:
//! case-insensitively, and snake_case is accepted too. Pure; no I/O.

use serde_json::{Map, Value};

use crate::catalog::{ApiError, Check, Instance};

/// Accepted wire statuses; anything else is rejected at registration.
pub const STATUSES: [&str; 3] = ["passing", "warning", "critical"];

/// The agent's own default weights when a registration gives none.
const DEFAULT_WEIGHTS: (u32, u32) = (1, 1);

/// Parses a registration. Indexes are left at 0 for the store to fill in.
pub fn parse_registration(body: &Value) -> Result<Instance, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| decode_failed("body is not a JSON object"))?;
    let name = string_field(obj, "Name")?;
    if name.is_empty() {
        return Err(ApiError::bad("Missing service name"));
    }
    let id = Some(string_field(obj, "ID")?)
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| name.clone());
    let mut instance = Instance {
        tags: string_list(obj, "Tags")?,
        address: parse_address(obj)?,
        port: parse_port(obj)?,
        meta: parse_meta(obj)?,
        weights: parse_weights(obj)?,
        enable_tag_override: field(obj, "EnableTagOverride").and_then(Value::as_bool) == Some(true),
        checks: Vec::new(),
        create_index: 0,
        modify_index: 0,
        id,
        name,
    };
    instance.checks = parse_checks(obj, &instance)?;
    Ok(instance)
}

fn decode_failed(why: &str) -> ApiError {
    ApiError::bad(&format!("Request decode failed: {why}"))
}

/// Go's `encoding/json` matches keys case-insensitively; the agent also maps
/// snake_case, so `check_id` and `CheckID` are the same key here.
pub fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let want = normalise(key);
    obj.iter()
        .find(|(k, _)| normalise(k) == want)
        .map(|(_, v)| v)
}

fn normalise(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A string field; absent or null is "".
fn string_field(obj: &Map<String, Value>, key: &str) -> Result<String, ApiError> {
    match field(obj, key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(decode_failed(&format!("{key} must be a string"))),
    }
}

fn string_list(obj: &Map<String, Value>, key: &str) -> Result<Vec<String>, ApiError> {
    match field(obj, key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| decode_failed(&format!("{key} must be strings"))),
        Some(_) => Err(decode_failed(&format!("{key} must be an array"))),
    }
}

/// `0.0.0.0` and `::` are refused by the agent: nobody can connect to them.
fn parse_address(obj: &Map<String, Value>) -> Result<String, ApiError> {
    let address = string_field(obj, "Address")?;
    let unspecified = address
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.is_unspecified())
        .unwrap_or(false);
    if unspecified {
        return Err(ApiError::bad("Invalid service address"));
    }
    Ok(address)
}

fn parse_port(obj: &Map<String, Value>) -> Result<u16, ApiError> {
    match field(obj, "Port") {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| decode_failed("Port must be an integer 0..65535")),
    }
}

fn parse_meta(obj: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    match field(obj, "Meta") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) if m.values().all(Value::is_string) => Ok(m.clone()),
        Some(_) => Err(decode_failed("Meta must map strings to strings")),
    }
}

/// Absent weights become the agent default; present ones are validated like
/// `structs.ValidateWeights` (Passing >= 1, Warning >= 0).
fn parse_weights(obj: &Map<String, Value>) -> Result<(u32, u32), ApiError> {
    let Some(w) = field(obj, "Weights").and_then(Value::as_object) else {
        return Ok(DEFAULT_WEIGHTS);
    };
    let get = |k| field(w, k).and_then(Value::as_i64).unwrap_or(0);
    let (passing, warning) = (get("Passing"), get("Warning"));
    if passing < 1 {
        return Err(ApiError::bad(
            "Invalid Weights: Passing must be greater than 0",
        ));
    }
    if warning < 0 {
        return Err(ApiError::bad(
            "Invalid Weights: Warning must be greater or equal than 0",
        ));
    }
    let cap = |v: i64| v.min(65535) as u32;
    Ok((cap(passing), cap(warning)))
}

/// `Check` and `Checks` together; unnamed checks get `service:<ID>` (or
/// `service:<ID>:<n>` when there are several), as the agent does.
fn parse_checks(obj: &Map<String, Value>, svc: &Instance) -> Result<Vec<Check>, ApiError> {
    let mut defs: Vec<&Map<String, Value>> = Vec::new();
    if let Some(Value::Object(c)) = field(obj, "Check") {
        defs.push(c);
    }
    if let Some(Value::Array(cs)) = field(obj, "Checks") {
        for c in cs {
            defs.push(
                c.as_object()
                    .ok_or_else(|| decode_failed("Checks must be objects"))?,
            );
        }
    }
    let several = defs.len() > 1;
    defs.iter()
        .enumerate()
        .map(|(i, def)| {
            let default_id = match several {
                true => format!("service:{}:{}", svc.id, i + 1),
                false => format!("service:{}", svc.id),
            };
            parse_check(def, svc, default_id)
        })
        .collect()
}

fn parse_check(
    def: &Map<String, Value>,
    svc: &Instance,
    default_id: String,
) -> Result<Check, ApiError> {
    let id = Some(string_field(def, "CheckID")?)
        .filter(|s| !s.is_empty())
        .or_else(|| Some(string_field(def, "ID").ok()?).filter(|s| !s.is_empty()))
        .unwrap_or(default_id);
    let name = Some(string_field(def, "Name")?)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("Service '{}' check", svc.name));
    let (kind, definition) = check_kind(def)?;
    Ok(Check {
        id,
        name,
        status: initial_status(def)?,
        notes: string_field(def, "Notes")?,
        output: String::new(),
        service_id: svc.id.clone(),
        interval: if kind == "ttl" {
            String::new()
        } else {
            string_field(def, "Interval")?
        },
        timeout: if kind == "ttl" {
            String::new()
        } else {
            string_field(def, "Timeout")?
        },
        kind,
        definition,
        create_index: 0,
        modify_index: 0,
    })
}

/// New checks start critical unless the registration says otherwise
/// (agent/structs/check_definition.go `HealthCheck`).
fn initial_status(def: &Map<String, Value>) -> Result<String, ApiError> {
    let status = string_field(def, "Status")?;
    match status.as_str() {
        "" => Ok("critical".to_string()),
        s if STATUSES.contains(&s) => Ok(status),
        _ => Err(ApiError::bad(
            "Status for checks must 'passing', 'warning', 'critical'",
        )),
    }
}

/// The check's `Type` and its `Definition` object (fields omitted when empty,
/// as Consul's `HealthCheckDefinition` does). Leniency: a check with no type at all
/// is taken as a TTL check, so test bodies can be just `{"Status": "passing"}`;
/// real Consul would refuse it. The stand-in never runs checks or expires TTLs.
fn check_kind(def: &Map<String, Value>) -> Result<(String, Map<String, Value>), ApiError> {
    let mut definition = Map::new();
    let mut copy = |key: &str| -> Result<bool, ApiError> {
        let v = string_field(def, key)?;
        if !v.is_empty() {
            definition.insert(key.to_string(), Value::String(v));
        }
        Ok(definition.contains_key(key))
    };
    let kind = if copy("HTTP")? {
        "http"
    } else if copy("TCP")? {
        "tcp"
    } else if copy("GRPC")? {
        "grpc"
    } else {
        copy("TTL")?;
        "ttl"
    };
    if kind != "ttl" {
        copy("Interval")?;
        copy("Timeout")?;
    }
    copy("DeregisterCriticalServiceAfter")?;
    Ok((kind.to_string(), definition))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_id_weights_and_check_id() {
        let i = parse_registration(&json!({"Name": "web", "Check": {"TTL": "10s"}})).unwrap();
        assert_eq!(i.id, "web");
        assert_eq!(i.weights, (1, 1));
        assert_eq!(i.checks[0].id, "service:web");
        assert_eq!(i.checks[0].name, "Service 'web' check");
        assert_eq!(i.checks[0].status, "critical");
        assert_eq!(i.checks[0].kind, "ttl");
        assert_eq!(i.checks[0].definition["TTL"], "10s");
    }

    #[test]
    fn several_checks_are_numbered() {
        let body = json!({"ID": "w1", "Name": "web",
            "Check": {"TTL": "1s", "Status": "passing"}, "Checks": [{"TTL": "1s"}]});
        let i = parse_registration(&body).unwrap();
        let ids: Vec<_> = i.checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["service:w1:1", "service:w1:2"]);
        assert_eq!(i.checks[0].status, "passing");
    }

    #[test]
    fn accepts_snake_case_and_any_key_case() {
        let body = json!({"name": "web", "id": "w", "port": 80,
            "check": {"check_id": "c1", "ttl": "5s", "status": "warning"}});
        let i = parse_registration(&body).unwrap();
        assert_eq!((i.id.as_str(), i.port), ("w", 80));
        assert_eq!(i.checks[0].id, "c1");
        assert_eq!(i.checks[0].status, "warning");
    }

    #[test]
    fn rejects_with_consul_texts() {
        let cases = [
            (json!({"ID": "x"}), "Missing service name"),
            (
                json!({"Name": "w", "Address": "0.0.0.0"}),
                "Invalid service address",
            ),
            (
                json!({"Name": "w", "Weights": {"Passing": 0, "Warning": 1}}),
                "Invalid Weights: Passing must be greater than 0",
            ),
            (
                json!({"Name": "w", "Check": {"TTL": "1s", "Status": "up"}}),
                "Status for checks must 'passing', 'warning', 'critical'",
            ),
        ];
        for (body, text) in cases {
            let err = parse_registration(&body).unwrap_err();
            assert_eq!((err.status, err.message.as_str()), (400, text), "{body}");
        }
        let err = parse_registration(&json!({"Name": "w", "Port": "80"})).unwrap_err();
        assert!(err.message.starts_with("Request decode failed: "));
    }

    #[test]
    fn http_check_keeps_interval_and_definition() {
        let body = json!({"Name": "w", "Check": {"HTTP": "http://x/", "Interval": "10s", "Timeout": "1s"}});
        let c = &parse_registration(&body).unwrap().checks[0];
        assert_eq!(
            (c.kind.as_str(), c.interval.as_str(), c.timeout.as_str()),
            ("http", "10s", "1s")
        );
        assert_eq!(c.definition["HTTP"], "http://x/");
    }
}
