//! The gossiped table: the newest [`HostTopology`] of every host, as every agent holds it.
//! Applying a record tells what changed for history (each interface's switch port before and
//! after); digests and deltas serve the anti-entropy sync. Bounded by [`MAX_HOSTS`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::HostTopology;

/// At most this many hosts are held; a record of a new host beyond it is refused.
pub const MAX_HOSTS: usize = 4096;
/// A digest or delta from a peer holds at most this many entries.
pub const MAX_DIGEST: usize = MAX_HOSTS;

/// One host's version, as exchanged by the sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    /// The host.
    pub host: String,
    /// The version held.
    pub version: u64,
}

/// One interface whose switch port changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchChange {
    /// The host.
    pub host: String,
    /// The interface.
    pub interface: String,
    /// `sw-a port p1` before, if it heard a switch.
    pub from: Option<String>,
    /// After.
    pub to: Option<String>,
}

/// What applying a record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The record is older than or the same as the one held: nothing changed.
    Stale,
    /// The table is full and the host is new: refused.
    Full,
    /// Taken; these switch ports changed (a first record counts each switch it names).
    Taken(Vec<SwitchChange>),
}

/// The table. See the module docs.
#[derive(Debug, Default, Clone)]
pub struct TopologyTable {
    records: BTreeMap<String, HostTopology>,
}

impl TopologyTable {
    /// A table holding `records` (from storage).
    pub fn from_records(records: impl IntoIterator<Item = HostTopology>) -> Self {
        let mut table = Self::default();
        for record in records {
            table.apply(record);
        }
        table
    }

    /// Takes `record` if it is newer than the one held.
    pub fn apply(&mut self, record: HostTopology) -> Applied {
        let held = self.records.get(&record.host);
        if held.is_some_and(|h| h.version >= record.version) {
            return Applied::Stale;
        }
        if held.is_none() && self.records.len() >= MAX_HOSTS {
            return Applied::Full;
        }
        let changes = switch_changes(held, &record);
        self.records.insert(record.host.clone(), record);
        Applied::Taken(changes)
    }

    /// The record of `host`.
    pub fn get(&self, host: &str) -> Option<&HostTopology> {
        self.records.get(host)
    }

    /// Every record, by host name.
    pub fn records(&self) -> impl Iterator<Item = &HostTopology> {
        self.records.values()
    }

    /// Forgets `host` (it left the cluster); returns whether it was held.
    pub fn remove(&mut self, host: &str) -> bool {
        self.records.remove(host).is_some()
    }

    /// Which version of each host we hold.
    pub fn digest(&self) -> Vec<DigestEntry> {
        self.records
            .values()
            .map(|r| DigestEntry {
                host: r.host.clone(),
                version: r.version,
            })
            .collect()
    }

    /// The records we hold newer than in `digest` (and those it lacks).
    pub fn newer_than(&self, digest: &[DigestEntry]) -> Vec<HostTopology> {
        let theirs: BTreeMap<&str, u64> = digest
            .iter()
            .map(|d| (d.host.as_str(), d.version))
            .collect();
        self.records
            .values()
            .filter(|r| theirs.get(r.host.as_str()).is_none_or(|v| *v < r.version))
            .cloned()
            .collect()
    }
}

