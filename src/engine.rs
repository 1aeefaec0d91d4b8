//! The pure core: what each managed IPVS service should look like, and the
//! kernel writes that get it there.
//!
//! Inputs: the config, backend lists from the sources (Consul or static),
//! probe results, and the kernel's table as last dumped or written. Output:
//! [`Planned`] operations, each with the log line that explains it. The diff
//! is level-triggered against the kernel (kube-proxy's way, not keepalived's
//! config-vs-config), so adoption on restart, reload and drift repair are one
//! code path. Time is passed in; nothing here does I/O.

use crate::config::{Config, ServiceConfig, Source};
use crate::consul::{Backend, SourceHealth};
use crate::health::Health;
use crate::model::{DestKey, DestSpec, KernelDest, KernelService, KernelTable, Op, ServiceKey};
use crate::probe::ProbeSpec;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One kernel write and the audit-log line that explains it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub op: Op,
    pub line: String,
}

/// One configured service: its config, its source's backends and their probe health.
#[derive(Clone, Debug)]
struct ServiceState {
    cfg: ServiceConfig,
    /// `None` until the source's first good answer: until then the service is
    /// not changed at all.
    backends: Option<BTreeMap<SocketAddr, Backend>>,
    /// Probe health per backend (only while probes are on for the service).
    health: BTreeMap<SocketAddr, Health>,
}

/// A dest that is no longer wanted: weight 0 first, delete later.
#[derive(Clone, Copy, Debug)]
struct Drain {
    since: Instant,
    timeout: Option<Duration>,
    /// A dump has shown the dest at weight 0, so its connection counters can
    /// be trusted to include every session it will ever get.
    quiesced_seen: bool,
}

/// What one probe target checks; several (service, backend) pairs may share it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ProbeKey {
    addr: SocketAddr,
    send: Vec<u8>,
    expect: Vec<u8>,
}

/// A probe the shell should run every `interval`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeTarget {
    pub id: u64,
    pub spec: ProbeSpec,
    pub interval: Duration,
}

#[derive(Debug, Default)]
pub struct Engine {
    services: BTreeMap<ServiceKey, ServiceState>,
    /// Services a reload removed from the config: drained, then deleted.
    retiring: BTreeMap<ServiceKey, Option<Duration>>,
    drains: BTreeMap<DestKey, Drain>,
    probe_ids: BTreeMap<ProbeKey, u64>,
    next_probe_id: u64,
}

impl Engine {
    /// Builds the state for `cfg`, adopting health from the kernel table.
    pub fn new(cfg: &Config, kernel: &KernelTable) -> Engine {
        let mut e = Engine::default();
        e.reload(cfg, kernel);
        e
    }

    /// The services the config names: the only ones we ever read or write,
    /// plus those a reload is still draining.
    pub fn managed_keys(&self) -> Vec<ServiceKey> {
        self.services
            .keys()
            .chain(self.retiring.keys())
            .copied()
            .collect()
    }

    /// Applies a new config. Services it drops are drained and then deleted;
    /// services it keeps keep their backends and health when their source is
    /// unchanged.
    pub fn reload(&mut self, cfg: &Config, kernel: &KernelTable) -> Vec<String> {
        let mut lines = Vec::new();
        let mut old = std::mem::take(&mut self.services);
        for svc in &cfg.services {
            self.retiring.remove(&svc.key);
            let state = match old.remove(&svc.key) {
                Some(mut st) if st.cfg.source == svc.source => {
                    st.cfg = svc.clone();
                    adopt_health(&mut st, &svc.key, kernel);
                    st
                }
                _ => ServiceState {
                    cfg: svc.clone(),
                    backends: None,
                    health: BTreeMap::new(),
                },
            };
            self.services.insert(svc.key, state);
            if let Source::Static(list) = &svc.source {
                let backends = list
                    .iter()
                    .map(|b| Backend {
                        addr: b.addr,
                        weight: b.weight,
                        health: SourceHealth::Passing,
                    })
                    .collect();
                lines.extend(self.on_source(&svc.key, backends, kernel));
            }
        }
        for (key, st) in old {
            if kernel.contains_key(&key) {
                lines.push(format!(
                    "{key} removed from the config: draining, then deleting"
                ));
                self.retiring.insert(key, st.cfg.drain_timeout);
            }
        }
        lines
    }

