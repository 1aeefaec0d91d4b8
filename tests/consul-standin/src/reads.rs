//! The read pipeline for Consul GET endpoints, in the order a real agent would
//! meet each condition: ACL check (403 before any work), `Slow` delay, the
//! blocking wait (reference §3.1: hold while the client's index is at least the
//! current one, until the index changes or `wait` plus up to `wait/16` of jitter
//! passes), a `Hang`, then the answer, bent by the fault in force at that moment.
//! Writes to the connection; everything else is under the shared lock.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::time::{Duration, Instant};

use crate::acl::{acl_verdict, token_of, AclVerdict};
use crate::api::{Read, ReadParams};
use crate::catalog::Store;
use crate::fault::{self, Fault, Wire};
use crate::http::{self, HttpRequest, Response};
use crate::render;
use crate::server::Shared;

/// Longest a `Hang` holds a request before closing it unanswered.
const HANG_CAP: Duration = Duration::from_secs(60);
/// Consul's `JitterFraction` (agent/structs): blocking waits get up to wait/16 extra.
const JITTER_FRACTION: u32 = 16;

/// Serves one read; false when the connection must close.
pub fn serve(
    shared: &Shared,
    out: &mut impl Write,
    req: &HttpRequest,
    read: &Read,
    params: &ReadParams,
) -> bool {
    let keep = req.keep_alive;
    let verdict = acl_verdict(shared.acl.as_ref(), token_of(req).as_deref());
    if verdict == AclVerdict::Deny {
        return http::write_response(out, &Response::text(403, "ACL not found"), !keep).is_ok()
            && keep;
    }
    let slow = match shared.lock().fault {
        Fault::Slow(d) => Some(d),
        _ => None,
    };
    if slow.is_some_and(|d| !pause(shared, d)) {
        return false;
    }
    if !hold(shared, read, params) || !wait_out_hang(shared) {
        return false;
    }
    let (fault, resp) = {
        let st = shared.lock();
        (
            st.fault.clone(),
            answer(&st.store, read, params, verdict, shared.acl.is_some()),
        )
    };
    let (fault, filtered_body): (Fault, &[u8]) = match read {
        Read::Health { .. } => (fault, b"[]"),
        Read::CatalogServices => (fault, b"{}"),
        // Not a list: nothing for ACLs to filter.
        _ if fault == Fault::AclFiltered => (Fault::None, b""),
        _ => (fault, b""),
    };
    send(out, fault::apply(&fault, resp, filtered_body), keep)
}

/// True when the connection is gone (shutdown or `Refuse`).
fn gone(st: &crate::server::State) -> bool {
    st.shutdown || st.fault == Fault::Refuse
}

/// Sleeps for `Slow`; false if the server went away meanwhile.
fn pause(shared: &Shared, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    let mut st = shared.lock();
    while !gone(&st) && Instant::now() < deadline {
        st = shared.wait(st, deadline);
    }
    !gone(&st)
}

/// The index a read's blocking wait compares against.
fn index_of(store: &Store, read: &Read) -> u64 {
    match read {
        Read::Health { service, .. } => store.index_of(service),
        _ => store.global_index(),
    }
}

/// The blocking wait. Returns early on any index change (including a backwards
/// one: a snapshot restore wakes every watcher) and when a disruptive fault is
/// switched on. False if the server went away.
fn hold(shared: &Shared, read: &Read, params: &ReadParams) -> bool {
    let blocking = matches!(read, Read::Health { .. } | Read::CatalogServices);
    let mut st = shared.lock();
    let start = index_of(&st.store, read);
    if !blocking || params.index == 0 || params.index < start {
        return true;
    }
    let deadline = Instant::now() + params.wait + jitter(params.wait);
    let fault_gen = st.fault_gen;
    st.parked += 1;
    shared.notify();
    let alive = loop {
        if gone(&st) {
            break false;
        }
        let new_fault = st.fault_gen != fault_gen && st.fault.interrupts_blocking();
        if index_of(&st.store, read) != start || new_fault || Instant::now() >= deadline {
            break true;
        }
        st = shared.wait(st, deadline);
    };
    st.parked -= 1;
    alive
}

