//! Command-line arguments. Hand-written: four flags do not need a parser
//! crate on a router's static binary. Pure: takes the arguments, returns
//! what to do.

use std::ffi::OsString;
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: consul-ipvs [--config PATH] [--check] [--once] [--dry-run]
       consul-ipvs --help | --version

  --config PATH  configuration file (default /etc/consul-ipvs/config.json)
  --check        validate the configuration and exit (0 valid, 2 invalid)
  --once         read the sources once, run one round of probes, apply, exit
  --dry-run      never write to the kernel and never probe; print each
                 operation in ipvsadm syntax instead

Signals: SIGHUP reloads the configuration, SIGTERM/SIGINT exit and leave the
IPVS table as it is, SIGUSR1 logs the full state. Logging: RUST_LOG (default info).";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Version,
    Run(Args),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    pub config: PathBuf,
    pub check: bool,
    pub once: bool,
    pub dry_run: bool,
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut out = Args {
        config: PathBuf::from(crate::config::DEFAULT_PATH),
        check: false,
        once: false,
        dry_run: false,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let s = arg.to_string_lossy().into_owned();
        match s.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--check" => out.check = true,
            "--once" => out.once = true,
            "--dry-run" => out.dry_run = true,
            "--config" => {
                out.config = it
                    .next()
                    .map(PathBuf::from)
                    .ok_or("--config needs a path")?;
            }
            _ if s.starts_with("--config=") => out.config = PathBuf::from(&s["--config=".len()..]),
            _ => return Err(format!("unknown argument {s:?}")),
        }
    }
    Ok(Command::Run(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn defaults_and_flags() {
        let Ok(Command::Run(a)) = p(&[]) else {
            panic!()
        };
        assert_eq!(a.config, PathBuf::from("/etc/consul-ipvs/config.json"));
        assert!(!a.check && !a.once && !a.dry_run);
        let Ok(Command::Run(a)) = p(&["--config", "x.json", "--once", "--dry-run"]) else {
            panic!()
        };
        assert_eq!(
            (a.config, a.once, a.dry_run),
            (PathBuf::from("x.json"), true, true)
        );
        let Ok(Command::Run(a)) = p(&["--config=y.json", "--check"]) else {
            panic!()
        };
        assert_eq!((a.config, a.check), (PathBuf::from("y.json"), true));
    }

    #[test]
    fn help_version_and_mistakes() {
        assert_eq!(p(&["--help"]), Ok(Command::Help));
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert!(p(&["--config"]).unwrap_err().contains("needs a path"));
        assert!(p(&["--frobnicate"]).unwrap_err().contains("--frobnicate"));
    }
}
