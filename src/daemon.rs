//! The I/O shell: one single-threaded mio loop that owns the kernel handle,
//! the Consul client, the probe sockets, the signal pipe and the timers, and
//! feeds what they report into the pure [`Engine`].
//!
//! Every wait is an absolute deadline. Consul is polled with a short blocking
//! request on the loop thread (minreq has no non-blocking mode), so after
//! each wake-up readiness events are handled *before* probe deadlines
//! expire: a probe that completed while the loop was blocked counts as what
//! it was, not as a timeout.

use crate::config::{self, Config, Source};
use crate::consul::client::ConsulClient;
use crate::consul::poll::{Outcome, Poller};
use crate::engine::{Engine, Planned, ProbeTarget};
use crate::ipvs::{already_done, DryRun, Kernel, KernelError};
use crate::model::{KernelTable, Op, ServiceKey};
use crate::probe::{ProbeResult, Prober, Schedule};
use log::{debug, error, info, warn};
use mio::{Events, Interest, Poll, Token};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SIGNAL: Token = Token(0);
const PROBE_TOKEN_BASE: usize = 16;
/// How often a drain in progress re-reads its service's connection counters.
const DRAIN_CHECK: Duration = Duration::from_secs(1);
/// First and longest wait before a failed kernel write is tried again.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// How the binary was asked to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub config_path: PathBuf,
    pub once: bool,
    pub dry_run: bool,
}

/// Runs the daemon (or one `--once` round) and returns the exit code.
pub fn run(cfg: Config, opts: Options) -> i32 {
    let cfg = adjust(cfg, &opts);
    let kernel = match open_kernel(&cfg, opts.dry_run) {
        Ok(k) => k,
        Err(e) => {
            error!("{e}");
            return 1;
        }
    };
    let mut d = match Daemon::new(cfg, opts, kernel) {
        Ok(d) => d,
        Err(code) => return code,
    };
    if d.opts.once {
        d.once()
    } else {
        d.run_loop()
    }
}

/// `--dry-run` never probes; `--once` runs one round in which a single
/// result decides.
fn adjust(mut cfg: Config, opts: &Options) -> Config {
    for svc in &mut cfg.services {
        if opts.dry_run {
            svc.check = None;
        } else if opts.once {
            if let Some(c) = &mut svc.check {
                c.rise = 1;
                c.fall = 1;
            }
        }
    }
    cfg
}

fn open_kernel(cfg: &Config, dry_run: bool) -> Result<Box<dyn Kernel>, KernelError> {
    if !dry_run {
        return Ok(Box::new(crate::ipvs::netlink::Netlink::open()?));
    }
    let keys: Vec<ServiceKey> = cfg.services.iter().map(|s| s.key).collect();
    let table = match crate::ipvs::netlink::Netlink::open().and_then(|mut n| n.dump(&keys)) {
        Ok(t) => t,
        Err(e) => {
            warn!("dry run: planning against an empty table: {e}");
            KernelTable::new()
        }
    };
    Ok(Box::new(DryRun {
        table,
        out: std::io::stdout(),
    }))
}

/// Signals the loop reacts to: a flag each, and one pipe that wakes the loop.
struct Signals {
    hup: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
    usr1: Arc<AtomicBool>,
    pipe: mio::net::UnixStream,
}

impl Signals {
    fn install(poll: &Poll) -> std::io::Result<Signals> {
        let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        let s = Signals {
            hup: Arc::default(),
            term: Arc::default(),
            usr1: Arc::default(),
            pipe: mio::net::UnixStream::from_std(reader),
        };
        let flags = [
            (libc::SIGHUP, &s.hup),
            (libc::SIGTERM, &s.term),
            (libc::SIGINT, &s.term),
            (libc::SIGUSR1, &s.usr1),
        ];
        for (sig, flag) in flags {
            signal_hook::flag::register(sig, Arc::clone(flag))?;
            signal_hook::low_level::pipe::register(sig, writer.try_clone()?)?;
        }
        let mut s = s;
        poll.registry()
            .register(&mut s.pipe, SIGNAL, Interest::READABLE)?;
        Ok(s)
    }

    fn drain_pipe(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(self.pipe.read(&mut buf), Ok(n) if n > 0) {}
    }
}