/// Up to `wait / 16` extra, like the servers' stagger.
fn jitter(wait: Duration) -> Duration {
    // Each RandomState is freshly keyed, so hashing anything gives a new number;
    // no rand crate needed for a stagger.
    let mut h = RandomState::new().build_hasher();
    h.write_u32(wait.subsec_nanos());
    let max = (wait / JITTER_FRACTION).as_nanos() as u64;
    Duration::from_nanos(h.finish() % (max + 1))
}

/// Holds the request while `Hang` is on; true when it was cleared in time.
fn wait_out_hang(shared: &Shared) -> bool {
    let cap = Instant::now() + HANG_CAP;
    let mut st = shared.lock();
    if st.fault != Fault::Hang {
        return !gone(&st);
    }
    st.parked += 1;
    shared.notify();
    while st.fault == Fault::Hang && !st.shutdown && Instant::now() < cap {
        st = shared.wait(st, cap);
    }
    st.parked -= 1;
    st.fault != Fault::Hang && !gone(&st)
}

/// The correct response, with the headers of agent/http.go `setMeta`.
fn answer(
    store: &Store,
    read: &Read,
    params: &ReadParams,
    verdict: AclVerdict,
    acl_on: bool,
) -> Response {
    let resp = match read {
        Read::Health { service, filter } => {
            let full = render::health_service(store, service, filter);
            list_answer(full, "[]", store.index_of(service), params, verdict)
        }
        Read::CatalogServices => list_answer(
            render::catalog_services(store),
            "{}",
            store.global_index(),
            params,
            verdict,
        ),
        Read::AgentSelf => Response::json(200, json_bytes(&render::agent_self(store))),
        Read::StatusLeader => Response::json(200, b"\"127.0.0.1:8300\"".to_vec()),
    };
    resp.with_header(
        "X-Consul-Default-ACL-Policy",
        if acl_on { "deny" } else { "allow" },
    )
}

/// A list read: the body (or its ACL-filtered empty form) plus blocking headers.
fn list_answer(
    full: serde_json::Value,
    empty: &str,
    index: u64,
    params: &ReadParams,
    verdict: AclVerdict,
) -> Response {
    let hidden_something = !full.as_array().is_some_and(Vec::is_empty)
        && !full.as_object().is_some_and(|m| m.is_empty());
    let (body, flagged) = match verdict {
        AclVerdict::Filter { flagged } => (empty.as_bytes().to_vec(), flagged && hidden_something),
        _ => (json_bytes(&full), false),
    };
    let resp = Response::json(200, body)
        .with_header("X-Consul-Index", index.max(1).to_string())
        .with_header("X-Consul-KnownLeader", "true")
        .with_header("X-Consul-LastContact", "0")
        .with_header("X-Consul-Effective-Consistency", params.consistency)
        .with_header("X-Consul-Query-Backend", "blocking-query");
    match flagged {
        true => resp.with_header("X-Consul-Results-Filtered-By-ACLs", "true"),
        false => resp,
    }
}

fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON values serialise")
}

/// Puts a `Wire` on the connection; false when the connection must close.
fn send(out: &mut impl Write, wire: Wire, keep: bool) -> bool {
    let result = match wire {
        Wire::Whole(r) => http::write_response(out, &r, !keep).map(|_| keep),
        Wire::WholeThenClose(r) => http::write_response(out, &r, true).map(|_| false),
        Wire::CutShort { resp, sent } => http::write_head(out, &resp, resp.body.len(), false)
            .and_then(|_| out.write_all(&resp.body[..sent]))
            .and_then(|_| out.flush())
            .map(|_| false),
        Wire::Padded { resp, total } => write_padded(out, &resp, total, keep).map(|_| keep),
    };
    result.unwrap_or(false)
}

/// Streams a body padded with spaces before its final byte (`]` or `}`), which
/// keeps it valid JSON of exactly `total` bytes without building it in memory.
fn write_padded(
    out: &mut impl Write,
    resp: &Response,
    total: usize,
    keep: bool,
) -> std::io::Result<()> {
    http::write_head(out, resp, total, !keep)?;
    let (last, head) = resp
        .body
        .split_last()
        .expect("padding needs a non-empty body");
    out.write_all(head)?;
    let chunk = [b' '; 64 * 1024];
    let mut left = total - resp.body.len();
    while left > 0 {
        let n = left.min(chunk.len());
        out.write_all(&chunk[..n])?;
        left -= n;
    }
    out.write_all(&[*last])?;
    out.flush()
}
