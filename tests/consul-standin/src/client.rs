//! A one-shot HTTP/1.1 client for driving the stand-in: the `req` subcommand
//! (busybox in the VM lab has no curl and its wget cannot PUT) and the stand-in's
//! own tests. Plain `http://` only, one request per connection, `Content-Length`
//! framing checked strictly so a cut body is an error, not a short success.
//! Does network I/O; meant for loopback.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
    }

    /// `X-Consul-Index` as a number.
    pub fn index(&self) -> Option<u64> {
        self.header("X-Consul-Index")?.parse().ok()
    }
}

/// Sends one request and reads the whole response, within `timeout` per read.
pub fn request(
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> io::Result<Reply> {
    let (addr, host, target) = split_url(url)?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || method == "PUT" || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    read_reply(&mut BufReader::new(stream))
}

/// `GET url` with a 10 s timeout.
pub fn get(url: &str) -> io::Result<Reply> {
    request("GET", url, None, &[], Duration::from_secs(10))
}

/// `PUT url` with an optional body and a 10 s timeout.
pub fn put(url: &str, body: Option<&[u8]>) -> io::Result<Reply> {
    request("PUT", url, body, &[], Duration::from_secs(10))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `http://host:port/path?q` → (socket address, Host header, request target).
fn split_url(url: &str) -> io::Result<(SocketAddr, String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid(format!("only http:// URLs are supported: {url}")))?;
    let (authority, target) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let with_port = match authority.rsplit_once(':') {
        Some((_, port)) if !port.contains(']') => authority.to_string(),
        _ => format!("{authority}:80"),
    };
    let addr = with_port
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("cannot resolve {authority}")))?;
    Ok((addr, authority.to_string(), target))
}

fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let status_line = read_line(r)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let body = read_body(r, &headers)?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads exactly `Content-Length` bytes (an early EOF is an error), or to EOF.
fn read_body(r: &mut impl BufRead, headers: &[(String, String)]) -> io::Result<Vec<u8>> {
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let mut body = Vec::new();
    match length {
        Some(n) => {
            r.take(n as u64).read_to_end(&mut body)?;
            if body.len() < n {
                let msg = format!("body cut short: {} of {n} bytes", body.len());
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
            }
        }
        None => {
            r.read_to_end(&mut body)?;
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let (addr, host, target) = split_url("http://127.0.0.1:8500/v1/x?a=b").unwrap();
        assert_eq!(addr, "127.0.0.1:8500".parse().unwrap());
        assert_eq!(
            (host.as_str(), target.as_str()),
            ("127.0.0.1:8500", "/v1/x?a=b")
        );
        let (addr, _, target) = split_url("http://[::1]:99").unwrap();
        assert_eq!((addr, target.as_str()), ("[::1]:99".parse().unwrap(), "/"));
        assert!(split_url("https://127.0.0.1/").is_err());
    }

    #[test]
    fn short_body_is_an_error() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        let err = read_reply(&mut &raw[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let ok = read_reply(&mut &b"HTTP/1.1 404 Not Found\r\nX-A: 1\r\n\r\nrest"[..]).unwrap();
        assert_eq!(
            (ok.status, ok.header("x-a"), ok.text().as_str()),
            (404, Some("1"), "rest")
        );
    }
}
