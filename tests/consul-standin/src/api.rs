//! Routing and parameter checking for the Consul HTTP API subset the stand-in
//! serves: which endpoint a request is, whether its method is allowed (405 with
//! `Allow`), and whether its query parameters are valid, with Consul's exact 400
//! texts (agent/http.go `parseConsistency`, `parseWait`; agent/health_endpoint.go).
//! Pure; the server carries out what this decides.

use std::time::Duration;

use serde_json::Value;

use crate::catalog::{ApiError, Store};
use crate::duration::parse_go_duration;
use crate::http::{HttpRequest, Response};
use crate::render::{HealthFilter, DATACENTER};

/// `default_query_time` and `max_query_time` (agent/config/default.go).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// Blocking-query and consistency parameters shared by every read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadParams {
    /// 0 means "answer now".
    pub index: u64,
    pub wait: Duration,
    /// `X-Consul-Effective-Consistency`: `leader`, `stale` or `consistent`.
    pub consistency: &'static str,
}

/// The Consul read endpoints; all of them are subject to faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Health {
        service: String,
        filter: HealthFilter,
    },
    CatalogServices,
    AgentSelf,
    StatusLeader,
}

/// Agent writes, applied to the store under its lock.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Register(Value),
    Deregister(String),
    ServiceMaintenance {
        id: String,
        enable: bool,
        reason: String,
    },
    NodeMaintenance {
        enable: bool,
        reason: String,
    },
    CheckUpdate {
        id: String,
        status: String,
        output: Option<String>,
    },
}

/// Requests to the stand-in's own `/v1/_standin/` endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    GetFault,
    SetFault,
    GetRequests,
    ClearRequests,
    Index(String),
    Bump(String),
}

/// What a request turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Read(Read, ReadParams),
    Write(Write),
    Control(Control),
    /// Answer at once (404, 405, 400, OPTIONS).
    Reply(Response),
}

/// Classifies a request. Parameter errors come back as `Route::Reply`.
pub fn route(req: &HttpRequest) -> Route {
    match classify(req) {
        Ok(r) => r,
        Err(e) => Route::Reply(Response::text(e.status, &e.message)),
    }
}

fn classify(req: &HttpRequest) -> Result<Route, ApiError> {
    let path = req.path.as_str();
    if let Some(rest) = path.strip_prefix("/v1/_standin/") {
        return control_route(req, rest);
    }
    let (allowed, build): (&str, &dyn Fn() -> Result<Route, ApiError>) = match path {
        p if p.starts_with("/v1/health/service/") => ("GET", &|| health_route(req)),
        "/v1/catalog/services" => ("GET", &|| read_route(req, Read::CatalogServices)),
        "/v1/agent/self" => ("GET", &|| read_route(req, Read::AgentSelf)),
        "/v1/status/leader" => ("GET", &|| read_route(req, Read::StatusLeader)),
        p if p.starts_with("/v1/agent/") => ("PUT", &|| write_route(req).map(Route::Write)),
        _ => return Err(ApiError::not_found(not_found_text(path))),
    };
    method_gate(req, allowed).map_or_else(build, |reply| Ok(Route::Reply(reply)))
}

/// Consul's hints for unknown paths (agent/http.go `Index`).
fn not_found_text(path: &str) -> String {
    match path.starts_with("/v1/") {
        true => "Invalid URL path: not a recognized HTTP API endpoint".into(),
        false => "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'".into(),
    }
}

/// `None` when the method is allowed; otherwise the OPTIONS or 405 answer.
fn method_gate(req: &HttpRequest, allowed: &str) -> Option<Response> {
    let allow = format!("{allowed},OPTIONS");
    match req.method.as_str() {
        m if m == allowed => None,
        "OPTIONS" => Some(Response::empty().with_header("Allow", allow)),
        m => Some(
            Response::text(405, &format!("method {m} not allowed")).with_header("Allow", allow),
        ),
    }
}

fn health_route(req: &HttpRequest) -> Result<Route, ApiError> {
    let service = req.path["/v1/health/service/".len()..].to_string();
    let params = read_params(req)?;
    let passing = bool_flag(req, "passing")?;
    if service.is_empty() {
        return Err(ApiError::bad("Missing service name"));
    }
    check_dc(req)?;
    let tags = req.params("tag").map(str::to_string).collect();
    let filter = HealthFilter { tags, passing };
    Ok(Route::Read(Read::Health { service, filter }, params))
}

fn read_route(req: &HttpRequest, read: Read) -> Result<Route, ApiError> {
    let params = read_params(req)?;
    check_dc(req)?;
    Ok(Route::Read(read, params))
}

