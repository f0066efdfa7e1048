//! The `[team]` section: this agent's border links to other teams (seed 000).
//!
//! ```toml
//! [team]
//! link_bind = "0.0.0.0:7902"   # where links from other teams' border agents arrive
//! link_timeout = "15s"         # silence after which a link is lost
//! notify_remote = false        # notify other teams' alerts too (naming the origin team)
//!
//! [[team.link]]
//! team = "cabin"               # the other team's name (its agents' node.team)
//! peer = "cabin.example.org:7902"   # one of its border agents' link_bind
//! key_file = "/etc/rover-agent/cabin.key"   # a key only these two teams share (`keygen`)
//! mode = "direct"              # or "transit" (both ends must say transit)
//! ```
//!
//! Key files are read and checked when the config is loaded; relative paths are taken from the
//! config file's directory. An agent with at least one link is a border agent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rover_membership::ClusterKey;

use super::{ConfigError, Source};

/// Default port of `team.link_bind`.
pub const DEFAULT_LINK_PORT: u16 = 7902;
/// Default `team.link_timeout`.
pub const DEFAULT_LINK_TIMEOUT: Duration = Duration::from_secs(15);
/// At most this many links per agent.
pub const MAX_LINKS: usize = 32;

pub use crate::teams::wire::LinkMode;

/// One `[[team.link]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// The other team.
    pub team: String,
    /// Where its border agent listens for links (`host:port`, resolved at each connect).
    pub peer: String,
    /// The key file, as resolved.
    pub key_file: PathBuf,
    /// The pairwise key.
    pub key: ClusterKey,
    /// What this end offers.
    pub mode: LinkMode,
}

/// The validated `[team]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamsConfig {
    /// Where links arrive (`None`: no link configured, nothing listens).
    pub link_bind: Option<SocketAddr>,
    /// Silence after which a link is lost.
    pub link_timeout: Duration,
    /// Whether other teams' alerts are notified too.
    pub notify_remote: bool,
    /// The links, in file order.
    pub links: Vec<LinkConfig>,
}

impl Default for TeamsConfig {
    fn default() -> Self {
        Self {
            link_bind: None,
            link_timeout: DEFAULT_LINK_TIMEOUT,
            notify_remote: false,
            links: Vec::new(),
        }
    }
}

/// `[team]` as written, each value checked for its type.
#[derive(Debug, Default)]
struct TeamFile {
    link_bind: Option<String>,
    link_timeout: Option<String>,
    notify_remote: Option<bool>,
    link: Vec<LinkFile>,
}

/// One `[[team.link]]` as written.
#[derive(Debug, Default)]
struct LinkFile {
    team: Option<String>,
    peer: Option<String>,
    key_file: Option<String>,
    mode: Option<String>,
}

/// Reads the `[team]` table, naming the key of any unknown key or wrong type.
fn read_file(table: &toml::Value) -> Result<TeamFile, (String, String)> {
    let text = |key: &str, value: &toml::Value| -> Result<String, (String, String)> {
        value.as_str().map(str::to_owned).ok_or_else(|| {
            (
                key.to_owned(),
                format!("expected a string, found {}", value.type_str()),
            )
        })
    };
    let toml::Value::Table(table) = table else {
        return Err(("team".into(), "expected a table".into()));
    };
    let mut file = TeamFile::default();
    for (key, value) in table {
        let dotted = format!("team.{key}");
        match key.as_str() {
            "link_bind" => file.link_bind = Some(text(&dotted, value)?),
            "link_timeout" => file.link_timeout = Some(text(&dotted, value)?),
            "notify_remote" => {
                file.notify_remote = Some(value.as_bool().ok_or_else(|| {
                    (
                        dotted.clone(),
                        format!("expected true or false, found {}", value.type_str()),
                    )
                })?);
            }
            "link" => {
                let links = value
                    .as_array()
                    .ok_or_else(|| (dotted.clone(), "expected [[team.link]] tables".to_owned()))?;
                for (index, entry) in links.iter().enumerate() {
                    let at = format!("team.link[{}]", index + 1);
                    let entry = entry
                        .as_table()
                        .ok_or_else(|| (at.clone(), "expected a table".to_owned()))?;
                    let mut link = LinkFile::default();
                    for (key, value) in entry {
                        let dotted = format!("{at}.{key}");
                        let slot = match key.as_str() {
                            "team" => &mut link.team,
                            "peer" => &mut link.peer,
                            "key_file" => &mut link.key_file,
                            "mode" => &mut link.mode,
                            _ => {
                                return Err((
                                    dotted,
                                    "unknown key (team, peer, key_file or mode)".into(),
                                ))
                            }
                        };
                        *slot = Some(text(&dotted, value)?);
                    }
                    file.link.push(link);
                }
            }
            _ => {
                return Err((
                    dotted,
                    "unknown key (link_bind, link_timeout, notify_remote or [[team.link]])".into(),
                ))
            }
        }
    }
    Ok(file)
}