    /// A new backend list for service `key` from its source. Returns the
    /// health-transition lines to log (registrations, Consul status changes).
    pub fn on_source(
        &mut self,
        key: &ServiceKey,
        backends: Vec<Backend>,
        kernel: &KernelTable,
    ) -> Vec<String> {
        let Some(st) = self.services.get_mut(key) else {
            return Vec::new();
        };
        let new: BTreeMap<SocketAddr, Backend> =
            backends.into_iter().map(|b| (b.addr, b)).collect();
        let old = st.backends.take().unwrap_or_default();
        let mut lines = Vec::new();
        for (addr, b) in &new {
            let dest = DestKey {
                service: *key,
                addr: *addr,
            };
            match old.get(addr) {
                None if kernel_dest(kernel, &dest).is_none() => {
                    lines.push(format!("{dest} new backend ({})", b.health.name()))
                }
                Some(o) if o.health != b.health => lines.push(format!(
                    "{dest} source health {} -> {}",
                    o.health.name(),
                    b.health.name()
                )),
                _ => {}
            }
        }
        st.backends = Some(new);
        adopt_health(st, key, kernel);
        lines
    }

    /// Whether the source of `key` has given its first good answer.
    pub fn has_answer(&self, key: &ServiceKey) -> bool {
        self.services.get(key).is_some_and(|s| s.backends.is_some())
    }

    /// The probes to run: one per distinct (address, send, expect), however
    /// many services share the backend. Ids are stable while a target is used.
    pub fn probe_targets(&mut self) -> Vec<ProbeTarget> {
        let mut wanted: BTreeMap<ProbeKey, (Duration, Duration)> = BTreeMap::new();
        for st in self.services.values() {
            let (Some(check), Some(backends)) = (&st.cfg.check, &st.backends) else {
                continue;
            };
            for addr in backends.keys() {
                let key = probe_key(addr, check);
                let e = wanted.entry(key).or_insert((check.timeout, check.interval));
                e.0 = e.0.min(check.timeout);
                e.1 = e.1.min(check.interval);
            }
        }
        self.probe_ids.retain(|k, _| wanted.contains_key(k));
        let mut out = Vec::new();
        for (key, (timeout, interval)) in wanted {
            let id = match self.probe_ids.get(&key) {
                Some(id) => *id,
                None => {
                    self.next_probe_id += 1;
                    self.probe_ids.insert(key.clone(), self.next_probe_id);
                    self.next_probe_id
                }
            };
            let spec = ProbeSpec {
                addr: key.addr,
                send: key.send,
                expect: key.expect,
                timeout,
            };
            out.push(ProbeTarget { id, spec, interval });
        }
        out
    }

