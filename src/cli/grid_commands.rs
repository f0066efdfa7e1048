//! `records`, `service`, `trust`, `keys`, `invite` and `join TOKEN`: what they send to the
//! agent and how they print the answer.

use anyhow::{anyhow, Result};
use clap::Subcommand;
use rover_membership::runtime::unix_ms;

use super::grid_output::{keys_table, records_table, services_table, step_table, trust_table};
use super::{Cli, Format};
use crate::api::client::ApiClient;
use crate::api::grid_routes::{
    InviteRequest, InviteResponse, JoinTokenRequest, JoinTokenResponse, KeyRequest,
    ServiceRemoveRequest, ServiceSetRequest, TrustRequest, INVITE_TTL_SECS,
};
use crate::grid::services::{RecordView, ServiceView, TrustView};
use crate::invite::{Invitation, TOKEN_PREFIX};
use crate::keys::rotation::{is_reachable_status, KeysReport, Outcome, StepReport};

/// How long a key step may take: a survey and a step, each up to a connection and an answer
/// per member.
const KEY_STEP_WAIT: std::time::Duration = std::time::Duration::from_secs(40);

/// A usage error the CLI exits with code 2 for (a bad invitation token, for one).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// `service` subcommands.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// State where a named service is, cluster-wide (the newest statement wins).
    Set {
        /// Service name (letters, digits, '-', '_', '.').
        name: String,
        /// Where it is: host:port or a URL.
        addr: String,
    },
    /// Where a named service is.
    Get {
        /// Service name.
        name: String,
    },
    /// Every named service in force.
    List,
    /// Remove a named service, cluster-wide.
    Remove {
        /// Service name.
        name: String,
    },
}