/// Resolves the `[team]` table of the config file (`None`: no such section) for an agent of
/// team `own_team` bound to `bind`.
pub fn resolve(
    table: Option<&toml::Value>,
    file: Option<&Path>,
    own_team: &str,
    bind: SocketAddr,
) -> Result<TeamsConfig, ConfigError> {
    let Some(table) = table else {
        return Ok(TeamsConfig::default());
    };
    let origin = file.map_or(Source::Default, |p| Source::File(p.to_owned()));
    let invalid = |key: String, value: Option<String>, problem: String| ConfigError::Channel {
        key,
        value,
        origin: origin.clone(),
        problem,
    };
    let parsed = read_file(table).map_err(|(key, problem)| invalid(key, None, problem))?;
    let link_timeout = match &parsed.link_timeout {
        None => DEFAULT_LINK_TIMEOUT,
        Some(text) => super::bounded_duration(
            text,
            super::settings::DurationBounds {
                min: Duration::from_secs(1),
                max: Duration::from_secs(3600),
                zero: None,
            },
        )
        .map_err(|p| invalid("team.link_timeout".into(), Some(text.clone()), p))?
        .unwrap_or(DEFAULT_LINK_TIMEOUT),
    };
    if parsed.link.len() > MAX_LINKS {
        return Err(invalid(
            "team.link".into(),
            None,
            format!("at most {MAX_LINKS} links per agent"),
        ));
    }
    let base = file.and_then(Path::parent).unwrap_or(Path::new("."));
    let mut links: Vec<LinkConfig> = Vec::new();
    for (index, entry) in parsed.link.iter().enumerate() {
        let at = |key: &str| format!("team.link[{}].{key}", index + 1);
        let required = |value: &Option<String>, key: &str| {
            value
                .clone()
                .ok_or_else(|| invalid(at(key), None, "missing".into()))
        };
        let team = required(&entry.team, "team")?;
        super::values::name(&team).map_err(|p| invalid(at("team"), Some(team.clone()), p))?;
        if team == own_team {
            return Err(invalid(
                at("team"),
                Some(team),
                "is this agent's own team (node.team): a link joins two different teams".into(),
            ));
        }
        if links.iter().any(|l| l.team == team) {
            return Err(invalid(
                at("team"),
                Some(team),
                "a second link to the same team from this agent (one per team; redundancy comes from other border agents)".into(),
            ));
        }
        let peer = required(&entry.peer, "peer")?;
        check_peer(&peer).map_err(|p| invalid(at("peer"), Some(peer.clone()), p))?;
        let key_text = required(&entry.key_file, "key_file")?;
        let key_file = base.join(&key_text);
        let key = crate::data_dir::read_key_file(&key_file)
            .map_err(|e| invalid(at("key_file"), Some(key_text.clone()), format!("{e:#}")))?;
        let mode = match entry.mode.as_deref() {
            None | Some("direct") => LinkMode::Direct,
            Some("transit") => LinkMode::Transit,
            Some(other) => {
                return Err(invalid(
                    at("mode"),
                    Some(other.to_owned()),
                    "expected direct or transit".into(),
                ))
            }
        };
        if let Some(other) = links.iter().find(|l| l.key == key) {
            return Err(invalid(
                at("key_file"),
                Some(key_text),
                format!(
                    "the same key as the link to team {} (each link needs a key of its own: `rover-agent keygen`)",
                    other.team
                ),
            ));
        }
        links.push(LinkConfig {
            team,
            peer,
            key_file,
            key,
            mode,
        });
    }
    let link_bind = match &parsed.link_bind {
        Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "team.link_bind".into(),
                Some(text.clone()),
                "expected IP:PORT".into(),
            )
        })?),
        None if links.is_empty() => None,
        None => Some(SocketAddr::new(bind.ip(), DEFAULT_LINK_PORT)),
    };
    Ok(TeamsConfig {
        link_bind,
        link_timeout,
        notify_remote: parsed.notify_remote.unwrap_or(false),
        links,
    })
}

