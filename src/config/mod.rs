//! The agent's configuration: defaults < TOML file < environment < command-line flags,
//! merged as text and validated once into [`Config`]. Every error names the key, the bad value
//! and where the value came from.

mod channel_tables;
mod election;
mod layer;
pub mod notify;
pub mod settings;
pub mod teams;
mod values;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

pub use self::election::ElectionConfig;
pub use self::layer::{Layer, Raw};
pub use self::notify::NotifyConfig;
use self::settings::*;
use self::values::Values;
use crate::checks::config::CheckConfig;
use rover_membership::Profile;

/// Default gossip (UDP) and cluster (TCP) port.
pub const DEFAULT_GOSSIP_PORT: u16 = 7900;
/// Default local API address.
pub const DEFAULT_API: &str = "127.0.0.1:7901";

/// The validated configuration the daemon runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Node name (default: the hostname).
    pub node_name: String,
    /// Team (default `default`).
    pub team: String,
    /// Where the keyring, token and database live.
    pub data_dir: PathBuf,
    /// Gossip socket address.
    pub bind: SocketAddr,
    /// Address other agents reach us at (default: the bind address, or this host's first
    /// non-loopback address when bound to 0.0.0.0).
    pub advertise: SocketAddr,
    /// Seeds to join at start.
    pub join: Vec<SocketAddr>,
    /// Tags gossiped with this member.
    pub tags: rover_membership::Tags,
    /// File holding the cluster key as one base64 line.
    pub key_file: Option<PathBuf>,
    /// An invitation to join with (checked when the agent starts).
    pub join_token: Option<String>,
    /// SWIM timings.
    pub profile: Profile,
    /// Local HTTP API address.
    pub api: SocketAddr,
    /// How often alert tables are reconciled with a random peer.
    pub sync_interval: Duration,
    /// How often a status sample is taken and broadcast.
    pub status_interval: Duration,
    /// Mount points whose disk use goes into status samples.
    pub mounts: Vec<PathBuf>,
    /// How long raw samples are kept before being folded into 1-minute means.
    pub raw_retention: Duration,
    /// How long history is kept at all.
    pub retention: Duration,
    /// How long closed incidents stay in the ledger after they ended.
    pub incidents_retention: Duration,
    /// `history.replicas` (0: every member up to 20 members, else 5).
    pub history_replicas: usize,
    /// `introspection.events`: cluster events kept.
    pub introspection_events: usize,
    /// `introspection.beacon`: the beacon to send events to, if any.
    pub beacon: Option<SocketAddr>,
    /// `ui.bind`: the read-only dashboard listener for other machines, if any.
    pub ui_bind: Option<SocketAddr>,
    /// `status.full_every`: the longest time between two status samples sent.
    pub status_full_every: Duration,
    /// The checks to run.
    pub checks: Vec<CheckConfig>,
    /// The Raft group and the fallback leader.
    pub election: ElectionConfig,
    /// Grouping, repeats and the notification channels.
    pub notify: NotifyConfig,
    /// `[topology]`: LLDP and CDP listening.
    pub topology: crate::topology::TopologySettings,
    /// `log.level`: the log filter.
    pub log_filter: String,
    /// `[team]`: border links to other teams.
    pub teams: teams::TeamsConfig,
}

/// A configuration error, naming the key, the value and its source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown keys.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which names the key and line.
        message: String,
    },
    /// A value is present but wrong.
    #[error("{key} = {value:?} (from {origin}): {problem}")]
    Invalid {
        /// Dotted key, e.g. `gossip.bind`.
        key: &'static str,
        /// The bad value.
        value: String,
        /// Where it came from.
        origin: Source,
        /// What is wrong with it.
        problem: String,
    },
    /// A `[[notify.*]]` channel lacks a key or has a wrong value.
    #[error("{key}{} (from {origin}): {problem}", value.as_ref().map(|v| format!(" = {v:?}")).unwrap_or_default())]
    Channel {
        /// The entry and key, e.g. `notify.email[1] ("ops").to`.
        key: String,
        /// The bad value, if one was given (secrets are never shown).
        value: Option<String>,
        /// Where it came from.
        origin: Source,
        /// What is wrong (or `missing`).
        problem: String,
    },
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built-in default.
    Default,
    /// The TOML file.
    File(PathBuf),
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Env(name) => write!(f, "env {name}"),
            Source::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// Parses `text` as a duration within `bounds` (for tables outside the settings table, such as
