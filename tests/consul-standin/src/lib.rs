//! A fake Consul agent for consul-ipvs tests: a small HTTP/1.1 server (one thread
//! per connection, std only) that serves `GET /v1/health/service/<name>` with real
//! blocking-query, filter, consistency and ACL semantics, the agent write endpoints
//! tests use to change the catalog, and fault injection (refused connects, 500s,
//! garbage, truncation, hangs, slowness, huge bodies, backwards indexes, ACL
//! filtering) switchable at run time through this API or over HTTP at
//! `/v1/_standin/*`. Behaviour follows /work/shared/reference/consul-http-api.md.
//!
//! `Standin` is the handle: it owns the listener threads and stops them on drop.
//! I/O lives in `server`, `reads` and `client`; `api`, `acl`, `catalog`, `register`, `render`,
//! `fault`, `duration` and `http`'s parsing are pure.

mod acl;
mod api;
mod catalog;
pub mod client;
mod duration;
mod fault;
mod http;
mod reads;
mod register;
mod render;
mod server;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use fault::Fault;
/// Percent-encodes a query value, for building URLs such as `?tag=a%20b`.
pub use http::percent_encode;
use server::{Shared, Side};

/// How to start a stand-in.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// `Node.Address` of the one node, used by clients when `Service.Address` is "".
    pub node_address: String,
    /// ACL tokens; `None` turns ACLs off (every token, even unknown, may read).
    pub tokens: Option<Acl>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            node_address: "127.0.0.1".to_string(),
            tokens: None,
        }
    }
}

/// ACL tokens the stand-in knows. With ACLs on, any other token gets
/// `403 ACL not found`, and no token at all reads as the anonymous token
/// (entries hidden, no filtered header: default-deny Consul).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    /// May read everything.
    pub full: Vec<String>,
    /// Valid but without `service:read`: lists come back filtered, with
    /// `X-Consul-Results-Filtered-By-ACLs: true` when something was hidden.
    pub no_read: Vec<String>,
}

/// One request the stand-in received (on the Consul API, not `/v1/_standin/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// As sent, still percent-encoded, e.g. `/v1/health/service/web?index=12&stale`.
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Decoded query parameters in order (`?stale` gives `("stale", "")`).
    pub fn query(&self) -> Vec<(String, String)> {
        http::split_target(&self.path_and_query).1
    }
}

/// A running stand-in. Dropping it closes its listeners and open connections.
pub struct Standin {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Standin {
    /// Starts on 127.0.0.1 with a free port, node address 127.0.0.1, no ACLs.
    pub fn start() -> Standin {
        Standin::start_with(Options::default())
    }

    /// Starts with the given options; panics if the address cannot be bound.
    pub fn start_with(opts: Options) -> Standin {
        let listen = opts.listen;
        Standin::try_start_with(opts)
            .unwrap_or_else(|e| panic!("consul-standin: cannot bind {listen}: {e}"))
    }

    /// `start_with`, returning the bind error instead of panicking.
    pub fn try_start_with(opts: Options) -> std::io::Result<Standin> {
        let listener = TcpListener::bind(opts.listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(addr, &opts));
        let accept = server::spawn_accept_loop(Arc::clone(&shared), listener, Side::Main);
        Ok(Standin {
            shared,
            threads: Mutex::new(vec![accept]),
        })
    }

    /// Adds a listener that serves only `/v1/_standin/*` and is never faulted,
    /// not even by `Fault::Refuse`, so a script can clear a refuse. Returns its
    /// bound address (`addr` may use port 0).
    pub fn start_control(&self, addr: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind(addr)
            .unwrap_or_else(|e| panic!("consul-standin: cannot bind control {addr}: {e}"));
        let bound = listener
            .local_addr()
            .expect("bound listener has an address");
        self.shared.add_control(bound);
        let t = server::spawn_accept_loop(Arc::clone(&self.shared), listener, Side::Control);
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(t);
        bound
    }

    /// The main listener's address (stable across `Fault::Refuse`).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT` (loopback even when listening on a wildcard).
    pub fn url(&self) -> String {
        format!("http://{}", server::loopback_of(self.shared.addr))
    }

    /// Registers a service instance like `PUT /v1/agent/service/register`.
    /// Panics on a body the agent would reject.
    pub fn register(&self, body: serde_json::Value) {
        let result = self.shared.write(|store| store.register(&body));
        if let Err(e) = result {
            panic!(
                "consul-standin: register rejected ({}): {}",
                e.status, e.message
            );
        }
    }

