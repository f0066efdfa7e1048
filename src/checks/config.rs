//! The `[[check]]` entries of the TOML config, validated into [`CheckConfig`]s.
//!
//! Each entry is either an external Nagios plugin (`command = ["/path", "arg", ...]`) or a
//! built-in check (`kind = "load" | "memory" | "disk" | "process" | "tcp" | "http"` plus the
//! kind's own keys). Every error names the entry (its index in the array, counted from 0, and its
//! name once known) and the key, e.g. `check[2] ("disk-root").interval = "5x": invalid duration`.
//! Unknown keys are errors, so a typo never silently turns into a default.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::settings::DurationBounds;

/// How often a check runs when the entry has no `interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// How long a run may take when the entry has no `timeout` (or the interval, if shorter).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many consecutive results with a new state it takes to change state, by default.
pub const DEFAULT_RETRIES: u32 = 3;
/// The most `retries` an entry may ask for.
pub const MAX_RETRIES: u32 = 100;
/// What `interval` may be: a check at most every second, at least once a day.
pub const INTERVAL_BOUNDS: DurationBounds = DurationBounds {
    min: Duration::from_secs(1),
    max: Duration::from_secs(86_400),
    zero: None,
};
/// What `timeout` may be (and never more than the interval).
pub const TIMEOUT_BOUNDS: DurationBounds = DurationBounds {
    min: Duration::from_millis(100),
    max: Duration::from_secs(3600),
    zero: None,
};
/// `/proc/PID/comm` holds at most this many bytes of a process name.
const COMM_MAX_LEN: usize = 15;

/// One validated `[[check]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckConfig {
    /// Unique name, made of `[A-Za-z0-9_.-]`; names the alert the check raises.
    pub name: String,
    /// What the check runs.
    pub kind: CheckKind,
    /// Time between the starts of two runs.
    pub interval: Duration,
    /// How long one run may take before it counts as UNKNOWN; never more than `interval`.
    pub timeout: Duration,
    /// Consecutive results with the same new state needed to change state (at least 1).
    pub retries: u32,
    /// If set, the severity of the alert whatever the state that raised it.
    pub severity: Option<SeverityOverride>,
}

/// What a check runs: an external plugin or one of the built-in checks.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// A Nagios plugin: program and arguments, run without a shell.
    External {
        /// Program path first, then its arguments.
        command: Vec<String>,
    },
    /// The 1-minute load average against thresholds.
    Load {
        /// WARNING above this load.
        warn: f64,
        /// CRITICAL above this load.
        crit: f64,
    },
    /// Used memory (`MemTotal - MemAvailable`) in percent against thresholds.
    Memory {
        /// WARNING above this percentage.
        warn: f64,
        /// CRITICAL above this percentage.
        crit: f64,
    },
    /// Used space of a file system in percent (as `df` counts it) against thresholds.
    Disk {
        /// Any path on the file system (default `/`).
        path: PathBuf,
        /// WARNING above this percentage.
        warn: f64,
        /// CRITICAL above this percentage.
        crit: f64,
    },
    /// At least `min` processes whose `/proc/PID/comm` is `name`; CRITICAL when fewer.
    Process {
        /// The name as in `/proc/PID/comm` (at most 15 bytes).
        name: String,
        /// The fewest processes that count as OK (default 1).
        min: u32,
    },
    /// A TCP connection to `host:port` succeeds within the timeout.
    Tcp {
        /// `host:port`; the host may be a name, resolved on every run.
        address: String,
    },
    /// An HTTP GET answers with the expected status within the timeout.
    Http {
        /// An `http://` URL (no TLS).
        url: String,
        /// The status code expected; `None` accepts any 2xx or 3xx.
        expect: Option<u16>,
    },
}

/// A fixed alert severity that overrides the one derived from the check's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeverityOverride {
    /// Always raise as a warning.
    Warning,
    /// Always raise as critical.
    Critical,
}

