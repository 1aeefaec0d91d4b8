//! The whole daemon loop over loopback: `--dry-run` (so no kernel and no
//! probes) against the Consul stand-in, driven through registration,
//! deregistration and drain, a Consul fault, SIGHUP and SIGTERM. The printed
//! `ipvsadm` lines are the witness. All addresses are loopback; dry-run sends
//! nothing to the backends.

use consul_standin::{Fault, Standin};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    lines: Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        Daemon::start_env(config, &[])
    }

    fn start_env(config: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_consul-ipvs"))
            .args(["--config", config.to_str().unwrap(), "--dry-run"])
            .env("RUST_LOG", "debug")
            .env_remove("CONSUL_HTTP_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("daemon starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("{l}");
                sink.lock().unwrap().push(l);
            }
        });
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Daemon { child, lines, log }
    }

    /// Waits until a log line contains `needle`; returns it.
    fn log_line(&self, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no log line with {needle:?} within {secs} s");
    }

    /// The next printed operation must be `want`, within `secs`.
    fn expect(&self, want: &str, secs: u64) {
        match self.lines.recv_timeout(Duration::from_secs(secs)) {
            Ok(l) => assert_eq!(l, want, "the daemon printed something else"),
            Err(_) => panic!("expected {want:?}, the daemon printed nothing for {secs} s"),
        }
    }

    /// Asserts that nothing is printed for `ms`.
    fn quiet(&self, ms: u64) {
        if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(ms)) {
            panic!("expected no operation, the daemon printed {l:?}");
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn wait_exit(&mut self, secs: u64) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("the daemon did not exit within {secs} s");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(consul: &str, services: &str) -> String {
    format!(
        r#"{{"consul": {{"address": "{consul}", "interval_ms": 100, "timeout_ms": 1000}},
            "resync_interval_ms": 500, "services": [{services}]}}"#
    )
}

const RABBIT: &str = r#"{"name": "rabbitmq", "vip": "127.0.0.100:5672", "consul": {"service": "rabbitmq", "tags": ["amqp"]},
                        "allowed_backends": ["127.0.0.0/8"]}"#;

fn register(s: &Standin, id: &str, addr: &str, weight: u32) {
    s.register(
        json!({"ID": id, "Name": "rabbitmq", "Address": addr, "Port": 5672,
                      "Tags": ["amqp"], "Weights": {"Passing": weight, "Warning": 1}}),
    );
}

fn write(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("consul-ipvs-loop-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("config.json");
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn follows_consul_drains_keeps_state_on_faults_and_reloads() {
    let s = Standin::start();
    register(&s, "r1", "127.0.0.11", 3);
    let path = write("main", &config(&s.url(), RABBIT));
    let mut d = Daemon::start(&path);
    d.expect("ipvsadm -A -t 127.0.0.100:5672 -s wlc", 10);
    d.expect(
        "ipvsadm -a -t 127.0.0.100:5672 -r 127.0.0.11:5672 -m -w 3",
        5,
    );
    d.quiet(700);

    register(&s, "r2", "127.0.0.12", 1);
    d.expect(
        "ipvsadm -a -t 127.0.0.100:5672 -r 127.0.0.12:5672 -m -w 1",
        5,
    );

    // Deregistration drains first; the (empty) dry-run table then lets it go.
    assert!(s.deregister("r1"));
    d.expect(
        "ipvsadm -e -t 127.0.0.100:5672 -r 127.0.0.11:5672 -m -w 0",
        5,
    );
    d.expect("ipvsadm -d -t 127.0.0.100:5672 -r 127.0.0.11:5672", 5);

    // Consul faults never change the table, even while the world changes.
    for fault in [
        Fault::Error500,
        Fault::Malformed,
        Fault::AclFiltered,
        Fault::Truncated,
    ] {
        s.set_fault(fault);
        s.deregister("r2");
        d.quiet(600);
        s.set_fault(Fault::None);
        register(&s, "r2", "127.0.0.12", 1);
        d.quiet(400);
    }

    // A reload that drops the service drains it and deletes it.
    std::fs::write(&path, config(&s.url(), "")).unwrap();
    d.signal(libc::SIGHUP);
    d.expect(
        "ipvsadm -e -t 127.0.0.100:5672 -r 127.0.0.12:5672 -m -w 0",
        5,
    );
    d.expect("ipvsadm -d -t 127.0.0.100:5672 -r 127.0.0.12:5672", 5);
    d.expect("ipvsadm -D -t 127.0.0.100:5672", 5);

    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5), Some(0));
}