/// `[[check]]`); `Ok(None)` is a zero the bounds allow.
pub fn bounded_duration(
    text: &str,
    bounds: settings::DurationBounds,
) -> Result<Option<Duration>, String> {
    values::duration(text, bounds)
}

/// A value with the layer it came from.
pub(crate) struct Sourced<T> {
    value: T,
    source: Source,
}

/// Merges file < env < flags over the defaults and validates the result once.
pub fn resolve(
    file: Option<(Layer, PathBuf)>,
    env: Layer,
    flags: Layer,
    default_data_dir: PathBuf,
    hostname: String,
) -> Result<Config, ConfigError> {
    let mut layers: Vec<(&Layer, Source)> = Vec::new();
    if let Some((layer, path)) = &file {
        layers.push((layer, Source::File(path.clone())));
    }
    layers.push((&env, Source::Env("")));
    layers.push((&flags, Source::Flag("")));
    let values = Values::new(&layers);

    let node_name = match values.text(&NODE_NAME)? {
        Some(name) => name.value,
        None => values::name(&hostname).map_err(|problem| ConfigError::Invalid {
            key: NODE_NAME.key,
            value: hostname.clone(),
            origin: Source::Default,
            problem: format!("{problem} (this host's name does not fit: set node.name)"),
        })?,
    };
    let text = |setting: &Setting| -> Result<String, ConfigError> {
        Ok(values.text(setting)?.map(|t| t.value).unwrap_or_default())
    };
    let address = |setting: &Setting| -> Result<Option<SocketAddr>, ConfigError> {
        Ok(values.address(setting)?.map(|a| a.value))
    };
    let team = text(&NODE_TEAM)?;
    let data_dir = values
        .text(&NODE_DATA_DIR)?
        .map_or(default_data_dir, |dir| PathBuf::from(dir.value));
    let bind = address(&GOSSIP_BIND)?
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], DEFAULT_GOSSIP_PORT)));
    let advertise = address(&GOSSIP_ADVERTISE)?.unwrap_or_else(|| default_advertise(bind));
    let join = values.seeds(&GOSSIP_JOIN)?;
    let tags = values.tags(&NODE_TAGS)?;
    let key_file = values
        .text(&GOSSIP_KEY_FILE)?
        .map(|f| PathBuf::from(f.value));
    let join_token = values.text(&GOSSIP_JOIN_TOKEN)?.map(|t| t.value);
    // The row's choices are exactly the profiles, so this parse cannot fail.
    let profile = text(&GOSSIP_PROFILE)?.parse().unwrap_or(Profile::Lan);
    let api = address(&API_BIND)?.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7901)));

    let sync_interval = values.required_duration(&GOSSIP_SYNC_INTERVAL)?.value;
    let status_interval = values.required_duration(&STATUS_INTERVAL)?.value;
    let raw_retention = values.required_duration(&HISTORY_RAW_RETENTION)?;
    let retention = values.required_duration(&HISTORY_RETENTION)?;
    let incidents_retention = values.required_duration(&INCIDENTS_RETENTION)?.value;
    let history_replicas = usize::try_from(values.count(&settings::HISTORY_REPLICAS)?).unwrap_or(0);
    let introspection_events = usize::try_from(values.count(&settings::INTROSPECTION_EVENTS)?)
        .unwrap_or(crate::introspection::DEFAULT_EVENTS);
    let beacon = address(&settings::INTROSPECTION_BEACON)?;
    let ui_bind = address(&settings::UI_BIND)?;
    let status_full_every = values
        .required_duration(&settings::STATUS_FULL_EVERY)?
        .value;
    if retention.value < raw_retention.value {
        return Err(ConfigError::Invalid {
            key: HISTORY_RETENTION.key,
            value: settings::short_duration(retention.value),
            origin: retention.source,
            problem: format!(
                "must be at least history.raw_retention ({}, from {})",
                settings::short_duration(raw_retention.value),
                raw_retention.source
            ),
        });
    }
    let mounts = values.paths(&STATUS_MOUNTS)?;
    let checks = match layers
        .iter()
        .rev()
        .find_map(|(layer, source)| layer.checks.as_ref().map(|checks| (checks, source)))
    {
        Some((value, source)) => {
            crate::checks::config::parse(value).map_err(|problem| ConfigError::Parse {
                path: match source {
                    Source::File(path) => path.clone(),
                    _ => PathBuf::from("config"),
                },
                message: problem.to_string(),
            })?
        }
        None => Vec::new(),
    };

    let election = election::resolve(&values)?;
    let notify = notify::resolve(&layers, &values)?;
    let topology = crate::topology::TopologySettings {
        enabled: values.switch(&settings::TOPOLOGY_ENABLED)?.unwrap_or(true),
        interfaces: values.interfaces(&settings::TOPOLOGY_INTERFACES)?,
    };
    let log_filter = text(&settings::LOG_LEVEL)?;
    let team_file = layers
        .iter()
        .rev()
        .find_map(|(layer, source)| layer.team.as_ref().map(|table| (table, source)));
    let teams = match team_file {
        Some((table, Source::File(path))) => teams::resolve(Some(table), Some(path), &team, bind)?,
        Some((table, _)) => teams::resolve(Some(table), None, &team, bind)?,
        None => teams::TeamsConfig::default(),
    };
    Ok(Config {
        log_filter,
        teams,
        node_name,
        team,
        data_dir,
        bind,
        advertise,
        join,
        tags,
        key_file,
        join_token,
        profile,
        api,
        sync_interval,
        status_interval,
        mounts,
        raw_retention: raw_retention.value,
        retention: retention.value,
        incidents_retention,
        history_replicas,
        introspection_events,
        beacon,
        ui_bind,
        status_full_every,
        checks,
        election,
        notify,
        topology,
    })
}

