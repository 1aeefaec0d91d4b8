//! The JSON walk behind [`super::parse`]: reads every key by hand so each
//! problem can name its full path, collects all problems instead of stopping
//! at the first, and reports keys nobody asked for. Pure.

use super::*;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashSet};

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
            // `Obj::get` already turned a null into `None`.
            Some((_, Value::Bool(true))) | None => base.clone(),
            Some((p, v)) => {
                let mut o = self.obj(&p, v)?;
                let c = self.check_fields(&mut o, base, true);
                self.done(o);
                c
            }
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

/// JSON strings carry bytes for probes: each char U+0000..U+00FF is one byte
/// (so `"\u0000"` and binary greetings can be written); others go as UTF-8.
fn latin1(s: &str) -> Vec<u8> {
    if s.chars().all(|c| (c as u32) < 256) {
        s.chars().map(|c| c as u8).collect()
    } else {
        s.as_bytes().to_vec()
    }
}