    /// One probe result for target `id`, fanned out to every backend that
    /// uses it. Returns the health-transition lines to log.
    pub fn on_probe(&mut self, id: u64, success: bool, detail: &str) -> Vec<String> {
        let Some(pk) = self
            .probe_ids
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(k, _)| k.clone())
        else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        for (key, st) in &mut self.services {
            let Some(check) = &st.cfg.check else { continue };
            for (addr, h) in &mut st.health {
                if probe_key(addr, check) != pk {
                    continue;
                }
                if let Some(up) = h.observe(success, check.rise, check.fall) {
                    let dest = DestKey {
                        service: *key,
                        addr: *addr,
                    };
                    lines.push(match up {
                        true => format!("{dest} probe up after {} successes", check.rise),
                        false => {
                            format!("{dest} probe down after {} failures: {detail}", check.fall)
                        }
                    });
                }
            }
        }
        lines
    }

    /// Takes note of a fresh dump of the services in `keys`.
    pub fn on_dump(&mut self, kernel: &KernelTable, keys: &[ServiceKey]) {
        for (dk, drain) in &mut self.drains {
            if keys.contains(&dk.service)
                && kernel_dest(kernel, dk).is_some_and(|d| d.spec.weight == 0)
            {
                drain.quiesced_seen = true;
            }
        }
    }

    /// Services with a drain in progress: the shell re-reads their connection
    /// counters until the drains end.
    pub fn draining_services(&self) -> Vec<ServiceKey> {
        let mut keys: Vec<ServiceKey> = self.drains.keys().map(|d| d.service).collect();
        keys.extend(self.retiring.keys());
        keys.sort();
        keys.dedup();
        keys
    }

    /// The earliest drain deadline still ahead of `now`, so the loop wakes to
    /// act on it (one already past has been planned for).
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.drains
            .values()
            .filter_map(|d| d.timeout.map(|t| d.since + t))
            .filter(|at| *at > now)
            .min()
    }

    /// The writes that bring the managed services in `kernel` to what they
    /// should be. No change, no writes.
    pub fn plan(&mut self, kernel: &KernelTable, now: Instant) -> Vec<Planned> {
        let mut out = Vec::new();
        let keys: Vec<ServiceKey> = self.services.keys().copied().collect();
        for key in keys {
            self.plan_service(&key, kernel, now, &mut out);
        }
        let retiring: Vec<(ServiceKey, Option<Duration>)> =
            self.retiring.iter().map(|(k, t)| (*k, *t)).collect();
        for (key, timeout) in retiring {
            self.plan_retiring(&key, timeout, kernel, now, &mut out);
        }
        self.drains
            .retain(|dk, _| kernel_dest(kernel, dk).is_some());
        out
    }

    fn plan_service(
        &mut self,
        key: &ServiceKey,
        kernel: &KernelTable,
        now: Instant,
        out: &mut Vec<Planned>,
    ) {
        let st = &self.services[key];
        if st.backends.is_none() {
            return;
        }
        let empty = KernelService {
            spec: st.cfg.spec.clone(),
            dests: BTreeMap::new(),
        };
        let ksvc = kernel.get(key).unwrap_or(&empty);
        if !kernel.contains_key(key) {
            let line = format!("{key} added (scheduler {})", st.cfg.spec.scheduler);
            out.push(Planned {
                op: Op::AddService(*key, st.cfg.spec.clone()),
                line,
            });
        }
        let wanted = present_ops(key, st, ksvc, out);
        let gone = if matches!(st.cfg.source, Source::Static(_)) {
            "removed from the config"
        } else {
            "deregistered"
        };
        let timeout = st.cfg.drain_timeout;
        for (addr, kd) in &ksvc.dests {
            let dest = DestKey {
                service: *key,
                addr: *addr,
            };
            if wanted.contains(addr) {
                self.drains.remove(&dest);
            } else {
                self.drain_dest(dest, kd, timeout, gone, now, out);
            }
        }
    }

    fn plan_retiring(
        &mut self,
        key: &ServiceKey,
        timeout: Option<Duration>,
        kernel: &KernelTable,
        now: Instant,
        out: &mut Vec<Planned>,
    ) {
        let Some(ksvc) = kernel.get(key) else {
            self.retiring.remove(key);
            return;
        };
        if ksvc.dests.is_empty() {
            out.push(Planned {
                op: Op::DelService(*key),
                line: format!("{key} deleted (removed from the config, drained)"),
            });
            return;
        }
        for (addr, kd) in &ksvc.dests {
            let dest = DestKey {
                service: *key,
                addr: *addr,
            };
            self.drain_dest(
                dest,
                kd,
                timeout,
                "service removed from the config",
                now,
                out,
            );
        }
    }

    /// Weight 0 first; delete once a dump taken at weight 0 shows no
    /// connections, or once the drain deadline has passed.
    fn drain_dest(
        &mut self,
        dest: DestKey,
        kd: &KernelDest,
        timeout: Option<Duration>,
        why: &str,
        now: Instant,
        out: &mut Vec<Planned>,
    ) {
        let drain = *self.drains.entry(dest).or_insert(Drain {
            since: now,
            timeout,
            quiesced_seen: false,
        });
        if kd.spec.weight > 0 {
            let spec = DestSpec {
                weight: 0,
                ..kd.spec
            };
            out.push(Planned {
                op: Op::EditDest(dest, spec),
                line: change_line(&dest, kd, &spec, why),
            });
            return;
        }
        let conns = kd.stats.total();
        if drain.quiesced_seen && conns == 0 {
            out.push(Planned {
                op: Op::DelDest(dest),
                line: format!("{dest} deleted (drained: no connections left; {why})"),
            });
        } else if let Some(t) = timeout.filter(|t| now >= drain.since + *t) {
            let line = format!(
                "{dest} deleted (drain timeout of {} s passed with {conns} connections; {why})",
                t.as_secs()
            );
            out.push(Planned {
                op: Op::DelDest(dest),
                line,
            });
        }
    }

    /// The full state, for the state file and SIGUSR1.
    pub fn snapshot(&self, kernel: &KernelTable, now: Instant) -> Value {
        let mut services = Vec::new();
        for (key, st) in &self.services {
            services.push(self.service_snapshot(key, st, kernel, now));
        }
        let retiring: Vec<String> = self.retiring.keys().map(|k| k.to_string()).collect();
        json!({ "services": services, "retiring": retiring })
    }

    fn service_snapshot(
        &self,
        key: &ServiceKey,
        st: &ServiceState,
        kernel: &KernelTable,
        now: Instant,
    ) -> Value {
        let mut addrs: Vec<SocketAddr> =
            st.backends.iter().flat_map(|b| b.keys().copied()).collect();
        if let Some(k) = kernel.get(key) {
            addrs.extend(k.dests.keys());
        }
        addrs.sort();
        addrs.dedup();
        let backends: Vec<Value> = addrs
            .iter()
            .map(|addr| {
                let dest = DestKey { service: *key, addr: *addr };
                let kd = kernel_dest(kernel, &dest);
                let source = st.backends.as_ref().and_then(|b| b.get(addr));
                let desired = match source {
                    Some(_) => desired_weight(st, addr).0,
                    None => 0,
                };
                json!({
                    "address": addr.to_string(),
                    "kernel_weight": kd.map(|d| d.spec.weight),
                    "desired_weight": desired,
                    "probe": probe_state(st, addr),
                    "source_status": source.map(|b| b.health.name()),
                    "draining_for_s": self.drains.get(&dest).map(|d| now.saturating_duration_since(d.since).as_secs()),
                    "active_conns": kd.map(|d| d.stats.active_conns),
                    "inactive_conns": kd.map(|d| d.stats.inactive_conns),
                })
            })
            .collect();
        json!({
            "name": st.cfg.name,
            "service": key.to_string(),
            "source_answered": st.backends.is_some(),
            "in_kernel": kernel.contains_key(key),
            "backends": backends,
        })
    }
}