/// Parses a seed given as `host:port`, `ip:port`, `host` or `ip` (port 7900 by default).
pub fn parse_seed(seed: &str) -> Result<SocketAddr, String> {
    let seed = seed.trim();
    if seed.is_empty() {
        return Err("empty seed address".into());
    }
    if let Ok(addr) = seed.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = seed.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_GOSSIP_PORT));
    }
    let with_port = if seed
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        seed.to_owned()
    } else {
        format!("{seed}:{DEFAULT_GOSSIP_PORT}")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {seed}: {e}"))?
        .next()
        .ok_or_else(|| format!("{seed} resolves to no address"))
}

/// The address to advertise when none is configured.
pub(crate) fn default_advertise(bind: SocketAddr) -> SocketAddr {
    if !bind.ip().is_unspecified() {
        return bind;
    }
    let ip = if_addrs::get_if_addrs()
        .ok()
        .and_then(|addrs| {
            addrs
                .into_iter()
                .filter(|i| !i.is_loopback() && i.ip().is_ipv4())
                .map(|i| i.ip())
                .next()
        })
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    SocketAddr::new(ip, bind.port())
}

/// The data dir used when none is configured: `/var/lib/rover-agent` for root, otherwise
/// `$XDG_DATA_HOME/rover-agent` (or `~/.local/share/rover-agent`).
pub fn default_data_dir() -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let is_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if is_root {
        return PathBuf::from("/var/lib/rover-agent");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("rover-agent");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/share/rover-agent")
}