/// `trust` subcommands.
#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Recommend a team or node key (signed by this node, spread to every agent).
    Add {
        /// The team's public key or a node key (base64 or hex).
        who: String,
        /// This node's name for it (needed the first time).
        #[arg(long)]
        petname: Option<String>,
        /// accept-alerts-from, send-alerts-to (repeat or separate by commas).
        #[arg(long, required = true, value_delimiter = ',')]
        what: Vec<String>,
    },
    /// Withdraw this node's recommendation of a key (or only some of what it says).
    Remove {
        /// The team's public key or a node key.
        who: String,
        /// Only these (default: everything).
        #[arg(long, value_delimiter = ',')]
        what: Vec<String>,
    },
    /// Every recommendation in force.
    List,
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Every key, how many members hold it and which do not.
    List,
    /// Install a key on every member (it opens; it does not seal yet).
    Install {
        /// The key, as `keygen` prints it.
        key: String,
    },
    /// Make an installed key the primary on every member.
    Use {
        /// The key, or its fingerprint (8 hex digits, from keys list).
        key: String,
    },
    /// Remove a key from every member (refused for a primary key).
    Remove {
        /// The key, or its fingerprint.
        key: String,
    },
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    super::commands::write_line(&serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print(
    format: Format,
    value: &impl serde::Serialize,
    text: impl FnOnce() -> String,
) -> Result<()> {
    match format {
        Format::Json => print_json(value),
        // `--format dot` is refused before any command but `topology` runs.
        Format::Text | Format::Dot => {
            super::commands::write_text(&text());
            Ok(())
        }
    }
}

/// `records [--service S]`.
pub async fn records(cli: &Cli, client: &ApiClient, service: Option<&str>) -> Result<()> {
    let path = match service {
        Some(s) => format!("/v1/records?service={}", percent(s)),
        None => "/v1/records".to_owned(),
    };
    let records: Vec<RecordView> = client.get(&path).await?;
    print(cli.format, &records, || records_table(&records))
}

/// Percent-encodes a query value.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `service ...`.
pub async fn service(cli: &Cli, client: &ApiClient, command: &ServiceCommand) -> Result<()> {
    match command {
        ServiceCommand::Set { name, addr } => {
            let body = ServiceSetRequest {
                name: name.clone(),
                addr: addr.clone(),
            };
            let record: RecordView = client.post("/v1/services/set", &body).await?;
            print(cli.format, &record, || {
                format!("{name} = {} (seqnum {})\n", record.content, record.seqnum)
            })
        }
        ServiceCommand::Get { name } => {
            let service: ServiceView = client
                .get(&format!("/v1/services/{}", percent(name)))
                .await?;
            print(cli.format, &service, || format!("{}\n", service.addr))
        }
        ServiceCommand::List => {
            let services: Vec<ServiceView> = client.get("/v1/services").await?;
            print(cli.format, &services, || services_table(&services))
        }
        ServiceCommand::Remove { name } => {
            let body = ServiceRemoveRequest { name: name.clone() };
            let record: RecordView = client.post("/v1/services/remove", &body).await?;
            print(cli.format, &record, || {
                format!("{name} removed (seqnum {})\n", record.seqnum)
            })
        }
    }
}

/// `trust ...`.
pub async fn trust(cli: &Cli, client: &ApiClient, command: &TrustCommand) -> Result<()> {
    let (path, body) = match command {
        TrustCommand::List => {
            let all: Vec<TrustView> = client.get("/v1/trust").await?;
            return print(cli.format, &all, || trust_table(&all));
        }
        TrustCommand::Add { who, petname, what } => (
            "/v1/trust/add",
            TrustRequest {
                who: who.clone(),
                petname: petname.clone(),
                what: what.clone(),
            },
        ),
        TrustCommand::Remove { who, what } => (
            "/v1/trust/remove",
            TrustRequest {
                who: who.clone(),
                petname: None,
                what: what.clone(),
            },
        ),
    };
    let record: RecordView = client.post(path, &body).await?;
    print(cli.format, &record, || {
        format!("{} (seqnum {})\n", record.content, record.seqnum)
    })
}

/// `keys ...`: exit 1 unless every member acknowledged a step.
pub async fn keys(cli: &Cli, client: &ApiClient, command: &KeysCommand) -> Result<()> {
    let (path, key) = match command {
        KeysCommand::List => {
            let report: KeysReport = client.get("/v1/keys").await?;
            return print(cli.format, &report, || keys_table(&report));
        }
        KeysCommand::Install { key } => ("/v1/keys/install", key),
        KeysCommand::Use { key } => ("/v1/keys/use", key),
        KeysCommand::Remove { key } => ("/v1/keys/remove", key),
    };
    let body = KeyRequest { key: key.clone() };
    let report: StepReport = client.post_within(path, &body, KEY_STEP_WAIT).await?;
    print(cli.format, &report, || step_table(&report))?;
    if !report.complete() {
        let missing: Vec<&str> = report
            .members
            .iter()
            .filter(|m| m.outcome != Outcome::Acknowledged && is_reachable_status(m.status))
            .map(|m| m.name.as_str())
            .collect();
        return Err(anyhow!(
            "{} of {} alive members acknowledged; not: {}",
            report.acknowledged,
            report.reachable,
            missing.join(", ")
        ));
    }
    Ok(())
}

/// `invite [--ttl D]`: the token on one line.
pub async fn invite(cli: &Cli, client: &ApiClient, ttl: std::time::Duration) -> Result<()> {
    let ttl_secs = ttl.as_secs();
    if !INVITE_TTL_SECS.contains(&ttl_secs) {
        return Err(UsageError("--ttl: from 1m to 30d".into()).into());
    }
    let answer: InviteResponse = client
        .post("/v1/invite", &InviteRequest { ttl_secs })
        .await?;
    print(cli.format, &answer, || format!("{}\n", answer.token))
}

/// Whether a `join` argument is an invitation token.
pub fn is_token(arg: &str) -> bool {
    arg.starts_with(TOKEN_PREFIX)
}

/// Checks a token here first: a bad one is a usage error (exit 2).
pub fn check_token(token: &str) -> Result<Invitation> {
    Invitation::redeem(token, unix_ms()).map_err(|e| UsageError(e.to_string()).into())
}

/// `join TOKEN`.
pub async fn join_token(client: &ApiClient, token: &str) -> Result<()> {
    check_token(token)?;
    let answer: JoinTokenResponse = client
        .post(
            "/v1/join/token",
            &JoinTokenRequest {
                token: token.to_owned(),
            },
        )
        .await?;
    super::commands::write_line(&format!(
        "cluster key {} is primary; announced to {}",
        answer.key,
        answer.announced.join(", ")
    ));
    Ok(())
}
