//! What each of this host's interfaces hears, with TTLs: a sans-IO table fed by
//! [`Neighbours::handle_heard`] and [`Neighbours::handle_expiry`] with the time injected.
//!
//! An interface may hear more than one neighbour for a while (a port moved to another switch
//! still has the old switch's entry until its TTL runs out; a switch speaking LLDP and CDP
//! sends both). The one published is the newest arrival, by source MAC; of one source, LLDP
//! before CDP. A TTL-0 frame withdraws its neighbour at once. Both tables are bounded.

use std::collections::BTreeMap;

use super::frame::{Heard, Protocol};
use super::record::SwitchPort;

/// At most this many neighbours are kept per interface (the oldest arrival goes first).
pub const MAX_PER_INTERFACE: usize = 4;
/// At most this many interfaces are tracked.
pub const MAX_INTERFACES: usize = 64;

/// One neighbour heard on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// What it last said.
    pub heard: Heard,
    /// When it was first heard (unix ms): newer arrivals win.
    pub first_heard_ms: u64,
    /// When it was last heard.
    pub last_heard_ms: u64,
    /// When its TTL runs out.
    pub expires_ms: u64,
}

impl Neighbour {
    /// The switch port as published.
    pub fn switch_port(&self) -> SwitchPort {
        let heard = &self.heard;
        SwitchPort {
            protocol: heard.protocol,
            chassis: heard.chassis.clone(),
            name: heard.system_name.clone(),
            port: heard.port.clone(),
            port_description: heard.port_description.clone(),
            platform: heard.platform.clone(),
            management: heard.addresses.iter().copied().find(|a| !is_link_local(*a)),
        }
    }
}