/// Enterprise-only parameters are a 400 on CE (agent/http_ce.go).
fn reject_enterprise(req: &HttpRequest) -> Result<(), ApiError> {
    let ns = req
        .param("ns")
        .filter(|v| !v.is_empty())
        .or(req.header("X-Consul-Namespace"));
    if ns.is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::bad(
            "Invalid query parameter: \"ns\" - Namespaces are a Consul Enterprise feature",
        ));
    }
    let ap = req
        .param("partition")
        .filter(|v| !v.is_empty())
        .or(req.header("X-Consul-Partition"));
    if ap.is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::bad(
            "Invalid query parameter: \"partition\" - Partitions are a Consul Enterprise feature",
        ));
    }
    Ok(())
}

fn read_params(req: &HttpRequest) -> Result<ReadParams, ApiError> {
    reject_enterprise(req)?;
    let consistency = consistency(req)?;
    let wait = match req.param("wait").filter(|w| !w.is_empty()) {
        None => DEFAULT_WAIT,
        Some(w) => parse_go_duration(w).ok_or_else(|| ApiError::bad("Invalid wait time"))?,
    };
    let wait = if wait.is_zero() {
        DEFAULT_WAIT
    } else {
        wait.min(MAX_WAIT)
    };
    let index = match req.param("index").filter(|i| !i.is_empty()) {
        None => 0,
        Some(i) => i.parse().map_err(|_| ApiError::bad("Invalid index"))?,
    };
    Ok(ReadParams {
        index,
        wait,
        consistency,
    })
}

fn consistency(req: &HttpRequest) -> Result<&'static str, ApiError> {
    match (req.has_param("stale"), req.has_param("consistent")) {
        (true, true) => Err(ApiError::bad(
            "Cannot specify ?stale with ?consistent, conflicting semantics.",
        )),
        (true, false) => Ok("stale"),
        (false, true) => Ok("consistent"),
        (false, false) => Ok("leader"),
    }
}

/// Unknown datacenters fail in the RPC layer, hence 500, not 400.
fn check_dc(req: &HttpRequest) -> Result<(), ApiError> {
    match req.param("dc") {
        None | Some("") | Some(DATACENTER) => Ok(()),
        Some(_) => Err(ApiError {
            status: 500,
            message: "No path to datacenter".into(),
        }),
    }
}

