//! The built binary, as the VM lab drives it: `serve` prints its addresses once
//! ready, and `req` registers, reads, flips faults and reports failures through
//! its exit code.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_consul-standin");

/// A `serve` process, killed on drop so a failing test leaves nothing behind.
struct Server {
    child: Child,
    main: String,
    control: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn consul-standin serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // `listening on ADDR[ control ADDR]`
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&words[..2], ["listening", "on"], "{line:?}");
    Server {
        main: words[2].to_string(),
        control: words.get(4).map(|s| s.to_string()),
        child,
    }
}

fn req(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("req")
        .args(args)
        .output()
        .expect("run consul-standin req")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn req_registers_reads_and_deregisters_against_serve() {
    let s = serve(&["--node-address", "192.0.2.50"]);
    let base = format!("http://{}", s.main);
    let body = r#"{"ID": "w1", "Name": "web", "Port": 8080, "Check": {"TTL": "10s", "Status": "passing"}}"#;
    assert!(
        req(&["PUT", &format!("{base}/v1/agent/service/register"), body])
            .status
            .success()
    );
    let out = req(&["GET", &format!("{base}/v1/health/service/web?passing")]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v[0]["Node"]["Address"], "192.0.2.50");
    assert_eq!(v[0]["Service"]["Port"], 8080);
    assert!(req(&[
        "PUT",
        &format!("{base}/v1/agent/check/fail/service:w1?note=down")
    ])
    .status
    .success());
    assert_eq!(
        stdout(&req(&[
            "GET",
            &format!("{base}/v1/health/service/web?passing")
        ])),
        "[]"
    );
    assert!(
        req(&["PUT", &format!("{base}/v1/agent/service/deregister/w1")])
            .status
            .success()
    );
    let again = req(&["PUT", &format!("{base}/v1/agent/service/deregister/w1")]);
    assert_eq!(again.status.code(), Some(1), "404 is a failure exit");
    assert!(stdout(&again).starts_with("Unknown service ID"));
}

#[test]
fn req_flips_faults_including_refuse_through_the_control_port() {
    let s = serve(&["--control", "127.0.0.1:0"]);
    let base = format!("http://{}", s.main);
    let control = format!(
        "http://{}",
        s.control.as_deref().expect("control address printed")
    );
    let health = format!("{base}/v1/health/service/web");
    assert!(
        req(&["PUT", &format!("{control}/v1/_standin/fault?mode=error500")])
            .status
            .success()
    );
    let failed = req(&["GET", &health]);
    assert_eq!(
        (failed.status.code(), stdout(&failed).as_str()),
        (Some(1), "No cluster leader")
    );
    assert!(
        req(&["PUT", &format!("{control}/v1/_standin/fault?mode=refuse")])
            .status
            .success()
    );
    let refused = req(&["GET", &health]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refused"),
        "{refused:?}"
    );
    assert!(
        req(&["PUT", &format!("{control}/v1/_standin/fault?mode=none")])
            .status
            .success()
    );
    assert!(
        req(&["GET", &health]).status.success(),
        "same port serves again"
    );
}

#[test]
fn serve_tokens_flags_turn_acls_on() {
    let s = serve(&["--tokens-full", "good", "--tokens-no-read", "weak"]);
    let health = format!("http://{}/v1/health/service/web", s.main);
    let denied = req(&["--header", "X-Consul-Token: bad", "GET", &health]);
    assert_eq!(
        (denied.status.code(), stdout(&denied).as_str()),
        (Some(1), "ACL not found")
    );
    assert!(req(&["--header", "X-Consul-Token: good", "GET", &health])
        .status
        .success());
    assert!(
        req(&["--header", "Authorization: Bearer weak", "GET", &health])
            .status
            .success()
    );
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(req(&["GET"]).status.code(), Some(2));
    let out = Command::new(BIN).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