/// The switch ports that differ between `before` and `after`, interface by interface.
fn switch_changes(before: Option<&HostTopology>, after: &HostTopology) -> Vec<SwitchChange> {
    let port_of = |record: Option<&HostTopology>, interface: &str| {
        record
            .and_then(|r| r.link(interface))
            .and_then(|l| l.switch.as_ref())
            .map(|s| (s.chassis.clone(), s.port.clone(), s.describe()))
    };
    let mut interfaces: Vec<&str> = after.links.iter().map(|l| l.interface.as_str()).collect();
    if let Some(before) = before {
        interfaces.extend(before.links.iter().map(|l| l.interface.as_str()));
    }
    interfaces.sort_unstable();
    interfaces.dedup();
    interfaces
        .into_iter()
        .filter_map(|interface| {
            let (was, is) = (port_of(before, interface), port_of(Some(after), interface));
            let same = match (&was, &is) {
                (Some((c1, p1, _)), Some((c2, p2, _))) => c1 == c2 && p1 == p2,
                (None, None) => true,
                _ => false,
            };
            (!same).then(|| SwitchChange {
                host: after.host.clone(),
                interface: interface.to_owned(),
                from: was.map(|(_, _, d)| d),
                to: is.map(|(_, _, d)| d),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::frame::{IdKind, Identifier, Protocol};
    use crate::topology::record::{Link, ListenerState, SwitchPort};

    fn on(host: &str, version: u64, switch: Option<(&str, &str)>) -> HostTopology {
        HostTopology {
            host: host.into(),
            version,
            listener: ListenerState::Listening,
            links: vec![Link {
                interface: "eth0".into(),
                subnets: vec![],
                switch: switch.map(|(name, port)| SwitchPort {
                    protocol: Protocol::Lldp,
                    chassis: Identifier {
                        kind: IdKind::Local,
                        text: name.into(),
                    },
                    name: Some(name.into()),
                    port: Identifier {
                        kind: IdKind::InterfaceName,
                        text: port.into(),
                    },
                    port_description: None,
                    platform: None,
                    management: None,
                }),
            }],
        }
    }

    #[test]
    fn a_newer_record_replaces_and_reports_the_switch_move_an_older_one_is_stale() {
        let mut table = TopologyTable::default();
        assert_eq!(table.apply(on("h1", 1, None)), Applied::Taken(vec![]));
        assert_eq!(
            table.apply(on("h1", 2, Some(("sw-a", "p1")))),
            Applied::Taken(vec![SwitchChange {
                host: "h1".into(),
                interface: "eth0".into(),
                from: None,
                to: Some("sw-a port p1".into()),
            }])
        );
        assert_eq!(
            table.apply(on("h1", 3, Some(("sw-b", "p4")))),
            Applied::Taken(vec![SwitchChange {
                host: "h1".into(),
                interface: "eth0".into(),
                from: Some("sw-a port p1".into()),
                to: Some("sw-b port p4".into()),
            }])
        );
        assert_eq!(table.apply(on("h1", 3, None)), Applied::Stale);
        assert_eq!(table.apply(on("h1", 2, None)), Applied::Stale);
        assert_eq!(
            table.apply(on("h1", 4, Some(("sw-b", "p4")))),
            Applied::Taken(vec![]),
            "a newer record with the same switch port is no move"
        );
    }

    #[test]
    fn digests_pull_what_a_peer_lacks_or_holds_older() {
        let mut ours = TopologyTable::default();
        ours.apply(on("h1", 5, None));
        ours.apply(on("h2", 5, None));
        ours.apply(on("h3", 5, None));
        let theirs = vec![
            DigestEntry {
                host: "h1".into(),
                version: 5,
            },
            DigestEntry {
                host: "h2".into(),
                version: 4,
            },
            DigestEntry {
                host: "h9".into(),
                version: 1,
            },
        ];
        let hosts: Vec<String> = ours
            .newer_than(&theirs)
            .into_iter()
            .map(|r| r.host)
            .collect();
        assert_eq!(hosts, vec!["h2", "h3"]);
    }

    #[test]
    fn the_table_refuses_new_hosts_once_full_but_still_updates_known_ones() {
        let mut table = TopologyTable::default();
        for i in 0..MAX_HOSTS {
            table.apply(on(&format!("h{i}"), 1, None));
        }
        assert_eq!(table.apply(on("one-more", 1, None)), Applied::Full);
        assert!(matches!(table.apply(on("h0", 2, None)), Applied::Taken(_)));
        assert!(table.remove("h1"));
        assert!(matches!(
            table.apply(on("one-more", 1, None)),
            Applied::Taken(_)
        ));
    }
}
