//! `team link add` and `team link remove`: a border link's two trust recommendations, and its
//! `[[team.link]]` snippet in the config file (or on stdout).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use super::commands::write_text;
use super::grid_commands::UsageError;
use crate::api::client::ApiClient;
use crate::api::grid_routes::TrustRequest;
use crate::api::InfoResponse;
use crate::grid::services::{RecordView, TrustView};
use crate::teams::hop::is_valid_name;
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
        #[arg(long, default_value = "direct", value_parser = parse_mode)]
        mode: LinkMode,
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

/// Runs `team ...`: everything is checked (names, the peer, the key file, the config file)
/// before a recommendation is signed, so a refused command changes nothing.
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
            check_team(team)?;
            crate::config::teams::check_peer(peer)
                .map_err(|e| UsageError(format!("--peer {peer:?}: {e}")))?;
            let id = link_id_of(key_file)?;
            let info: InfoResponse = client.get("/v1/info").await?;
            if &info.team == team {
                return Err(UsageError(format!(
                    "{team:?} is this agent's own team: a link joins two different teams"
                ))
                .into());
            }
            if let Some(other) = recommendations(client, &id)
                .await?
                .into_iter()
                .find(|t| &t.petname != team)
            {
                return Err(UsageError(format!(
                    "this key is already the link to team {} (`trust list`, recommended by {}): each link needs a key of its own (`rover-agent keygen`)",
                    other.petname,
                    other.signer_node.as_deref().unwrap_or(&other.signer)
                ))
                .into());
            }
            if let Some(path) = config {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                for (other, key) in link_keys(&text, path) {
                    if link_id_of(&key).ok().as_ref() == Some(&id) && &other != team {
                        return Err(UsageError(format!(
                            "{} already uses this key for the link to team {other}: each link needs a key of its own",
                            path.display()
                        ))
                        .into());
                    }
                }
            }
            let key_path = std::fs::canonicalize(key_file).unwrap_or_else(|_| key_file.clone());
            let snippet = format!(
                "\n# link to team {team} (link id {id})\n[[team.link]]\nteam = \"{team}\"\npeer = \"{peer}\"\nkey_file = \"{}\"\nmode = \"{mode}\"\n",
                key_path.display()
            );
            let updated = match config {
                Some(path) => Some(with_link(path, team, &snippet)?),
                None => None,
            };
            let body = TrustRequest {
                who: id.clone(),
                petname: Some(team.clone()),
                what: vec!["send-alerts-to".into(), "accept-alerts-from".into()],
            };
            let record: RecordView = client.post("/v1/trust/add", &body).await?;
            // Every change is made before anything is printed (a closed stdout ends us).
            let written = match (config, updated) {
                (Some(path), Some(text)) => {
                    write_file(path, &text)?;
                    format!(
                        "link to {team} written to {}: restart the agent to open it\n",
                        path.display()
                    )
                }
                _ => snippet,
            };
            write_text(&format!(
                "{} (seqnum {})\n{written}",
                record.content, record.seqnum
            ));
        }
        LinkCommand::Remove {
            team,
            key_file,
            config,
        } => {
            check_team(team)?;
            let id = link_id_of(key_file)?;
            let before = recommendations(client, &id).await?;
            if let Some(other) = before.iter().find(|t| &t.petname != team) {
                return Err(UsageError(format!(
                    "this key is the link to team {}, not {team} (`trust list`)",
                    other.petname
                ))
                .into());
            }
            let updated = match config {
                Some(path) => Some(without_link(path, team)?),
                None => None,
            };
            let body = TrustRequest {
                who: id.clone(),
                petname: None,
                what: Vec::new(),
            };
            let said = match client
                .post::<_, RecordView>("/v1/trust/remove", &body)
                .await
            {
                Ok(record) => format!("{} (seqnum {})\n", record.content, record.seqnum),
                // Already withdrawn (an earlier try): the config file is still put right.
                Err(e) if updated.is_some() && e.to_string().contains("recommends nothing") => {
                    format!("no recommendation about the link to {team} was in force\n")
                }
                Err(e) => return Err(e),
            };
            // Every change is made before anything is printed (a closed stdout ends us).
            let written = match (config, updated) {
                (Some(path), Some(text)) => {
                    write_file(path, &text)?;
                    format!(
                        "link to {team} taken out of {}: restart the agent\n",
                        path.display()
                    )
                }
                _ => String::new(),
            };
            let still: Vec<String> = recommendations(client, &id)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|t| t.signer_node.unwrap_or(t.signer))
                .collect();
            let still = if still.is_empty() {
                String::new()
            } else {
                format!(
                    "still recommended by {}: the link carries alerts until they withdraw too\n",
                    still.join(", ")
                )
            };
            write_text(&format!("{said}{written}{still}"));
        }
    }
    Ok(())
}

