//! Every scalar setting of the agent, declared once.
//!
//! One row per setting gives its TOML path, its environment variable, its command-line flag,
//! its default, its kind (which is also its parser and its bounds) and one line of doc. The
//! layers read from it ([`super::Layer::from_toml`], [`super::Layer::from_env`], the `agent`
//! flags in `src/cli/setting_flags.rs`), the resolver parses through it, errors name the row's
//! key and the true source of the value, and the README's settings table is rendered from it
//! ([`markdown_table`], checked by a test).
//!
//! Adding a setting: add a row to the [`settings!`] list below, read it in the resolver with
//! the getter of its kind ([`super::values::Values`]), and run
//! `ROVER_UPDATE_README=1 cargo test -p rover-agent readme_settings_table` once.
//! The `[[check]]` and `[[notify.*]]` tables are arrays of entries with their own validation
//! (`src/checks/config.rs`, `channel_tables.rs`), not rows here.

use std::time::Duration;

/// One setting. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Dotted TOML path: `section.key`.
    pub key: &'static str,
    /// Environment variable, if the setting can come from one.
    pub env: Option<&'static str>,
    /// Command-line flag of `agent` (with its dashes), if there is one.
    pub flag: Option<&'static str>,
    /// What applies when no layer sets it.
    pub default: Default,
    /// What values it takes: the parser and the bounds.
    pub kind: Kind,
    /// One line for the README and `--help`.
    pub doc: &'static str,
}