/// fe80::/10 and 169.254.0.0/16: no use as a switch's management address.
fn is_link_local(address: std::net::IpAddr) -> bool {
    match address {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// The neighbour table. See the module docs.
#[derive(Debug, Default)]
pub struct Neighbours {
    interfaces: BTreeMap<String, Vec<Neighbour>>,
}

impl Neighbours {
    /// Takes one frame heard on `interface` at `now_ms`; returns whether the published switch
    /// port of that interface changed.
    pub fn handle_heard(&mut self, interface: &str, heard: Heard, now_ms: u64) -> bool {
        let before = self.published(interface);
        if !self.interfaces.contains_key(interface) && self.interfaces.len() >= MAX_INTERFACES {
            return false;
        }
        let list = self.interfaces.entry(interface.to_owned()).or_default();
        let same = |n: &Neighbour| {
            n.heard.source_mac == heard.source_mac && n.heard.protocol == heard.protocol
        };
        if heard.ttl_s == 0 {
            list.retain(|n| !same(n));
        } else {
            let expires_ms = now_ms.saturating_add(u64::from(heard.ttl_s) * 1000);
            match list.iter_mut().find(|n| same(n)) {
                Some(known) => {
                    known.heard = heard;
                    known.last_heard_ms = now_ms;
                    known.expires_ms = expires_ms;
                }
                None => {
                    if list.len() >= MAX_PER_INTERFACE {
                        if let Some(oldest) =
                            (0..list.len()).min_by_key(|&i| list[i].first_heard_ms)
                        {
                            list.remove(oldest);
                        }
                    }
                    // A source already heard by the other protocol keeps its arrival time.
                    let first_heard_ms = list
                        .iter()
                        .filter(|n| n.heard.source_mac == heard.source_mac)
                        .map(|n| n.first_heard_ms)
                        .min()
                        .unwrap_or(now_ms);
                    list.push(Neighbour {
                        heard,
                        first_heard_ms,
                        last_heard_ms: now_ms,
                        expires_ms,
                    });
                }
            }
        }
        if list.is_empty() {
            self.interfaces.remove(interface);
        }
        self.published(interface) != before
    }

    /// Forgets every neighbour whose TTL ran out by `now_ms`; returns whether any published
    /// switch port changed.
    pub fn handle_expiry(&mut self, now_ms: u64) -> bool {
        let names: Vec<String> = self.interfaces.keys().cloned().collect();
        let mut changed = false;
        for name in names {
            let before = self.published(&name);
            if let Some(list) = self.interfaces.get_mut(&name) {
                list.retain(|n| n.expires_ms > now_ms);
                if list.is_empty() {
                    self.interfaces.remove(&name);
                }
            }
            changed |= self.published(&name) != before;
        }
        changed
    }

    /// Forgets the neighbours of an interface that is gone; returns whether it had any.
    pub fn forget_interface(&mut self, interface: &str) -> bool {
        self.interfaces.remove(interface).is_some()
    }

    /// When the next TTL runs out, if any neighbour is known.
    pub fn next_expiry(&self) -> Option<u64> {
        self.interfaces
            .values()
            .flatten()
            .map(|n| n.expires_ms)
            .min()
    }

    /// The neighbour published for `interface`: the newest arrival; of one source, LLDP.
    pub fn current(&self, interface: &str) -> Option<&Neighbour> {
        self.interfaces.get(interface)?.iter().max_by(|a, b| {
            let rank = |n: &Neighbour| {
                (
                    n.first_heard_ms,
                    n.heard.source_mac,
                    n.heard.protocol == Protocol::Lldp,
                )
            };
            rank(a).cmp(&rank(b))
        })
    }

    /// Every neighbour of every interface, by interface name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Neighbour)> {
        self.interfaces
            .iter()
            .flat_map(|(name, list)| list.iter().map(move |n| (name.as_str(), n)))
    }

    /// Every neighbour of `interface` (for the map's details).
    pub fn all(&self, interface: &str) -> &[Neighbour] {
        self.interfaces.get(interface).map_or(&[], Vec::as_slice)
    }

    fn published(&self, interface: &str) -> Option<SwitchPort> {
        self.current(interface).map(Neighbour::switch_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::frame::{IdKind, Identifier};

    fn heard(switch: &str, mac: u8, port: &str, protocol: Protocol, ttl_s: u16) -> Heard {
        Heard {
            protocol,
            source_mac: [2, 0, 0, 0, 0, mac],
            chassis: Identifier {
                kind: IdKind::Local,
                text: switch.into(),
            },
            port: Identifier {
                kind: IdKind::InterfaceName,
                text: port.into(),
            },
            ttl_s,
            system_name: Some(switch.into()),
            port_description: None,
            platform: None,
            addresses: vec![],
            skipped_tlvs: 0,
        }
    }

    fn label(table: &Neighbours, interface: &str) -> Option<String> {
        table.current(interface).map(|n| n.switch_port().describe())
    }

    #[test]
    fn the_first_frame_publishes_and_refreshes_publish_nothing() {
        let mut table = Neighbours::default();
        assert!(table.handle_heard("eth0", heard("sw-a", 1, "p1", Protocol::Lldp, 4), 1_000));
        assert!(!table.handle_heard("eth0", heard("sw-a", 1, "p1", Protocol::Lldp, 4), 2_000));
        assert_eq!(label(&table, "eth0").as_deref(), Some("sw-a port p1"));
        assert_eq!(table.next_expiry(), Some(6_000));
    }

    #[test]
    fn a_port_change_on_the_same_switch_is_published() {
        let mut table = Neighbours::default();
        table.handle_heard("eth0", heard("sw-a", 1, "p1", Protocol::Lldp, 4), 1_000);
        assert!(table.handle_heard("eth0", heard("sw-a", 1, "p2", Protocol::Lldp, 4), 2_000));
        assert_eq!(label(&table, "eth0").as_deref(), Some("sw-a port p2"));
    }

    #[test]
    fn a_port_moved_to_another_switch_shows_the_new_one_at_once_and_the_old_one_expires_quietly() {
        let mut table = Neighbours::default();
        table.handle_heard("eth0", heard("sw-a", 1, "p1", Protocol::Lldp, 4), 1_000);
        assert!(table.handle_heard("eth0", heard("sw-b", 9, "p5", Protocol::Lldp, 4), 3_000));
        assert_eq!(label(&table, "eth0").as_deref(), Some("sw-b port p5"));
        assert!(
            !table.handle_expiry(5_000),
            "sw-a's TTL running out changes nothing shown"
        );
        assert_eq!(table.all("eth0").len(), 1);
    }

    #[test]
    fn ttl_zero_withdraws_and_a_silent_neighbour_expires_at_its_ttl() {
        let mut table = Neighbours::default();
        table.handle_heard("eth0", heard("sw-a", 1, "p1", Protocol::Lldp, 4), 1_000);
        assert!(table.handle_heard("eth0", heard("sw-a", 1, "p1", Protocol::Lldp, 0), 2_000));
        assert_eq!(label(&table, "eth0"), None);
        table.handle_heard("eth1", heard("sw-b", 2, "p1", Protocol::Lldp, 4), 1_000);
        assert!(!table.handle_expiry(4_999));
        assert!(table.handle_expiry(5_000));
        assert_eq!(label(&table, "eth1"), None);
        assert_eq!(table.next_expiry(), None);
    }

    #[test]
    fn a_switch_speaking_lldp_and_cdp_is_published_by_its_lldp_whatever_came_first() {
        for lldp_first in [true, false] {
            let mut table = Neighbours::default();
            let lldp = heard("02:00:00:00:0a:01", 1, "p1", Protocol::Lldp, 4);
            let cdp = heard("sw-a", 1, "p1", Protocol::Cdp, 4);
            let (first, second) = if lldp_first { (lldp, cdp) } else { (cdp, lldp) };
            table.handle_heard("eth0", first, 1_000);
            table.handle_heard("eth0", second, 1_100);
            let current = table.current("eth0").unwrap();
            assert_eq!(
                current.heard.protocol,
                Protocol::Lldp,
                "lldp first: {lldp_first}"
            );
        }
    }

    #[test]
    fn a_flood_of_neighbours_keeps_the_table_bounded() {
        let mut table = Neighbours::default();
        for i in 0..200u8 {
            table.handle_heard(
                "eth0",
                heard(&format!("fake-{i}"), i, "p1", Protocol::Lldp, 120),
                u64::from(i),
            );
            table.handle_heard(
                &format!("if{i}"),
                heard("x", 1, "p1", Protocol::Lldp, 120),
                0,
            );
        }
        assert_eq!(table.all("eth0").len(), MAX_PER_INTERFACE);
        assert_eq!(label(&table, "eth0").as_deref(), Some("fake-199 port p1"));
        assert!(table.interfaces.len() <= MAX_INTERFACES);
    }
}
