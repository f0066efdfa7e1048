//! What each subcommand does.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use rover_membership::runtime::unix_ms;
use rover_membership::{MemberInfo, MemberStatus};

use super::history_output::{alerts_table, host_timeline, hosts_table};
use super::notify_output::{failures, notify_test_table};
use super::{
    AgentArgs, AlertCommand, Cli, Command, Format, NotifyCommand, SeverityArg, StatusFilter,
};
use crate::api::client::ApiClient;
use crate::api::{
    ClearRequest, HistoryResponse, HostSummary, InfoResponse, JoinRequest, JoinResponse,
    NotifyTestResponse, RaiseRequest,
};
use crate::config::{self, Layer};
use crate::daemon::{signals, Daemon};
use crate::data_dir::TOKEN_FILE;
use rover_storage::{Alert, Severity};

/// Writes to stdout; a closed pipe (`rover-agent members | head`) ends output quietly
/// instead of panicking.
fn write_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        let _ = writeln!(std::io::stderr(), "error: cannot write output: {e}");
        std::process::exit(1);
    }
}

/// Writes `text` and a newline to stdout (see [`write_out`]).
pub(super) fn write_line(text: &str) {
    write_out(&format!("{text}\n"));
}

/// Writes `text` to stdout as it is (see [`write_out`]).
pub(super) fn write_text(text: &str) {
    write_out(text);
}

macro_rules! say {
    ($($arg:tt)*) => { write_out(&format!($($arg)*)) };
}

macro_rules! sayln {
    ($($arg:tt)*) => { write_out(&(format!($($arg)*) + "\n")) };
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    if cli.format == Format::Dot && !matches!(cli.command, Command::Topology) {
        use clap::CommandFactory;
        Cli::command()
            .error(
                clap::error::ErrorKind::InvalidValue,
                "--format dot is only for `topology` (use text or json)",
            )
            .exit();
    }
    match cli.command {
        Command::Agent(ref args) => run_agent(args),
        Command::Completions { shell } => {
            super::packaging::write_completions(shell, &mut std::io::stdout().lock())
        }
        Command::Beacon(ref args) => super::beacon_commands::run(args, cli.format),
        Command::Man => super::packaging::write_man_page(&mut std::io::stdout().lock()),
        Command::Ui(super::UiCommand::Token) => {
            let line = super::local_commands::viewer_token(cli.data_dir.as_deref(), cli.format)?;
            sayln!("{line}");
            Ok(())
        }
        Command::Keygen => {
            sayln!("{}", super::local_commands::keygen(cli.format));
            Ok(())
        }
        _ => client_runtime()?.block_on(run_client(&cli)),
    }
}