/// A `[[check]]` entry that cannot be used; nothing is started when parsing fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckConfigError {
    /// `check` is not an array of tables.
    #[error("check: expected an array of tables ([[check]]), found {found}")]
    NotAnArray {
        /// The TOML type found instead.
        found: &'static str,
    },
    /// An element of the array is not a table.
    #[error("{entry}: expected a table, found {found}")]
    NotATable {
        /// The entry, e.g. `check[2]`.
        entry: String,
        /// The TOML type found instead.
        found: &'static str,
    },
    /// A required key is absent.
    #[error("{entry}: missing key `{key}`")]
    Missing {
        /// The entry, e.g. `check[2] ("disk-root")`.
        entry: String,
        /// The key.
        key: &'static str,
    },
    /// Neither `command` nor `kind` is given.
    #[error("{entry}: needs `command` (an external plugin) or `kind` (a built-in check)")]
    NoKind {
        /// The entry.
        entry: String,
    },
    /// Both `command` and `kind` are given.
    #[error("{entry}: `command` and `kind` exclude each other")]
    BothKinds {
        /// The entry.
        entry: String,
    },
    /// A key this kind of check does not take.
    #[error("{entry}: unknown key `{key}` (allowed: {allowed})")]
    UnknownKey {
        /// The entry.
        entry: String,
        /// The unknown key.
        key: String,
        /// The keys this entry may have, comma-separated.
        allowed: String,
    },
    /// A value is present but wrong.
    #[error("{entry}.{key} = {value}: {problem}")]
    Invalid {
        /// The entry.
        entry: String,
        /// The key.
        key: &'static str,
        /// The bad value, as TOML.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// Parses the checks out of a whole config file (its `check` array; none if absent) or out of
/// the `check` array itself.
pub fn parse(value: &toml::Value) -> Result<Vec<CheckConfig>, CheckConfigError> {
    let entries = match value {
        toml::Value::Table(file) => match file.get("check") {
            None => return Ok(Vec::new()),
            Some(toml::Value::Array(entries)) => entries,
            Some(other) => return Err(not_an_array(other)),
        },
        toml::Value::Array(entries) => entries,
        other => return Err(not_an_array(other)),
    };
    let mut first_index_of: HashMap<String, usize> = HashMap::new();
    let mut checks = Vec::with_capacity(entries.len());
    for (index, value) in entries.iter().enumerate() {
        let check = parse_entry(index, value)?;
        if let Some(first) = first_index_of.insert(check.name.clone(), index) {
            return Err(CheckConfigError::Invalid {
                entry: entry_label(index, Some(&check.name)),
                key: "name",
                value: toml::Value::String(check.name).to_string(),
                problem: format!("duplicate: check[{first}] has the same name"),
            });
        }
        checks.push(check);
    }
    Ok(checks)
}

fn not_an_array(value: &toml::Value) -> CheckConfigError {
    CheckConfigError::NotAnArray {
        found: value.type_str(),
    }
}

fn entry_label(index: usize, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("check[{index}] ({name:?})"),
        None => format!("check[{index}]"),
    }
}

/// Keys every entry may have.
const COMMON_KEYS: &[&str] = &["name", "interval", "timeout", "retries", "severity"];
/// Built-in kinds and the keys each takes besides the common ones.
const KINDS: &[(&str, &[&str])] = &[
    ("load", &["kind", "warn", "crit"]),
    ("memory", &["kind", "warn", "crit"]),
    ("disk", &["kind", "path", "warn", "crit"]),
    ("process", &["kind", "process", "min"]),
    ("tcp", &["kind", "address"]),
    ("http", &["kind", "url", "expect"]),
];

fn parse_entry(index: usize, value: &toml::Value) -> Result<CheckConfig, CheckConfigError> {
    let table = value
        .as_table()
        .ok_or_else(|| CheckConfigError::NotATable {
            entry: entry_label(index, None),
            found: value.type_str(),
        })?;
    let mut entry = Entry {
        label: entry_label(index, None),
        table,
    };
    let name = entry.name()?;
    entry.label = entry_label(index, Some(&name));

    let kind_keys = entry.kind_keys()?;
    entry.reject_unknown_keys(kind_keys)?;
    let kind = entry.kind()?;

    let interval = entry
        .duration("interval", INTERVAL_BOUNDS)?
        .unwrap_or(DEFAULT_INTERVAL);
    let timeout = match entry.duration("timeout", TIMEOUT_BOUNDS)? {
        Some(timeout) if timeout > interval => {
            return Err(entry.invalid(
                "timeout",
                format!(
                    "must not exceed interval ({})",
                    humantime::format_duration(interval)
                ),
            ))
        }
        Some(timeout) => timeout,
        None => DEFAULT_TIMEOUT.min(interval),
    };
    Ok(CheckConfig {
        name,
        kind,
        interval,
        timeout,
        retries: entry.retries()?,
        severity: entry.severity()?,
    })
}

