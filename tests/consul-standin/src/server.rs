//! The I/O shell: listeners, one thread per connection, the shared state behind a
//! mutex with one condition variable that every change notifies, and the control
//! endpoints. `Fault::Refuse` is done for real: the main accept loop drops its
//! socket (so connects are refused) and binds the same port again when the fault
//! is cleared; open connections on the main port are shut down too, as if the
//! agent had died. Control listeners are never refused.

use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, ErrorKind, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::api::{self, Control, Route};
use crate::catalog::{ApiError, Store};
use crate::fault::Fault;
use crate::http::{self, HttpRequest, Response};
use crate::{reads, Acl, Options, Request};

/// Keep-alive connections idle this long are closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The request log keeps this many entries (oldest dropped) to bound memory.
const LOG_CAP: usize = 10_000;
/// How long `set_fault` waits for the accept loop to close or reopen the port.
const LISTENER_DEADLINE: Duration = Duration::from_secs(10);

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Main,
    Control,
}

/// Everything the threads share.
pub struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    pub acl: Option<Acl>,
    pub addr: SocketAddr,
}

/// Mutable state; every change is followed by `changed.notify_all()`.
pub struct State {
    pub store: Store,
    pub fault: Fault,
    /// Bumped on every `set_fault`, so parked reads can tell a new fault arrived.
    pub fault_gen: u64,
    pub listening: bool,
    pub shutdown: bool,
    pub log: VecDeque<Request>,
    /// Reads waiting in a blocking query or a hang.
    pub parked: usize,
    control_addrs: Vec<SocketAddr>,
    conns: HashMap<u64, (TcpStream, Side)>,
    next_conn: u64,
}

impl Shared {
    pub fn new(addr: SocketAddr, opts: &Options) -> Shared {
        let state = State {
            store: Store::new(&opts.node_address),
            fault: Fault::None,
            fault_gen: 0,
            listening: true,
            shutdown: false,
            log: VecDeque::new(),
            parked: 0,
            control_addrs: Vec::new(),
            conns: HashMap::new(),
            next_conn: 0,
        };
        Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
            acl: opts.tokens.clone(),
            addr,
        }
    }

    /// Locks the state. A panicking test thread must not wedge the server, so a
    /// poisoned lock is taken over (the state is plain data, always consistent
    /// between statements).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits on the condition variable until `deadline` at the latest.
    pub fn wait<'a>(&self, st: MutexGuard<'a, State>, deadline: Instant) -> MutexGuard<'a, State> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.changed
            .wait_timeout(st, left)
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    pub fn notify(&self) {
        self.changed.notify_all();
    }

    /// Waits until `ready` holds or the deadline passes; returns `ready`'s last value.
    pub fn wait_until(&self, deadline: Instant, ready: impl Fn(&State) -> bool) -> bool {
        let mut st = self.lock();
        while !ready(&st) && Instant::now() < deadline {
            st = self.wait(st, deadline);
        }
        ready(&st)
    }

    /// Applies a catalog write and wakes blocked readers if it succeeded.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let result = f(&mut self.lock().store);
        if result.is_ok() {
            self.notify();
        }
        result
    }

    pub fn add_control(&self, addr: SocketAddr) {
        self.lock().control_addrs.push(addr);
    }
}

