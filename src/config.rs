//! The configuration file: parsing, defaults and validation.
//!
//! Input: the JSON text and a view of the environment; output: a validated
//! [`Config`] or every problem found, each naming the key's path
//! (`services[0].check.port`). Pure apart from [`load`], which reads the file
//! and the token file. Unknown keys are errors: a typo must not silently turn
//! into a default on a load balancer.

use crate::model::{Forward, Protocol, ServiceKey, ServiceSpec};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/consul-ipvs/config.json";
const DEFAULT_CONSUL: &str = "http://127.0.0.1:8500";

/// A secret that never shows up in `Debug` output, logs or state dumps.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub consul: ConsulConfig,
    pub resync_interval: Duration,
    pub state_file: Option<PathBuf>,
    pub services: Vec<ServiceConfig>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConsulConfig {
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:8500`.
    pub address: String,
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    pub datacenter: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
}

/// TCP probe settings for one service (top-level defaults merged with overrides).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CheckConfig {
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Port to probe; `None` means the backend's own port.
    pub port: Option<u16>,
    pub send: Vec<u8>,
    pub expect: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceConfig {
    pub name: String,
    pub key: ServiceKey,
    pub spec: ServiceSpec,
    pub forward: Forward,
    /// `None`: a draining dest waits for its connections to end, however long.
    pub drain_timeout: Option<Duration>,
    pub source: Source,
    /// `None`: probes are off, Consul's health alone decides.
    pub check: Option<CheckConfig>,
    pub allowed_backends: Vec<Cidr>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Consul { service: String, tags: Vec<String> },
    Static(Vec<StaticBackend>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticBackend {
    pub addr: SocketAddr,
    pub weight: u32,
}

/// An address block from `allowed_backends`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_match(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if net[..full] != ip[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    net[full] & mask == ip[full] & mask
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl ServiceConfig {
    /// Whether `ip` may become a dest of this service (empty list = any).
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allowed_backends.is_empty() || self.allowed_backends.iter().any(|c| c.contains(ip))
    }
}

/// One problem in the file, with the path of the key it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, error } => {
                write!(f, "cannot read config {}: {}", path.display(), error)
            }
            ConfigError::Invalid { path, problems } => {
                write!(f, "invalid config {}:", path.display())?;
                for p in problems {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates the file at `path`, the token file it names, and the
/// `CONSUL_HTTP_ADDR` / `CONSUL_HTTP_TOKEN` environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.into(),
        error,
    })?;
    let env = |k: &str| std::env::var(k).ok();
    let invalid = |problems| ConfigError::Invalid {
        path: path.into(),
        problems,
    };
    let mut cfg = parse(&text, &env).map_err(invalid)?;
    if let Some(tf) = cfg.consul.token_file.clone() {
        match std::fs::read_to_string(&tf) {
            Ok(t) if !t.trim().is_empty() => cfg.consul.token = Some(Secret(t.trim().into())),
            Ok(_) => {
                return Err(invalid(vec![problem(
                    "consul.token_file",
                    format!("{} is empty", tf.display()),
                )]))
            }
            Err(e) => {
                return Err(invalid(vec![problem(
                    "consul.token_file",
                    format!("cannot read {}: {e}", tf.display()),
                )]))
            }
        }
    }
    Ok(cfg)
}

fn problem(path: &str, message: impl Into<String>) -> Problem {
    Problem {
        path: path.into(),
        message: message.into(),
    }
}

/// Parses and validates the text; `env` looks up environment variables.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<Problem>> {
    let root: Value = serde_json::from_str(text)
        .map_err(|e| vec![problem("", format!("not valid JSON: {e}"))])?;
    let mut p = Parser {
        problems: Vec::new(),
    };
    let cfg = p.root(&root, env);
    match cfg {
        Some(c) if p.problems.is_empty() => Ok(c),
        _ => Err(p.problems),
    }
}

/// Walks the JSON tree by hand so every error can name its full key path.
struct Parser {
    problems: Vec<Problem>,
}

/// An object being read: remembers which keys were used, to report the rest.
struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
    seen: HashSet<&'static str>,
}

impl<'a> Obj<'a> {
    fn get(&mut self, key: &'static str) -> Option<(String, &'a Value)> {
        self.seen.insert(key);
        let path = join(&self.path, key);
        self.map
            .get(key)
            .filter(|v| !v.is_null())
            .map(|v| (path, v))
    }
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

impl Parser {
    fn err(&mut self, path: &str, msg: impl Into<String>) {
        self.problems.push(problem(path, msg));
    }

    fn obj<'a>(&mut self, path: &str, v: &'a Value) -> Option<Obj<'a>> {
        match v.as_object() {
            Some(map) => Some(Obj {
                path: path.into(),
                map,
                seen: HashSet::new(),
            }),
            None => {
                self.err(path, "must be an object");
                None
            }
        }
    }

    /// Reports every key of `o` that was never asked for.
    fn done(&mut self, o: Obj) {
        for k in o.map.keys() {
            if !o.seen.contains(k.as_str()) {
                self.err(&join(&o.path, k), "unknown key");
            }
        }
    }

    fn uint(&mut self, o: &mut Obj, key: &'static str, default: u64, min: u64, max: u64) -> u64 {
        let Some((path, v)) = o.get(key) else {
            return default;
        };
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => n,
            _ => {
                self.err(&path, format!("must be a whole number from {min} to {max}"));
                default
            }
        }
    }

    fn ms(&mut self, o: &mut Obj, key: &'static str, default: u64) -> Duration {
        Duration::from_millis(self.uint(o, key, default, 1, 86_400_000))
    }

    fn string(&mut self, o: &mut Obj, key: &'static str) -> Option<(String, String)> {
        let (path, v) = o.get(key)?;
        match v.as_str() {
            Some(s) => Some((path, s.to_string())),
            None => {
                self.err(&path, "must be a string");
                None
            }
        }
    }

    fn root(&mut self, v: &Value, env: &dyn Fn(&str) -> Option<String>) -> Option<Config> {
        let mut o = self.obj("", v)?;
        let consul = match o.get("consul") {
            Some((path, v)) => self.consul(&path, Some(v), env),
            None => self.consul("consul", None, env),
        };
        let check = match o.get("check") {
            Some((path, v)) => self.check_defaults(&path, v),
            None => CheckConfig::defaults(),
        };
        let resync = self.ms(&mut o, "resync_interval_ms", 10_000);
        let state_file = self
            .string(&mut o, "state_file")
            .map(|(_, s)| PathBuf::from(s));
        let services = match o.get("services") {
            Some((path, v)) => self.services(&path, v, &check),
            None => {
                self.err("services", "is required (a list of services)");
                Vec::new()
            }
        };
        self.done(o);
        Some(Config {
            consul,
            resync_interval: resync,
            state_file,
            services,
        })
    }

    fn consul(
        &mut self,
        path: &str,
        v: Option<&Value>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> ConsulConfig {
        let empty = Value::Object(Map::new());
        let mut o = match self.obj(path, v.unwrap_or(&empty)) {
            Some(o) => o,
            None => Obj {
                path: path.into(),
                map: empty.as_object().expect("object"),
                seen: HashSet::new(),
            },
        };
        let address = match self.string(&mut o, "address") {
            Some((p, a)) => self.consul_address(&p, &a),
            None => match env("CONSUL_HTTP_ADDR").filter(|a| !a.is_empty()) {
                Some(a) => self.consul_address("CONSUL_HTTP_ADDR (environment)", &a),
                None => DEFAULT_CONSUL.into(),
            },
        };
        let token_file = self
            .string(&mut o, "token_file")
            .map(|(_, s)| PathBuf::from(s));
        let token = env("CONSUL_HTTP_TOKEN")
            .filter(|t| !t.is_empty())
            .map(Secret);
        let datacenter = self.string(&mut o, "datacenter").map(|(_, s)| s);
        let interval = self.ms(&mut o, "interval_ms", 1000);
        let timeout = self.ms(&mut o, "timeout_ms", 2000);
        self.done(o);
        ConsulConfig {
            address,
            token,
            token_file,
            datacenter,
            interval,
            timeout,
        }
    }

    /// `http://host:port` stays; a bare `host:port` means http; https is refused
    /// because this build carries no TLS stack.
    fn consul_address(&mut self, path: &str, a: &str) -> String {
        let a = a.trim_end_matches('/');
        if a.starts_with("https://") {
            self.err(
                path,
                "https is not supported by this build; use a local agent over http",
            );
            return a.into();
        }
        let url = if a.starts_with("http://") {
            a.to_string()
        } else {
            format!("http://{a}")
        };
        let host = &url["http://".len()..];
        if host.is_empty() || host.contains(['/', ' ', '?', '#']) {
            self.err(path, format!("{a:?} is not an http://host:port address"));
        }
        url
    }

    fn check_defaults(&mut self, path: &str, v: &Value) -> CheckConfig {
        let Some(mut o) = self.obj(path, v) else {
            return CheckConfig::defaults();
        };
        let c = self.check_fields(&mut o, &CheckConfig::defaults(), false);
        self.done(o);
        c
    }

    fn check_fields(&mut self, o: &mut Obj, base: &CheckConfig, allow_port: bool) -> CheckConfig {
        let ms = |d: Duration| d.as_millis() as u64;
        let interval = self.ms(o, "interval_ms", ms(base.interval));
        let timeout = self.ms(o, "timeout_ms", ms(base.timeout));
        let rise = self.uint(o, "rise", u64::from(base.rise), 1, 1000) as u32;
        let fall = self.uint(o, "fall", u64::from(base.fall), 1, 1000) as u32;
        let port = if allow_port {
            let p = self.uint(o, "port", 0, 1, 65535);
            if p == 0 {
                base.port
            } else {
                Some(p as u16)
            }
        } else {
            base.port
        };
        let send = self
            .string(o, "send")
            .map(|(_, s)| latin1(&s))
            .unwrap_or_else(|| base.send.clone());
        let expect = self
            .string(o, "expect")
            .map(|(_, s)| latin1(&s))
            .unwrap_or_else(|| base.expect.clone());
        CheckConfig {
            interval,
            timeout,
            rise,
            fall,
            port,
            send,
            expect,
        }
    }

    fn services(&mut self, path: &str, v: &Value, check: &CheckConfig) -> Vec<ServiceConfig> {
        let Some(list) = v.as_array() else {
            self.err(path, "must be a list");
            return Vec::new();
        };
        let mut out: Vec<ServiceConfig> = Vec::new();
        let mut names = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for (i, item) in list.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(s) = self.service(&p, item, check) else {
                continue;
            };
            if !names.insert(s.name.clone()) {
                self.err(
                    &format!("{p}.name"),
                    format!("{:?} is used by another service", s.name),
                );
            }
            if !keys.insert(s.key) {
                self.err(
                    &format!("{p}.vip"),
                    format!("{} is used by another service", s.key),
                );
            }
            out.push(s);
        }
        out
    }

    fn service(&mut self, path: &str, v: &Value, check: &CheckConfig) -> Option<ServiceConfig> {
        let mut o = self.obj(path, v)?;
        let name = self.string(&mut o, "name").map(|(_, s)| s);
        if name.as_deref().is_none_or(str::is_empty) {
            self.err(&join(path, "name"), "is required (a non-empty string)");
        }
        let protocol = match self.string(&mut o, "protocol") {
            None => Some(Protocol::Tcp),
            Some((_, s)) if s == "tcp" => Some(Protocol::Tcp),
            Some((_, s)) if s == "udp" => Some(Protocol::Udp),
            Some((p, s)) => {
                self.err(&p, format!("{s:?} is not tcp or udp"));
                None
            }
        };
        let vip = match self.string(&mut o, "vip") {
            Some((p, s)) => self.socket_addr(&p, &s),
            None => {
                self.err(&join(path, "vip"), "is required (\"address:port\")");
                None
            }
        };
        let scheduler = self.string(&mut o, "scheduler").map(|(p, s)| {
            let ok = !s.is_empty()
                && s.len() <= 15
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                self.err(
                    &p,
                    format!("{s:?} is not a kernel scheduler name (e.g. wlc, wrr, rr)"),
                );
            }
            s
        });
        let forward = match self.string(&mut o, "forward") {
            None => Forward::Nat,
            Some((_, s)) if s == "nat" => Forward::Nat,
            Some((_, s)) if s == "dr" => Forward::Dr,
            Some((_, s)) if s == "tun" => Forward::Tun,
            Some((p, s)) => {
                self.err(&p, format!("{s:?} is not nat, dr or tun"));
                Forward::Nat
            }
        };
        let persistence_s = self.uint(&mut o, "persistence_s", 0, 0, 31_536_000) as u32;
        let drain_timeout = o
            .get("drain_timeout_s")
            .and_then(|(p, v)| match v.as_u64() {
                Some(n) => Some(Duration::from_secs(n)),
                None => {
                    self.err(&p, "must be null or a whole number of seconds");
                    None
                }
            });
        let source = self.source(&mut o, path);
        let allowed = self.allowed(&mut o);
        let check_v = o.get("check");
        self.done(o);
        let (protocol, vip) = (protocol?, vip?);
        let key = ServiceKey { protocol, vip };
        let check = self.service_check(path, check_v, check, protocol);
        let svc = ServiceConfig {
            name: name.unwrap_or_default(),
            key,
            spec: ServiceSpec {
                scheduler: scheduler.unwrap_or_else(|| "wlc".into()),
                persistence_s,
            },
            forward,
            drain_timeout,
            source: source?,
            check,
            allowed_backends: allowed,
        };
        self.static_backends_fit(path, &svc);
        Some(svc)
    }

    fn service_check(
        &mut self,
        path: &str,
        v: Option<(String, &Value)>,
        base: &CheckConfig,
        protocol: Protocol,
    ) -> Option<CheckConfig> {
        let c = match v {
            Some((_, Value::Bool(false))) => return None,
            Some((p, Value::Bool(true))) | Some((p, Value::Null)) => {
                let _ = p;
                base.clone()
            }
            Some((p, v)) => {
                let mut o = self.obj(&p, v)?;
                let c = self.check_fields(&mut o, base, true);
                self.done(o);
                c
            }
            None => base.clone(),
        };
        if protocol == Protocol::Udp && c.port.is_none() {
            self.err(
                &join(path, "check"),
                "a udp service needs check.port (a TCP port to probe) or check: false",
            );
        }
        Some(c)
    }

    fn source(&mut self, o: &mut Obj, path: &str) -> Option<Source> {
        let consul = o.get("consul");
        let backends = o.get("backends");
        match (consul, backends) {
            (Some(_), Some(_)) | (None, None) => {
                self.err(
                    path,
                    "needs exactly one backend source: \"consul\" or \"backends\"",
                );
                None
            }
            (Some((p, v)), None) => {
                let mut c = self.obj(&p, v)?;
                let service = self.string(&mut c, "service").map(|(_, s)| s);
                let tags = match c.get("tags") {
                    None => Vec::new(),
                    Some((tp, tv)) => match tv.as_array().map(|a| {
                        a.iter()
                            .map(|t| t.as_str().map(String::from))
                            .collect::<Option<Vec<_>>>()
                    }) {
                        Some(Some(t)) => t,
                        _ => {
                            self.err(&tp, "must be a list of strings");
                            Vec::new()
                        }
                    },
                };
                self.done(c);
                match service.filter(|s| !s.is_empty()) {
                    Some(service) => Some(Source::Consul { service, tags }),
                    None => {
                        self.err(
                            &join(&p, "service"),
                            "is required (the Consul service name)",
                        );
                        None
                    }
                }
            }
            (None, Some((p, v))) => self.static_list(&p, v).map(Source::Static),
        }
    }

    fn static_list(&mut self, path: &str, v: &Value) -> Option<Vec<StaticBackend>> {
        let Some(list) = v.as_array() else {
            self.err(
                path,
                "must be a list of \"address:port\" or {\"address\", \"weight\"}",
            );
            return None;
        };
        let mut out: Vec<StaticBackend> = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let b = match item {
                Value::String(s) => self
                    .socket_addr(&p, s)
                    .map(|addr| StaticBackend { addr, weight: 1 }),
                Value::Object(_) => {
                    let mut o = self.obj(&p, item)?;
                    let addr = match self.string(&mut o, "address") {
                        Some((ap, s)) => self.socket_addr(&ap, &s),
                        None => {
                            self.err(&join(&p, "address"), "is required");
                            None
                        }
                    };
                    let weight = self.uint(&mut o, "weight", 1, 0, i32::MAX as u64) as u32;
                    self.done(o);
                    addr.map(|addr| StaticBackend { addr, weight })
                }
                _ => {
                    self.err(&p, "must be \"address:port\" or {\"address\", \"weight\"}");
                    None
                }
            };
            if let Some(b) = b {
                if out.iter().any(|o| o.addr == b.addr) {
                    self.err(&p, format!("{} is listed twice", b.addr));
                }
                out.push(b);
            }
        }
        Some(out)
    }

    fn allowed(&mut self, o: &mut Obj) -> Vec<Cidr> {
        let Some((path, v)) = o.get("allowed_backends") else {
            return Vec::new();
        };
        let Some(list) = v.as_array() else {
            self.err(&path, "must be a list of CIDRs");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in list.iter().enumerate() {
            match item.as_str().and_then(Cidr::parse) {
                Some(c) => out.push(c),
                None => self.err(
                    &format!("{path}[{i}]"),
                    format!("{item} is not a CIDR like 203.0.113.0/24"),
                ),
            }
        }
        out
    }

    fn socket_addr(&mut self, path: &str, s: &str) -> Option<SocketAddr> {
        match s.parse::<SocketAddr>() {
            Ok(a) if a.port() != 0 => Some(a),
            Ok(_) => {
                self.err(path, format!("{s:?} needs a port other than 0"));
                None
            }
            Err(_) => {
                self.err(
                    path,
                    format!("{s:?} is not an address:port (IPv6 as [2001:db8::1]:80)"),
                );
                None
            }
        }
    }

    /// Static backends are config too, so what Consul data would be skipped
    /// for at run time is an error here.
    fn static_backends_fit(&mut self, path: &str, svc: &ServiceConfig) {
        let Source::Static(list) = &svc.source else {
            return;
        };
        for (i, b) in list.iter().enumerate() {
            let p = format!("{path}.backends[{i}]");
            if let Some(why) = backend_misfit(svc, b.addr) {
                self.err(&p, why);
            }
        }
    }
}

