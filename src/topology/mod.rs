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

/// Starts the owner task and the anti-entropy sync (every `sync_interval`); both run until
/// aborted. The daemon supervises the returned tasks.
pub fn start(
    context: TopologyContext,
    sync_interval: std::time::Duration,
) -> anyhow::Result<(TopologyHandle, Vec<tokio::task::JoinHandle<()>>)> {
    let membership = context.membership.clone();
    let (handle, task) = spawn(context)?;
    let sync = tokio::spawn(sync::run(sync_interval, membership, handle.clone()));
    Ok((handle, vec![task, sync]))
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
