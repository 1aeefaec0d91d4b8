//! TCP probes of backends on the daemon's mio loop, and the schedule that says
//! when each backend is next probed.
//!
//! Inputs: a [`ProbeSpec`] per probe (address, bytes to send, bytes the reply
//! must start with, timeout), mio readiness events for our tokens, and `now`
//! passed in by the caller. Outputs: `(id, ProbeResult)` pairs collected with
//! [`Prober::take_results`]. [`Prober`] is the I/O edge: it owns one
//! non-blocking socket per probe in flight, registered as `Token(token_base +
//! n)`, and closes it (deregister, then drop) as soon as the probe has a result.
//! The decisions it makes (has the reply matched, what to report) are pure
//! helpers tested in-line; [`Schedule`] is pure too (no I/O, no clock).
//!
//! A deadline is absolute (`start + timeout`) and covers connect, send and read
//! together; only [`Prober::expire`] turns a passed deadline into a timeout.
//! [`Prober::handle_event`] ignores deadlines on purpose: the loop makes
//! blocking HTTP calls of a few seconds, and afterwards it handles the pending
//! readiness events *before* calling `expire`, so a probe whose connect and
//! reply were already delivered while the loop was blocked counts as its real
//! result, not as a timeout. Only what the kernel had already received can be
//! counted that way: a probe that still has to send and wait for an answer
//! after the block is timed out by the next `expire`.
//!
//! [`Schedule`] lives in `probe/schedule.rs`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::debug;

mod schedule;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
pub use schedule::Schedule;

/// What one probe does: connect to `addr`, write `send` (if any), and expect the
/// reply to start with `expect` (if any), all within `timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub addr: SocketAddr,
    pub send: Vec<u8>,
    pub expect: Vec<u8>,
    pub timeout: Duration,
}

/// The outcome of one probe. `Down` carries a short reason for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Up,
    Down(String),
}

/// Where a probe was when it ended; named in timeout and error reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Sending,
    Reading,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Sending => "sending",
            Phase::Reading => "reading",
        }
    }
}

/// How the bytes received so far compare with the expected reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// A prefix of `expect` so far; more bytes are needed.
    NeedMore,
    /// At least `expect.len()` bytes arrived and they start with `expect`.
    Matched,
    /// The bytes already differ from `expect`; more cannot help.
    Mismatch,
}

/// Compares the reply so far with `expect`. Pure.
fn judge_reply(received: &[u8], expect: &[u8]) -> Verdict {
    let n = received.len().min(expect.len());
    if received[..n] != expect[..n] {
        Verdict::Mismatch
    } else if n == expect.len() {
        Verdict::Matched
    } else {
        Verdict::NeedMore
    }
}

/// The result once the probe is connected, or `None` to keep waiting. Pure.
fn decide(sent_all: bool, received: &[u8], expect: &[u8], eof: bool) -> Option<ProbeResult> {
    match judge_reply(received, expect) {
        Verdict::Mismatch => Some(ProbeResult::Down(mismatch_reason(received))),
        Verdict::Matched if sent_all => Some(ProbeResult::Up),
        // Everything we need arrived; waiting only for our own write to finish.
        Verdict::Matched => None,
        Verdict::NeedMore if eof => Some(ProbeResult::Down(format!(
            "closed before expected reply (got {} of {} bytes)",
            received.len(),
            expect.len()
        ))),
        Verdict::NeedMore => None,
    }
}

fn mismatch_reason(received: &[u8]) -> String {
    let shown = &received[..received.len().min(32)];
    format!(
        "reply did not start with the expected bytes (got \"{}\")",
        shown.escape_ascii()
    )
}

fn timeout_reason(timeout: Duration, phase: Phase) -> String {
    format!(
        "timeout after {} ms ({})",
        timeout.as_millis(),
        phase.name()
    )
}

/// A short reason from an I/O error: std's text without the errno suffix
/// ("connection refused"), plus the phase unless it was the connect.
fn io_reason(err: &io::Error, phase: Phase) -> String {
    let full = err.to_string();
    let text = full.split(" (os error").next().unwrap_or(&full);
    let mut chars = text.chars();
    let text: String = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::from("unknown error"),
    };
    match phase {
        Phase::Connecting => text,
        _ => format!("{text} ({})", phase.name()),
    }
}

