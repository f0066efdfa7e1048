//! One layer of settings (the TOML file, the environment or the flags), every value optional
//! and still text, keyed by the rows of [`super::settings`]; [`super::resolve`] merges and
//! validates the layers.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::channel_tables::NotifyChannelsFile;
use super::settings::{self, Kind, Setting};
use super::ConfigError;

/// A value as a layer holds it, before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw {
    /// One value.
    One(String),
    /// A list (`gossip.join`, `status.mounts`).
    Many(Vec<String>),
}

impl Raw {
    /// The value as the user wrote it, for errors.
    pub fn shown(&self) -> String {
        match self {
            Raw::One(text) => text.clone(),
            Raw::Many(items) => format!("{items:?}"),
        }
    }
}

/// One layer of settings, every value optional (the TOML file, the environment or the flags).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layer {
    values: BTreeMap<&'static str, Raw>,
    /// The `[[check]]` array, parsed by [`crate::checks::config`] (config file only).
    pub checks: Option<toml::Value>,
    /// The channel tables of `[notify]` (config file only).
    pub notify: Option<NotifyChannelsFile>,
    /// The `[team]` section, parsed by [`super::teams`] (config file only).
    pub team: Option<toml::Value>,
}

impl Layer {
    /// This layer with `setting` set to `value` (a list setting takes it as one item).
    pub fn with(mut self, setting: &Setting, value: impl Into<String>) -> Self {
        let value = value.into();
        let raw = match setting.kind {
            Kind::Seeds | Kind::AbsolutePaths | Kind::Interfaces | Kind::Tags => {
                Raw::Many(vec![value])
            }
            _ => Raw::One(value),
        };
        self.values.insert(setting.key, raw);
        self
    }

    /// Sets `setting` (replacing what this layer had).
    pub fn set(&mut self, setting: &Setting, raw: Raw) {
        self.values.insert(setting.key, raw);
    }

    /// What this layer holds for `setting`.
    pub fn get(&self, setting: &Setting) -> Option<&Raw> {
        self.values.get(setting.key)
    }

    /// Reads the TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses TOML text (`path` only names the file in errors). Every key must be a row of the
    /// settings table, a `[[check]]`, a `[[notify.*]]` channel or a later section.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        let file: toml::Table =
            toml::from_str(text).map_err(|e| parse_error(e.to_string().trim_end().to_owned()))?;
        let mut layer = Self::default();
        for (section, value) in file {
            match (section.as_str(), value) {
                ("check", value) => layer.checks = Some(value),
                ("team", value) => layer.team = Some(value),
                (_, toml::Value::Table(table)) => {
                    if !settings::SETTINGS
                        .iter()
                        .any(|s| s.key.split('.').next() == Some(section.as_str()))
                    {
                        return Err(parse_error(format!("unknown section `[{section}]`")));
                    }
                    for (key, value) in table {
                        let dotted = format!("{section}.{key}");
                        if section == "notify" {
                            if let Some(channels) = layer.channel_table(&key, &value) {
                                channels.map_err(|e| parse_error(format!("{dotted}: {e}")))?;
                                continue;
                            }
                        }
                        let setting = settings::find(&dotted).ok_or_else(|| {
                            parse_error(format!("unknown key `{dotted}` (`{key}` in [{section}])"))
                        })?;
                        let raw = raw_from_toml(setting, value)
                            .map_err(|problem| parse_error(format!("{dotted}: {problem}")))?;
                        layer.values.insert(setting.key, raw);
                    }
                    if section == "notify" && layer.notify.is_none() {
                        layer.notify = Some(NotifyChannelsFile::default());
                    }
                }
                (_, _) => return Err(parse_error(format!("unknown section or key `{section}`"))),
            }
        }
        Ok(layer)
    }

    /// Takes `[[notify.KIND]]` into the channel tables; `None` if `kind` is not a channel kind.
    fn channel_table(
        &mut self,
        kind: &str,
        value: &toml::Value,
    ) -> Option<Result<(), toml::de::Error>> {
        fn entries<T: DeserializeOwned>(value: &toml::Value) -> Result<Vec<T>, toml::de::Error> {
            value.clone().try_into()
        }
        let channels = self.notify.get_or_insert_with(NotifyChannelsFile::default);
        Some(match kind {
            "email" => entries(value).map(|e| channels.email = e),
            "pushover" => entries(value).map(|e| channels.pushover = e),
            "webhook" => entries(value).map(|e| channels.webhook = e),
            "exec" => entries(value).map(|e| channels.exec = e),
            _ => return None,
        })
    }

    /// Reads the `ROVER_*` variable of every setting that has one through `get` (the process
    /// environment in production); lists are comma-separated.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        let mut layer = Self::default();
        for setting in settings::SETTINGS {
            let Some(value) = setting.env.and_then(&get) else {
                continue;
            };
            let raw = match setting.kind {
                Kind::Seeds | Kind::AbsolutePaths | Kind::Interfaces | Kind::Tags => Raw::Many(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                ),
                _ => Raw::One(value),
            };
            layer.values.insert(setting.key, raw);
        }
        layer
    }
}