/// The loopback address to use for reaching a listener bound to `addr`.
pub fn loopback_of(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Wakes an accept loop blocked in `accept()` by connecting to it.
fn poke(addr: SocketAddr) {
    let _ = TcpStream::connect_timeout(&loopback_of(addr), Duration::from_secs(1));
}

pub fn spawn_accept_loop(shared: Arc<Shared>, listener: TcpListener, side: Side) -> JoinHandle<()> {
    thread::spawn(move || accept_loop(&shared, listener, side))
}

/// Accepts until shutdown. On the main side, `Refuse` drops the listener, and
/// leaving `Refuse` binds the same address again.
fn accept_loop(shared: &Arc<Shared>, listener: TcpListener, side: Side) {
    let mut listener = Some(listener);
    loop {
        let Some(l) = &listener else {
            match reopen(shared) {
                Some(l) => listener = Some(l),
                None => return,
            }
            continue;
        };
        let accepted = l.accept();
        let mut st = shared.lock();
        if st.shutdown {
            return;
        }
        if side == Side::Main && st.fault == Fault::Refuse {
            listener = None;
            st.listening = false;
            shared.notify();
            continue;
        }
        if let Ok((stream, _)) = accepted {
            spawn_connection(shared, &mut st, stream, side);
        }
    }
}

/// Waits for `Refuse` to end, then binds the old address again (std sets
/// SO_REUSEADDR, so TIME_WAIT leftovers do not block it). None on shutdown.
fn reopen(shared: &Shared) -> Option<TcpListener> {
    let mut st = shared.lock();
    while !st.shutdown && st.fault == Fault::Refuse {
        st = shared.wait(st, Instant::now() + Duration::from_secs(3600));
    }
    if st.shutdown {
        return None;
    }
    drop(st);
    let deadline = Instant::now() + LISTENER_DEADLINE;
    let listener = loop {
        match TcpListener::bind(shared.addr) {
            Ok(l) => break l,
            Err(e) if Instant::now() > deadline => {
                panic!("consul-standin: cannot rebind {}: {e}", shared.addr)
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    };
    shared.lock().listening = true;
    shared.notify();
    Some(listener)
}

fn spawn_connection(shared: &Arc<Shared>, st: &mut State, stream: TcpStream, side: Side) {
    let Ok(handle) = stream.try_clone() else {
        return;
    };
    let id = st.next_conn;
    st.next_conn += 1;
    st.conns.insert(id, (handle, side));
    let shared = Arc::clone(shared);
    thread::spawn(move || {
        serve_connection(&shared, &stream, side, id);
        shared.lock().conns.remove(&id);
        let _ = stream.shutdown(Shutdown::Both);
    });
}

/// Serves requests on one connection until it closes or a response ends it.
fn serve_connection(shared: &Shared, stream: &TcpStream, side: Side, id: u64) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = stream;
    loop {
        let req = match http::read_request(&mut reader) {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(e) if e.kind() == ErrorKind::InvalidData => {
                let _ = http::write_response(&mut out, &Response::text(400, &e.to_string()), true);
                return;
            }
            Err(_) => return,
        };
        if !handle(shared, &mut out, &req, (side, id)) {
            return;
        }
    }
}

/// Handles one request on connection `(side, id)`; false when the connection
/// must close afterwards.
fn handle(
    shared: &Shared,
    out: &mut impl Write,
    req: &HttpRequest,
    (side, id): (Side, u64),
) -> bool {
    let keep = req.keep_alive;
    let route = api::route(req);
    if let Route::Control(c) = route {
        let (resp, fault) = control(shared, req, c, side);
        // In force before the 200 goes out, so a script's next step sees it;
        // a refuse spares this connection just long enough to answer.
        let closes = fault == Some(Fault::Refuse) && side == Side::Main;
        if let Some(f) = fault {
            set_fault_sparing(shared, f, Some(id));
        }
        let ok = http::write_response(out, &resp, !keep || closes).is_ok();
        return ok && keep && !closes;
    }
    if side == Side::Control {
        let resp = Response::text(404, "the control listener serves only /v1/_standin/*");
        return http::write_response(out, &resp, !keep).is_ok() && keep;
    }
    record(shared, req);
    let resp = match route {
        Route::Read(read, params) => return reads::serve(shared, out, req, &read, &params),
        Route::Write(w) => match shared.write(|store| api::apply_write(store, &w)) {
            Ok(()) => Response::empty(),
            Err(e) => Response::text(e.status, &e.message),
        },
        Route::Reply(r) => r,
        Route::Control(_) => unreachable!("handled above"),
    };
    http::write_response(out, &resp, !keep).is_ok() && keep
}

fn record(shared: &Shared, req: &HttpRequest) {
    let entry = Request {
        method: req.method.clone(),
        path_and_query: req.target.clone(),
        headers: req.headers.clone(),
    };
    let mut st = shared.lock();
    if st.log.len() == LOG_CAP {
        st.log.pop_front();
    }
    st.log.push_back(entry);
    shared.notify();
}

/// Serves `/v1/_standin/*`. A fault change is returned for the caller to apply,
/// because `Refuse` must spare the connection asking for it.
fn control(
    shared: &Shared,
    req: &HttpRequest,
    c: Control,
    side: Side,
) -> (Response, Option<Fault>) {
    match c {
        Control::GetFault => (Response::text(200, &shared.lock().fault.describe()), None),
        Control::SetFault => match parse_fault(shared, req, side) {
            Ok(f) => (Response::empty(), Some(f)),
            Err(msg) => (Response::text(400, &msg), None),
        },
        Control::GetRequests => (requests_json(shared, req), None),
        Control::ClearRequests => {
            shared.lock().log.clear();
            (Response::empty(), None)
        }
        Control::Bump(service) => {
            let _ = shared.write(|store| {
                store.bump(&service);
                Ok(())
            });
            (Response::empty(), None)
        }
        Control::Index(service) => (
            Response::text(200, &shared.lock().store.index_of(&service).to_string()),
            None,
        ),
    }
}

fn parse_fault(shared: &Shared, req: &HttpRequest, side: Side) -> Result<Fault, String> {
    let mode = req.param("mode").ok_or("missing ?mode=")?;
    let f = Fault::from_query(mode, |k| req.param(k).map(str::to_string))?;
    // Over the main port, nothing could clear a refuse afterwards.
    if f == Fault::Refuse && side == Side::Main && shared.lock().control_addrs.is_empty() {
        return Err(
            "mode=refuse needs a control listener (serve --control ADDR) to be cleared".into(),
        );
    }
    Ok(f)
}

/// `GET /v1/_standin/requests[?path_prefix=/v1/health/]`: the log as JSON.
fn requests_json(shared: &Shared, req: &HttpRequest) -> Response {
    let prefix = req.param("path_prefix").unwrap_or("");
    let st = shared.lock();
    let entries: Vec<_> = st
        .log
        .iter()
        .filter(|r| r.path_and_query.starts_with(prefix))
        .map(|r| json!({"method": r.method, "path_and_query": r.path_and_query, "headers": r.headers}))
        .collect();
    Response::json(
        200,
        serde_json::to_vec(&entries).expect("JSON values serialise"),
    )
}

/// Switches the fault and waits until it is in force (see `Standin::set_fault`).
pub fn set_fault(shared: &Shared, f: Fault) {
    set_fault_sparing(shared, f, None);
}

/// `set_fault`, leaving connection `spare` open on a refuse.
fn set_fault_sparing(shared: &Shared, f: Fault, spare: Option<u64>) {
    let mut st = shared.lock();
    let was_refusing = st.fault == Fault::Refuse;
    if f == Fault::IndexBackwards {
        st.store.rebase_indexes();
    }
    if f == Fault::Refuse {
        close_connections(&st, Some(Side::Main), spare);
    }
    st.fault = f.clone();
    st.fault_gen += 1;
    shared.notify();
    drop(st);
    if f == Fault::Refuse {
        wait_listening(shared, false);
    } else if was_refusing {
        wait_listening(shared, true);
    }
}

fn close_connections(st: &State, side: Option<Side>, spare: Option<u64>) {
    for (id, (stream, s)) in &st.conns {
        if side.is_none_or(|want| want == *s) && spare != Some(*id) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Waits for the main accept loop to reach `want`, poking it out of `accept()`.
fn wait_listening(shared: &Shared, want: bool) {
    let deadline = Instant::now() + LISTENER_DEADLINE;
    loop {
        let mut st = shared.lock();
        if st.listening == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "consul-standin: listener did not switch to listening={want}"
        );
        if !want {
            drop(st);
            poke(shared.addr);
            st = shared.lock();
        }
        drop(shared.wait(st, Instant::now() + Duration::from_millis(50)));
    }
}

/// Stops everything: closes connections, wakes parked reads and accept loops.
pub fn shut_down(shared: &Shared) {
    let mut st = shared.lock();
    st.shutdown = true;
    close_connections(&st, None, None);
    let mut pokes = st.control_addrs.clone();
    if st.listening {
        pokes.push(shared.addr);
    }
    shared.notify();
    drop(st);
    for addr in pokes {
        poke(addr);
    }
}