fn parse_mode(text: &str) -> Result<LinkMode, String> {
    text.parse()
        .map_err(|_| format!("{text:?}: expected direct or transit"))
}

fn check_team(team: &str) -> Result<()> {
    if is_valid_name(team) {
        Ok(())
    } else {
        Err(UsageError(format!(
            "team {team:?}: use 1 to 128 letters, digits, '-', '_' or '.'"
        ))
        .into())
    }
}

fn link_id_of(key_file: &Path) -> Result<String> {
    let key = crate::data_dir::read_key_file(key_file)
        .map_err(|e| UsageError(format!("--key-file: {e:#}")))?;
    Ok(crate::teams::link_id_text(&crate::teams::link_id(&key)))
}

/// The link id as `trust list` shows it.
fn listed_id(hex: &str) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The recommendations in force about the link `id` (hex).
async fn recommendations(client: &ApiClient, id: &str) -> Result<Vec<TrustView>> {
    let listed = listed_id(id);
    let all: Vec<TrustView> = client.get("/v1/trust").await?;
    Ok(all.into_iter().filter(|t| t.who == listed).collect())
}

/// The key of every `[[team.link]]` of `text` (relative paths from the file's directory),
/// by team.
fn link_keys(text: &str, path: &Path) -> Vec<(String, PathBuf)> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let base = path.parent().unwrap_or(Path::new("."));
    table
        .get("team")
        .and_then(|t| t.get("link"))
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
        .filter_map(|link| {
            let team = link.get("team")?.as_str()?.to_owned();
            let key = link.get("key_file")?.as_str()?;
            Some((team, base.join(key)))
        })
        .collect()
}

/// The config file with `snippet` added; refused if it already links to `team`.
fn with_link(path: &Path, team: &str, snippet: &str) -> Result<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            if dir.is_some_and(|d| !d.is_dir()) {
                bail!(
                    "cannot write {}: its directory does not exist",
                    path.display()
                );
            }
            String::new()
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    check_toml(&text, path)?;
    if link_tables(&text).iter().any(|(t, _)| t == team) {
        return Err(UsageError(format!(
            "{} already has a [[team.link]] to team {team}",
            path.display()
        ))
        .into());
    }
    let updated = format!("{text}{snippet}");
    check_toml(&updated, path)?;
    Ok(updated)
}

/// The config file without its `[[team.link]]` to `team` (and the comment line `team link
/// add` wrote above it); refused if it has none.
fn without_link(path: &Path, team: &str) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    check_toml(&text, path)?;
    let lines: Vec<&str> = text.lines().collect();
    let Some(&(_, (start, end))) = link_tables(&text).iter().find(|(t, _)| t == team) else {
        bail!("{} has no [[team.link]] to team {team}", path.display());
    };
    let start = if start > 0 && lines[start - 1].starts_with("# link to team") {
        start - 1
    } else {
        start
    };
    let mut kept: Vec<&str> = lines[..start].to_vec();
    kept.extend_from_slice(&lines[end..]);
    let mut updated = kept.join("\n");
    updated.push('\n');
    check_toml(&updated, path)?;
    Ok(updated)
}

/// Each `[[team.link]]` of `text`: its team and its lines (first, one past the last).
fn link_tables(text: &str) -> Vec<(String, (usize, usize))> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "[[team.link]]" {
            continue;
        }
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim_start().starts_with('['))
            .unwrap_or(lines.len());
        let team = lines[i + 1..end].iter().find_map(|l| {
            l.split_once('=')
                .filter(|(k, _)| k.trim() == "team")
                .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        });
        if let Some(team) = team {
            out.push((team, (i, end)));
        }
    }
    out
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn check_toml(text: &str, path: &Path) -> Result<()> {
    if let Err(e) = text.parse::<toml::Table>() {
        bail!("{} would not be valid TOML: {e}", path.display());
    }
    Ok(())
}