/// A TOML value as the text the resolver parses, if its type fits the setting's kind.
fn raw_from_toml(setting: &Setting, value: toml::Value) -> Result<Raw, String> {
    use toml::Value;
    match (setting.kind, value) {
        (Kind::Seeds | Kind::AbsolutePaths | Kind::Interfaces, Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text),
                other => Err(format!(
                    "expected an array of strings, found a {} in it",
                    other.type_str()
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Raw::Many),
        (Kind::Seeds | Kind::AbsolutePaths | Kind::Interfaces, other) => Err(format!(
            "expected an array of strings, found {}",
            other.type_str()
        )),
        (Kind::Tags, Value::Table(table)) => table
            .into_iter()
            .map(|(key, value)| match value {
                Value::String(text) => Ok(format!("{key}={text}")),
                other => Err(format!(
                    "expected a table of strings, found a {} at {key:?}",
                    other.type_str()
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Raw::Many),
        (Kind::Tags, other) => Err(format!("expected a table, found {}", other.type_str())),
        (Kind::Switch, Value::Boolean(on)) => Ok(Raw::One(on.to_string())),
        (Kind::Switch, other) => Err(format!(
            "expected true or false, found {}",
            other.type_str()
        )),
        (Kind::Count { .. }, Value::Integer(n)) => Ok(Raw::One(n.to_string())),
        (_, Value::String(text)) => Ok(Raw::One(text)),
        (Kind::Count { .. }, other) => Err(format!(
            "expected a whole number, found {}",
            other.type_str()
        )),
        (_, other) => Err(format!("expected a string, found {}", other.type_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::{GOSSIP_JOIN, NODE_NAME, NOTIFY_CONSOLE};

    #[test]
    fn every_key_of_a_file_is_a_row_or_an_error_naming_it() {
        let layer = Layer::from_toml(
            "[node]\nname = \"n1\"\n[gossip]\njoin = [\"a:1\", \"b:2\"]\n[notify]\nconsole = false\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(layer.get(&NODE_NAME), Some(&Raw::One("n1".into())));
        assert_eq!(
            layer.get(&GOSSIP_JOIN),
            Some(&Raw::Many(vec!["a:1".into(), "b:2".into()]))
        );
        assert_eq!(layer.get(&NOTIFY_CONSOLE), Some(&Raw::One("false".into())));
        let err = Layer::from_toml("[node]\nname = 5\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("node.name") && err.contains("string"), "{err}");
        let err = Layer::from_toml("stray = 1\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("stray"), "{err}");
    }

    #[test]
    fn list_settings_from_the_environment_are_comma_separated() {
        let layer = Layer::from_env(|name| (name == "ROVER_JOIN").then(|| " a:1, b:2 ,".into()));
        assert_eq!(
            layer.get(&GOSSIP_JOIN),
            Some(&Raw::Many(vec!["a:1".into(), "b:2".into()]))
        );
    }
}