    /// Removes an instance and its checks; false if the ID was unknown.
    pub fn deregister(&self, id: &str) -> bool {
        self.shared.write(|store| store.deregister(id)).is_ok()
    }

    /// Sets a check's status (`passing`, `warning`, `critical`). Unlike the HTTP
    /// TTL endpoints this works on any check, `serfHealth` included (which marks
    /// every instance on the node). Panics on an unknown check or status.
    pub fn set_check(&self, check_id: &str, status: &str) {
        let result = self
            .shared
            .write(|store| store.update_check(check_id, status, None, false));
        if let Err(e) = result {
            panic!(
                "consul-standin: set_check({check_id}, {status}): {}",
                e.message
            );
        }
    }

    /// Service maintenance on or off (the `_service_maintenance:<id>` check).
    /// Panics on an unknown service ID.
    pub fn maintenance(&self, service_id: &str, enable: bool) {
        let result = self
            .shared
            .write(|store| store.service_maintenance(service_id, enable, ""));
        if let Err(e) = result {
            panic!("consul-standin: maintenance({service_id}): {}", e.message);
        }
    }

    /// Node maintenance on or off (the `_node_maintenance` check on every instance).
    pub fn node_maintenance(&self, enable: bool) {
        let _ = self.shared.write(|store| {
            store.node_maintenance(enable, "");
            Ok(())
        });
    }

    /// Moves the service's index on without changing anything else ("wake
    /// without change"): blocked readers return with a new index and the same list.
    pub fn bump_index(&self, service: &str) {
        let _ = self.shared.write(|store| {
            store.bump(service);
            Ok(())
        });
    }

    /// Switches the fault mode; see `Fault` for each mode. Returns once the mode is
    /// in force: for `Refuse`, after the port is closed; when leaving `Refuse`,
    /// after it is listening again.
    pub fn set_fault(&self, f: Fault) {
        server::set_fault(&self.shared, f);
    }

    /// The current fault mode.
    pub fn fault(&self) -> Fault {
        self.shared.lock().fault.clone()
    }

    /// The `X-Consul-Index` a health read of this service would carry now.
    pub fn index(&self, service: &str) -> u64 {
        self.shared.lock().store.index_of(service)
    }

    /// Every `/v1/health/...` request received so far, oldest first.
    pub fn health_requests(&self) -> Vec<Request> {
        let st = self.shared.lock();
        st.log.iter().filter(|r| is_health(r)).cloned().collect()
    }

    /// Every Consul API request received so far (not `/v1/_standin/*`).
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().log.iter().cloned().collect()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.lock().log.clear();
    }

    /// Waits until at least `n` health requests have arrived; false on timeout.
    pub fn wait_for_health_requests(&self, n: usize, timeout: Duration) -> bool {
        self.shared.wait_until(Instant::now() + timeout, |st| {
            st.log.iter().filter(|r| is_health(r)).count() >= n
        })
    }

    /// Reads currently parked in a blocking wait or a `Hang`.
    pub fn parked_reads(&self) -> usize {
        self.shared.lock().parked
    }

    /// Waits until at least `n` reads are parked, e.g. to know a client's blocking
    /// query has reached the server before changing the catalog; false on timeout.
    pub fn wait_for_parked_reads(&self, n: usize, timeout: Duration) -> bool {
        self.shared
            .wait_until(Instant::now() + timeout, |st| st.parked >= n)
    }
}

fn is_health(r: &Request) -> bool {
    r.path_and_query.starts_with("/v1/health/")
}

impl Drop for Standin {
    fn drop(&mut self) {
        server::shut_down(&self.shared);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Standin>();
        shareable::<Fault>();
    }

    #[test]
    fn wildcard_listen_addresses_are_reached_over_loopback() {
        // Checked without binding a wildcard: tests stay on loopback.
        let v4 = server::loopback_of("0.0.0.0:8500".parse().unwrap());
        let v6 = server::loopback_of("[::]:8500".parse().unwrap());
        let fixed = server::loopback_of("127.0.0.2:1".parse().unwrap());
        assert_eq!(
            (v4.to_string(), v6.to_string()),
            ("127.0.0.1:8500".into(), "[::1]:8500".into())
        );
        assert_eq!(fixed.to_string(), "127.0.0.2:1");
    }
}