/// One entry being parsed: its label for errors and its table.
struct Entry<'a> {
    label: String,
    table: &'a toml::Table,
}

impl Entry<'_> {
    fn name(&self) -> Result<String, CheckConfigError> {
        let name = self.required_str("name")?;
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(self.invalid("name", "must be made of A-Z a-z 0-9 _ . - (not empty)"));
        }
        Ok(name.to_owned())
    }

    /// The keys the entry's kind takes besides the common ones; checks `command`/`kind`.
    fn kind_keys(&self) -> Result<&'static [&'static str], CheckConfigError> {
        match (self.table.contains_key("command"), self.str("kind")?) {
            (true, Some(_)) => Err(CheckConfigError::BothKinds {
                entry: self.label.clone(),
            }),
            (true, None) => Ok(&["command"]),
            (false, None) => Err(CheckConfigError::NoKind {
                entry: self.label.clone(),
            }),
            (false, Some(kind)) => KINDS
                .iter()
                .find(|(name, _)| *name == kind)
                .map(|(_, keys)| *keys)
                .ok_or_else(|| self.unknown_kind()),
        }
    }

    fn reject_unknown_keys(&self, kind_keys: &[&str]) -> Result<(), CheckConfigError> {
        let allowed = |key: &str| COMMON_KEYS.contains(&key) || kind_keys.contains(&key);
        match self.table.keys().find(|key| !allowed(key)) {
            None => Ok(()),
            Some(key) => Err(CheckConfigError::UnknownKey {
                entry: self.label.clone(),
                key: key.clone(),
                allowed: COMMON_KEYS[..1]
                    .iter()
                    .chain(kind_keys)
                    .chain(&COMMON_KEYS[1..])
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The kind and its parameters (`kind_keys` has checked `command` against `kind`).
    fn kind(&self) -> Result<CheckKind, CheckConfigError> {
        let Some(kind) = self.str("kind")? else {
            return Ok(CheckKind::External {
                command: self.command()?,
            });
        };
        Ok(match kind {
            "load" => {
                let (warn, crit) = self.thresholds(f64::INFINITY)?;
                CheckKind::Load { warn, crit }
            }
            "memory" => {
                let (warn, crit) = self.thresholds(100.0)?;
                CheckKind::Memory { warn, crit }
            }
            "disk" => self.disk()?,
            "process" => self.process()?,
            "tcp" => CheckKind::Tcp {
                address: self.tcp_address()?,
            },
            "http" => self.http()?,
            _ => return Err(self.unknown_kind()),
        })
    }

    fn unknown_kind(&self) -> CheckConfigError {
        self.invalid(
            "kind",
            r#"expected one of "load", "memory", "disk", "process", "tcp", "http""#,
        )
    }

    fn command(&self) -> Result<Vec<String>, CheckConfigError> {
        let problem = "expected a non-empty array of strings, the program first";
        let Some(toml::Value::Array(items)) = self.table.get("command") else {
            return Err(self.invalid("command", problem));
        };
        let command: Option<Vec<String>> = items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect();
        match command {
            Some(command) if command.first().is_some_and(|program| !program.is_empty()) => {
                Ok(command)
            }
            _ => Err(self.invalid("command", problem)),
        }
    }

    /// `warn` and `crit`, both required, `0 <= warn <= crit <= max`.
    fn thresholds(&self, max: f64) -> Result<(f64, f64), CheckConfigError> {
        let mut pair = [0.0; 2];
        for (slot, key) in pair.iter_mut().zip(["warn", "crit"]) {
            let value = self.number(key)?.ok_or_else(|| self.missing(key))?;
            if !(value.is_finite() && (0.0..=max).contains(&value)) {
                let range = if max.is_finite() {
                    format!("between 0 and {max}")
                } else {
                    "zero or more".to_owned()
                };
                return Err(self.invalid(key, format!("must be {range}")));
            }
            *slot = value;
        }
        let [warn, crit] = pair;
        if warn > crit {
            return Err(self.invalid("warn", format!("must not exceed crit ({crit})")));
        }
        Ok((warn, crit))
    }

    fn disk(&self) -> Result<CheckKind, CheckConfigError> {
        let path = PathBuf::from(self.str("path")?.unwrap_or("/"));
        if !path.is_absolute() {
            return Err(self.invalid("path", "must be an absolute path"));
        }
        let (warn, crit) = self.thresholds(100.0)?;
        Ok(CheckKind::Disk { path, warn, crit })
    }

    fn process(&self) -> Result<CheckKind, CheckConfigError> {
        let name = self.required_str("process")?;
        if name.is_empty() || name.len() > COMM_MAX_LEN {
            return Err(self.invalid(
                "process",
                "must be 1 to 15 bytes, as /proc/PID/comm shortens names to 15",
            ));
        }
        let min = match self.integer("min")? {
            None => 1,
            Some(min) => u32::try_from(min)
                .ok()
                .filter(|min| *min >= 1)
                .ok_or_else(|| self.invalid("min", "must be 1 or more"))?,
        };
        Ok(CheckKind::Process {
            name: name.to_owned(),
            min,
        })
    }

    fn tcp_address(&self) -> Result<String, CheckConfigError> {
        let address = self.required_str("address")?;
        let valid = address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port != 0)
        });
        if !valid {
            return Err(self.invalid("address", "expected \"host:port\""));
        }
        Ok(address.to_owned())
    }

    fn http(&self) -> Result<CheckKind, CheckConfigError> {
        let url = self.required_str("url")?;
        match reqwest::Url::parse(url) {
            Ok(parsed) if parsed.scheme() == "http" && parsed.host().is_some() => {}
            Ok(_) => return Err(self.invalid("url", "only http:// URLs are supported (no TLS)")),
            Err(e) => return Err(self.invalid("url", format!("not a URL: {e}"))),
        }
        let expect = match self.integer("expect")? {
            None => None,
            Some(code) => Some(
                u16::try_from(code)
                    .ok()
                    .filter(|code| (100..=599).contains(code))
                    .ok_or_else(|| self.invalid("expect", "must be an HTTP status, 100 to 599"))?,
            ),
        };
        Ok(CheckKind::Http {
            url: url.to_owned(),
            expect,
        })
    }

    fn duration(
        &self,
        key: &'static str,
        bounds: DurationBounds,
    ) -> Result<Option<Duration>, CheckConfigError> {
        let Some(text) = self.str(key)? else {
            return Ok(None);
        };
        if humantime::parse_duration(text).is_err() {
            return Err(self.invalid(key, r#"invalid duration (expected e.g. "30s" or "2m")"#));
        }
        crate::config::bounded_duration(text, bounds)
            .map(|d| d.or(Some(Duration::ZERO)))
            .map_err(|problem| self.invalid(key, problem))
    }

    fn retries(&self) -> Result<u32, CheckConfigError> {
        match self.integer("retries")? {
            None => Ok(DEFAULT_RETRIES),
            Some(retries) => u32::try_from(retries)
                .ok()
                .filter(|retries| (1..=MAX_RETRIES).contains(retries))
                .ok_or_else(|| self.invalid("retries", format!("must be 1 to {MAX_RETRIES}"))),
        }
    }

    fn severity(&self) -> Result<Option<SeverityOverride>, CheckConfigError> {
        match self.str("severity")? {
            None => Ok(None),
            Some("warning") => Ok(Some(SeverityOverride::Warning)),
            Some("critical") => Ok(Some(SeverityOverride::Critical)),
            Some(_) => Err(self.invalid("severity", r#"expected "warning" or "critical""#)),
        }
    }

    // Typed getters: `Ok(None)` when the key is absent, an error when it has the wrong type.

    fn str(&self, key: &'static str) -> Result<Option<&str>, CheckConfigError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(self.invalid(key, "expected a string")),
        }
    }

    fn required_str(&self, key: &'static str) -> Result<&str, CheckConfigError> {
        self.str(key)?.ok_or_else(|| self.missing(key))
    }

    fn number(&self, key: &'static str) -> Result<Option<f64>, CheckConfigError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Float(value)) => Ok(Some(*value)),
            // Thresholds are far below 2^53, where i64 -> f64 is exact.
            #[allow(clippy::cast_precision_loss)]
            Some(toml::Value::Integer(value)) => Ok(Some(*value as f64)),
            Some(_) => Err(self.invalid(key, "expected a number")),
        }
    }

    fn integer(&self, key: &'static str) -> Result<Option<i64>, CheckConfigError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(value)) => Ok(Some(*value)),
            Some(_) => Err(self.invalid(key, "expected an integer")),
        }
    }

    fn missing(&self, key: &'static str) -> CheckConfigError {
        CheckConfigError::Missing {
            entry: self.label.clone(),
            key,
        }
    }

    /// An error about the value of `key`, which must be present.
    fn invalid(&self, key: &'static str, problem: impl Into<String>) -> CheckConfigError {
        CheckConfigError::Invalid {
            entry: self.label.clone(),
            key,
            value: self
                .table
                .get(key)
                .map_or_else(String::new, toml::Value::to_string),
            problem: problem.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<CheckConfig>, CheckConfigError> {
        super::parse(&toml::from_str::<toml::Value>(text).unwrap())
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn the_design_example_parses_with_defaults() {
        let checks = parse(
            r#"
            [node]
            name = "n1"
            [[check]]
            name = "disk-root"
            command = ["/usr/lib/nagios/plugins/check_disk", "-w", "20%", "-c", "10%", "-p", "/"]
            interval = "30s"
            "#,
        )
        .unwrap();
        assert_eq!(
            checks,
            vec![CheckConfig {
                name: "disk-root".into(),
                kind: CheckKind::External {
                    command: [
                        "/usr/lib/nagios/plugins/check_disk",
                        "-w",
                        "20%",
                        "-c",
                        "10%"
                    ]
                    .into_iter()
                    .chain(["-p", "/"])
                    .map(String::from)
                    .collect(),
                },
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(10),
                retries: 3,
                severity: None,
            }]
        );
    }

    #[test]
    fn every_builtin_kind_parses_with_its_parameters() {
        let checks = parse(
            r#"
            [[check]]
            name = "load"
            kind = "load"
            warn = 4
            crit = 8.5
            [[check]]
            name = "mem"
            kind = "memory"
            warn = 80
            crit = 95
            [[check]]
            name = "disk-var"
            kind = "disk"
            path = "/var"
            warn = 80
            crit = 90
            [[check]]
            name = "disk-root"
            kind = "disk"
            warn = 80
            crit = 90
            [[check]]
            name = "sshd"
            kind = "process"
            process = "sshd"
            [[check]]
            name = "workers"
            kind = "process"
            process = "nginx"
            min = 4
            [[check]]
            name = "db"
            kind = "tcp"
            address = "db.example.org:5432"
            [[check]]
            name = "web"
            kind = "http"
            url = "http://127.0.0.1:8080/health"
            expect = 204
            [[check]]
            name = "web-any"
            kind = "http"
            url = "http://127.0.0.1/"
            "#,
        )
        .unwrap();
        let kinds: Vec<CheckKind> = checks.into_iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            vec![
                CheckKind::Load {
                    warn: 4.0,
                    crit: 8.5
                },
                CheckKind::Memory {
                    warn: 80.0,
                    crit: 95.0
                },
                CheckKind::Disk {
                    path: "/var".into(),
                    warn: 80.0,
                    crit: 90.0
                },
                CheckKind::Disk {
                    path: "/".into(),
                    warn: 80.0,
                    crit: 90.0
                },
                CheckKind::Process {
                    name: "sshd".into(),
                    min: 1
                },
                CheckKind::Process {
                    name: "nginx".into(),
                    min: 4
                },
                CheckKind::Tcp {
                    address: "db.example.org:5432".into()
                },
                CheckKind::Http {
                    url: "http://127.0.0.1:8080/health".into(),
                    expect: Some(204)
                },
                CheckKind::Http {
                    url: "http://127.0.0.1/".into(),
                    expect: None
                },
            ]
        );
    }

    #[test]
    fn common_keys_override_the_defaults() {
        let checks = parse(
            r#"
            [[check]]
            name = "web"
            kind = "tcp"
            address = "[::1]:80"
            interval = "1m"
            timeout = "2s 500ms"
            retries = 1
            severity = "critical"
            "#,
        )
        .unwrap();
        assert_eq!(checks[0].interval, Duration::from_secs(60));
        assert_eq!(checks[0].timeout, Duration::from_millis(2500));
        assert_eq!(checks[0].retries, 1);
        assert_eq!(checks[0].severity, Some(SeverityOverride::Critical));
    }

    #[test]
    fn the_default_timeout_shrinks_to_a_short_interval() {
        let checks =
            parse("[[check]]\nname = \"x\"\ncommand = [\"/bin/true\"]\ninterval = \"2s\"\n")
                .unwrap();
        assert_eq!(checks[0].timeout, Duration::from_secs(2));
    }

    #[test]
    fn a_file_without_checks_has_none_and_the_bare_array_is_accepted() {
        assert_eq!(parse("[node]\nname = \"n1\"\n").unwrap(), vec![]);
        let file =
            toml::from_str::<toml::Value>("[[check]]\nname = \"x\"\ncommand = [\"/bin/true\"]\n")
                .unwrap();
        let array = file.get("check").unwrap();
        assert_eq!(super::parse(array).unwrap().len(), 1);
    }

    #[test]
    fn a_check_that_is_not_an_array_of_tables_is_refused() {
        assert_eq!(
            error("check = \"disk\"\n"),
            "check: expected an array of tables ([[check]]), found string"
        );
        assert_eq!(
            error("check = [1]\n"),
            "check[0]: expected a table, found integer"
        );
    }

    #[test]
    fn errors_name_the_entry_the_key_and_the_value() {
        let text = r#"
            [[check]]
            name = "a"
            command = ["/bin/true"]
            [[check]]
            name = "b"
            command = ["/bin/true"]
            [[check]]
            name = "disk-root"
            command = ["/bin/true"]
            interval = "5x"
        "#;
        assert_eq!(
            error(text),
            r#"check[2] ("disk-root").interval = "5x": invalid duration (expected e.g. "30s" or "2m")"#
        );
    }

    #[test]
    fn unknown_keys_are_errors_that_list_the_allowed_keys() {
        assert_eq!(
            error("[[check]]\nname = \"l\"\nkind = \"load\"\nwarn = 1\ncrit = 2\npath = \"/\"\n"),
            r#"check[0] ("l"): unknown key `path` (allowed: name, kind, warn, crit, interval, timeout, retries, severity)"#
        );
        assert_eq!(
            error("[[check]]\nname = \"x\"\ncommand = [\"/bin/true\"]\nintreval = \"1s\"\n"),
            r#"check[0] ("x"): unknown key `intreval` (allowed: name, command, interval, timeout, retries, severity)"#
        );
    }

    #[test]
    fn names_are_required_well_formed_and_unique() {
        assert_eq!(
            error("[[check]]\ncommand = [\"/bin/true\"]\n"),
            "check[0]: missing key `name`"
        );
        assert_eq!(
            error("[[check]]\nname = \"disk root\"\ncommand = [\"/bin/true\"]\n"),
            r#"check[0].name = "disk root": must be made of A-Z a-z 0-9 _ . - (not empty)"#
        );
        assert_eq!(
            error("[[check]]\nname = 7\ncommand = [\"/bin/true\"]\n"),
            "check[0].name = 7: expected a string"
        );
        let twice = "[[check]]\nname = \"x\"\ncommand = [\"/bin/true\"]\n".repeat(2);
        assert_eq!(
            error(&twice),
            r#"check[1] ("x").name = "x": duplicate: check[0] has the same name"#
        );
    }

    #[test]
    fn an_entry_needs_exactly_one_of_command_and_kind() {
        assert_eq!(
            error("[[check]]\nname = \"x\"\n"),
            r#"check[0] ("x"): needs `command` (an external plugin) or `kind` (a built-in check)"#
        );
        assert_eq!(
            error("[[check]]\nname = \"x\"\ncommand = [\"/bin/true\"]\nkind = \"load\"\n"),
            r#"check[0] ("x"): `command` and `kind` exclude each other"#
        );
        assert_eq!(
            error("[[check]]\nname = \"x\"\nkind = \"ping\"\n"),
            r#"check[0] ("x").kind = "ping": expected one of "load", "memory", "disk", "process", "tcp", "http""#
        );
    }

    #[test]
    fn commands_must_be_non_empty_arrays_of_strings() {
        for command in [r#"[]"#, r#"["", "-v"]"#, r#"["/bin/x", 3]"#, r#""/bin/x""#] {
            let text = format!("[[check]]\nname = \"x\"\ncommand = {command}\n");
            assert!(
                error(&text).starts_with(r#"check[0] ("x").command = "#),
                "{command}: {}",
                error(&text)
            );
        }
    }

    #[test]
    fn thresholds_are_required_in_range_and_ordered() {
        let entry = |params: &str| format!("[[check]]\nname = \"m\"\nkind = \"memory\"\n{params}");
        assert_eq!(
            error(&entry("warn = 80\n")),
            r#"check[0] ("m"): missing key `crit`"#
        );
        assert_eq!(
            error(&entry("warn = 80\ncrit = 101\n")),
            r#"check[0] ("m").crit = 101: must be between 0 and 100"#
        );
        assert_eq!(
            error(&entry("warn = 95\ncrit = 90\n")),
            r#"check[0] ("m").warn = 95: must not exceed crit (90)"#
        );
        assert_eq!(
            error(&entry("warn = \"80%\"\ncrit = 90\n")),
            r#"check[0] ("m").warn = "80%": expected a number"#
        );
        assert_eq!(
            error("[[check]]\nname = \"l\"\nkind = \"load\"\nwarn = -1\ncrit = 2\n"),
            r#"check[0] ("l").warn = -1: must be zero or more"#
        );
        assert_eq!(
            error("[[check]]\nname = \"d\"\nkind = \"disk\"\npath = \"var\"\nwarn = 1\ncrit = 2\n"),
            r#"check[0] ("d").path = "var": must be an absolute path"#
        );
    }

    #[test]
    fn durations_retries_and_severity_are_validated() {
        let entry =
            |extra: &str| format!("[[check]]\nname = \"x\"\ncommand = [\"/bin/true\"]\n{extra}");
        assert_eq!(
            error(&entry("interval = \"0s\"\n")),
            r#"check[0] ("x").interval = "0s": must not be zero: 1s to 1d"#
        );
        assert_eq!(
            error(&entry("interval = \"1ms\"\n")),
            r#"check[0] ("x").interval = "1ms": must be at least 1s: 1s to 1d"#
        );
        assert_eq!(
            error(&entry("interval = \"2d\"\n")),
            r#"check[0] ("x").interval = "2d": must be at most 1d: 1s to 1d"#
        );
        assert_eq!(
            error(&entry("timeout = \"1ms\"\n")),
            r#"check[0] ("x").timeout = "1ms": must be at least 100ms: 100ms to 1h"#
        );
        assert_eq!(
            error(&entry("retries = 101\n")),
            r#"check[0] ("x").retries = 101: must be 1 to 100"#
        );
        assert_eq!(
            error(&entry("interval = 30\n")),
            r#"check[0] ("x").interval = 30: expected a string"#
        );
        assert_eq!(
            error(&entry("interval = \"10s\"\ntimeout = \"20s\"\n")),
            r#"check[0] ("x").timeout = "20s": must not exceed interval (10s)"#
        );
        assert_eq!(
            error(&entry("retries = 0\n")),
            r#"check[0] ("x").retries = 0: must be 1 to 100"#
        );
        assert_eq!(
            error(&entry("severity = \"page\"\n")),
            r#"check[0] ("x").severity = "page": expected "warning" or "critical""#
        );
    }

    #[test]
    fn process_tcp_and_http_parameters_are_validated() {
        assert_eq!(
            error("[[check]]\nname = \"p\"\nkind = \"process\"\nprocess = \"a-very-long-process-name\"\n"),
            r#"check[0] ("p").process = "a-very-long-process-name": must be 1 to 15 bytes, as /proc/PID/comm shortens names to 15"#
        );
        assert_eq!(
            error("[[check]]\nname = \"p\"\nkind = \"process\"\nprocess = \"sshd\"\nmin = 0\n"),
            r#"check[0] ("p").min = 0: must be 1 or more"#
        );
        assert_eq!(
            error("[[check]]\nname = \"p\"\nkind = \"process\"\n"),
            r#"check[0] ("p"): missing key `process`"#
        );
        assert_eq!(
            error("[[check]]\nname = \"t\"\nkind = \"tcp\"\naddress = \"db.example.org\"\n"),
            r#"check[0] ("t").address = "db.example.org": expected "host:port""#
        );
        assert_eq!(
            error("[[check]]\nname = \"h\"\nkind = \"http\"\nurl = \"https://example.org/\"\n"),
            r#"check[0] ("h").url = "https://example.org/": only http:// URLs are supported (no TLS)"#
        );
        assert_eq!(
            error("[[check]]\nname = \"h\"\nkind = \"http\"\nurl = \"http://x/\"\nexpect = 42\n"),
            r#"check[0] ("h").expect = 42: must be an HTTP status, 100 to 599"#
        );
    }
}
