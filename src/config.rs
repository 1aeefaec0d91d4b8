//! The configuration file: parsing, defaults and validation.
//!
//! Input: the JSON text and a view of the environment; output: a validated
//! [`Config`] or every problem found, each naming the key's path
//! (`services[0].check.port`). Pure apart from [`load`], which reads the file
//! and the token file. Unknown keys are errors: a typo must not silently turn
//! into a default on a load balancer.

use crate::model::{Forward, Protocol, ServiceKey, ServiceSpec};
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

mod parse;
pub use parse::parse;

#[cfg(test)]
mod tests;