struct Daemon {
    cfg: Config,
    opts: Options,
    kernel: Box<dyn Kernel>,
    /// The kernel's table as last dumped, plus our successful writes since.
    mirror: KernelTable,
    engine: Engine,
    consul: ConsulClient,
    pollers: BTreeMap<ServiceKey, Poller>,
    poll: Poll,
    prober: Prober,
    schedule: Schedule,
    probes: BTreeMap<u64, ProbeTarget>,
    next_resync: Instant,
    next_drain_check: Instant,
    /// Writes that failed, by object: not before, and the wait after the next failure.
    retry: BTreeMap<String, (Instant, Duration)>,
    failed: bool,
    /// Something the state file shows changed since it was last written.
    dirty: bool,
}

impl Daemon {
    fn new(cfg: Config, opts: Options, mut kernel: Box<dyn Kernel>) -> Result<Daemon, i32> {
        let keys: Vec<ServiceKey> = cfg.services.iter().map(|s| s.key).collect();
        let mirror = kernel.dump(&keys).map_err(|e| {
            error!("{e}");
            1
        })?;
        let mut engine = Engine::new(&cfg, &mirror);
        engine.on_dump(&mirror, &keys);
        let poll = Poll::new().map_err(|e| {
            error!("cannot create the event loop: {e}");
            1
        })?;
        let now = Instant::now();
        let mut d = Daemon {
            consul: ConsulClient::new(&cfg.consul),
            pollers: BTreeMap::new(),
            next_resync: now + cfg.resync_interval,
            next_drain_check: now + DRAIN_CHECK,
            cfg,
            opts,
            kernel,
            mirror,
            engine,
            poll,
            prober: Prober::new(PROBE_TOKEN_BASE),
            schedule: Schedule::new(),
            probes: BTreeMap::new(),
            retry: BTreeMap::new(),
            failed: false,
            dirty: true,
        };
        d.sync_pollers(now);
        info!(
            "managing {} services; {} found in the kernel",
            d.cfg.services.len(),
            d.mirror.len()
        );
        Ok(d)
    }

    /// `--once`: read the sources once, one round of probes, apply, exit.
    fn once(&mut self) -> i32 {
        let now = Instant::now();
        let keys: Vec<ServiceKey> = self.pollers.keys().copied().collect();
        for key in keys {
            self.poll_consul(&key, now);
            if !self.engine.has_answer(&key) {
                self.failed = true;
            }
        }
        self.probe_round();
        self.reconcile(Instant::now());
        self.write_state();
        i32::from(self.failed)
    }

    fn probe_round(&mut self) {
        self.sync_probes(Instant::now());
        let now = Instant::now();
        let targets: Vec<ProbeTarget> = self.probes.values().cloned().collect();
        let longest = targets
            .iter()
            .map(|t| t.spec.timeout)
            .max()
            .unwrap_or_default();
        for t in &targets {
            self.prober.start(self.poll.registry(), t.id, &t.spec, now);
        }
        let deadline = now + longest + Duration::from_millis(200);
        let mut events = Events::with_capacity(256);
        while self.prober.in_flight() > 0 && Instant::now() < deadline {
            let wait = self.prober.next_deadline().unwrap_or(deadline);
            let _ = self.poll.poll(
                &mut events,
                Some(wait.saturating_duration_since(Instant::now())),
            );
            self.handle_events(&events);
        }
    }