/// This host's name, or `localhost` if it cannot be read.
pub fn hostname() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    let short = name.split('.').next().unwrap_or_default().to_owned();
    if short.is_empty() {
        "localhost".into()
    } else {
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn resolve_with(
        file: Option<&str>,
        env: &[(&str, &str)],
        flags: Layer,
    ) -> Result<Config, ConfigError> {
        let file = file.map(|text| {
            (
                Layer::from_toml(text, Path::new("rover.toml")).unwrap(),
                PathBuf::from("rover.toml"),
            )
        });
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = Layer::from_env(|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()));
        resolve(
            file,
            env,
            flags,
            PathBuf::from("/tmp/rover-default"),
            "myhost".into(),
        )
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let config = resolve_with(None, &[], Layer::default()).unwrap();
        assert_eq!(config.node_name, "myhost");
        assert_eq!(config.team, "default");
        assert_eq!(config.bind.port(), 7900);
        assert_eq!(config.api, "127.0.0.1:7901".parse().unwrap());
        assert_eq!(config.profile, Profile::Lan);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/rover-default"));
    }

    #[test]
    fn flags_beat_env_which_beats_the_file() {
        let file = "[node]\nname = \"from-file\"\nteam = \"file-team\"\n[gossip]\nbind = \"127.0.0.1:1000\"\n";
        let flags = Layer::default().with(&NODE_NAME, "from-flag");
        let config = resolve_with(
            Some(file),
            &[("ROVER_TEAM", "env-team"), ("ROVER_NODE", "from-env")],
            flags,
        )
        .unwrap();
        assert_eq!(config.node_name, "from-flag");
        assert_eq!(config.team, "env-team");
        assert_eq!(config.bind, "127.0.0.1:1000".parse().unwrap());
        assert_eq!(config.advertise, config.bind);
    }

    #[test]
    fn a_bad_value_names_its_key_value_and_source() {
        let err = resolve_with(None, &[("ROVER_BIND", "nonsense")], Layer::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("gossip.bind"), "{err}");
        assert!(err.contains("nonsense"), "{err}");
        assert!(err.contains("ROVER_BIND"), "{err}");
        let err = resolve_with(
            Some("[gossip]\nprofile = \"fast\"\n"),
            &[],
            Layer::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("gossip.profile") && err.contains("fast") && err.contains("rover.toml"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error_naming_it() {
        let err = Layer::from_toml("[gossip]\nbindd = \"1\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bindd"), "{err}");
        let err = Layer::from_toml("[gosip]\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("gosip"), "{err}");
    }

    #[test]
    fn the_design_example_file_parses() {
        let text = r#"
[node]
name = "n1"
team = "home"
data_dir = "/var/lib/rover-agent"
[gossip]
bind = "0.0.0.0:7900"
advertise = "192.0.2.10:7900"
join = ["192.0.2.11:7900"]
key_file = "/etc/rover-agent/key"
profile = "lan"
[api]
bind = "127.0.0.1:7901"
[notify]
group_wait = "5s"
[[notify.email]]
smtp_host = "127.0.0.1"
smtp_port = 25
tls = "none"
from = "rover@example.org"
to = ["ops@example.org"]
[[notify.pushover]]
token = "azGDORePK8gMaC0QOYAMyEEuzJnyUi"
user = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"
api_url = "https://api.pushover.net"
[[notify.webhook]]
url = "http://127.0.0.1:8080/hook"
[[notify.exec]]
command = ["/usr/local/bin/page-me"]
[[check]]
name = "disk-root"
command = ["/usr/lib/nagios/plugins/check_disk", "-w", "20%"]
"#;
        let config = resolve_with(Some(text), &[], Layer::default()).unwrap();
        assert_eq!(config.node_name, "n1");
        assert_eq!(
            config.join,
            vec!["192.0.2.11:7900".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(config.advertise, "192.0.2.10:7900".parse().unwrap());
        assert_eq!(config.notify.group_wait, Duration::from_secs(5));
        assert_eq!(
            config.notify.names(),
            ["email", "pushover", "webhook", "exec"]
        );
    }

    #[test]
    fn the_packaged_default_config_parses_to_the_defaults() {
        let text = include_str!("../../packaging/agent.toml");
        let packaged = resolve_with(Some(text), &[], Layer::default()).unwrap();
        let defaults = resolve_with(None, &[], Layer::default()).unwrap();
        assert_eq!(format!("{packaged:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn every_example_line_of_the_packaged_config_parses_once_uncommented() {
        let text: String = include_str!("../../packaging/agent.toml")
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if rest.starts_with('[') || rest.contains(" = ") => rest,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let config = resolve_with(Some(&text), &[], Layer::default()).unwrap();
        assert_eq!(config.node_name, "web-1");
        assert_eq!(config.notify.names(), ["email"]);
    }

    #[test]
    fn the_readme_example_config_parses() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## Configuration").unwrap()..];
        let start = section.find("```toml\n").unwrap() + "```toml\n".len();
        let text = &section[start..start + section[start..].find("```").unwrap()];
        let config = resolve_with(Some(text), &[], Layer::default()).unwrap();
        assert_eq!(
            config.notify.names(),
            ["console", "ops-mail", "pushover", "webhook", "exec"]
        );
    }

    #[test]
    fn seeds_default_to_port_7900_and_reject_garbage() {
        assert_eq!(
            parse_seed("127.0.0.1").unwrap(),
            "127.0.0.1:7900".parse().unwrap()
        );
        assert_eq!(
            parse_seed("127.0.0.1:8000").unwrap(),
            "127.0.0.1:8000".parse().unwrap()
        );
        assert_eq!(parse_seed("localhost:8000").unwrap().port(), 8000);
        assert!(parse_seed("").is_err());
        assert!(parse_seed("no such host .invalid").is_err());
    }

    #[test]
    fn the_api_refuses_a_non_loopback_address() {
        let flags = Layer::default().with(&API_BIND, "0.0.0.0:7901");
        let err = resolve_with(None, &[], flags).unwrap_err().to_string();
        assert!(
            err.contains("api.bind") && err.contains("loopback"),
            "{err}"
        );
    }

    #[test]
    fn history_and_status_settings_have_defaults_and_parse() {
        let config = resolve_with(None, &[], Layer::default()).unwrap();
        assert_eq!(config.status_interval, Duration::from_secs(5));
        assert_eq!(config.raw_retention, Duration::from_secs(48 * 3600));
        assert_eq!(config.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(config.mounts, vec![PathBuf::from("/")]);
        let text = "[status]\ninterval = \"2s\"\nmounts = [\"/\", \"/tmp\"]\n[history]\nraw_retention = \"1h\"\nretention = \"2d\"\n";
        let config = resolve_with(Some(text), &[], Layer::default()).unwrap();
        assert_eq!(config.status_interval, Duration::from_secs(2));
        assert_eq!(config.mounts.len(), 2);
        let err = resolve_with(
            Some("[status]\ninterval = \"soon\"\n"),
            &[],
            Layer::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("status.interval") && err.contains("soon"),
            "{err}"
        );
    }

    #[test]
    fn names_with_spaces_are_refused() {
        let flags = Layer::default().with(&NODE_NAME, "my node");
        let err = resolve_with(None, &[], flags).unwrap_err().to_string();
        assert!(err.contains("node.name") && err.contains("--node"), "{err}");
    }

    /// The value just below a duration row's lower bound (or above its upper one).
    fn outside(bounds: settings::DurationBounds, below: bool) -> String {
        if below {
            format!("{}ms", bounds.min.as_millis() - 1)
        } else {
            format!("{}ms", bounds.max.as_millis() + 1)
        }
    }

    #[test]
    fn every_interval_below_its_lower_bound_is_refused_naming_the_key_and_the_source() {
        let mut checked = 0;
        for setting in SETTINGS {
            let settings::Kind::Duration(bounds) = setting.kind else {
                continue;
            };
            let (section, key) = setting.key.split_once('.').unwrap();
            let mut cases = vec![outside(bounds, false)];
            if !bounds.min.is_zero() && bounds.min > Duration::from_millis(1) {
                cases.push(outside(bounds, true));
            }
            for value in cases {
                let file = format!("[{section}]\n{key} = \"{value}\"\n");
                let err = resolve_with(Some(&file), &[], Layer::default())
                    .unwrap_err()
                    .to_string();
                assert!(
                    err.contains(setting.key) && err.contains(&value) && err.contains("rover.toml"),
                    "{}: {err}",
                    setting.key
                );
                if let Some(env) = setting.env {
                    let err = resolve_with(None, &[(env, &value)], Layer::default())
                        .unwrap_err()
                        .to_string();
                    assert!(
                        err.contains(setting.key) && err.contains(&format!("env {env}")),
                        "{}: {err}",
                        setting.key
                    );
                }
                checked += 1;
            }
        }
        assert!(checked >= 15, "only {checked} cases");
    }

    #[test]
    fn the_intervals_of_the_probes_are_refused() {
        for (file, key) in [
            (
                "[notify]\nrepeat_interval = \"1ms\"\n",
                "notify.repeat_interval",
            ),
            ("[status]\ninterval = \"1ms\"\n", "status.interval"),
            (
                "[gossip]\nsync_interval = \"1ms\"\n",
                "gossip.sync_interval",
            ),
            (
                "[election]\nfallback_after = \"1ms\"\n",
                "election.fallback_after",
            ),
            (
                "[[check]]\nname = \"x\"\ncommand = [\"/bin/true\"]\ninterval = \"1ms\"\n",
                "interval",
            ),
        ] {
            let err = resolve_with(Some(file), &[], Layer::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains("1ms"), "{err}");
        }
        let never = resolve_with(
            Some("[notify]\nrepeat_interval = \"0s\"\n"),
            &[],
            Layer::default(),
        );
        assert_eq!(never.unwrap().notify.repeat_interval, None);
        let at_once = resolve_with(
            Some("[notify]\ngroup_wait = \"0s\"\n"),
            &[],
            Layer::default(),
        );
        assert_eq!(at_once.unwrap().notify.group_wait, Duration::ZERO);
    }

    #[test]
    fn a_retention_that_would_overflow_milliseconds_is_refused() {
        for (file, key) in [
            (
                "[history]\nretention = \"18446744073709552s\"\n",
                "history.retention",
            ),
            (
                "[history]\nraw_retention = \"18446744073709552s\"\n",
                "history.raw_retention",
            ),
            ("[history]\nretention = \"3651d\"\n", "history.retention"),
        ] {
            let err = resolve_with(Some(file), &[], Layer::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains("at most"), "{err}");
        }
        let ten_years = resolve_with(
            Some("[history]\nretention = \"3650d\"\n"),
            &[],
            Layer::default(),
        );
        assert_eq!(
            ten_years.unwrap().retention,
            Duration::from_secs(3650 * 86_400)
        );
    }

    #[test]
    fn incidents_retention_comes_from_the_file_or_the_environment_and_names_its_source() {
        let config = resolve_with(None, &[], Layer::default()).unwrap();
        assert_eq!(config.incidents_retention, Duration::from_secs(30 * 86_400));
        let file = resolve_with(
            Some("[incidents]\nretention = \"7d\"\n"),
            &[],
            Layer::default(),
        );
        assert_eq!(
            file.unwrap().incidents_retention,
            Duration::from_secs(7 * 86_400)
        );
        let env = resolve_with(
            None,
            &[("ROVER_INCIDENTS_RETENTION", "1h")],
            Layer::default(),
        );
        assert_eq!(env.unwrap().incidents_retention, Duration::from_secs(3_600));
        let err = resolve_with(
            None,
            &[("ROVER_INCIDENTS_RETENTION", "5s")],
            Layer::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("incidents.retention") && err.contains("ROVER_INCIDENTS_RETENTION"),
            "{err}"
        );
    }

    #[test]
    fn every_default_of_the_table_resolves() {
        let config = resolve_with(None, &[], Layer::default()).unwrap();
        assert_eq!(config.sync_interval, Duration::from_secs(30));
        assert_eq!(
            config.election,
            ElectionConfig {
                bootstrap_expect: 1,
                max_voters: 5,
                voter_reap_after: Duration::from_secs(120),
                fallback_after: Duration::from_secs(20),
            }
        );
        assert_eq!(config.notify, NotifyConfig::default());
    }

    #[test]
    fn an_unreachable_advertise_address_is_blamed_on_the_layer_that_gave_it() {
        let flags = Layer::default().with(&GOSSIP_ADVERTISE, "0.0.0.0:7900");
        let err = resolve_with(None, &[], flags).unwrap_err().to_string();
        assert!(
            err.contains("gossip.advertise") && err.contains("flag --advertise"),
            "{err}"
        );
        let err = resolve_with(
            None,
            &[("ROVER_ADVERTISE", "127.0.0.1:0")],
            Layer::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("env ROVER_ADVERTISE"), "{err}");
    }

    #[test]
    fn a_retention_shorter_than_the_raw_retention_names_both_sources() {
        let err = resolve_with(
            Some("[history]\nraw_retention = \"72h\"\n"),
            &[("ROVER_HISTORY_RETENTION", "2d")],
            Layer::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("history.retention")
                && err.contains("env ROVER_HISTORY_RETENTION")
                && err.contains("rover.toml"),
            "{err}"
        );
    }
}
