//! The binary's contract from the outside: exit codes, `--check`, the
//! missing-IPVS error, and `--once --dry-run` output. Runs on a machine
//! without IPVS; sends nothing anywhere but loopback.

use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_consul-ipvs"));
    c.env_remove("CONSUL_HTTP_ADDR")
        .env_remove("CONSUL_HTTP_TOKEN")
        .env("RUST_LOG", "info");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write_tmp(name: &str, body: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("consul-ipvs-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn check_accepts_the_shipped_examples() {
    for f in ["conf/static.json", "conf/consul.json"] {
        let out = run(&["--config", f, "--check"]);
        assert_eq!(out.status.code(), Some(0), "{f}: {}", text(&out.stderr));
    }
}

#[test]
fn check_prints_every_problem_naming_its_key_and_exits_2() {
    let p = write_tmp(
        "bad.json",
        r#"{"services": [{"name": "a", "vip": "192.0.2.1:80", "backends": [], "protocol": "sctp", "colour": 1}]}"#,
    );
    let out = run(&["--config", p.to_str().unwrap(), "--check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("services[0].protocol"), "{err}");
    assert!(err.contains("services[0].colour: unknown key"), "{err}");
}

#[test]
fn missing_config_and_bad_arguments_exit_2() {
    let out = run(&["--config", "/nonexistent/consul-ipvs.json", "--check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/consul-ipvs.json"));
    let out = run(&["--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("usage:"));
}

#[test]
fn help_and_version_exit_0() {
    assert!(text(&run(&["--help"]).stdout).contains("--dry-run"));
    assert!(text(&run(&["--version"]).stdout).starts_with("consul-ipvs "));
}

#[test]
fn once_dry_run_prints_the_plan_for_the_static_example() {
    let out = run(&["--config", "conf/static.json", "--once", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let golden = std::fs::read_to_string(Path::new("tests/golden/static-dry-run.txt")).unwrap();
    assert_eq!(text(&out.stdout), golden);
}

/// This machine's kernel has no IPVS (the lab VM has): the daemon must say
/// so in one line with the hint, and exit 1.
#[test]
fn a_kernel_without_ipvs_is_a_one_line_error_with_the_modprobe_hint() {
    if Path::new("/proc/net/ip_vs").exists() {
        eprintln!("this kernel has IPVS; the VM lab covers the real path");
        return;
    }
    let out = run(&["--config", "conf/static.json", "--once"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("modprobe ip_vs"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
