//! The Consul HTTP fetch: the only file in `consul/` that does I/O.
//!
//! Input: the [`ConsulConfig`] (address, token, datacenter, timeout) and a
//! Consul service name with tags; output: the raw body of
//! `GET /v1/health/service/<name>` with the headers we act on, or a
//! [`FetchError`] with context. Parsing and deciding happen elsewhere
//! (`parse.rs`, `poll.rs`).
//!
//! Each call is one plain, non-blocking read (no `?index=`): the daemon runs a
//! single event loop and minreq blocks, so an open-ended blocking query would
//! stall every probe and timer. The whole request, body included, is bounded
//! by `consul.timeout`, and the body by a size cap.
//!
//! minreq 3 facts this relies on (read from its source, `connection.rs`): the
//! timeout is one absolute deadline set when the request starts; connect,
//! write and every header and body read get the time that is left. To bound
//! the head phase it runs that phase on a short-lived helper thread per request
//! and gives up waiting at the deadline; the helper's own socket deadlines end
//! it soon after. A hostname in `consul.address` is resolved without a
//! deadline on that helper thread only; the loop still returns on time.

use crate::config::{ConsulConfig, Secret};
use std::fmt;
use std::io::{self, Read};
use std::time::Duration;

/// Largest body we accept. A health answer is about 1–2 KiB per instance, so
/// this allows several thousand instances while bounding memory.
pub const MAX_BODY: usize = 16 << 20;

/// How much of an error body is kept for the message.
const ERROR_BODY_CHARS: usize = 200;

/// What a successful (HTTP 200) read returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// `X-Consul-Index`, if present and a number.
    pub index: Option<u64>,
    /// `X-Consul-Results-Filtered-By-ACLs: true`: the token could not see
    /// everything, so the list may be incomplete or empty.
    pub filtered_by_acls: bool,
    pub body: Vec<u8>,
}

/// Why a fetch gave no usable answer. `Display` never shows the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// No TCP connection (refused, unreachable, name not resolved).
    Connect { address: String, error: String },
    /// No complete answer within the timeout (connect, headers and body together).
    Timeout { after: Duration },
    /// The connection broke or the HTTP was malformed (closed mid-body, …).
    Io { error: String },
    /// Any status other than 200, with the start of Consul's plain-text reason.
    Status { code: u16, body: String },
    /// The body is larger than the cap; it was not read into memory.
    TooLarge { limit: usize },
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Connect { address, error } => {
                write!(f, "cannot connect to {address}: {error}")
            }
            FetchError::Timeout { after } => {
                write!(f, "no complete answer within {}s", after.as_secs())
            }
            FetchError::Io { error } => write!(f, "read failed: {error}"),
            FetchError::Status { code, body } if body.is_empty() => write!(f, "HTTP {code}"),
            FetchError::Status { code, body } => write!(f, "HTTP {code}: {body}"),
            FetchError::TooLarge { limit } => {
                write!(f, "answer is larger than {limit} bytes; not read")
            }
        }
    }
}

impl std::error::Error for FetchError {}

/// A client for one Consul agent; cheap to keep, holds no connection.
#[derive(Clone, Debug)]
pub struct ConsulClient {
    address: String,
    token: Option<Secret>,
    datacenter: Option<String>,
    timeout: Duration,
    max_body: usize,
}

impl ConsulClient {
    pub fn new(cfg: &ConsulConfig) -> ConsulClient {
        ConsulClient {
            address: cfg.address.trim_end_matches('/').to_string(),
            token: cfg.token.clone(),
            datacenter: cfg.datacenter.clone(),
            timeout: whole_seconds(cfg.timeout),
            max_body: MAX_BODY,
        }
    }

    /// Lowers (or raises) the body cap; for tests and tuning.
    pub fn with_max_body(mut self, limit: usize) -> ConsulClient {
        self.max_body = limit;
        self
    }

