//! Just enough HTTP/1.1 for the stand-in: reads one request (request line, headers,
//! a `Content-Length` body) from a buffered stream and writes one response with an
//! honest `Content-Length`. Query strings are decoded the way Go's `url.ParseQuery`
//! does (`+` is a space, `%XX` escapes), because Consul parses them with it.
//! I/O only on the stream handed in; everything else here is pure.

use std::io::{self, BufRead, Read, Write};

/// Longest request line or header line we accept; Consul requests are tiny.
const MAX_LINE: u64 = 16 * 1024;
/// Most header lines per request.
const MAX_HEADERS: usize = 100;
/// Largest request body (registrations are a few hundred bytes).
const MAX_BODY: usize = 1024 * 1024;

/// One parsed request.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    /// The raw request target, e.g. `/v1/health/service/web?index=3`.
    pub target: String,
    /// The percent-decoded path without the query.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// False for HTTP/1.0 or `Connection: close`.
    pub keep_alive: bool,
}

impl HttpRequest {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// First value of a query parameter (Go's `query.Get`).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable query parameter, in order.
    pub fn params<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the parameter is present at all, with or without a value
    /// (Consul tests flags such as `?stale` by presence).
    pub fn has_param(&self, key: &str) -> bool {
        self.query.iter().any(|(k, _)| k == key)
    }
}

/// Reads one request. `Ok(None)` means the peer closed cleanly between requests.
pub fn read_request(r: &mut impl BufRead) -> io::Result<Option<HttpRequest>> {
    let Some(line) = read_line(r)? else {
        return Ok(None);
    };
    let (method, target, version) = parse_request_line(&line)?;
    let headers = read_headers(r)?;
    let body = read_body(r, &headers)?;
    let (path, query) = split_target(&target);
    let keep_alive = wants_keep_alive(&version, &headers);
    Ok(Some(HttpRequest {
        method,
        target,
        path,
        query,
        headers,
        body,
        keep_alive,
    }))
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// One CRLF- (or LF-) terminated line without its terminator; `None` at EOF.
fn read_line(r: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r.take(MAX_LINE).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(bad("header line too long or truncated"));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| bad("non-UTF-8 header"))
}

fn parse_request_line(line: &str) -> io::Result<(String, String, String)> {
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if !m.is_empty() && v.starts_with("HTTP/1.") => {
            Ok((m.to_string(), t.to_string(), v.to_string()))
        }
        _ => Err(bad("malformed request line")),
    }
}

fn read_headers(r: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?.ok_or_else(|| bad("EOF inside headers"))?;
        if line.is_empty() {
            return Ok(headers);
        }
        if headers.len() == MAX_HEADERS {
            return Err(bad("too many headers"));
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad("header without colon"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
}

fn read_body(r: &mut impl BufRead, headers: &[(String, String)]) -> io::Result<Vec<u8>> {
    let find = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name));
    if find("Transfer-Encoding").is_some() {
        // Neither minreq nor our own `req` client sends chunked bodies.
        return Err(bad("chunked request bodies are not supported"));
    }
    let len = match find("Content-Length") {
        None => 0,
        Some((_, v)) => v.parse::<usize>().map_err(|_| bad("bad Content-Length"))?,
    };
    if len > MAX_BODY {
        return Err(bad("request body too large"));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

fn wants_keep_alive(version: &str, headers: &[(String, String)]) -> bool {
    let connection = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Connection"))
        .map(|(_, v)| v.to_ascii_lowercase());
    match connection.as_deref() {
        Some("close") => false,
        Some("keep-alive") => true,
        _ => version == "HTTP/1.1",
    }
}

/// Splits a target into its decoded path and decoded query pairs.
pub fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    (percent_decode(path, false), parse_query(query))
}

/// Go's `url.ParseQuery`: `&`-separated, `key` alone means an empty value.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as space in query components). Invalid escapes
/// are kept literally rather than rejected: the stand-in should be forgiving input.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if escaped(bytes, i).is_some() => {
                out.extend(escaped(bytes, i));
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The byte a `%XX` escape starting at `i` stands for, if it is one.
fn escaped(bytes: &[u8], i: usize) -> Option<u8> {
    let pair = bytes.get(i + 1..i + 3)?;
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    Some(digit(pair[0])? * 16 + digit(pair[1])?)
}

/// Encodes a query component for the URLs the stand-in builds for itself.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One response to write. Bodies are always sent with an explicit `Content-Length`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A plain-text answer, the way Consul sends its errors (agent/http.go `wrap`).
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// A JSON answer (Consul marshals minified unless `?pretty`).
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body,
        }
    }

    /// The empty 200 that agent writes answer with: no Content-Type at all.
    pub fn empty() -> Response {
        Response {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

/// Writes the status line and headers, announcing `content_length` body bytes
/// (which the caller may then choose not to deliver in full, for fault injection).
pub fn write_head(
    w: &mut impl Write,
    resp: &Response,
    content_length: usize,
    close: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {content_length}\r\n"));
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())
}

/// Writes a whole response.
pub fn write_response(w: &mut impl Write, resp: &Response, close: bool) -> io::Result<()> {
    write_head(w, resp, resp.body.len(), close)?;
    w.write_all(&resp.body)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> HttpRequest {
        read_request(&mut raw.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn parses_request_line_headers_and_query() {
        let r = parse(
            "GET /v1/health/service/web?tag=a&tag=B&passing HTTP/1.1\r\nX-Consul-Token: t\r\n\r\n",
        );
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/v1/health/service/web");
        assert_eq!(r.params("tag").collect::<Vec<_>>(), ["a", "B"]);
        assert!(r.has_param("passing"));
        assert_eq!(r.param("passing"), Some(""));
        assert_eq!(r.header("x-consul-token"), Some("t"));
        assert!(r.keep_alive);
    }

    #[test]
    fn reads_content_length_body() {
        let r = parse("PUT /x HTTP/1.1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nabcdEXTRA");
        assert_eq!(r.body, b"abcd");
        assert!(!r.keep_alive);
    }

    #[test]
    fn http10_defaults_to_close() {
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").keep_alive);
    }

    #[test]
    fn clean_eof_is_none_and_garbage_is_an_error() {
        assert!(read_request(&mut &b""[..]).unwrap().is_none());
        assert!(read_request(&mut &b"NONSENSE\r\n\r\n"[..]).is_err());
        assert!(read_request(&mut &b"GET / HTTP/1.1\r\nno-colon\r\n\r\n"[..]).is_err());
    }

    #[test]
    fn decodes_like_go_parse_query() {
        let q = parse_query("a=x+y&b=%2Fz%zz&c");
        assert_eq!(q[0], ("a".into(), "x y".into()));
        assert_eq!(q[1], ("b".into(), "/z%zz".into()));
        assert_eq!(q[2], ("c".into(), "".into()));
        assert_eq!(percent_decode("/v1/a+b%20c", false), "/v1/a+b c");
    }

    #[test]
    fn encode_round_trips() {
        let s = "a b&c=d/é";
        assert_eq!(percent_decode(&percent_encode(s), true), s);
    }

    #[test]
    fn writes_honest_content_length() {
        let mut out = Vec::new();
        write_response(&mut out, &Response::text(404, "nope"), true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Content-Length: 4\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nnope"));
    }
}
