//! The agent's configuration: defaults < TOML file < environment < command-line flags,
//! merged as text and validated once into [`Config`]. Every error names the key, the bad value
//! and where the value came from.

mod channel_tables;
mod election;
mod layer;
pub mod notify;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

pub use self::election::ElectionConfig;
pub use self::layer::Layer;
pub use self::notify::NotifyConfig;
use crate::checks::config::CheckConfig;
use rover_membership::Profile;

/// Default gossip (UDP) and cluster (TCP) port.
pub const DEFAULT_GOSSIP_PORT: u16 = 7900;
/// Default local API address.
pub const DEFAULT_API: &str = "127.0.0.1:7901";
/// Default `incidents.retention`: closed incidents are forgotten 30 days after they ended.
pub const DEFAULT_INCIDENTS_RETENTION: Duration = Duration::from_secs(30 * 86_400);

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
    /// File holding the cluster key as one base64 line.
    pub key_file: Option<PathBuf>,
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
    /// The checks to run.
    pub checks: Vec<CheckConfig>,
    /// The Raft group and the fallback leader.
    pub election: ElectionConfig,
    /// Grouping, repeats and the notification channels.
    pub notify: NotifyConfig,
}

/// A configuration error, naming the key, the value and its source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
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

/// A value with the layer it came from.
struct Sourced<T> {
    value: T,
    source: Source,
}

