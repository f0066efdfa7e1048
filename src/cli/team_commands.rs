//! `team link add` and `team link remove`: a border link's two trust recommendations, and its
//! `[[team.link]]` snippet in the config file (or on stdout).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use crate::api::client::ApiClient;
use crate::api::grid_routes::TrustRequest;
use crate::grid::services::RecordView;
use crate::teams::wire::LinkMode;

/// `team` subcommands.
#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Border links to other teams.
    #[command(subcommand)]
    Link(LinkCommand),
}

/// `team link` subcommands.
#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Recommend sending alerts to TEAM and accepting its alerts (signed by this node), and
    /// write the link's `[[team.link]]` to the config file (`--config`) or print it.
    Add {
        /// The other team (its agents' node.team).
        team: String,
        /// One of its border agents' `team.link_bind` (`host:port`).
        #[arg(long)]
        peer: String,
        /// The key only these two teams share (`rover-agent keygen`).
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
        /// direct (default, private) or transit (both ends must say it).
        #[arg(long, default_value = "direct")]
        mode: String,
        /// The agent's config file to append the link to (then restart the agent).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Withdraw both recommendations about the link and take its `[[team.link]]` out of the
    /// config file (`--config`).
    Remove {
        /// The other team.
        team: String,
        /// The link's key file (names the link in the recommendations).
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
        /// The agent's config file to take the link out of.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Runs `team ...`.
pub async fn team(client: &ApiClient, command: &TeamCommand) -> Result<()> {
    let TeamCommand::Link(command) = command;
    match command {
        LinkCommand::Add {
            team,
            peer,
            key_file,
            mode,
            config,
        } => {
            let mode: LinkMode = mode.parse().map_err(|e| anyhow::anyhow!("--mode: {e}"))?;
            let id = link_id_of(key_file)?;
            let body = TrustRequest {
                who: id.clone(),
                petname: Some(team.clone()),
                what: vec!["send-alerts-to".into(), "accept-alerts-from".into()],
            };
            let record: RecordView = client.post("/v1/trust/add", &body).await?;
            println!("{} (seqnum {})", record.content, record.seqnum);
            let key_path = std::fs::canonicalize(key_file).unwrap_or_else(|_| key_file.clone());
            let snippet = format!(
                "\n# link to team {team} (link id {id})\n[[team.link]]\nteam = \"{team}\"\npeer = \"{peer}\"\nkey_file = \"{}\"\nmode = \"{mode}\"\n",
                key_path.display()
            );
            match config {
                Some(path) => {
                    append(path, &snippet)?;
                    println!(
                        "link to {team} written to {}: restart the agent to open it",
                        path.display()
                    );
                }
                None => print!("{snippet}"),
            }
        }
        LinkCommand::Remove {
            team,
            key_file,
            config,
        } => {
            let id = link_id_of(key_file)?;
            let body = TrustRequest {
                who: id,
                petname: None,
                what: Vec::new(),
            };
            let record: RecordView = client.post("/v1/trust/remove", &body).await?;
            println!("{} (seqnum {})", record.content, record.seqnum);
            if let Some(path) = config {
                if remove_link(path, team)? {
                    println!(
                        "link to {team} taken out of {}: restart the agent",
                        path.display()
                    );
                } else {
                    println!("{} has no [[team.link]] to {team}", path.display());
                }
            }
        }
    }
    Ok(())
}

fn link_id_of(key_file: &Path) -> Result<String> {
    let key = crate::data_dir::read_key_file(key_file)?;
    Ok(crate::teams::link_id_text(&crate::teams::link_id(&key)))
}

fn append(path: &Path, snippet: &str) -> Result<()> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    check_toml(&format!("{text}{snippet}"), path)?;
    text.push_str(snippet);
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Takes out the `[[team.link]]` table whose `team` is `team` (and the comment line
/// `team link add` wrote above it); whether there was one.
fn remove_link(path: &Path, team: &str) -> Result<bool> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<&str> = Vec::with_capacity(lines.len());
    let mut removed = false;
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "[[team.link]]" {
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].trim_start().starts_with('['))
                .unwrap_or(lines.len());
            let names_team = lines[i + 1..end].iter().any(|l| {
                l.split_once('=')
                    .is_some_and(|(k, v)| k.trim() == "team" && v.trim().trim_matches('"') == team)
            });
            if names_team {
                if out.last().is_some_and(|l| l.starts_with("# link to team")) {
                    out.pop();
                }
                removed = true;
                i = end;
                continue;
            }
        }
        out.push(lines[i]);
        i += 1;
    }
    if removed {
        let mut text = out.join("\n");
        text.push('\n');
        check_toml(&text, path)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(removed)
}

fn check_toml(text: &str, path: &Path) -> Result<()> {
    if let Err(e) = text.parse::<toml::Table>() {
        bail!("{} would not be valid TOML: {e}", path.display());
    }
    Ok(())
}
