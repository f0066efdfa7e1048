//! The command line (clap): `agent` runs the daemon; every other command talks to a running
//! agent through its local API. Exit codes: 0 success, 1 a failure the command reports,
//! 2 bad usage (clap).

mod beacon_commands;
mod commands;
mod grid_commands;
mod grid_output;
mod history_output;
mod incidents_output;
mod introspection_commands;
mod leader_output;
mod local_commands;
mod members_output;
mod notify_output;
mod packaging;
mod setting_flags;
mod table;
mod team_commands;
mod teams_output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// rover-agent: every machine watches the others; one message per incident.
#[derive(Debug, Parser)]
#[command(name = "rover-agent", version, about, propagate_version = true)]
pub struct Cli {
    /// Local API of the agent to talk to (or to serve, for `agent`) [env: ROVER_API]
    #[arg(long, global = true, value_name = "ADDR")]
    pub api: Option<String>,
    /// Output format of read commands.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Data dir of the agent (its token authorizes changes) [env: ROVER_DATA_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Text,
    /// JSON.
    Json,
    /// Graphviz dot (`topology` only).
    Dot,
}

/// Member statuses accepted by `members --status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFilter {
    /// Answering probes.
    Alive,
    /// Missed a probe.
    Suspect,
    /// Declared down.
    Failed,
    /// Left on purpose.
    Left,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent in the foreground.
    Agent(AgentArgs),
    /// Ask the running agent to join a cluster through one or more seeds (host:port), or
    /// with an invitation token from `rover-agent invite`.
    Join {
        /// Seeds, as host:port (port 7900 if omitted), or one invitation token.
        #[arg(required = true, value_name = "SEED|TOKEN")]
        seeds: Vec<String>,
    },
    /// List the members of the cluster.
    Members {
        /// Only members with this status.
        #[arg(long, value_enum)]
        status: Option<StatusFilter>,
        /// Only members with this tag (repeatable: all must match).
        #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag_filter)]
        tags: Vec<(String, String)>,
        /// Ask a member from outside the cluster.
        #[command(flatten)]
        via: introspection_commands::ViaArgs,
    },
    /// Leave the cluster gracefully; the agent then exits.
    Leave,
    /// Mark a failed member left on every agent (a host retired for good): no more DOWN
    /// reminders, its incident resolved. It rejoins as usual if it starts again.
    ForceLeave {
        /// The failed member's node name.
        name: String,
    },
    /// Make the agent re-read its config file (like SIGHUP) and apply what can change live:
    /// checks, notification channels, notify.group_wait, notify.repeat_interval, log.level.
    /// Lists what was applied and what needs a restart; exit 1 if the file is refused.
    Reload,
    /// Node, team, cluster, leader, member counts, key fingerprints, counters and event counts.
    Info {
        /// Ask a member from outside the cluster.
        #[command(flatten)]
        via: introspection_commands::ViaArgs,
    },
    /// The cluster events this agent saw (joins, downs, reboots, leader changes...), oldest
    /// first.
    Events {
        /// Only events this recent, e.g. 10m, 2h (default: every event kept).
        #[arg(long, value_name = "DURATION", value_parser = parse_since)]
        since: Option<std::time::Duration>,
        /// Only this op (repeatable): Join, Leave, Down, Rejoin, Reboot, LeaderStart,
        /// LeaderHeart, LeaderChange, Merge, Alert, Notification.
        #[arg(long = "op", value_name = "OP", value_parser = introspection_commands::parse_op)]
        ops: Vec<crate::introspection::EventOp>,
        /// Only events about this node.
        #[arg(long, value_name = "N")]
        node: Option<String>,
        /// Ask a member from outside the cluster.
        #[command(flatten)]
        via: introspection_commands::ViaArgs,
    },
    /// Print new cluster events as they happen (and, with --log-level, the agent's log lines)
    /// until Ctrl-C.
    Monitor {
        /// Only this op (repeatable).
        #[arg(long = "op", value_name = "OP", value_parser = introspection_commands::parse_op)]
        ops: Vec<crate::introspection::EventOp>,
        /// Also the agent's log lines at this level or more severe (error, warn, info, debug).
        #[arg(long, value_name = "L")]
        log_level: Option<String>,
    },
    /// The notification leader and how it was chosen (raft term, or minority fallback).
    Leader,
    /// Open and recent incidents and what was notified, when, on which channel, by whom.
    Incidents,
    /// Print a new cluster key (one base64 line).
    Keygen,
    /// The read-only dashboard for other machines (`ui.bind`).
    #[command(subcommand)]
    Ui(UiCommand),
    /// Every alert the agent knows (own team and other teams), with origin and path.
    Alerts {
        /// Only the alerts of this team (their origin).
        #[arg(long, value_name = "T")]
        team: Option<String>,
    },
    /// This agent's border links to other teams: state, since, alerts in and out, last
    /// heartbeat, frames dropped.
    Teams,
    /// Border links: `team link add TEAM --peer HOST:PORT --key-file F`, `team link remove`.
    #[command(subcommand)]
    Team(team_commands::TeamCommand),
    /// Raise or clear a manual alert of this host.
    #[command(subcommand)]
    Alert(AlertCommand),
    /// Check the notification channels.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// The grid-control records this agent holds, with signer fingerprints and seqnums.
    Records {
        /// Only this service (`addresses`, `service`, `trust`, a name, or `service/NAME`).
        #[arg(long, value_name = "S")]
        service: Option<String>,
    },
    /// Cluster-wide named service addresses (registry, steward, beacon...).
    #[command(subcommand)]
    Service(grid_commands::ServiceCommand),
    /// Trust recommendations (accept-alerts-from, send-alerts-to) about team or node keys.
    #[command(subcommand)]
    Trust(grid_commands::TrustCommand),
    /// Cluster-wide key rotation: install, use, remove (like `serf keys`, but restart-proof).
    #[command(subcommand)]
    Keys(grid_commands::KeysCommand),
    /// Print an invitation token (cluster key and member addresses) for `agent --join-token`
    /// or `join`.
    Invite {
        /// How long the token is accepted (1m to 30d).
        #[arg(long, default_value = "24h", value_parser = parse_since)]
        ttl: std::time::Duration,
    },
    /// The subnet -> switch -> host map from LLDP and CDP (`--format text|dot|json`).
    Topology,
    /// Recorded status samples, alerts and membership changes.
    History {
        /// Only this host (default: a summary of every host).
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
        /// How far back, e.g. 10m, 2h, 3d (default 1h).
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_since)]
        since: std::time::Duration,
    },
    /// A collector of cluster events outside the cluster (seed 002): with `--key-file`, start
    /// one in the background and print `addr=IP:PORT`; `dump` and `stop` ask a running one.
    Beacon(beacon_commands::BeaconArgs),
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff; `rover-agent man | man -l -`).
    Man,
}