#[test]
fn an_invalid_config_on_sighup_keeps_the_running_one() {
    let s = Standin::start();
    register(&s, "r1", "127.0.0.11", 2);
    let path = write("badreload", &config(&s.url(), RABBIT));
    let mut d = Daemon::start(&path);
    d.expect("ipvsadm -A -t 127.0.0.100:5672 -s wlc", 10);
    d.expect(
        "ipvsadm -a -t 127.0.0.100:5672 -r 127.0.0.11:5672 -m -w 2",
        5,
    );
    std::fs::write(&path, "{ not json").unwrap();
    d.signal(libc::SIGHUP);
    d.quiet(500);
    register(&s, "r2", "127.0.0.12", 1);
    d.expect(
        "ipvsadm -a -t 127.0.0.100:5672 -r 127.0.0.12:5672 -m -w 1",
        5,
    );
    d.signal(libc::SIGINT);
    assert_eq!(d.wait_exit(5), Some(0));
}

#[test]
fn nothing_is_changed_until_consul_first_answers() {
    let s = Standin::start();
    s.set_fault(Fault::Error500);
    register(&s, "r1", "127.0.0.11", 2);
    let path = write("noanswer", &config(&s.url(), RABBIT));
    let d = Daemon::start(&path);
    d.quiet(800);
    s.set_fault(Fault::None);
    d.expect("ipvsadm -A -t 127.0.0.100:5672 -s wlc", 10);
}

#[test]
fn instances_outside_allowed_backends_are_ignored() {
    let s = Standin::start();
    register(&s, "rogue", "127.0.1.1", 9);
    register(&s, "ok", "127.0.0.11", 1);
    let svc = RABBIT.replace("127.0.0.0/8", "127.0.0.0/24");
    let path = write("allowed", &config(&s.url(), &svc));
    let d = Daemon::start(&path);
    d.expect("ipvsadm -A -t 127.0.0.100:5672 -s wlc", 10);
    d.expect(
        "ipvsadm -a -t 127.0.0.100:5672 -r 127.0.0.11:5672 -m -w 1",
        5,
    );
    d.quiet(500);
}

#[test]
fn sigusr1_logs_the_state_and_the_token_never_shows() {
    let token = "tok-5f0c1a-secret";
    let opts = consul_standin::Options {
        tokens: Some(consul_standin::Acl {
            full: vec![token.into()],
            no_read: vec![],
        }),
        ..Default::default()
    };
    let s = Standin::start_with(opts);
    register(&s, "r1", "127.0.0.11", 2);
    let path = write("usr1", &config(&s.url(), RABBIT));
    let mut d = Daemon::start_env(&path, &[("CONSUL_HTTP_TOKEN", token)]);
    d.expect("ipvsadm -A -t 127.0.0.100:5672 -s wlc", 10);
    d.expect(
        "ipvsadm -a -t 127.0.0.100:5672 -r 127.0.0.11:5672 -m -w 2",
        5,
    );
    d.signal(libc::SIGUSR1);
    let state = d.log_line("state: {", 5);
    assert!(
        state.contains("127.0.0.11:5672") && state.contains("\"desired_weight\":2"),
        "{state}"
    );
    // A token Consul rejects produces errors; they must not echo it either.
    s.set_fault(Fault::Error500);
    d.log_line("HTTP 500", 5);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5), Some(0));
    let log = d.log.lock().unwrap().join("\n");
    assert!(!log.contains(token), "the token leaked into the log");
}
