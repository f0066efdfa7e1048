//! One layer of settings (the TOML file, the environment or the flags), every value optional
//! and still text; [`super::resolve`] merges and validates the layers.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::channel_tables::{
    EmailEntry, ExecEntry, NotifyChannelsFile, PushoverEntry, WebhookEntry,
};
use super::ConfigError;

/// One layer of settings, every value optional (the TOML file, the environment or the flags).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layer {
    /// `node.name`
    pub node_name: Option<String>,
    /// `node.team`
    pub team: Option<String>,
    /// `node.data_dir`
    pub data_dir: Option<String>,
    /// `gossip.bind`
    pub bind: Option<String>,
    /// `gossip.advertise`
    pub advertise: Option<String>,
    /// `gossip.join` (replaces, does not add to, lower layers)
    pub join: Option<Vec<String>>,
    /// `gossip.key_file`
    pub key_file: Option<String>,
    /// `gossip.profile`
    pub profile: Option<String>,
    /// `api.bind`
    pub api: Option<String>,
    /// `gossip.sync_interval`
    pub sync_interval: Option<String>,
    /// `status.interval`
    pub status_interval: Option<String>,
    /// `status.mounts`
    pub mounts: Option<Vec<String>>,
    /// `history.raw_retention`
    pub raw_retention: Option<String>,
    /// `history.retention`
    pub retention: Option<String>,
    /// `incidents.retention`
    pub incidents_retention: Option<String>,
    /// The `[[check]]` array, parsed by [`crate::checks::config`].
    pub checks: Option<toml::Value>,
    /// `election.bootstrap_expect`
    pub bootstrap_expect: Option<String>,
    /// `election.max_voters`
    pub max_voters: Option<String>,
    /// `election.voter_reap_after`
    pub voter_reap_after: Option<String>,
    /// `election.fallback_after`
    pub fallback_after: Option<String>,
    /// `notify.group_wait`
    pub group_wait: Option<String>,
    /// `notify.repeat_interval`
    pub repeat_interval: Option<String>,
    /// The console switch and the channel tables of `[notify]` (config file only).
    pub notify: Option<NotifyChannelsFile>,
}

#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    #[serde(default)]
    node: FileNode,
    #[serde(default)]
    gossip: FileGossip,
    #[serde(default)]
    api: FileApi,
    #[serde(default)]
    status: FileStatus,
    #[serde(default)]
    history: FileHistory,
    #[serde(default)]
    incidents: FileIncidents,
    #[serde(default)]
    election: FileElection,
    notify: Option<FileNotify>,
    check: Option<toml::Value>,
    /// Sections read by later features; accepted so that one config file serves every version.
    #[serde(flatten)]
    later: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNode {
    name: Option<String>,
    team: Option<String>,
    data_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGossip {
    bind: Option<String>,
    advertise: Option<String>,
    join: Option<Vec<String>>,
    key_file: Option<String>,
    profile: Option<String>,
    sync_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStatus {
    interval: Option<String>,
    mounts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHistory {
    raw_retention: Option<String>,
    retention: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIncidents {
    retention: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileElection {
    bootstrap_expect: Option<toml::Value>,
    max_voters: Option<toml::Value>,
    voter_reap_after: Option<String>,
    fallback_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNotify {
    group_wait: Option<String>,
    repeat_interval: Option<String>,
    console: Option<bool>,
    #[serde(default)]
    email: Vec<EmailEntry>,
    #[serde(default)]
    pushover: Vec<PushoverEntry>,
    #[serde(default)]
    webhook: Vec<WebhookEntry>,
    #[serde(default)]
    exec: Vec<ExecEntry>,
}

/// A TOML number or string, as the text the resolver parses.
fn as_text(value: Option<toml::Value>) -> Option<String> {
    value.map(|v| match v {
        toml::Value::String(s) => s,
        other => other.to_string(),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApi {
    bind: Option<String>,
}

/// Sections a config file may hold besides `node`, `gossip` and `api`.
const LATER_SECTIONS: &[&str] = &["check", "teams", "topology"];

impl Layer {
    /// Reads the TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses TOML text (`path` only names the file in errors).
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        if let Some(unknown) = file
            .later
            .keys()
            .find(|k| !LATER_SECTIONS.contains(&k.as_str()))
        {
            return Err(ConfigError::Parse {
                path: path.to_owned(),
                message: format!("unknown section or key `{unknown}`"),
            });
        }
        let (group_wait, repeat_interval, notify) = match file.notify {
            Some(section) => (
                section.group_wait,
                section.repeat_interval,
                Some(NotifyChannelsFile {
                    console: section.console,
                    email: section.email,
                    pushover: section.pushover,
                    webhook: section.webhook,
                    exec: section.exec,
                }),
            ),
            None => (None, None, None),
        };
        Ok(Self {
            node_name: file.node.name,
            team: file.node.team,
            data_dir: file.node.data_dir,
            bind: file.gossip.bind,
            advertise: file.gossip.advertise,
            join: file.gossip.join,
            key_file: file.gossip.key_file,
            profile: file.gossip.profile,
            api: file.api.bind,
            sync_interval: file.gossip.sync_interval,
            status_interval: file.status.interval,
            mounts: file.status.mounts,
            raw_retention: file.history.raw_retention,
            retention: file.history.retention,
            incidents_retention: file.incidents.retention,
            checks: file.check,
            bootstrap_expect: as_text(file.election.bootstrap_expect),
            max_voters: as_text(file.election.max_voters),
            voter_reap_after: file.election.voter_reap_after,
            fallback_after: file.election.fallback_after,
            group_wait,
            repeat_interval,
            notify,
        })
    }

    /// Reads `ROVER_*` variables through `get` (the process environment in production).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            node_name: get("ROVER_NODE"),
            team: get("ROVER_TEAM"),
            data_dir: get("ROVER_DATA_DIR"),
            bind: get("ROVER_BIND"),
            advertise: get("ROVER_ADVERTISE"),
            join: get("ROVER_JOIN").map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }),
            key_file: get("ROVER_KEY_FILE"),
            profile: get("ROVER_PROFILE"),
            api: get("ROVER_API"),
            sync_interval: get("ROVER_SYNC_INTERVAL"),
            status_interval: get("ROVER_STATUS_INTERVAL"),
            mounts: None,
            raw_retention: get("ROVER_HISTORY_RAW_RETENTION"),
            retention: get("ROVER_HISTORY_RETENTION"),
            incidents_retention: get("ROVER_INCIDENTS_RETENTION"),
            checks: None,
            bootstrap_expect: get("ROVER_BOOTSTRAP_EXPECT"),
            max_voters: get("ROVER_MAX_VOTERS"),
            voter_reap_after: get("ROVER_VOTER_REAP_AFTER"),
            fallback_after: get("ROVER_FALLBACK_AFTER"),
            group_wait: get("ROVER_GROUP_WAIT"),
            repeat_interval: get("ROVER_REPEAT_INTERVAL"),
            notify: None,
        }
    }
}