    /// The timeout actually applied: `consul.timeout` rounded up to whole seconds.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One read of `/v1/health/service/<service>`. Blocks for at most
    /// [`ConsulClient::timeout`] (plus scheduling slack).
    pub fn fetch(&self, service: &str, tags: &[String]) -> Result<Response, FetchError> {
        let url = health_url(&self.address, service, tags, self.datacenter.as_deref());
        let mut req = minreq::get(url)
            .with_timeout(self.timeout.as_secs())
            // Consul never redirects; following one would carry the token to
            // whatever host the Location names.
            .with_follow_redirects(false)
            .with_header(
                "User-Agent",
                concat!("consul-ipvs/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(token) = &self.token {
            req = req.with_header("X-Consul-Token", self.header_token(token)?);
        }
        let resp = req.send_lazy().map_err(|e| self.classify(e))?;
        if resp.status_code != 200 {
            return Err(self.status_error(resp));
        }
        let index = header(&resp.headers, "X-Consul-Index").and_then(|v| v.parse().ok());
        let filtered_by_acls = header(&resp.headers, "X-Consul-Results-Filtered-By-ACLs")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let body = self.read_body(resp)?;
        Ok(Response {
            index,
            filtered_by_acls,
            body,
        })
    }

    /// The token as a header value; a line break in it would let it inject
    /// headers, so it is refused (without echoing it).
    fn header_token<'a>(&self, token: &'a Secret) -> Result<&'a str, FetchError> {
        if token.0.bytes().any(|b| b.is_ascii_control()) {
            return Err(FetchError::Io {
                error: "the ACL token contains control characters; not sent".into(),
            });
        }
        Ok(&token.0)
    }

    /// Reads the body up to the cap. minreq's `send_lazy` hands us the socket
    /// after the headers, so a declared `Content-Length` over the cap is
    /// refused unread, and chunked or close-delimited bodies are read through
    /// `take(cap + 1)`: memory never exceeds the cap. minreq's `ContentLength`
    /// reader reports a connection closed early as a normal end, so a short
    /// body is detected here by comparing with the declared length. Two cuts
    /// minreq hides from us entirely (mid-chunk, and EOF inside the headers,
    /// which it reads as their end) yield a partial body; a JSON array cut
    /// short never parses, so `parse.rs` rejects those.
    fn read_body(&self, mut resp: minreq::ResponseLazy) -> Result<Vec<u8>, FetchError> {
        // As minreq does (RFC 9112 §6.3), chunked framing wins over a length.
        let chunked = header(&resp.headers, "Transfer-Encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let declared = header(&resp.headers, "Content-Length")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|_| !chunked);
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(FetchError::TooLarge {
                limit: self.max_body,
            });
        }
        let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
        (&mut resp)
            .take(self.max_body as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| self.io_error(e))?;
        if body.len() > self.max_body {
            return Err(FetchError::TooLarge {
                limit: self.max_body,
            });
        }
        match declared {
            Some(n) if n != body.len() as u64 => Err(FetchError::Io {
                error: format!("body ended after {} of {n} bytes", body.len()),
            }),
            _ => Ok(body),
        }
    }

    /// A non-200 answer: keep the trimmed start of Consul's plain-text reason.
    fn status_error(&self, resp: minreq::ResponseLazy) -> FetchError {
        let code = resp.status_code;
        let mut raw = Vec::new();
        // Best effort: the status is the error; a broken body only loses detail.
        let _ = resp.take(4 * ERROR_BODY_CHARS as u64).read_to_end(&mut raw);
        FetchError::Status {
            code,
            body: self.redact(&short_text(&raw)),
        }
    }

    fn classify(&self, e: minreq::Error) -> FetchError {
        match e {
            minreq::Error::IoError(io) => self.io_error(io),
            minreq::Error::AddressNotFound => FetchError::Connect {
                address: self.address.clone(),
                error: e.to_string(),
            },
            other => FetchError::Io {
                error: self.redact(&other.to_string()),
            },
        }
    }

    fn io_error(&self, e: io::Error) -> FetchError {
        use io::ErrorKind::*;
        match e.kind() {
            TimedOut | WouldBlock => FetchError::Timeout {
                after: self.timeout,
            },
            ConnectionRefused | NotFound | AddrNotAvailable | HostUnreachable
            | NetworkUnreachable => FetchError::Connect {
                address: self.address.clone(),
                error: e.to_string(),
            },
            _ => FetchError::Io {
                error: self.redact(&e.to_string()),
            },
        }
    }

    /// Belt and braces: text that came from the wire or a library never
    /// carries the token into a log line, even if a proxy echoed it.
    fn redact(&self, text: &str) -> String {
        match &self.token {
            Some(t) if !t.0.is_empty() => text.replace(&t.0, "<redacted>"),
            _ => text.to_string(),
        }
    }
}