    fn run_loop(&mut self) -> i32 {
        let mut signals = match Signals::install(&self.poll) {
            Ok(s) => s,
            Err(e) => {
                error!("cannot install signal handlers: {e}");
                return 1;
            }
        };
        let mut events = Events::with_capacity(256);
        loop {
            let timeout = self
                .next_wake()
                .map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    error!("event loop: {e}");
                    return 1;
                }
            }
            if events.iter().any(|e| e.token() == SIGNAL) {
                signals.drain_pipe();
            }
            self.handle_events(&events);
            if signals.term.swap(false, Ordering::SeqCst) {
                info!("exiting on signal; the IPVS table is left exactly as it is");
                return 0;
            }
            if signals.hup.swap(false, Ordering::SeqCst) {
                self.reload(Instant::now());
            }
            if signals.usr1.swap(false, Ordering::SeqCst) {
                info!(
                    "state: {}",
                    self.engine.snapshot(&self.mirror, Instant::now())
                );
            }
            self.tick();
        }
    }

    /// Probe readiness first, then expired deadlines, then the results.
    fn handle_events(&mut self, events: &Events) {
        let now = Instant::now();
        for ev in events.iter() {
            if self.prober.owns(ev.token()) {
                self.prober.handle_event(self.poll.registry(), ev, now);
            }
        }
        self.prober.expire(self.poll.registry(), now);
        for (id, result) in self.prober.take_results() {
            let (ok, detail) = match &result {
                ProbeResult::Up => (true, String::new()),
                ProbeResult::Down(why) => (false, why.clone()),
            };
            debug!(
                "probe {}: {result:?}",
                self.probes
                    .get(&id)
                    .map_or(String::from("?"), |t| t.spec.addr.to_string())
            );
            self.dirty |= log_lines(self.engine.on_probe(id, ok, &detail));
        }
    }

    /// Everything that is due: Consul polls, probes, dumps, then the diff.
    fn tick(&mut self) {
        let due: Vec<ServiceKey> = self
            .pollers
            .iter()
            .filter(|(_, p)| p.due() <= Instant::now())
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.poll_consul(&key, Instant::now());
        }
        let now = Instant::now();
        for id in self.schedule.take_due(now) {
            if let Some(t) = self.probes.get(&id) {
                self.prober.start(self.poll.registry(), id, &t.spec, now);
            }
        }
        self.refresh_kernel(now);
        self.reconcile(now);
    }

    fn next_wake(&self) -> Option<Instant> {
        let mut t: Vec<Instant> = self.pollers.values().map(|p| p.due()).collect();
        t.extend(self.schedule.next_due());
        t.extend(self.prober.next_deadline());
        // A drain deadline or a retry time already past has been acted on (or
        // is waiting for a retry): waking for it again would spin the loop.
        let now = Instant::now();
        t.extend(self.engine.next_deadline(now));
        t.extend(
            self.retry
                .values()
                .map(|(at, _)| *at)
                .filter(|at| *at > now),
        );
        t.push(self.next_resync);
        if !self.engine.draining_services().is_empty() {
            t.push(self.next_drain_check);
        }
        t.into_iter().min()
    }

    fn poll_consul(&mut self, key: &ServiceKey, now: Instant) {
        let Some(svc) = self.cfg.services.iter().find(|s| s.key == *key) else {
            return;
        };
        let Source::Consul { service, tags } = &svc.source else {
            return;
        };
        let Some(poller) = self.pollers.get_mut(key) else {
            return;
        };
        let resp = self.consul.fetch(service, tags);
        // The poller logs skipped instances itself, once each.
        if let Outcome::Changed(parsed) = poller.on_response(resp, svc, now) {
            log_lines(self.engine.on_source(key, parsed.backends, &self.mirror));
            self.dirty = true;
            self.sync_probes(Instant::now());
        }
    }

    /// One Consul poller per Consul-backed service; an unchanged source keeps its poller.
    fn sync_pollers(&mut self, now: Instant) {
        let wanted: BTreeMap<ServiceKey, Duration> = self
            .cfg
            .services
            .iter()
            .filter(|s| matches!(s.source, Source::Consul { .. }))
            .map(|s| (s.key, self.cfg.consul.interval))
            .collect();
        self.pollers.retain(|k, _| wanted.contains_key(k));
        for (key, interval) in wanted {
            self.pollers
                .entry(key)
                .or_insert_with(|| Poller::new(interval, now));
        }
        self.sync_probes(now);
    }

    fn sync_probes(&mut self, now: Instant) {
        let targets = self.engine.probe_targets();
        self.probes = targets.into_iter().map(|t| (t.id, t)).collect();
        let probes = &self.probes;
        self.schedule.retain(|id| probes.contains_key(&id));
        for t in self.probes.values() {
            self.schedule.upsert(t.id, t.interval, now);
        }
    }

    /// The full dump on the resync timer; the draining services' counters
    /// every second while drains are in progress.
    fn refresh_kernel(&mut self, now: Instant) {
        if now >= self.next_resync {
            self.next_resync = now + self.cfg.resync_interval;
            let keys = self.engine.managed_keys();
            self.dump(&keys, true);
            self.next_drain_check = now + DRAIN_CHECK;
        } else if now >= self.next_drain_check {
            self.next_drain_check = now + DRAIN_CHECK;
            let keys = self.engine.draining_services();
            if !keys.is_empty() {
                self.dump(&keys, false);
            }
        }
    }

    fn dump(&mut self, keys: &[ServiceKey], full: bool) {
        match self.kernel.dump(keys) {
            Ok(table) => {
                if full {
                    self.mirror = table;
                } else {
                    for k in keys {
                        match table.get(k) {
                            Some(s) => self.mirror.insert(*k, s.clone()),
                            None => self.mirror.remove(k),
                        };
                    }
                }
                self.engine.on_dump(&self.mirror, keys);
            }
            Err(e) => warn!("reading the IPVS table failed, keeping the last one: {e}"),
        }
    }

    /// Plans against the mirror and applies, one log line per change.
    fn reconcile(&mut self, now: Instant) {
        let plan = self.engine.plan(&self.mirror, now);
        for p in plan {
            self.dirty |= self.apply(p, now);
        }
        if self.dirty {
            self.write_state();
        }
    }

    fn apply(&mut self, p: Planned, now: Instant) -> bool {
        let target = op_target(&p.op);
        if self.retry.get(&target).is_some_and(|(at, _)| now < *at) {
            return false;
        }
        match self.kernel.apply(&p.op) {
            Ok(()) if self.opts.dry_run => info!("dry run: {}", p.line),
            Ok(()) => info!("{}", p.line),
            Err(e) if already_done(&p.op, &e) => debug!("{}: {e} (already so)", p.line),
            Err(e) => {
                let wait = self
                    .retry
                    .get(&target)
                    .map_or(RETRY_MIN, |(_, w)| (*w * 2).min(RETRY_MAX));
                warn!("{}: failed: {e}; retrying in {} s", p.line, wait.as_secs());
                self.retry.insert(target, (now + wait, wait));
                self.next_resync = self.next_resync.min(now + wait);
                self.failed = true;
                return false;
            }
        }
        self.retry.remove(&target);
        p.op.apply_to(&mut self.mirror);
        true
    }

    fn reload(&mut self, now: Instant) {
        let cfg = match config::load(&self.opts.config_path) {
            Ok(c) => adjust(c, &self.opts),
            Err(e) => {
                error!("reload: {e}; keeping the running config");
                return;
            }
        };
        if cfg.consul != self.cfg.consul {
            self.consul = ConsulClient::new(&cfg.consul);
            self.pollers.clear();
        }
        let changed_sources: Vec<ServiceKey> = cfg
            .services
            .iter()
            .filter(|s| {
                self.cfg
                    .services
                    .iter()
                    .all(|o| o.key != s.key || o.source != s.source)
            })
            .map(|s| s.key)
            .collect();
        for k in changed_sources {
            self.pollers.remove(&k);
        }
        self.cfg = cfg;
        // New services were never read: dump before the next diff.
        let mut keys: Vec<ServiceKey> = self.cfg.services.iter().map(|s| s.key).collect();
        keys.extend(self.engine.managed_keys());
        keys.sort();
        keys.dedup();
        self.dump(&keys, true);
        log_lines(self.engine.reload(&self.cfg, &self.mirror));
        self.sync_pollers(now);
        info!(
            "reloaded {} ({} services)",
            self.opts.config_path.display(),
            self.cfg.services.len()
        );
    }

    /// Writes the state file atomically (temporary file, then rename).
    fn write_state(&mut self) {
        self.dirty = false;
        // A dry run changes nothing, so it writes nothing either.
        let Some(path) = self.cfg.state_file.as_ref().filter(|_| !self.opts.dry_run) else {
            return;
        };
        let snap = self.engine.snapshot(&self.mirror, Instant::now());
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_string_pretty(&snap).unwrap_or_default();
        let res = std::fs::write(&tmp, text + "\n").and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = res {
            warn!("cannot write the state file {}: {e}", path.display());
        }
    }
}

/// The object a write is about, so failures back off per object.
fn op_target(op: &Op) -> String {
    match op {
        Op::AddService(k, _) | Op::EditService(k, _) | Op::DelService(k) => k.to_string(),
        Op::AddDest(k, _) | Op::EditDest(k, _) | Op::DelDest(k) => k.to_string(),
    }
}

/// Logs each line; says whether there were any.
fn log_lines(lines: Vec<String>) -> bool {
    let any = !lines.is_empty();
    for l in lines {
        info!("{l}");
    }
    any
}