/// Settings edits and the adds or weight changes of the backends the source
/// lists. Returns their addresses: every other dest of the service drains.
fn present_ops(
    key: &ServiceKey,
    st: &ServiceState,
    ksvc: &KernelService,
    out: &mut Vec<Planned>,
) -> Vec<SocketAddr> {
    if ksvc.spec != st.cfg.spec {
        let line = format!(
            "{key} settings {} -> {} (config)",
            describe(&ksvc.spec),
            describe(&st.cfg.spec)
        );
        out.push(Planned {
            op: Op::EditService(*key, st.cfg.spec.clone()),
            line,
        });
    }
    let mut wanted = Vec::new();
    for addr in st.backends.iter().flat_map(|b| b.keys()) {
        let dest = DestKey {
            service: *key,
            addr: *addr,
        };
        let (weight, why) = desired_weight(st, addr);
        let spec = DestSpec {
            weight,
            forward: st.cfg.forward,
        };
        wanted.push(*addr);
        match ksvc.dests.get(addr) {
            None => out.push(Planned {
                op: Op::AddDest(dest, spec),
                line: format!("{dest} added with weight {weight} ({why})"),
            }),
            Some(kd) if kd.spec != spec => out.push(Planned {
                op: Op::EditDest(dest, spec),
                line: change_line(&dest, kd, &spec, &why),
            }),
            Some(_) => {}
        }
    }
    wanted
}