/// How long `join` waits for a member besides this agent to be alive.
const JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The alive members once another than this agent is alive, or `None` after [`JOIN_WAIT`].
async fn wait_for_company(client: &ApiClient) -> Result<Option<usize>> {
    let deadline = tokio::time::Instant::now() + JOIN_WAIT;
    loop {
        let members: Vec<MemberInfo> = client.get("/v1/members").await?;
        let alive = members
            .iter()
            .filter(|m| m.status == rover_membership::MemberStatus::Alive)
            .count();
        if alive > 1 {
            return Ok(Some(alive));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn client_runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn run_agent(args: &AgentArgs) -> Result<()> {
    crate::daemon::log_sink::init();
    // Only the file is read again on a reload: the environment and the flags stay as at start.
    let source = crate::daemon::reload::ConfigSource {
        file: args.config.clone(),
        env: Layer::from_env(|name| std::env::var(name).ok().filter(|v| !v.is_empty())),
        flags: args.settings.0.clone(),
        default_data_dir: config::default_data_dir(),
        hostname: config::hostname(),
    };
    let (config, _) = source.load().map_err(bad_tags_are_usage)?;
    // `log.level` of the file (ROVER_LOG, read by `init`, wins over it as over any file value).
    if let Err(e) = crate::daemon::log_sink::set_filter(&config.log_filter) {
        tracing::warn!(error = %e, "log.level not applied");
    }
    if let Some(token) = &config.join_token {
        super::grid_commands::check_token(token)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(Daemon::run_reloadable(
        config,
        Some(source),
        signals::first_signal(),
    ))
}

fn api_addr(cli: &Cli) -> Result<SocketAddr> {
    let from_data_dir = || {
        let dir = cli
            .data_dir
            .clone()
            .or_else(|| std::env::var_os("ROVER_DATA_DIR").map(PathBuf::from))?;
        std::fs::read_to_string(dir.join(crate::daemon::API_ADDR_FILE))
            .ok()
            .map(|s| s.trim().to_owned())
    };
    let text = cli
        .api
        .clone()
        .or_else(|| std::env::var("ROVER_API").ok().filter(|v| !v.is_empty()))
        .or_else(from_data_dir)
        .unwrap_or_else(|| config::DEFAULT_API.to_owned());
    config::parse_seed(&text).map_err(|e| anyhow!("--api {text:?}: {e}"))
}

/// The token for changes: `ROVER_TOKEN_FILE`, else the token file of the data dir.
fn token(cli: &Cli) -> Option<String> {
    let path = std::env::var_os("ROVER_TOKEN_FILE")
        .map(PathBuf::from)
        .or_else(|| cli.data_dir.as_ref().map(|d| d.join(TOKEN_FILE)))
        .or_else(|| std::env::var_os("ROVER_DATA_DIR").map(|d| PathBuf::from(d).join(TOKEN_FILE)))
        .unwrap_or_else(|| config::default_data_dir().join(TOKEN_FILE));
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.trim().to_owned())
}

async fn run_client(cli: &Cli) -> Result<()> {
    let client = ApiClient::new(api_addr(cli)?, token(cli))?;
    match &cli.command {
        Command::Join { seeds } if seeds.iter().any(|s| super::grid_commands::is_token(s)) => {
            let (tokens, seeds): (Vec<&String>, Vec<&String>) = seeds
                .iter()
                .partition(|s| super::grid_commands::is_token(s));
            if tokens.len() > 1 || !seeds.is_empty() {
                return Err(super::grid_commands::UsageError(
                    "give one invitation token, without seeds".into(),
                )
                .into());
            }
            super::grid_commands::join_token(&client, tokens[0]).await?;
        }
        Command::Records { service } => {
            super::grid_commands::records(cli, &client, service.as_deref()).await?;
        }
        Command::Service(command) => super::grid_commands::service(cli, &client, command).await?,
        Command::Trust(command) => super::grid_commands::trust(cli, &client, command).await?,
        Command::Team(command) => super::team_commands::team(&client, command).await?,
        Command::Keys(command) => super::grid_commands::keys(cli, &client, command).await?,
        Command::Invite { ttl } => super::grid_commands::invite(cli, &client, *ttl).await?,
        Command::Join { seeds } => {
            let answer: JoinResponse = client
                .post(
                    "/v1/join",
                    &JoinRequest {
                        seeds: seeds.clone(),
                    },
                )
                .await?;
            let seeds = answer.announced.join(", ");
            match wait_for_company(&client).await? {
                Some(alive) => sayln!("joined through {seeds}: {alive} members alive"),
                None => bail!(
                    "announced to {seeds}, but no member answered within {} s (is an agent \
                     listening there, with the same cluster key?)",
                    JOIN_WAIT.as_secs()
                ),
            }
        }
        Command::Members { status, tags, via } => {
            let path = match status {
                Some(s) => format!("/v1/members?status={}", status_name(*s)),
                None => "/v1/members".into(),
            };
            let asked: Option<Vec<MemberInfo>> = via
                .ask(crate::introspection::remote::IntrospectQuery::Members)
                .await?;
            let mut members = match asked {
                Some(members) => members,
                None => client.get(&path).await?,
            };
            if let Some(wanted) = status {
                members.retain(|m| m.status.as_str() == status_name(*wanted));
            }
            members.retain(|m| rover_membership::tags::matches(&m.tags, tags));
            super::members_output::print_members(cli.format, &members)?;
        }
        Command::Events {
            since,
            ops,
            node,
            via,
        } => {
            super::introspection_commands::events(
                &client,
                cli.format,
                *since,
                ops,
                node.as_deref(),
                via,
            )
            .await?;
        }
        Command::Monitor { ops, log_level } => {
            super::introspection_commands::monitor(&client, cli.format, ops, log_level.as_deref())
                .await?;
        }
        Command::ForceLeave { name } => {
            let request = crate::api::member_routes::ForceLeaveRequest { name: name.clone() };
            let _: serde_json::Value = client.post("/v1/force-leave", &request).await?;
            sayln!("{name} marked left; every agent lists it left within seconds");
        }
        Command::Reload => {
            let report: crate::api::ReloadReport =
                client.post("/v1/reload", &serde_json::json!({})).await?;
            match cli.format {
                Format::Json => sayln!("{}", serde_json::to_string_pretty(&report)?),
                Format::Text | Format::Dot => {
                    say!("{}", super::local_commands::reload_text(&report))
                }
            }
        }
        Command::Leave => {
            let _: serde_json::Value = client.post("/v1/leave", &serde_json::json!({})).await?;
            sayln!("left the cluster; the agent is shutting down");
        }
        Command::Info { via } => {
            let asked: Option<InfoResponse> = via
                .ask(crate::introspection::remote::IntrospectQuery::Info)
                .await?;
            let info = match asked {
                Some(info) => info,
                None => client.get("/v1/info").await?,
            };
            super::members_output::print_info(cli.format, &info)?;
        }
        Command::Leader => {
            let status: crate::leadership::LeaderStatus = client.get("/v1/leader").await?;
            match cli.format {
                Format::Json => sayln!("{}", serde_json::to_string_pretty(&status)?),
                Format::Text | Format::Dot => {
                    say!("{}", super::leader_output::leader_table(&status))
                }
            }
        }
        Command::Incidents => {
            let view: crate::leadership::LedgerView = client.get("/v1/incidents").await?;
            match cli.format {
                Format::Json => sayln!("{}", serde_json::to_string_pretty(&view)?),
                Format::Text | Format::Dot => {
                    say!("{}", super::incidents_output::incidents_tables(&view))
                }
            }
        }
        Command::Teams => {
            let links: Vec<crate::teams::LinkStatus> = client.get("/v1/teams").await?;
            match cli.format {
                Format::Json => sayln!("{}", serde_json::to_string_pretty(&links)?),
                Format::Text | Format::Dot => say!("{}", super::teams_output::links_table(&links)),
            }
        }
        Command::Alerts { ref team } => {
            if let Some(team) = team
                .as_deref()
                .filter(|t| !crate::teams::hop::is_valid_name(t))
            {
                return Err(super::grid_commands::UsageError(format!(
                    "--team {team:?}: use 1 to 128 letters, digits, '-', '_' or '.'"
                ))
                .into());
            }
            let mut alerts: Vec<Alert> = client.get("/v1/alerts").await?;
            if let Some(team) = team {
                alerts.retain(|a| &a.team == team);
            }
            match cli.format {
                Format::Json => sayln!("{}", serde_json::to_string_pretty(&alerts)?),
                Format::Text | Format::Dot => say!("{}", alerts_table(&alerts)),
            }
        }
        Command::Alert(AlertCommand::Raise {
            name,
            severity,
            summary,
        }) => {
            let severity = match severity {
                SeverityArg::Warning => Severity::Warning,
                SeverityArg::Critical => Severity::Critical,
            };
            let request = RaiseRequest {
                name: name.clone(),
                severity,
                summary: summary.clone(),
            };
            let alert: Option<Alert> = client.post("/v1/alerts/raise", &request).await?;
            match alert {
                Some(a) => sayln!("raised {} (version {})", a.key(), a.version),
                None => sayln!("{name} is already firing with that severity and summary"),
            }
        }
        Command::Alert(AlertCommand::Clear { name }) => {
            let request = ClearRequest {
                name: name.clone(),
                summary: None,
            };
            let alert: Option<Alert> = client.post("/v1/alerts/clear", &request).await?;
            match alert {
                Some(a) => sayln!("cleared {} (version {})", a.key(), a.version),
                None => sayln!("{name} was not firing"),
            }
        }
        Command::History { host, since } => {
            let since_ms =
                unix_ms().saturating_sub(u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
            match host {
                Some(host) => {
                    let path = format!("/v1/history?host={}&since_ms={since_ms}", host);
                    let history: HistoryResponse = client.get(&path).await?;
                    match cli.format {
                        Format::Json => sayln!("{}", serde_json::to_string_pretty(&history)?),
                        Format::Text | Format::Dot => say!("{}", host_timeline(&history)),
                    }
                }
                None => {
                    let hosts: Vec<HostSummary> = client.get("/v1/history").await?;
                    match cli.format {
                        Format::Json => sayln!("{}", serde_json::to_string_pretty(&hosts)?),
                        Format::Text | Format::Dot => say!("{}", hosts_table(&hosts)),
                    }
                }
            }
        }
        Command::Notify(NotifyCommand::Test) => {
            // Each channel may retry for up to the send budget; the channels run at once.
            let wait = crate::notify::SEND_BUDGET + std::time::Duration::from_secs(15);
            let answer: NotifyTestResponse = client
                .post_within("/v1/notify/test", &serde_json::json!({}), wait)
                .await?;
            match cli.format {
                Format::Json => sayln!("{}", serde_json::to_string_pretty(&answer)?),
                Format::Text | Format::Dot => say!("{}", notify_test_table(&answer)),
            }
            let failed = failures(&answer);
            if answer.channels.is_empty() {
                return Err(anyhow!(
                    "nothing to test: no notification channel is configured"
                ));
            }
            if failed > 0 {
                return Err(anyhow!(
                    "{failed} of {} channels did not deliver",
                    answer.channels.len()
                ));
            }
        }
        Command::Topology => {
            let report: crate::topology::report::TopologyReport =
                client.get("/v1/topology").await?;
            match cli.format {
                Format::Json => sayln!("{}", serde_json::to_string_pretty(&report)?),
                Format::Dot => say!("{}", crate::topology::report::dot(&report)),
                Format::Text => say!("{}", crate::topology::report::text(&report)),
            }
        }
        Command::Agent(_)
        | Command::Beacon(_)
        | Command::Keygen
        | Command::Ui(_)
        | Command::Completions { .. }
        | Command::Man => {
            unreachable!("handled before the client starts")
        }
    }
    Ok(())
}

fn status_name(status: StatusFilter) -> &'static str {
    match status {
        StatusFilter::Alive => MemberStatus::Alive.as_str(),
        StatusFilter::Suspect => MemberStatus::Suspect.as_str(),
        StatusFilter::Failed => MemberStatus::Failed.as_str(),
        StatusFilter::Left => MemberStatus::Left.as_str(),
    }
}

/// A bad tag (`--tag`, `node.tags`, `ROVER_TAGS`) is a usage error (exit 2) naming the key.
fn bad_tags_are_usage(e: config::ConfigError) -> anyhow::Error {
    match &e {
        config::ConfigError::Invalid { key, .. } if *key == config::settings::NODE_TAGS.key => {
            super::grid_commands::UsageError(e.to_string()).into()
        }
        _ => e.into(),
    }
}