/// `getBoolQueryParam`: present without value is true, else Go's `ParseBool`.
fn bool_flag(req: &HttpRequest, key: &str) -> Result<bool, ApiError> {
    match req.param(key) {
        None => Ok(false),
        Some("") => Ok(true),
        Some(v) => {
            parse_go_bool(v).ok_or_else(|| ApiError::bad(&format!("Invalid value for ?{key}")))
        }
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn write_route(req: &HttpRequest) -> Result<Write, ApiError> {
    let path = &req.path["/v1/agent/".len()..];
    let tail = |prefix: &str| path.strip_prefix(prefix).map(str::to_string);
    if path == "service/register" {
        let body = serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad(&format!("Request decode failed: {e}")))?;
        return Ok(Write::Register(body));
    }
    if let Some(id) = tail("service/deregister/") {
        return Ok(Write::Deregister(id));
    }
    if let Some(id) = tail("service/maintenance/") {
        let (enable, reason) = maintenance_params(req)?;
        return Ok(Write::ServiceMaintenance { id, enable, reason });
    }
    if path == "maintenance" {
        let (enable, reason) = maintenance_params(req)?;
        return Ok(Write::NodeMaintenance { enable, reason });
    }
    check_route(req, path)
}

fn maintenance_params(req: &HttpRequest) -> Result<(bool, String), ApiError> {
    let enable = req.param("enable").filter(|v| !v.is_empty());
    let enable = enable.ok_or_else(|| ApiError::bad("Missing value for enable"))?;
    let parsed = parse_go_bool(enable);
    let enable =
        parsed.ok_or_else(|| ApiError::bad(&format!("Invalid value for enable: \"{enable}\"")))?;
    Ok((enable, req.param("reason").unwrap_or_default().to_string()))
}

/// `check/pass|warn|fail/<id>?note=` and `check/update/<id>` with a JSON body.
fn check_route(req: &HttpRequest, path: &str) -> Result<Write, ApiError> {
    let (verb, id) = path
        .strip_prefix("check/")
        .and_then(|p| p.split_once('/'))
        .ok_or_else(|| ApiError::not_found(not_found_text("/v1/")))?;
    let note = || req.param("note").map(str::to_string);
    let (status, output) = match verb {
        "pass" => ("passing".to_string(), note()),
        "warn" => ("warning".to_string(), note()),
        "fail" => ("critical".to_string(), note()),
        "update" => update_body(&req.body)?,
        _ => return Err(ApiError::not_found(not_found_text("/v1/"))),
    };
    Ok(Write::CheckUpdate {
        id: id.to_string(),
        status,
        output,
    })
}

fn update_body(body: &[u8]) -> Result<(String, Option<String>), ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(&format!("Request decode failed: {e}")))?;
    let text = |k: &str| {
        v.as_object()
            .and_then(|o| crate::register::field(o, k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok((text("Status").unwrap_or_default(), text("Output")))
}

/// Applies an agent write to the store.
pub fn apply_write(store: &mut Store, w: &Write) -> Result<(), ApiError> {
    match w {
        Write::Register(body) => store.register(body),
        Write::Deregister(id) => store.deregister(id),
        Write::ServiceMaintenance { id, enable, reason } => {
            store.service_maintenance(id, *enable, reason)
        }
        Write::NodeMaintenance { enable, reason } => {
            store.node_maintenance(*enable, reason);
            Ok(())
        }
        Write::CheckUpdate { id, status, output } => {
            store.update_check(id, status, output.as_deref(), true)
        }
    }
}

fn control_route(req: &HttpRequest, rest: &str) -> Result<Route, ApiError> {
    let (allowed, control) = match rest {
        "fault" if req.method == "GET" => ("GET", Control::GetFault),
        "fault" => ("PUT", Control::SetFault),
        "requests" if req.method == "DELETE" => ("DELETE", Control::ClearRequests),
        "requests" => ("GET", Control::GetRequests),
        r if r.starts_with("index/") => {
            let service = r["index/".len()..].to_string();
            match req.method.as_str() {
                "PUT" => ("PUT", Control::Bump(service)),
                _ => ("GET", Control::Index(service)),
            }
        }
        _ => {
            return Err(ApiError::not_found(format!(
                "unknown stand-in control path /v1/_standin/{rest}"
            )))
        }
    };
    Ok(method_gate(req, allowed).map_or(Route::Control(control), Route::Reply))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::read_request;

    fn req(method: &str, target: &str, headers: &str) -> HttpRequest {
        let raw = format!("{method} {target} HTTP/1.1\r\n{headers}\r\n");
        read_request(&mut raw.as_bytes()).unwrap().unwrap()
    }

    fn reply(method: &str, target: &str) -> (u16, String) {
        match route(&req(method, target, "")) {
            Route::Reply(r) => (r.status, String::from_utf8(r.body).unwrap()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_bad_reads_with_consul_texts() {
        let cases = [
            ("/v1/health/service/web?wait=60", 400, "Invalid wait time"),
            ("/v1/health/service/web?index=abc", 400, "Invalid index"),
            ("/v1/health/service/web?index=-1", 400, "Invalid index"),
            (
                "/v1/health/service/web?stale&consistent",
                400,
                "Cannot specify ?stale with ?consistent, conflicting semantics.",
            ),
            (
                "/v1/health/service/web?passing=maybe",
                400,
                "Invalid value for ?passing",
            ),
            (
                "/v1/health/service/web?dc=dc2",
                500,
                "No path to datacenter",
            ),
            ("/v1/health/service/", 400, "Missing service name"),
            (
                "/v1/health/service/web?ns=default",
                400,
                "Invalid query parameter: \"ns\" - Namespaces are a Consul Enterprise feature",
            ),
            (
                "/v1/nope",
                404,
                "Invalid URL path: not a recognized HTTP API endpoint",
            ),
        ];
        for (target, status, text) in cases {
            assert_eq!(reply("GET", target), (status, text.to_string()), "{target}");
        }
    }

    #[test]
    fn wrong_method_is_405_with_allow() {
        let Route::Reply(r) = route(&req("PUT", "/v1/health/service/web", "")) else {
            panic!()
        };
        assert_eq!((r.status, r.header("Allow")), (405, Some("GET,OPTIONS")));
        assert_eq!(r.body, b"method PUT not allowed");
        assert_eq!(reply("GET", "/v1/agent/service/deregister/x").0, 405);
    }

    #[test]
    fn wait_defaults_clamps_and_accepts_compound() {
        let params = |t: &str| match route(&req("GET", t, "")) {
            Route::Read(_, p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(params("/v1/health/service/w").wait, DEFAULT_WAIT);
        assert_eq!(
            params("/v1/health/service/w?wait=1m30s").wait,
            Duration::from_secs(90)
        );
        assert_eq!(params("/v1/health/service/w?wait=1h").wait, MAX_WAIT);
        assert_eq!(params("/v1/health/service/w?wait=0").wait, DEFAULT_WAIT);
        let p = params("/v1/health/service/w?index=7&stale&dc=dc1");
        assert_eq!((p.index, p.consistency), (7, "stale"));
    }

    #[test]
    fn passing_accepts_bare_and_go_booleans() {
        for (q, want) in [
            ("passing", true),
            ("passing=true", true),
            ("passing=0", false),
            ("passing=T", true),
        ] {
            let Route::Read(Read::Health { filter, .. }, _) =
                route(&req("GET", &format!("/v1/health/service/w?{q}"), ""))
            else {
                panic!()
            };
            assert_eq!(filter.passing, want, "{q}");
        }
    }

    #[test]
    fn maintenance_enable_texts() {
        assert_eq!(
            reply("PUT", "/v1/agent/service/maintenance/x"),
            (400, "Missing value for enable".into())
        );
        assert_eq!(
            reply("PUT", "/v1/agent/service/maintenance/x?enable=yes"),
            (400, "Invalid value for enable: \"yes\"".into())
        );
    }
}
