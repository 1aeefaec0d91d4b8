//! `consul-standin`: the stand-in as a process, for the VM lab and shell scripts.
//! `serve` runs a stand-in until the process is killed (SIGTERM/SIGINT keep their
//! default action, which ends it); `req` sends one HTTP request and prints the
//! body, because busybox has no curl and its wget cannot PUT. Thin: argument
//! parsing and exit codes only.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use consul_standin::{client, Acl, Options, Standin};

const USAGE: &str = "usage:
  consul-standin serve [--listen ADDR] [--control ADDR] [--node-address IP]
                       [--tokens-full a,b] [--tokens-no-read c,d]
  consul-standin req [--timeout-ms N] [--header 'K: V']... METHOD URL [BODY | -]

serve: listens on ADDR (default 127.0.0.1:8500) and prints one line
  `listening on ADDR` (plus ` control ADDR` with --control) when ready.
  --control ADDR adds a listener serving only /v1/_standin/* that is never
  faulted, so `mode=refuse` can be cleared through it.
req: prints the response body; exit 0 on 2xx, 1 otherwise or on a transport
  error, 2 on bad usage. BODY `-` reads the body from stdin.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("req") => req(&args[1..]),
        _ => Err(String::new()),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("consul-standin: {msg}");
            }
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Pairs `--flag value` into (flag, value); every flag here takes a value.
fn flag_pairs(args: &[String]) -> Result<Vec<(&str, &str)>, String> {
    args.chunks(2)
        .map(|pair| match pair {
            [flag, value] if flag.starts_with("--") => Ok((flag.as_str(), value.as_str())),
            _ => Err(format!("expected --flag VALUE, got {pair:?}")),
        })
        .collect()
}

fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| format!("not an address: {text}"))
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn serve(args: &[String]) -> Result<ExitCode, String> {
    let mut opts = Options {
        listen: parse_addr("127.0.0.1:8500")?,
        ..Options::default()
    };
    let mut control = None;
    let mut acl = Acl::default();
    for (flag, value) in flag_pairs(args)? {
        match flag {
            "--listen" => opts.listen = parse_addr(value)?,
            "--control" => control = Some(parse_addr(value)?),
            "--node-address" => opts.node_address = value.to_string(),
            "--tokens-full" => acl.full = list(value),
            "--tokens-no-read" => acl.no_read = list(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if !acl.full.is_empty() || !acl.no_read.is_empty() {
        opts.tokens = Some(acl);
    }
    let listen = opts.listen;
    let standin = match Standin::try_start_with(opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("consul-standin: cannot listen on {listen}: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut line = format!("listening on {}", standin.addr());
    if let Some(addr) = control {
        line.push_str(&format!(" control {}", standin.start_control(addr)));
    }
    println!("{line}");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}

fn req(args: &[String]) -> Result<ExitCode, String> {
    let (timeout, headers, rest) = req_flags(args)?;
    let (method, url, body) = match rest {
        [m, u] => (m, u, None),
        [m, u, b] => (m, u, Some(body_arg(b)?)),
        _ => return Err("req needs METHOD URL [BODY]".into()),
    };
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    match client::request(method, url, body.as_deref(), &headers, timeout) {
        Ok(reply) => {
            let _ = std::io::stdout().write_all(&reply.body);
            let _ = std::io::stdout().flush();
            let success = (200..300).contains(&reply.status);
            Ok(ExitCode::from(if success { 0 } else { 1 }))
        }
        Err(e) => {
            eprintln!("consul-standin: {method} {url}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

type Headers = Vec<(String, String)>;

/// Leading `--timeout-ms N` and `--header 'K: V'` flags; returns the rest.
fn req_flags(args: &[String]) -> Result<(Duration, Headers, &[String]), String> {
    // Longer than Consul's longest blocking wait (10m + 10m/16).
    let mut timeout = Duration::from_secs(660);
    let mut headers = Vec::new();
    let mut rest = args;
    while let [flag, value, tail @ ..] = rest {
        match flag.as_str() {
            "--timeout-ms" => {
                let ms = value
                    .parse()
                    .map_err(|_| format!("bad --timeout-ms {value}"))?;
                timeout = Duration::from_millis(ms);
            }
            "--header" => {
                let (k, v) = value
                    .split_once(':')
                    .ok_or_else(|| format!("bad --header {value:?}"))?;
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            _ => break,
        }
        rest = tail;
    }
    Ok((timeout, headers, rest))
}

fn body_arg(arg: &str) -> Result<Vec<u8>, String> {
    if arg != "-" {
        return Ok(arg.as_bytes().to_vec());
    }
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .map_err(|e| format!("reading stdin: {e}"))?;
    Ok(body)
}