/// One probe in flight: its socket and how far it got.
struct Probe {
    id: u64,
    addr: SocketAddr,
    stream: TcpStream,
    started: Instant,
    deadline: Instant,
    timeout: Duration,
    connected: bool,
    send: Vec<u8>,
    sent: usize,
    expect: Vec<u8>,
    received: Vec<u8>,
}

impl Probe {
    fn phase(&self) -> Phase {
        if !self.connected {
            Phase::Connecting
        } else if self.sent < self.send.len() {
            Phase::Sending
        } else {
            Phase::Reading
        }
    }

    /// Does all the I/O the socket allows now; `Some` once the probe has a result.
    fn advance(&mut self) -> Option<ProbeResult> {
        if !self.connected {
            match connect_status(&self.stream) {
                Ok(true) => self.connected = true,
                Ok(false) => return None,
                Err(e) => return Some(ProbeResult::Down(io_reason(&e, Phase::Connecting))),
            }
        }
        if let Err(e) = self.write_pending() {
            return Some(ProbeResult::Down(io_reason(&e, Phase::Sending)));
        }
        let eof = match self.read_reply() {
            Ok(eof) => eof,
            Err(e) => return Some(ProbeResult::Down(io_reason(&e, Phase::Reading))),
        };
        decide(
            self.sent == self.send.len(),
            &self.received,
            &self.expect,
            eof,
        )
    }

