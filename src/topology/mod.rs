//! Topology from LLDP and CDP (seed 001): which switch and port each host hangs off, the
//! subnets behind each switch, and one message for a dead switch instead of one per host.
//!
//! - Frames: [`frame`] classifies a received frame; [`lldp`] and [`cdp`] are our own TLV
//!   parsers (pure; a broken frame is a counted [`frame::Dropped`] reason, never a panic).
//! - Listening: [`interfaces`] chooses the interfaces, [`socket`] opens a kernel-filtered raw
//!   socket per interface (CAP_NET_RAW), [`listener`] reads each on its own thread.
//! - This host: [`neighbours`] keeps what each interface hears, with TTLs (sans-IO).
//! - The cluster: [`record`] is what each host publishes (gossip topic `Topology`, and the
//!   anti-entropy [`sync`]); [`table`] holds every host's newest record; [`task`] is the
//!   owner task tying them together.
//! - The map: [`map`] is the petgraph graph subnet -> switch -> host; [`report`] what
//!   `topology` prints (text, dot, json).
//! - Incidents: [`folding`] decides switch incidents and explains a cut-off side (pure).

pub mod cdp;
pub mod folding;
pub mod frame;
pub mod interfaces;
pub mod listener;
pub mod lldp;
pub mod map;
pub mod neighbours;
pub mod record;
pub mod report;
pub mod socket;
pub mod sync;
pub mod table;
pub mod task;

#[cfg(test)]
mod parse_tests;

use rover_membership::{MemberEvent, Topic};

pub use self::task::{spawn, TopologyContext, TopologyHandle, TopologyInput};

/// The `[topology]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologySettings {
    /// Listen for LLDP and CDP (default true).
    pub enabled: bool,
    /// Listen only on these interfaces (empty: every up, non-loopback, non-virtual one).
    pub interfaces: Vec<String>,
}

impl Default for TopologySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interfaces: Vec::new(),
        }
    }
}

/// A long-lived task of this module, with the name the daemon's supervisor reports it by.
pub type NamedTask = (&'static str, tokio::task::JoinHandle<()>);

/// Starts the owner task and the anti-entropy sync (every `sync_interval`); both run until
/// aborted. The daemon supervises the returned tasks.
pub fn start(
    context: TopologyContext,
    sync_interval: std::time::Duration,
) -> anyhow::Result<(TopologyHandle, Vec<NamedTask>)> {
    let membership = context.membership.clone();
    let (handle, task) = spawn(context)?;
    let sync = tokio::spawn(sync::run(sync_interval, membership, handle.clone()));
    Ok((handle, vec![("topology", task), ("topology-sync", sync)]))
}

impl TopologyHandle {
    /// Takes what concerns topology in a membership event: records heard by gossip, and
    /// members that left. Never waits.
    pub fn on_member_event(&self, event: &MemberEvent) {
        match event {
            MemberEvent::Broadcast(item) if item.topic == Topic::Topology => {
                self.offer(TopologyInput::Gossip {
                    key: item.key.clone(),
                    payload: item.payload.clone(),
                });
            }
            MemberEvent::Left(member) => self.offer(TopologyInput::Left(member.name.clone())),
            _ => {}
        }
    }
}

/// `eth0: now on sw-b port p4 (was sw-a port p1)`, as history and the log say it.
pub fn history_text(interface: &str, from: Option<&str>, to: Option<&str>) -> String {
    match (from, to) {
        (None, Some(to)) => format!("{interface}: hears {to}"),
        (Some(from), Some(to)) => format!("{interface}: now on {to} (was {from})"),
        (Some(from), None) => format!("{interface}: no longer hears {from}"),
        (None, None) => format!("{interface}: no switch"),
    }
}

#[cfg(test)]
mod settings_tests {
    use std::path::{Path, PathBuf};

    use crate::config::{resolve, Config, ConfigError, Layer};

    fn from(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let file = Layer::from_toml(toml, Path::new("t.toml"))?;
        let env = Layer::from_env(|name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        });
        resolve(
            Some((file, PathBuf::from("t.toml"))),
            env,
            Layer::default(),
            PathBuf::from("/tmp/rover-test"),
            "h1".into(),
        )
    }

    #[test]
    fn topology_listens_on_every_interface_by_default() {
        let config = from("", &[]).unwrap();
        assert_eq!(config.topology, super::TopologySettings::default());
        assert!(config.topology.enabled);
    }

    #[test]
    fn topology_keys_come_from_the_file_and_the_environment_wins() {
        let toml = "[topology]\nenabled = false\ninterfaces = [\"eth0\", \"eth1\"]\n";
        let config = from(toml, &[]).unwrap();
        assert!(!config.topology.enabled);
        assert_eq!(config.topology.interfaces, vec!["eth0", "eth1"]);
        let config = from(
            toml,
            &[
                ("ROVER_TOPOLOGY_ENABLED", "true"),
                ("ROVER_TOPOLOGY_INTERFACES", "bond0, eth2"),
            ],
        )
        .unwrap();
        assert!(config.topology.enabled);
        assert_eq!(config.topology.interfaces, vec!["bond0", "eth2"]);
    }

    #[test]
    fn a_bad_topology_value_names_its_key() {
        let error = from("[topology]\nenabled = \"perhaps\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("topology.enabled"), "{error}");
        let error = from("[topology]\ninterfaces = [\"a/b\"]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("topology.interfaces"), "{error}");
        let error = from("[topology]\nlisten = true\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("topology.listen"), "{error}");
    }
}