/// A peer is `host:port` (an IPv6 host in brackets) with a port from 1 to 65535.
pub fn check_peer(peer: &str) -> Result<(), String> {
    let (host, port) = peer
        .rsplit_once(':')
        .ok_or("expected host:port (the other team's link_bind)")?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port {port:?} is not a number from 1 to 65535"))?;
    if port == 0 {
        return Err("port 0".into());
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
    {
        return Err(format!(
            "{host} is not an address to connect to (give the other border's own address)"
        ));
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("host {host:?} is not a host name or an address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_text(text: &str) -> Result<TeamsConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("b.key"),
            "M2PjtTWQy7uM2r7VHgcVQfgppi3T5N7p3KLxRfmsdi4=\n",
        )
        .unwrap();
        let file = dir.path().join("rover.toml");
        let table: toml::Table = toml::from_str(text).unwrap();
        resolve(
            table.get("team"),
            Some(&file),
            "home",
            "127.0.0.1:7900".parse().unwrap(),
        )
    }

    #[test]
    fn a_link_is_read_with_its_key_and_a_default_listener() {
        let config = resolve_text(
            "[[team.link]]\nteam = \"cabin\"\npeer = \"127.0.0.1:7912\"\nkey_file = \"b.key\"\n",
        )
        .unwrap();
        assert_eq!(config.links.len(), 1);
        assert_eq!(config.links[0].mode, LinkMode::Direct);
        assert_eq!(config.link_bind, Some("127.0.0.1:7902".parse().unwrap()));
        assert_eq!(config.link_timeout, DEFAULT_LINK_TIMEOUT);
    }

    #[test]
    fn a_link_to_our_own_team_or_a_bad_mode_or_peer_is_refused_naming_the_key() {
        for (text, key) in [
            (
                "team = \"home\"\npeer = \"a:1\"\nkey_file = \"b.key\"",
                "team.link[1].team",
            ),
            (
                "team = \"b\"\npeer = \"a:1\"\nkey_file = \"b.key\"\nmode = \"x\"",
                "team.link[1].mode",
            ),
            (
                "team = \"b\"\npeer = \"a\"\nkey_file = \"b.key\"",
                "team.link[1].peer",
            ),
            (
                "team = \"b\"\npeer = \"a:1\"\nkey_file = \"none.key\"",
                "team.link[1].key_file",
            ),
            ("team = \"b\"\npeer = \"a:1\"", "team.link[1].key_file"),
        ] {
            let err = resolve_text(&format!("[[team.link]]\n{text}\n")).unwrap_err();
            assert!(err.to_string().starts_with(key), "{err}");
        }
        let err = resolve_text("[team]\nnope = 1\n").unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn a_wrong_type_an_unknown_link_key_or_one_key_for_two_links_names_the_key() {
        let link = |team: &str| {
            format!("[[team.link]]\nteam = \"{team}\"\npeer = \"a:1\"\nkey_file = \"b.key\"\n")
        };
        for (text, key) in [
            ("[team]\nlink_timeout = 5\n".to_owned(), "team.link_timeout"),
            (
                "[team]\nnotify_remote = \"yes\"\n".to_owned(),
                "team.notify_remote",
            ),
            (format!("{}foo = \"x\"\n", link("b")), "team.link[1].foo"),
            (
                format!("{}{}", link("b"), link("c")),
                "team.link[2].key_file",
            ),
        ] {
            let err = resolve_text(&text).unwrap_err();
            assert!(err.to_string().starts_with(key), "{text}: {err}");
        }
    }
}
