//! The VM lab as cargo tests: the kernel-level proof of consul-ipvs.
//!
//! One boot of the lab VM (`vagrant/lab run tests/vm/suite.sh ...`) runs every
//! scenario under `tests/vm/scenarios/` in sequence; each prints a
//! `SCENARIO-RESULT: NAME PASS|FAIL` marker, and each `#[test]` here asserts
//! one of them and shows that scenario's part of the console on failure. The
//! boot happens once, in whichever test gets there first (a `OnceLock`), so
//! cargo's parallel test threads share it. A machine that cannot boot the VM
//! (no QEMU, no kernel) fails every test here with what is missing: the lab
//! is never skipped in silence.
//!
//! I/O: runs `cargo build --release` for the daemon and the Consul stand-in,
//! then `vagrant/lab`, which runs QEMU. The VM has no network card; every
//! address the scenarios use exists only inside it.
//!
//! `LAB_SCENARIOS="02-drain-on-deregistration 05-consul-faults"` boots with
//! only those (for working on one scenario); the others then fail, saying so.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

/// Every scenario, in boot order.
const SCENARIOS: &[&str] = &[
    "lab-selftest",
    "01-sync-from-consul",
    "02-drain-on-deregistration",
    "03-probe-failure-and-recovery",
    "04-restarts-and-reloads",
    "05-consul-faults",
    "06-drift-and-foreign-services",
    "07-ipv6-udp-dr-tun",
    "08-static-without-consul",
    "09-reload-removes-service",
    "10-dry-run",
];

/// What one boot reported.
struct SuiteRun {
    /// The whole console, for when a scenario left no marker at all.
    console: String,
    /// How the runner ended (exit status and time).
    ending: String,
    /// Scenario name -> (passed, verdict line, its part of the console).
    results: HashMap<String, (bool, String, String)>,
    /// The scenarios this boot was asked to run.
    selected: Vec<String>,
}