/// The default of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// This text, parsed and bounded like any other value.
    Value(&'static str),
    /// Worked out at start; the text says how (e.g. "this host's name").
    Computed(&'static str),
    /// Unset: the feature is off or another setting decides.
    Unset(&'static str),
}

/// What values a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 1 to 128 letters, digits, `-`, `_` or `.`.
    Name,
    /// A file or directory path (not empty).
    Path,
    /// `IP:PORT`.
    Address {
        /// Only 127.0.0.0/8 or `[::1]`.
        loopback_only: bool,
        /// Not 0.0.0.0 / `[::]` and not port 0 (an address others can reach).
        concrete: bool,
    },
    /// A list of `host:port` seeds (port 7900 if omitted); at most [`MAX_LIST`].
    Seeds,
    /// A list of absolute paths; at most [`MAX_LIST`].
    AbsolutePaths,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A duration like `5s`, `10m`, `48h`, `30d`, within bounds.
    Duration(DurationBounds),
    /// A whole number within bounds.
    Count {
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// `true` or `false`.
    Switch,
    /// A token from `rover-agent invite` (checked when the agent starts: a bad one is a usage
    /// error, exit code 2).
    Invitation,
    /// A list of network interface names (1 to 15 characters, no `/` or space); at most
    /// [`MAX_LIST`].
    Interfaces,
    /// `KEY=VALUE` tags (a TOML table in the file; see `rover_membership::tags` for the
    /// limits).
    Tags,
    /// A `tracing` filter: a level, or `target=level` directives separated by commas.
    LogFilter,
}

/// Bounds of a duration setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationBounds {
    /// Shortest allowed (besides zero, when zero has a meaning).
    pub min: Duration,
    /// Longest allowed; low enough that no millisecond count overflows.
    pub max: Duration,
    /// What `0s` means, when it is allowed below `min` (e.g. "never").
    pub zero: Option<&'static str>,
}

/// Longest list a list setting takes.
pub const MAX_LIST: usize = 64;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const MONTH: Duration = Duration::from_secs(30 * 86_400);
/// The longest any duration setting may be: ten years (far from any overflow in ms).
pub const LONGEST: Duration = Duration::from_secs(3650 * 86_400);

const fn between(min: Duration, max: Duration) -> Kind {
    Kind::Duration(DurationBounds {
        min,
        max,
        zero: None,
    })
}

const fn zero_or_between(zero: &'static str, min: Duration, max: Duration) -> Kind {
    Kind::Duration(DurationBounds {
        min,
        max,
        zero: Some(zero),
    })
}

/// Declares each row as a constant and [`SETTINGS`] as the list of all of them, in order.
macro_rules! settings {
    ($($(#[$meta:meta])* $name:ident = $row:expr;)*) => {
        $($(#[$meta])* pub const $name: Setting = $row;)*
        /// Every setting, in the order of the README table.
        pub const SETTINGS: &[Setting] = &[$($name),*];
    };
}

settings! {
    /// `node.name`
    NODE_NAME = Setting {
        key: "node.name", env: Some("ROVER_NODE"), flag: Some("--node"),
        default: Default::Computed("this host's name"), kind: Kind::Name,
        doc: "node name, unique in the cluster",
    };
    /// `node.team`
    NODE_TEAM = Setting {
        key: "node.team", env: Some("ROVER_TEAM"), flag: Some("--team"),
        default: Default::Value("default"), kind: Kind::Name,
        doc: "team (one gossip cluster)",
    };
    /// `node.data_dir`
    NODE_DATA_DIR = Setting {
        key: "node.data_dir", env: Some("ROVER_DATA_DIR"), flag: Some("--data-dir"),
        default: Default::Computed("/var/lib/rover-agent for root, else ~/.local/share/rover-agent"),
        kind: Kind::Path,
        doc: "keyring, token and database",
    };
    /// `node.tags`
    NODE_TAGS = Setting {
        key: "node.tags", env: Some("ROVER_TAGS"), flag: Some("--tag"),
        default: Default::Unset("none"), kind: Kind::Tags,
        doc: "tags gossiped with this member (file: a table; env: comma-separated KEY=VALUE; flag: repeatable KEY=VALUE); a higher layer replaces them",
    };
    /// `gossip.bind`
    GOSSIP_BIND = Setting {
        key: "gossip.bind", env: Some("ROVER_BIND"), flag: Some("--bind"),
        default: Default::Value("0.0.0.0:7900"),
        kind: Kind::Address { loopback_only: false, concrete: false },
        doc: "UDP gossip and cluster TCP",
    };
    /// `gossip.advertise`
    GOSSIP_ADVERTISE = Setting {
        key: "gossip.advertise", env: Some("ROVER_ADVERTISE"), flag: Some("--advertise"),
        default: Default::Computed("the bind address, or this host's first non-loopback IPv4"),
        kind: Kind::Address { loopback_only: false, concrete: true },
        doc: "address other agents reach this one at",
    };
    /// `gossip.join`
    GOSSIP_JOIN = Setting {
        key: "gossip.join", env: Some("ROVER_JOIN"), flag: Some("--join"),
        default: Default::Unset("none"), kind: Kind::Seeds,
        doc: "seeds to join at start (env: comma-separated; flag: repeatable); a higher layer replaces the list",
    };
    /// `gossip.key_file`
    GOSSIP_KEY_FILE = Setting {
        key: "gossip.key_file", env: Some("ROVER_KEY_FILE"), flag: Some("--key-file"),
        default: Default::Unset("none (the keyring in the data dir)"), kind: Kind::Path,
        doc: "cluster key, one base64 line from `keygen`",
    };
    /// `gossip.join_token`
    GOSSIP_JOIN_TOKEN = Setting {
        key: "gossip.join_token", env: Some("ROVER_JOIN_TOKEN"), flag: Some("--join-token"),
        default: Default::Unset("none"), kind: Kind::Invitation,
        doc: "an invitation from `rover-agent invite`: its cluster key goes into the keyring, and the agent joins through its addresses",
    };
    /// `gossip.profile`
    GOSSIP_PROFILE = Setting {
        key: "gossip.profile", env: Some("ROVER_PROFILE"), flag: Some("--profile"),
        default: Default::Value("lan"), kind: Kind::Choice(&["lan", "wan", "local"]),
        doc: "SWIM timings",
    };
    /// `gossip.sync_interval`
    GOSSIP_SYNC_INTERVAL = Setting {
        key: "gossip.sync_interval", env: Some("ROVER_SYNC_INTERVAL"), flag: None,
        default: Default::Value("30s"), kind: between(SECOND, HOUR),
        doc: "anti-entropy (alerts, records, topology) with a random peer; also on joining",
    };
    /// `api.bind`
    API_BIND = Setting {
        key: "api.bind", env: Some("ROVER_API"), flag: Some("--api"),
        default: Default::Value("127.0.0.1:7901"),
        kind: Kind::Address { loopback_only: true, concrete: false },
        doc: "local HTTP API (loopback only)",
    };
    /// `status.interval`
    STATUS_INTERVAL = Setting {
        key: "status.interval", env: Some("ROVER_STATUS_INTERVAL"), flag: None,
        default: Default::Value("5s"), kind: between(SECOND, HOUR),
        doc: "status sample period",
    };
    /// `status.full_every`
    STATUS_FULL_EVERY = Setting {
        key: "status.full_every", env: Some("ROVER_STATUS_FULL_EVERY"), flag: None,
        default: Default::Value("60s"), kind: between(SECOND, HOUR),
        doc: "a status sample goes out when it changed beyond a threshold, and at least this often",
    };
    /// `status.mounts`
    STATUS_MOUNTS = Setting {
        key: "status.mounts", env: None, flag: None,
        default: Default::Value("/"), kind: Kind::AbsolutePaths,
        doc: "disks reported in samples",
    };
    /// `history.raw_retention`
    HISTORY_RAW_RETENTION = Setting {
        key: "history.raw_retention", env: Some("ROVER_HISTORY_RAW_RETENTION"), flag: None,
        default: Default::Value("48h"), kind: between(MINUTE, LONGEST),
        doc: "raw samples, then folded into 1-minute means",
    };
    /// `history.retention`
    HISTORY_RETENTION = Setting {
        key: "history.retention", env: Some("ROVER_HISTORY_RETENTION"), flag: None,
        default: Default::Value("30d"), kind: between(HOUR, LONGEST),
        doc: "history, then dropped (at least `history.raw_retention`)",
    };
    /// `history.replicas`
    HISTORY_REPLICAS = Setting {
        key: "history.replicas", env: Some("ROVER_HISTORY_REPLICAS"), flag: None,
        default: Default::Computed("every member up to 20 members, else 5"),
        kind: Kind::Count { min: 1, max: 1000 },
        doc: "members that keep each host's full history (every member keeps every host's last sample)",
    };
    /// `incidents.retention`
    INCIDENTS_RETENTION = Setting {
        key: "incidents.retention", env: Some("ROVER_INCIDENTS_RETENTION"), flag: None,
        default: Default::Value("30d"), kind: between(MINUTE, LONGEST),
        doc: "closed incidents stay in the ledger this long after they ended, then go",
    };
    /// `introspection.events`
    INTROSPECTION_EVENTS = Setting {
        key: "introspection.events", env: Some("ROVER_EVENTS"), flag: None,
        default: Default::Value("10000"), kind: Kind::Count { min: 100, max: 1_000_000 },
        doc: "cluster events (joins, downs, leader changes...) kept for `events`, in memory and on disk",
    };
    /// `introspection.beacon`
    INTROSPECTION_BEACON = Setting {
        key: "introspection.beacon", env: Some("ROVER_BEACON"), flag: Some("--beacon"),
        default: Default::Unset("the named service `beacon` of the records, once one is set"),
        kind: Kind::Address { loopback_only: false, concrete: true },
        doc: "send every cluster event, sealed with the cluster key, to this beacon (`rover-agent beacon`)",
    };
    /// `ui.bind`
    UI_BIND = Setting {
        key: "ui.bind", env: Some("ROVER_UI"), flag: Some("--ui"),
        default: Default::Unset("off: the dashboard is on the API address only"),
        kind: Kind::Address { loopback_only: false, concrete: false },
        doc: "a read-only dashboard listener for other machines, asking for the viewer token (`rover-agent ui token`)",
    };
    /// `election.bootstrap_expect`
    ELECTION_BOOTSTRAP_EXPECT = Setting {
        key: "election.bootstrap_expect", env: Some("ROVER_BOOTSTRAP_EXPECT"), flag: None,
        default: Default::Value("1"), kind: Kind::Count { min: 0, max: 1 },
        doc: "1: an agent without seeds starts a Raft group; 0: it waits to be added",
    };
    /// `election.max_voters`
    ELECTION_MAX_VOTERS = Setting {
        key: "election.max_voters", env: Some("ROVER_MAX_VOTERS"), flag: None,
        default: Default::Value("5"), kind: Kind::Count { min: 1, max: 9 },
        doc: "Raft voters; the other members are learners",
    };
    /// `election.voter_reap_after`
    ELECTION_VOTER_REAP_AFTER = Setting {
        key: "election.voter_reap_after", env: Some("ROVER_VOTER_REAP_AFTER"), flag: None,
        default: Default::Value("2m"), kind: between(SECOND, MONTH),
        doc: "a voter failed this long leaves the group",
    };
    /// `election.fallback_after`
    ELECTION_FALLBACK_AFTER = Setting {
        key: "election.fallback_after", env: Some("ROVER_FALLBACK_AFTER"), flag: None,
        default: Default::Value("20s"), kind: between(SECOND, HOUR),
        doc: "no Raft leader this long: the partition's lowest-named member leads",
    };
    /// `notify.group_wait`
    NOTIFY_GROUP_WAIT = Setting {
        key: "notify.group_wait", env: Some("ROVER_GROUP_WAIT"), flag: None,
        default: Default::Value("5s"), kind: between(Duration::ZERO, HOUR),
        doc: "fold related events into one message (0s: send at once)",
    };
    /// `notify.repeat_interval`
    NOTIFY_REPEAT_INTERVAL = Setting {
        key: "notify.repeat_interval", env: Some("ROVER_REPEAT_INTERVAL"), flag: None,
        default: Default::Value("4h"), kind: zero_or_between("never", MINUTE, MONTH),
        doc: "notify a still-open critical incident again",
    };
    /// `notify.console`
    NOTIFY_CONSOLE = Setting {
        key: "notify.console", env: None, flag: None,
        default: Default::Computed("on only when no other channel is configured"),
        kind: Kind::Switch,
        doc: "print messages on standard output and in the log",
    };
    /// `log.level`
    LOG_LEVEL = Setting {
        key: "log.level", env: Some("ROVER_LOG"), flag: None,
        default: Default::Value("info,openraft=warn"), kind: Kind::LogFilter,
        doc: "what the log shows, e.g. `debug` or `info,rover_agent::checks=debug` (a reload applies it)",
    };
    /// `topology.enabled`
    TOPOLOGY_ENABLED = Setting {
        key: "topology.enabled", env: Some("ROVER_TOPOLOGY_ENABLED"), flag: None,
        default: Default::Value("true"), kind: Kind::Switch,
        doc: "listen for LLDP and CDP (needs CAP_NET_RAW; without it the agent says so and runs on)",
    };
    /// `topology.interfaces`
    TOPOLOGY_INTERFACES = Setting {
        key: "topology.interfaces", env: Some("ROVER_TOPOLOGY_INTERFACES"), flag: None,
        default: Default::Unset("every interface that is up, not loopback and not virtual"),
        kind: Kind::Interfaces,
        doc: "listen only on these interfaces (env: comma-separated)",
    };
}

/// The row of `key`, if there is one.
pub fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// A duration in the shortest exact form: `90s`, `2m`, `48h`, `30d`, `500ms`.
pub fn short_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let units: [(u128, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    units.iter().find(|(size, _)| ms % size == 0).map_or_else(
        || format!("{ms}ms"),
        |(size, unit)| format!("{}{unit}", ms / size),
    )
}

impl Kind {
    /// The values it takes, in words: "1s to 1h", "0s (never) or 1m to 30d", "lan, wan, local".
    pub fn bounds(&self) -> String {
        match self {
            Kind::Name => "1 to 128 of `A-Z a-z 0-9 - _ .`".into(),
            Kind::Path => "a path".into(),
            Kind::Invitation => "a token from `rover-agent invite`".into(),
            Kind::Address {
                loopback_only: true,
                ..
            } => "IP:PORT on loopback".into(),
            Kind::Address { concrete: true, .. } => "IP:PORT, not 0.0.0.0, not port 0".into(),
            Kind::Address { .. } => "IP:PORT".into(),
            Kind::Seeds => format!("up to {MAX_LIST} host:port"),
            Kind::AbsolutePaths => format!("up to {MAX_LIST} absolute paths"),
            Kind::Choice(words) => words.join(", "),
            Kind::Duration(bounds) => {
                let range = format!(
                    "{} to {}",
                    short_duration(bounds.min),
                    short_duration(bounds.max)
                );
                match bounds.zero {
                    Some(meaning) => format!("0s ({meaning}) or {range}"),
                    None => range,
                }
            }
            Kind::Count { min, max } => format!("{min} to {max}"),
            Kind::Switch => "true, false".into(),
            Kind::Interfaces => format!("up to {MAX_LIST} interface names"),
            Kind::Tags => "up to 32 KEY=VALUE, 256 bytes in all".into(),
            Kind::LogFilter => "a level or `target=level,...` directives".into(),
        }
    }
}

impl Default {
    /// The default in words, for the README and `--help`.
    pub fn describe(&self) -> String {
        match self {
            Default::Value(text) => format!("`{text}`"),
            Default::Computed(how) | Default::Unset(how) => (*how).to_owned(),
        }
    }
}

/// The README's settings table, rendered from [`SETTINGS`].
pub fn markdown_table() -> String {
    let cell = |value: Option<&str>| value.map_or_else(String::new, |v| format!("`{v}`"));
    let mut table = String::from(
        "| setting | env | flag | default | bounds | what it does |\n|---|---|---|---|---|---|\n",
    );
    for setting in SETTINGS {
        table.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            setting.key,
            cell(setting.env),
            cell(setting.flag),
            setting.default.describe(),
            setting.kind.bounds(),
            setting.doc
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_env_and_flag_is_declared_once() {
        let mut seen = std::collections::BTreeSet::new();
        for setting in SETTINGS {
            assert!(seen.insert(setting.key), "{} twice", setting.key);
            for name in [setting.env, setting.flag].into_iter().flatten() {
                assert!(seen.insert(name), "{name} twice");
            }
            assert_eq!(setting.key.split('.').count(), 2, "{}", setting.key);
            assert!(setting.env.is_none_or(|e| e.starts_with("ROVER_")));
            assert!(setting.flag.is_none_or(|f| f.starts_with("--")));
        }
    }

    #[test]
    fn every_duration_bound_is_ordered_and_within_ten_years() {
        for setting in SETTINGS {
            if let Kind::Duration(bounds) = setting.kind {
                assert!(bounds.min <= bounds.max, "{}", setting.key);
                assert!(bounds.max <= LONGEST, "{}", setting.key);
                assert!(
                    u64::try_from(bounds.max.as_millis()).is_ok(),
                    "{}",
                    setting.key
                );
            }
        }
    }

    #[test]
    fn durations_print_in_their_shortest_exact_unit() {
        assert_eq!(short_duration(Duration::from_secs(90)), "90s");
        assert_eq!(short_duration(Duration::from_secs(120)), "2m");
        assert_eq!(short_duration(Duration::from_secs(30 * 86_400)), "30d");
        assert_eq!(short_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(short_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn bounds_read_as_words() {
        assert_eq!(STATUS_INTERVAL.kind.bounds(), "1s to 1h");
        assert_eq!(
            NOTIFY_REPEAT_INTERVAL.kind.bounds(),
            "0s (never) or 1m to 30d"
        );
        assert_eq!(GOSSIP_PROFILE.kind.bounds(), "lan, wan, local");
    }

    /// The README's settings table is this module's table; `ROVER_UPDATE_README=1` rewrites it.
    #[test]
    fn readme_settings_table_is_the_settings_table() {
        const START: &str = "<!-- settings table: generated from src/config/settings.rs -->\n";
        const END: &str = "<!-- end of settings table -->";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let start = readme
            .find(START)
            .expect("README lacks the settings table marker")
            + START.len();
        let end = start
            + readme[start..]
                .find(END)
                .expect("README lacks the end marker");
        let table = markdown_table();
        if readme[start..end] != table {
            if std::env::var_os("ROVER_UPDATE_README").is_some() {
                let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
                std::fs::write(path, updated).unwrap();
                return;
            }
            panic!(
                "README.md's settings table is out of date; run ROVER_UPDATE_README=1 cargo test \
                 readme_settings_table, or paste:\n{table}"
            );
        }
    }
}