/// Gives every backend of a probed service a health state, adopting the
/// kernel's view for those without one (a dest above weight 0 starts up), and
/// drops the rest. Used when a source reports backends and when a reload keeps
/// a service: turning probes on must not take serving backends to weight 0.
fn adopt_health(st: &mut ServiceState, key: &ServiceKey, kernel: &KernelTable) {
    let (Some(_), Some(backends)) = (&st.cfg.check, &st.backends) else {
        st.health.clear();
        return;
    };
    st.health.retain(|a, _| backends.contains_key(a));
    for addr in backends.keys() {
        let dest = DestKey {
            service: *key,
            addr: *addr,
        };
        st.health.entry(*addr).or_insert_with(|| {
            Health::new(kernel_dest(kernel, &dest).is_some_and(|d| d.spec.weight > 0))
        });
    }
}

fn probe_key(addr: &SocketAddr, check: &crate::config::CheckConfig) -> ProbeKey {
    let port = check.port.unwrap_or(addr.port());
    ProbeKey {
        addr: SocketAddr::new(addr.ip(), port),
        send: check.send.clone(),
        expect: check.expect.clone(),
    }
}

fn probe_state(st: &ServiceState, addr: &SocketAddr) -> &'static str {
    match (st.cfg.check.is_some(), st.health.get(addr)) {
        (false, _) => "off",
        (true, Some(h)) if h.is_up() => "up",
        (true, Some(_)) => "down",
        (true, None) => "unknown",
    }
}

/// A present backend's weight, and why.
fn desired_weight(st: &ServiceState, addr: &SocketAddr) -> (u32, String) {
    let Some(b) = st.backends.as_ref().and_then(|m| m.get(addr)) else {
        return (0, "not in source".into());
    };
    match b.health {
        SourceHealth::Critical => return (0, "source: critical".into()),
        SourceHealth::Maintenance => return (0, "source: maintenance".into()),
        _ => {}
    }
    if st.cfg.check.is_some() && !st.health.get(addr).is_some_and(|h| h.is_up()) {
        let rise = st.cfg.check.as_ref().map_or(0, |c| c.rise);
        return (0, format!("probe: down, needs {rise} successes"));
    }
    let why = match b.health {
        SourceHealth::Warning => "healthy, source: warning",
        _ => "healthy",
    };
    (b.weight, why.into())
}

fn change_line(dest: &DestKey, kd: &KernelDest, spec: &DestSpec, why: &str) -> String {
    let mut parts = Vec::new();
    if kd.spec.weight != spec.weight {
        parts.push(format!("weight {} -> {}", kd.spec.weight, spec.weight));
    }
    if kd.spec.forward != spec.forward {
        parts.push(format!(
            "forward {} -> {}",
            kd.spec.forward.name(),
            spec.forward.name()
        ));
    }
    format!("{dest} {} ({why})", parts.join(", "))
}

fn describe(spec: &crate::model::ServiceSpec) -> String {
    format!(
        "scheduler {} persistence {} s",
        spec.scheduler, spec.persistence_s
    )
}

fn kernel_dest<'a>(kernel: &'a KernelTable, dest: &DestKey) -> Option<&'a KernelDest> {
    kernel
        .get(&dest.service)
        .and_then(|s| s.dests.get(&dest.addr))
}

#[cfg(test)]
mod tests;