/// Why `addr` cannot be a dest of `svc`, if it cannot. Shared by the config
/// check of static backends and the run-time filter of Consul instances.
pub fn backend_misfit(svc: &ServiceConfig, addr: SocketAddr) -> Option<String> {
    if addr.is_ipv4() != svc.key.vip.is_ipv4() && svc.forward != Forward::Tun {
        return Some(format!(
            "{addr} is not of the VIP's address family (only tun forwarding may mix them)"
        ));
    }
    if matches!(svc.forward, Forward::Dr | Forward::Tun) && addr.port() != svc.key.vip.port() {
        return Some(format!(
            "{addr}: {} forwarding cannot change the port; it must be {}",
            svc.forward.name(),
            svc.key.vip.port()
        ));
    }
    if !svc.allows(addr.ip()) {
        return Some(format!("{addr} is outside allowed_backends"));
    }
    None
}

/// JSON strings carry bytes for probes: each char U+0000..U+00FF is one byte
/// (so `"\u0000"` and binary greetings can be written); others go as UTF-8.
fn latin1(s: &str) -> Vec<u8> {
    if s.chars().all(|c| (c as u32) < 256) {
        s.chars().map(|c| c as u8).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

impl CheckConfig {
    pub fn defaults() -> CheckConfig {
        CheckConfig {
            interval: Duration::from_millis(2000),
            timeout: Duration::from_millis(1000),
            rise: 2,
            fall: 3,
            port: None,
            send: Vec::new(),
            expect: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