static SUITE: OnceLock<Result<SuiteRun, String>> = OnceLock::new();

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/` as this test binary was built into (honours CARGO_TARGET_DIR).
fn target_dir() -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_consul-ipvs"));
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo().join("target"))
}

fn lab() -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("vagrant/lab"));
    cmd
}

/// What the lab still lacks, as `vagrant/lab check` lists it.
fn missing() -> Result<String, String> {
    let out = lab()
        .arg("check")
        .output()
        .map_err(|e| format!("cannot run vagrant/lab: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Release builds of the daemon and the stand-in, as the VM runs them.
fn build_release(target: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", target)
        .args([
            "build",
            "--release",
            "-p",
            "consul-ipvs",
            "-p",
            "consul-standin",
        ])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build --release failed: {status}"))
    }
}

fn selected() -> Vec<String> {
    match std::env::var("LAB_SCENARIOS") {
        Ok(list) if !list.trim().is_empty() => list.split_whitespace().map(String::from).collect(),
        _ => SCENARIOS.iter().map(|s| s.to_string()).collect(),
    }
}

fn boot() -> Result<SuiteRun, String> {
    let lacking = missing()?;
    if !lacking.is_empty() {
        return Err(format!(
            "the VM lab cannot boot on this machine; missing:\n{lacking}\n\
             run `vagrant/lab setup` (Debian/Ubuntu) or install these by hand"
        ));
    }
    let target = target_dir();
    build_release(&target)?;
    let release = target.join("release");
    let selected = selected();
    let started = Instant::now();
    let mut child = lab()
        .arg("run")
        .arg(repo().join("tests/vm/suite.sh"))
        .args(&selected)
        .env("CONSUL_IPVS_BIN", release.join("consul-ipvs"))
        .env("CONSUL_STANDIN_BIN", release.join("consul-standin"))
        .env(
            "LAB_TIMEOUT",
            std::env::var("LAB_TIMEOUT").unwrap_or_else(|_| "840".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run vagrant/lab run: {e}"))?;
    let console = read_console(child.stdout.take());
    let status = child
        .wait()
        .map_err(|e| format!("waiting for vagrant/lab: {e}"))?;
    let ending = format!(
        "vagrant/lab exited {status} after {:.0}s",
        started.elapsed().as_secs_f64()
    );
    progress(&format!("VM lab: {ending}"));
    let results = parse(&console);
    Ok(SuiteRun {
        console,
        ending,
        results,
        selected,
    })
}

/// Collects the VM's console, showing each scenario's start and verdict as
/// it happens (the boot takes minutes).
fn read_console(stdout: Option<std::process::ChildStdout>) -> String {
    let mut console = String::new();
    let Some(stdout) = stdout else {
        return console;
    };
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line.starts_with("SCENARIO-") || line.starts_with("LAB-") {
            progress(&format!("VM lab: {line}"));
        }
        console.push_str(&line);
        console.push('\n');
    }
    console
}

/// Straight to stderr: the test harness captures `eprintln!`, not this.
fn progress(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Splits the console at `SCENARIO-BEGIN:` markers and reads each verdict.
fn parse(console: &str) -> HashMap<String, (bool, String, String)> {
    let mut results = HashMap::new();
    let mut current: Option<(String, String)> = None;
    for line in console.lines() {
        if let Some(name) = line.strip_prefix("SCENARIO-BEGIN: ") {
            current = Some((name.trim().to_string(), String::new()));
        }
        if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
        if let Some(verdict) = line.strip_prefix("SCENARIO-RESULT: ") {
            let mut words = verdict.split_whitespace();
            let name = words.next().unwrap_or_default().to_string();
            let passed = words.next() == Some("PASS");
            let text = match current.take() {
                Some((n, text)) if n == name => text,
                _ => String::new(),
            };
            results.insert(name, (passed, line.to_string(), text));
        }
    }
    results
}

fn assert_scenario(name: &str) {
    let run = match SUITE.get_or_init(boot) {
        Ok(run) => run,
        Err(why) => panic!("VM lab: {why}"),
    };
    if !run.selected.iter().any(|s| s == name) {
        panic!(
            "scenario {name} was not run: LAB_SCENARIOS selects {:?}",
            run.selected
        );
    }
    match run.results.get(name) {
        Some((true, verdict, text)) => println!("{text}\n{verdict}"),
        Some((false, verdict, text)) => panic!("{verdict}\n---- console of {name}:\n{text}"),
        None => panic!(
            "scenario {name} left no verdict ({})\n---- the whole console:\n{}",
            run.ending, run.console
        ),
    }
}

#[test]
fn lab_data_path_and_helpers_work_with_ipvsadm_by_hand() {
    assert_scenario("lab-selftest");
}

#[test]
fn vip_appears_with_the_backends_and_weights_consul_gives() {
    assert_scenario("01-sync-from-consul");
}

#[test]
fn deregistered_backend_drains_keeps_its_sessions_then_is_deleted() {
    assert_scenario("02-drain-on-deregistration");
}

#[test]
fn failed_probes_drain_a_backend_and_rise_brings_it_back() {
    assert_scenario("03-probe-failure-and-recovery");
}

#[test]
fn restarts_and_reloads_change_nothing_and_sessions_survive() {
    assert_scenario("04-restarts-and-reloads");
}

#[test]
fn consul_faults_leave_the_table_as_it_was() {
    assert_scenario("05-consul-faults");
}

#[test]
fn drift_is_repaired_and_foreign_services_are_never_touched() {
    assert_scenario("06-drift-and-foreign-services");
}

#[test]
fn ipv6_udp_dr_and_tun_services_are_programmed_as_configured() {
    assert_scenario("07-ipv6-udp-dr-tun");
}

#[test]
fn static_backends_work_without_consul() {
    assert_scenario("08-static-without-consul");
}

#[test]
fn reload_that_removes_a_service_drains_then_deletes_it() {
    assert_scenario("09-reload-removes-service");
}

#[test]
fn dry_run_prints_its_plan_and_writes_nothing() {
    assert_scenario("10-dry-run");
}

#[test]
fn every_scenario_file_has_a_test() {
    let dir = repo().join("tests/vm/scenarios");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/vm/scenarios")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".sh")
                .map(String::from)
        })
        .collect();
    files.sort();
    let mut known: Vec<String> = SCENARIOS.iter().map(|s| s.to_string()).collect();
    known.sort();
    assert_eq!(
        files, known,
        "tests/vm/scenarios and SCENARIOS in tests/vm_lab.rs differ"
    );
}