    /// Writes what is left of `send` until done or the socket would block.
    fn write_pending(&mut self) -> io::Result<()> {
        while self.sent < self.send.len() {
            match self.stream.write(&self.send[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads at most the missing part of `expect` until it would block, the
    /// reply is decided, or EOF; returns whether EOF was seen. Reading never
    /// more than `expect.len()` bytes keeps a chatty peer from costing memory.
    /// Mio's registration is edge-triggered, so stopping early is safe only
    /// because the probe ends (or stops needing reads) whenever we stop. If the
    /// peer sent more than that, closing with unread bytes makes Linux answer
    /// with a RST instead of a FIN (`tcp_close`); the backend may log a reset.
    fn read_reply(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; 512];
        while self.received.len() < self.expect.len() {
            let want = (self.expect.len() - self.received.len()).min(buf.len());
            match self.stream.read(&mut buf[..want]) {
                Ok(0) => return Ok(true),
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if judge_reply(&self.received, &self.expect) == Verdict::Mismatch {
                break;
            }
        }
        Ok(false)
    }
}

/// Whether a non-blocking connect has finished: `Ok(true)` connected,
/// `Ok(false)` still in progress (spurious wake-up), `Err` failed. These are
/// the steps mio documents on `TcpStream::connect`.
fn connect_status(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e)
            if e.kind() == io::ErrorKind::NotConnected
                || e.raw_os_error() == Some(libc::EINPROGRESS) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Opens the socket, starts the connect and registers it under `token`.
fn open(registry: &Registry, addr: SocketAddr, token: Token) -> Result<TcpStream, String> {
    // A WouldBlock here means no local port or route-cache entry was free
    // (see mio's `TcpStream::connect` docs); like any error it fails the probe.
    let mut stream = TcpStream::connect(addr).map_err(|e| io_reason(&e, Phase::Connecting))?;
    registry
        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
        .map_err(|e| {
            format!(
                "cannot register probe socket: {}",
                io_reason(&e, Phase::Connecting)
            )
        })?;
    Ok(stream)
}

/// Longest timeout honoured; guards `Instant + Duration` against overflow.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The probes in flight and the results not yet taken.
pub struct Prober {
    token_base: usize,
    /// Next `n` for `Token(token_base + n)`. Tokens are not reused until this
    /// wraps, so an event fetched for a probe that has since ended can never
    /// be taken for a newer probe; it finds no probe and is ignored.
    next_offset: usize,
    probes: HashMap<Token, Probe>,
    by_id: HashMap<u64, Token>,
    results: Vec<(u64, ProbeResult)>,
}

impl Prober {
    /// Tokens used for probe sockets are `Token(token_base + n)`; the loop
    /// reserves tokens below `token_base` for itself.
    pub fn new(token_base: usize) -> Prober {
        Prober {
            token_base,
            next_offset: 0,
            probes: HashMap::new(),
            by_id: HashMap::new(),
            results: Vec::new(),
        }
    }

    /// Starts a non-blocking connect for the caller's probe `id`. Returns false
    /// and does nothing if `id` is already in flight. Otherwise returns true: the
    /// probe is in flight, or it failed at once (no route, no local port...) and
    /// its `Down` result is already queued.
    pub fn start(&mut self, registry: &Registry, id: u64, spec: &ProbeSpec, now: Instant) -> bool {
        if self.by_id.contains_key(&id) {
            return false;
        }
        let token = self.alloc_token();
        let stream = match open(registry, spec.addr, token) {
            Ok(stream) => stream,
            Err(reason) => {
                debug!("probe {id} to {}: down at start: {reason}", spec.addr);
                self.results.push((id, ProbeResult::Down(reason)));
                return true;
            }
        };
        let timeout = spec.timeout.min(MAX_TIMEOUT);
        let probe = Probe {
            id,
            addr: spec.addr,
            stream,
            started: now,
            // Invariant: now + 24 h fits in an Instant (CLOCK_MONOTONIC + i64 s).
            deadline: now + timeout,
            timeout,
            connected: false,
            send: spec.send.clone(),
            sent: 0,
            expect: spec.expect.clone(),
            received: Vec::new(),
        };
        self.probes.insert(token, probe);
        self.by_id.insert(id, token);
        true
    }

    /// Whether `token` is in the probe range, so the loop should hand the
    /// event to [`Prober::handle_event`] (which ignores tokens of ended probes).
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.token_base
    }

    /// Handles a readiness event for one of our tokens: finishes the connect,
    /// writes `send`, reads the reply, and ends the probe once it has a result.
    /// Deadlines are not checked here (see the module docs): a probe whose
    /// deadline has passed still counts what this event brings.
    pub fn handle_event(&mut self, registry: &Registry, event: &mio::event::Event, now: Instant) {
        let token = event.token();
        let Some(probe) = self.probes.get_mut(&token) else {
            return; // an ended probe's event from the same poll batch
        };
        if let Some(result) = probe.advance() {
            self.finish(registry, token, result, now);
        }
    }

    /// Fails every probe whose absolute deadline is `<= now`, naming the phase.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        let mut due: Vec<Token> = self
            .probes
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        due.sort_unstable(); // results in start order, not hash order
        for token in due {
            if let Some(p) = self.probes.get(&token) {
                let reason = timeout_reason(p.timeout, p.phase());
                self.finish(registry, token, ProbeResult::Down(reason), now);
            }
        }
    }

    /// The earliest deadline of the probes in flight (a linear scan: there are
    /// at most a few hundred).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.probes.values().map(|p| p.deadline).min()
    }

    pub fn in_flight(&self) -> usize {
        self.probes.len()
    }

    /// The results since the last call, in the order the probes ended. An id
    /// restarted before its result was taken appears once per probe.
    pub fn take_results(&mut self) -> Vec<(u64, ProbeResult)> {
        std::mem::take(&mut self.results)
    }

    fn alloc_token(&mut self) -> Token {
        // Terminates: fewer probes are in flight than there are tokens.
        loop {
            let token = Token(self.token_base.wrapping_add(self.next_offset));
            self.next_offset = self.next_offset.wrapping_add(1);
            if token.0 >= self.token_base && !self.probes.contains_key(&token) {
                return token;
            }
        }
    }

    /// Ends a probe: deregister, close the socket (by drop), queue the result.
    fn finish(&mut self, registry: &Registry, token: Token, result: ProbeResult, now: Instant) {
        let Some(mut probe) = self.probes.remove(&token) else {
            return;
        };
        if let Err(e) = registry.deregister(&mut probe.stream) {
            // Closing the fd below removes it from epoll anyway.
            debug!(
                "probe {} to {}: deregister failed: {e}",
                probe.id, probe.addr
            );
        }
        self.by_id.remove(&probe.id);
        let ms = now.saturating_duration_since(probe.started).as_millis();
        debug!(
            "probe {} to {}: {result:?} after {ms} ms",
            probe.id, probe.addr
        );
        self.results.push((probe.id, result));
    }
}

#[cfg(test)]
mod tests;
