//! The `consul-ipvs` binary: arguments, logger, config, run, exit code.
//! Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.

use consul_ipvs::cli::{self, Command, USAGE};
use consul_ipvs::{config, daemon};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(a)) => a,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("consul-ipvs {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("consul-ipvs: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cfg = match config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("consul-ipvs: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!(
            "{}: valid ({} services)",
            args.config.display(),
            cfg.services.len()
        );
        return ExitCode::SUCCESS;
    }
    let opts = daemon::Options {
        config_path: args.config,
        once: args.once,
        dry_run: args.dry_run,
    };
    ExitCode::from(daemon::run(cfg, opts) as u8)
}