/// Picks, for one key, the value of the highest layer that has it.
fn pick<T: Clone>(
    layers: &[(&Layer, Source)],
    field: impl Fn(&Layer) -> Option<T>,
    env: &'static str,
    flag: &'static str,
) -> Option<Sourced<T>> {
    layers.iter().rev().find_map(|(layer, source)| {
        field(layer).map(|value| Sourced {
            value,
            source: match source {
                Source::Env(_) => Source::Env(env),
                Source::Flag(_) => Source::Flag(flag),
                other => other.clone(),
            },
        })
    })
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

    let node_name =
        pick(&layers, |l| l.node_name.clone(), "ROVER_NODE", "--node").unwrap_or(Sourced {
            value: hostname,
            source: Source::Default,
        });
    let node_name = validate_name("node.name", node_name)?;
    let team = pick(&layers, |l| l.team.clone(), "ROVER_TEAM", "--team").unwrap_or(Sourced {
        value: "default".into(),
        source: Source::Default,
    });
    let team = validate_name("node.team", team)?;
    let data_dir = pick(
        &layers,
        |l| l.data_dir.clone(),
        "ROVER_DATA_DIR",
        "--data-dir",
    )
    .map(|s| PathBuf::from(s.value))
    .unwrap_or(default_data_dir);

    let bind = pick(&layers, |l| l.bind.clone(), "ROVER_BIND", "--bind").unwrap_or(Sourced {
        value: format!("0.0.0.0:{DEFAULT_GOSSIP_PORT}"),
        source: Source::Default,
    });
    let bind = parse_socket("gossip.bind", bind)?;
    let advertise = match pick(
        &layers,
        |l| l.advertise.clone(),
        "ROVER_ADVERTISE",
        "--advertise",
    ) {
        Some(value) => {
            let addr = parse_socket("gossip.advertise", value)?;
            if addr.ip().is_unspecified() || addr.port() == 0 {
                return Err(ConfigError::Invalid {
                    key: "gossip.advertise",
                    value: addr.to_string(),
                    origin: Source::Default,
                    problem: "must be a concrete address other agents can reach".into(),
                });
            }
            addr
        }
        None => default_advertise(bind),
    };
    let join = match pick(&layers, |l| l.join.clone(), "ROVER_JOIN", "--join") {
        Some(seeds) => seeds
            .value
            .iter()
            .map(|seed| {
                parse_seed(seed).map_err(|problem| ConfigError::Invalid {
                    key: "gossip.join",
                    value: seed.clone(),
                    origin: seeds.source.clone(),
                    problem,
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let key_file = pick(
        &layers,
        |l| l.key_file.clone(),
        "ROVER_KEY_FILE",
        "--key-file",
    )
    .map(|s| PathBuf::from(s.value));
    let profile = match pick(&layers, |l| l.profile.clone(), "ROVER_PROFILE", "--profile") {
        Some(p) => p.value.parse().map_err(|problem| ConfigError::Invalid {
            key: "gossip.profile",
            value: p.value.clone(),
            origin: p.source.clone(),
            problem,
        })?,
        None => Profile::Lan,
    };
    let api = pick(&layers, |l| l.api.clone(), "ROVER_API", "--api").unwrap_or(Sourced {
        value: DEFAULT_API.into(),
        source: Source::Default,
    });
    let api_source = api.source.clone();
    let api = parse_socket("api.bind", api)?;
    if !api.ip().is_loopback() {
        return Err(ConfigError::Invalid {
            key: "api.bind",
            value: api.to_string(),
            origin: api_source,
            problem: "the local API must bind to a loopback address (127.0.0.0/8 or [::1])".into(),
        });
    }

    let duration =
        |key: &'static str, value: Option<Sourced<String>>, default: Duration| match value {
            None => Ok(default),
            Some(v) => parse_duration(key, v),
        };
    let sync_interval = duration(
        "gossip.sync_interval",
        pick(
            &layers,
            |l| l.sync_interval.clone(),
            "ROVER_SYNC_INTERVAL",
            "-",
        ),
        Duration::from_secs(10),
    )?;
    let status_interval = duration(
        "status.interval",
        pick(
            &layers,
            |l| l.status_interval.clone(),
            "ROVER_STATUS_INTERVAL",
            "-",
        ),
        Duration::from_secs(5),
    )?;
    let raw_retention = duration(
        "history.raw_retention",
        pick(
            &layers,
            |l| l.raw_retention.clone(),
            "ROVER_HISTORY_RAW_RETENTION",
            "-",
        ),
        Duration::from_secs(48 * 3600),
    )?;
    let retention = duration(
        "history.retention",
        pick(
            &layers,
            |l| l.retention.clone(),
            "ROVER_HISTORY_RETENTION",
            "-",
        ),
        Duration::from_secs(30 * 86_400),
    )?;
    if retention < raw_retention {
        return Err(ConfigError::Invalid {
            key: "history.retention",
            value: humantime::format_duration(retention).to_string(),
            origin: Source::Default,
            problem: format!(
                "must be at least history.raw_retention ({})",
                humantime::format_duration(raw_retention)
            ),
        });
    }
    let incidents_retention = duration(
        "incidents.retention",
        pick(
            &layers,
            |l| l.incidents_retention.clone(),
            "ROVER_INCIDENTS_RETENTION",
            "-",
        ),
        DEFAULT_INCIDENTS_RETENTION,
    )?;
    let mounts = pick(&layers, |l| l.mounts.clone(), "-", "-")
        .map(|m| m.value.into_iter().map(PathBuf::from).collect())
        .unwrap_or_else(|| vec![PathBuf::from("/")]);
    let checks = match pick(&layers, |l| l.checks.clone(), "-", "-") {
        Some(value) => {
            crate::checks::config::parse(&value.value).map_err(|problem| ConfigError::Parse {
                path: match value.source {
                    Source::File(path) => path,
                    _ => PathBuf::from("config"),
                },
                message: problem.to_string(),
            })?
        }
        None => Vec::new(),
    };

    let election = election::resolve(&layers)?;
    let notify = notify::resolve(&layers)?;
    Ok(Config {
        node_name,
        team,
        data_dir,
        bind,
        advertise,
        join,
        key_file,
        profile,
        api,
        sync_interval,
        status_interval,
        mounts,
        raw_retention,
        retention,
        incidents_retention,
        checks,
        election,
        notify,
    })
}

fn parse_duration(key: &'static str, value: Sourced<String>) -> Result<Duration, ConfigError> {
    match humantime::parse_duration(value.value.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(ConfigError::Invalid {
            key,
            value: value.value,
            origin: value.source,
            problem: "must be longer than zero".into(),
        }),
        Err(e) => Err(ConfigError::Invalid {
            key,
            value: value.value,
            origin: value.source,
            problem: format!("{e} (e.g. 5s, 10m, 48h)"),
        }),
    }
}

fn validate_name(key: &'static str, name: Sourced<String>) -> Result<String, ConfigError> {
    let ok = !name.value.is_empty()
        && name.value.len() <= 128
        && name
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(name.value)
    } else {
        Err(ConfigError::Invalid {
            key,
            value: name.value,
            origin: name.source,
            problem: "must be 1 to 128 characters of letters, digits, '-', '_' or '.'".into(),
        })
    }
}

fn parse_socket(key: &'static str, value: Sourced<String>) -> Result<SocketAddr, ConfigError> {
    value
        .value
        .trim()
        .parse()
        .map_err(|_| ConfigError::Invalid {
            key,
            value: value.value.clone(),
            origin: value.source,
            problem: "expected IP:PORT, e.g. 127.0.0.1:7900 or [::1]:7900".into(),
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
fn default_advertise(bind: SocketAddr) -> SocketAddr {
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
        let flags = Layer {
            node_name: Some("from-flag".into()),
            ..Layer::default()
        };
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
        let flags = Layer {
            api: Some("0.0.0.0:7901".into()),
            ..Layer::default()
        };
        let err = resolve_with(None, &[], flags).unwrap_err().to_string();
        assert!(
            err.contains("api.bind") && err.contains("loopback"),
            "{err}"
        );
    }

    #[test]
    fn incidents_retention_comes_from_the_file_or_the_environment_and_names_its_source() {
        let config = resolve_with(
            Some("[incidents]\nretention = \"7d\"\n"),
            &[],
            Layer::default(),
        )
        .unwrap();
        assert_eq!(config.incidents_retention, Duration::from_secs(7 * 86_400));
        let env = [("ROVER_INCIDENTS_RETENTION", "1h")];
        let config = resolve_with(None, &env, Layer::default()).unwrap();
        assert_eq!(config.incidents_retention, Duration::from_secs(3_600));
        let err = resolve_with(
            None,
            &[("ROVER_INCIDENTS_RETENTION", "0s")],
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
    fn history_and_status_settings_have_defaults_and_parse() {
        let config = resolve_with(None, &[], Layer::default()).unwrap();
        assert_eq!(config.status_interval, Duration::from_secs(5));
        assert_eq!(config.raw_retention, Duration::from_secs(48 * 3600));
        assert_eq!(config.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(config.incidents_retention, DEFAULT_INCIDENTS_RETENTION);
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
        let flags = Layer {
            node_name: Some("my node".into()),
            ..Layer::default()
        };
        let err = resolve_with(None, &[], flags).unwrap_err().to_string();
        assert!(err.contains("node.name") && err.contains("--node"), "{err}");
    }
}
