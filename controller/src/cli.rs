//! The command line: clap definitions only, with MaestroNG's flags.

use std::path::PathBuf;

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand, ValueHint};
use clap_complete::engine::ArgValueCandidates;

/// The command line of this process, or exits as clap does (usage, exit status 2).
pub fn parse() -> Cli {
    parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// Parses a command line. MaestroNG's `dump` and `complete`, which maestro does not
/// have, are refused with what to use instead (clap alone would only say they are
/// unknown).
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args).map_err(|e| {
        let instead = match e.get(ContextKind::InvalidSubcommand) {
            Some(ContextValue::String(s)) if s == "dump" => {
                "`dump` is MaestroNG's: `maestro config` shows the resolved environment \
                 (`maestro config --json` as JSON)"
            }
            Some(ContextValue::String(s)) if s == "complete" => {
                "`complete` is MaestroNG's completion helper: `maestro completions SHELL` \
                 prints a completion script (bash, zsh, fish...)"
            }
            _ => return e,
        };
        Cli::command().error(ErrorKind::InvalidSubcommand, instead)
    })
}

#[derive(Debug, Parser)]
#[command(
    name = "maestro",
    about = "Orchestrates Docker containers across many hosts from one environment file",
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
pub struct Cli {
    /// The environment file (a Jinja2 template of YAML); - reads standard input.
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        default_value = "maestro.yaml",
        value_name = "FILE",
        value_hint = ValueHint::FilePath
    )]
    pub file: PathBuf,

    /// Machine-readable output: JSON for `config`, `status`, `plan` (and `--dry-run`) and
    /// `lock`, one JSON event per line for plays; `logs` and `deptree` print text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Where containers send maestro-guest's readiness reports during start, restart and
    /// deploy:
    /// `auto` (the docker0 bridge for a local engine, the route's local address for a
    /// remote one), an IP address of this machine, or `off` (polling checks only).
    #[arg(
        long = "readiness-address",
        global = true,
        env = "MAESTRO_READINESS_ADDRESS",
        default_value = "auto",
        value_name = "IP|auto|off"
    )]
    pub readiness: crate::readiness::Listen,

    /// Serve the readiness handshake over TLS, with a certificate made for the play whose
    /// SHA-256 each container is given to pin (needs maestro-guest built with `tls`).
    #[arg(long = "readiness-tls", global = true, env = "MAESTRO_READINESS_TLS")]
    pub readiness_tls: bool,

    /// Print the version and exit.
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    pub version: Option<bool>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the state of each instance.
    Status {
        #[command(flatten)]
        select: Select,
        /// Also run each running instance's `running` checks once and probe each TCP port it
        /// publishes (up or down; the checks alone decide the exit status).
        #[arg(short = 'F', long)]
        full: bool,
        /// Show ship addresses instead of ship names.
        #[arg(short = 'H', long = "show-hosts")]
        show_hosts: bool,
    },
    /// Create and start instances, dependencies first.
    Start {
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        images: Images,
        /// Show what would be done to each instance, and why; touch nothing.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
    /// What `start` would do to each instance, and why (same as start --dry-run).
    #[command(
        mut_arg("max_unavailable", |a| a.requires("deploy")),
        mut_arg("min_ready", |a| a.requires("deploy"))
    )]
    Plan {
        #[command(flatten)]
        select: Select,
        /// Plan a restart instead.
        #[arg(long, conflicts_with = "deploy")]
        restart: bool,
        /// Plan a deploy instead: what is replaced, why, and in which batch.
        #[arg(long)]
        deploy: bool,
        #[command(flatten)]
        rollout: RolloutArgs,
        /// With --restart: leave instances whose definition did not change.
        #[arg(long = "only-if-changed", requires = "restart")]
        only_if_changed: bool,
    },
    /// Stop instances, dependents first.
    Stop {
        #[command(flatten)]
        select: Select,
    },
    /// Kill instances, dependents first.
    Kill {
        #[command(flatten)]
        select: Select,
    },
    /// Stop and start instances again.
    Restart {
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        images: Images,
        /// Seconds to wait between instances.
        #[arg(long = "step-delay", default_value_t = 0, value_name = "S")]
        step_delay: u64,
        /// Seconds to wait between stopping and starting an instance.
        #[arg(long = "stop-start-delay", default_value_t = 0, value_name = "S")]
        stop_start_delay: u64,
        /// Leave instances whose definition did not change.
        #[arg(long = "only-if-changed")]
        only_if_changed: bool,
        /// Show what would be done to each instance, and why; touch nothing.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
    /// Bring instances to what the file says with the least disruption: missing ones are
    /// created, changed ones (definition or image) replaced in rolling batches, each
    /// replacement ready before the next batch; a failed one is undone.
    Deploy {
        #[command(flatten)]
        select: Select,
        /// When to pull images (all of them, on every ship, before any container is
        /// touched).
        #[arg(long, value_enum, default_value_t = crate::play::images::PullPolicy::Missing, value_name = "WHEN")]
        pull: crate::play::images::PullPolicy,
        #[command(flatten)]
        rollout: RolloutArgs,
        /// Failed replacements tolerated (each one undone) before the deploy fails.
        #[arg(long = "max-failures", default_value_t = 0, value_name = "N")]
        max_failures: usize,
        /// Roll out again what a rollback rolled back from (otherwise such instances are
        /// held, and said so).
        #[arg(long = "rolled-back")]
        rolled_back: bool,
        /// Show the plan (what is replaced, why, the batches); touch nothing.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
    /// Return instances to the previous generation the last deploy kept (rolling, as
    /// deploy); the generation rolled back from is kept in turn.
    Rollback {
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        rollout: RolloutArgs,
    },
    /// Pull the instances' images (always: that is how a moving tag is refreshed).
    Pull {
        #[command(flatten)]
        select: Select,
        /// Accepted for MaestroNG's command lines: pull always pulls.
        #[arg(short = 'r', long = "refresh-images")]
        refresh_images: bool,
    },
    /// Remove stopped instances' containers.
    Clean {
        #[command(flatten)]
        select: Select,
        /// Remove the orphans instead: containers maestro created for this environment
        /// whose instance is no longer in the file or is now on another ship (a running one
        /// is stopped first, as Compose's --remove-orphans does). Takes no names; -S and -C
        /// narrow it.
        #[arg(long, conflicts_with = "things")]
        orphans: bool,
    },
    /// Show the output of instances.
    Logs {
        /// Instances or services.
        #[arg(add = ArgValueCandidates::new(crate::complete::things))]
        things: Vec<String>,
        /// Keep following the output until Ctrl-C, across restarts: when a container ends,
        /// the next one to start under the instance's name is followed.
        #[arg(short = 'F', long)]
        follow: bool,
        /// Only the last N lines (with -F: of the containers there at the start).
        #[arg(short = 'n', value_name = "N")]
        lines: Option<u64>,
        /// The output's bytes as they are, even on a terminal (by default, control
        /// characters a container writes are shown as escapes there, never obeyed).
        #[arg(long)]
        raw: bool,
    },
    /// Show the services' dependency trees.
    Deptree {
        /// Services or instances (default: every service).
        #[arg(add = ArgValueCandidates::new(crate::complete::things))]
        things: Vec<String>,
        /// Repeat dependencies already shown in a tree.
        #[arg(short = 'r', long)]
        recursive: bool,
    },
    /// Show the resolved environment: every instance with what it will be given.
    /// With --json, the contract of the conformance suite.
    Config,
    /// Show or remove the locks that keep two plays off the same ships at once.
    Lock {
        #[command(subcommand)]
        action: LockAction,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Which instances a play acts on, and how it orders them.
#[derive(Debug, Args)]
pub struct Select {
    /// Instances or services; none means every service not marked `omit` and what it depends
    /// on (status: every service).
    #[arg(add = ArgValueCandidates::new(crate::complete::things))]
    pub things: Vec<String>,
    /// Accept service names and act on all their instances (stop, kill and restart need
    /// it; the other commands always do).
    #[arg(short = 's', long = "expand-services")]
    pub expand_services: bool,
    /// With no names, act on every service not marked `omit` (stop, kill and restart need
    /// it to); implies -s.
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Only instances whose name matches this glob.
    #[arg(short = 'C', long = "container-filter", value_name = "PATTERN", add = ArgValueCandidates::new(crate::complete::instances))]
    pub container_filter: Option<String>,
    /// Only instances on ships whose name matches this glob.
    #[arg(short = 'S', long = "ship-filter", value_name = "PATTERN", add = ArgValueCandidates::new(crate::complete::ships))]
    pub ship_filter: Option<String>,
    /// At most N of the play's operations at once (0, the default: no limit of the play's
    /// own); each ship still runs at most its `max_operations` (default 16) at once.
    #[arg(short = 'c', long = "concurrency", value_name = "N")]
    pub concurrency: Option<usize>,
    /// Also act on what the named instances depend on (stop, kill and restart: on what
    /// depends on them).
    #[arg(short = 'd', long = "with-dependencies")]
    pub with_dependencies: bool,
    /// Ignore dependency order (and, with no names, add no `omit` service through
    /// dependencies).
    #[arg(short = 'i', long = "ignore-dependencies")]
    pub ignore_dependencies: bool,
}

/// How a rollout goes.
#[derive(Clone, Copy, Debug, Args)]
pub struct RolloutArgs {
    /// At most this many instances of a service out of service at once: a number, or a
    /// percentage of the service's instances (`25%`).
    #[arg(long = "max-unavailable", default_value = "1", value_name = "N|N%")]
    pub max_unavailable: maestro_core::plan::Unavailable,
    /// Seconds an instance with no check, readiness report or health check must stay
    /// running to count as ready.
    #[arg(long = "min-ready", default_value_t = 3.0, value_name = "S", value_parser = seconds)]
    pub min_ready: f64,
}

fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "{text:?} is not a number of seconds between 0 and 86400"
        )),
    }
}

#[derive(Debug, Args)]
pub struct Images {
    /// Pull images even when they are present.
    #[arg(short = 'r', long = "refresh-images", conflicts_with = "reuse")]
    pub refresh_images: bool,
    /// Restart the existing container instead of creating a new one.
    #[arg(long)]
    pub reuse: bool,
}

/// `maestro lock`: the lock a play that changes containers takes on each of its ships.
#[derive(Debug, Subcommand)]
pub enum LockAction {
    /// Show each ship's lock: free, or who holds it and whether they are still there.
    Status {
        /// Only ships whose name matches this glob.
        #[arg(short = 'S', long = "ship-filter", value_name = "PATTERN", add = ArgValueCandidates::new(crate::complete::ships))]
        ship_filter: Option<String>,
    },
    /// Remove locks left behind: stale ones, and your own whose process ended.
    Release {
        /// Only ships whose name matches this glob.
        #[arg(short = 'S', long = "ship-filter", value_name = "PATTERN", add = ArgValueCandidates::new(crate::complete::ships))]
        ship_filter: Option<String>,
        /// Remove any lock, even one whose play still runs.
        #[arg(long)]
        force: bool,
    },
}

#[cfg(test)]
mod maestrong_flags;