/// minreq 3 takes its timeout in whole seconds (`Request::with_timeout(u64)`)
/// and applies it as one deadline for connect, headers and every body read.
/// We round up, so a configured 1500 ms waits 2 s, never less than asked; and
/// never 0, which would time out at once.
fn whole_seconds(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

/// `<base>/v1/health/service/<service>?stale[&tag=…][&dc=…]`, every part
/// percent-encoded (minreq 3 without its `urlencoding` feature sends what it is given).
///
/// `stale` lets any Consul server answer instead of only the leader: the
/// reference's recommendation (§3.4) and Prometheus's default. We poll every
/// second or so from every load balancer, and during a leader election a
/// default-mode read fails with 500 `No cluster leader`, which would freeze our
/// table anyway; a stale answer is typically within ~50 ms of the leader.
pub fn health_url(base: &str, service: &str, tags: &[String], dc: Option<&str>) -> String {
    let mut url = format!("{base}/v1/health/service/{}?stale", encode(service));
    for tag in tags {
        url.push_str("&tag=");
        url.push_str(&encode(tag));
    }
    if let Some(dc) = dc {
        url.push_str("&dc=");
        url.push_str(&encode(dc));
    }
    url
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// First header named `name` (HTTP names are case-insensitive).
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Lossy text, whitespace trimmed, cut to [`ERROR_BODY_CHARS`] characters.
fn short_text(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    match text.char_indices().nth(ERROR_BODY_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_has_stale_and_encoded_tags_and_dc() {
        assert_eq!(
            health_url(
                "http://127.0.0.1:8500",
                "rabbit mq/x",
                &["amqp".into(), "a&b=c".into()],
                Some("dc 1")
            ),
            "http://127.0.0.1:8500/v1/health/service/rabbit%20mq%2Fx?stale&tag=amqp&tag=a%26b%3Dc&dc=dc%201"
        );
        assert_eq!(
            health_url("http://c:8500", "web", &[], None),
            "http://c:8500/v1/health/service/web?stale"
        );
    }

    #[test]
    fn encode_handles_utf8_bytes() {
        assert_eq!(encode("ä~-._"), "%C3%A4~-._");
    }

    #[test]
    fn timeout_rounds_up_to_whole_seconds_and_at_least_one() {
        let cases = [(1, 1), (999, 1), (1000, 1), (1001, 2), (2000, 2), (2500, 3)];
        for (ms, s) in cases {
            assert_eq!(
                whole_seconds(Duration::from_millis(ms)),
                Duration::from_secs(s),
                "{ms} ms"
            );
        }
    }

    #[test]
    fn short_text_trims_and_caps_on_a_char_boundary() {
        assert_eq!(short_text(b"  No cluster leader\n"), "No cluster leader");
        let long = "é".repeat(300);
        let s = short_text(long.as_bytes());
        assert_eq!(s.chars().count(), ERROR_BODY_CHARS + 1);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn header_lookup_ignores_case() {
        let h = vec![("x-consul-index".to_string(), " 42 ".to_string())];
        assert_eq!(header(&h, "X-Consul-Index"), Some("42"));
        assert_eq!(header(&h, "X-Consul-KnownLeader"), None);
    }
}
