//! The `[topology]` settings: whether the agent listens for LLDP and CDP (default yes), and on
//! which interfaces (default: every up, non-loopback, non-virtual one).
//!
//! ```toml
//! [topology]
//! enabled = true
//! interfaces = ["eth0", "eth1"]
//! ```
//!
//! Environment: `ROVER_TOPOLOGY_ENABLED` (`true`/`false`), `ROVER_TOPOLOGY_INTERFACES`
//! (comma-separated).

use serde::Deserialize;

use super::{pick, ConfigError, Layer, Source};
use crate::topology::TopologySettings;

/// The `[topology]` keys of one layer, still unvalidated.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyLayer {
    /// `topology.enabled`
    pub enabled: Option<toml::Value>,
    /// `topology.interfaces`
    pub interfaces: Option<Vec<String>>,
}

impl TopologyLayer {
    /// The `[topology]` table of a config file, if any.
    pub(super) fn from_file(section: Option<&toml::Value>) -> Result<Option<Self>, String> {
        section
            .map(|value| {
                value
                    .clone()
                    .try_into::<TopologyLayer>()
                    .map_err(|e| format!("[topology]: {}", e.to_string().trim_end()))
            })
            .transpose()
    }

    /// `ROVER_TOPOLOGY_*` through `get`.
    pub(super) fn from_env(get: &impl Fn(&str) -> Option<String>) -> Option<Self> {
        let enabled = get("ROVER_TOPOLOGY_ENABLED").map(toml::Value::String);
        let interfaces = get("ROVER_TOPOLOGY_INTERFACES").map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        });
        (enabled.is_some() || interfaces.is_some()).then_some(Self {
            enabled,
            interfaces,
        })
    }
}

/// Resolves `[topology]` over `layers` (lowest first).
pub(super) fn resolve(layers: &[(&Layer, Source)]) -> Result<TopologySettings, ConfigError> {
    let section = |l: &Layer| l.topology.clone();
    let enabled = match pick(
        layers,
        |l| section(l).and_then(|t| t.enabled),
        "ROVER_TOPOLOGY_ENABLED",
        "-",
    ) {
        None => true,
        Some(v) => match &v.value {
            toml::Value::Boolean(b) => *b,
            toml::Value::String(s) if s.trim() == "true" => true,
            toml::Value::String(s) if s.trim() == "false" => false,
            other => {
                return Err(ConfigError::Invalid {
                    key: "topology.enabled",
                    value: other.to_string(),
                    origin: v.source,
                    problem: "must be true or false".into(),
                })
            }
        },
    };
    let interfaces = pick(
        layers,
        |l| section(l).and_then(|t| t.interfaces),
        "ROVER_TOPOLOGY_INTERFACES",
        "-",
    );
    let interfaces = match interfaces {
        None => Vec::new(),
        Some(list) => {
            if let Some(bad) = list
                .value
                .iter()
                .find(|n| n.is_empty() || n.len() > 15 || n.contains(['/', ' ']))
            {
                return Err(ConfigError::Invalid {
                    key: "topology.interfaces",
                    value: bad.clone(),
                    origin: list.source,
                    problem: "an interface name has 1 to 15 characters, no '/' or space".into(),
                });
            }
            list.value
        }
    };
    Ok(TopologySettings {
        enabled,
        interfaces,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn from_toml(text: &str) -> Result<TopologySettings, ConfigError> {
        let layer = Layer::from_toml(text, Path::new("test.toml")).unwrap();
        resolve(&[(&layer, Source::File("test.toml".into()))])
    }

    #[test]
    fn topology_listens_on_every_interface_by_default() {
        assert_eq!(from_toml("").unwrap(), TopologySettings::default());
        assert!(TopologySettings::default().enabled);
    }

    #[test]
    fn topology_keys_are_read_from_the_file_and_the_environment_wins() {
        let file = Layer::from_toml(
            "[topology]\nenabled = false\ninterfaces = [\"eth0\", \"eth1\"]\n",
            Path::new("test.toml"),
        )
        .unwrap();
        let settings = resolve(&[(&file, Source::File("test.toml".into()))]).unwrap();
        assert!(!settings.enabled);
        assert_eq!(settings.interfaces, vec!["eth0", "eth1"]);
        let env =
            Layer::from_env(|name| (name == "ROVER_TOPOLOGY_ENABLED").then(|| "true".to_owned()));
        let settings = resolve(&[
            (&file, Source::File("test.toml".into())),
            (&env, Source::Env("")),
        ])
        .unwrap();
        assert!(settings.enabled);
        assert_eq!(settings.interfaces, vec!["eth0", "eth1"]);
    }

    #[test]
    fn a_bad_topology_value_names_its_key() {
        let error = from_toml("[topology]\nenabled = \"perhaps\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("topology.enabled"), "{error}");
        let error = from_toml("[topology]\ninterfaces = [\"a/b\"]\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("topology.interfaces"), "{error}");
        let error = Layer::from_toml("[topology]\nlisten = true\n", Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("listen"), "{error}");
    }
}