/// `alert raise` / `alert clear`.
#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Raise (or update) an alert of this host.
    Raise {
        /// Alert name.
        name: String,
        /// Severity.
        #[arg(long, value_enum, default_value_t = SeverityArg::Warning)]
        severity: SeverityArg,
        /// One line for humans.
        #[arg(long, default_value = "")]
        summary: String,
    },
    /// Resolve an alert of this host.
    Clear {
        /// Alert name.
        name: String,
    },
}

/// `notify` subcommands.
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test message through every configured channel; one line per channel (exit 1 if
    /// any channel did not deliver).
    Test,
}

/// Severities accepted by `alert raise`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeverityArg {
    /// Worth a look.
    Warning,
    /// Act now.
    Critical,
}

fn parse_since(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 10m, 2h, 3d)"))
}

/// Flags of `agent`; each overrides the config file and the environment.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// TOML config file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The settings table's flags (`--node`, `--bind`, `--join`...).
    #[command(flatten)]
    pub settings: setting_flags::SettingFlags,
}

/// Writes the error to stderr; a stderr that refuses it (a full device, a closed pipe) loses
/// the text but never turns the exit code into a panic's 101.
fn say_error(e: &anyhow::Error) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "error: {e:#}");
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // Bad usage: a bad argument value, or a bad setting in the flags, env or file.
        Err(e)
            if e.downcast_ref::<grid_commands::UsageError>().is_some()
                || e.downcast_ref::<crate::config::ConfigError>().is_some() =>
        {
            say_error(&e);
            ExitCode::from(2)
        }
        Err(e) => {
            say_error(&e);
            ExitCode::from(1)
        }
    }
}

/// A `--tag KEY=VALUE` filter of `members`.
fn parse_tag_filter(text: &str) -> Result<(String, String), String> {
    rover_membership::tags::parse_tag(text).map_err(|e| e.to_string())
}

/// `rover-agent ui ...`
#[derive(Debug, Clone, Subcommand)]
pub enum UiCommand {
    /// Print the viewer token the `ui.bind` listener asks for (created in the data dir on
    /// first use); open http://HOST:PORT/?token=TOKEN once in a browser.
    Token,
}
