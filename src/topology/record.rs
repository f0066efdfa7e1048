//! What each host publishes about where it is plugged in ([`HostTopology`]), by gossip and by
//! the anti-entropy sync: for each interface, its subnets (IPv4 CIDR, IPv6 prefixes) and the
//! switch and port it hears, if any; and whether it can listen at all.
//!
//! A record replaces an older one of the same host (higher `version`). It only changes when
//! something a reader would see changes (switch identity, port, subnets, listener state):
//! TTL refreshes publish nothing. Records from peers are checked ([`HostTopology::check`])
//! before use; the encoded record stays under [`MAX_RECORD_BYTES`] so that it fits a gossip
//! broadcast ([`HostTopology::fit`]).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::frame::{Identifier, Protocol, MAX_TEXT_CHARS};

/// An encoded record (with its broadcast header) stays under this many bytes: foca takes a
/// broadcast of at most half its 1400-byte packet.
pub const MAX_RECORD_BYTES: usize = 600;
/// At most this many interfaces per record.
pub const MAX_LINKS: usize = 16;
/// At most this many subnets per interface.
pub const MAX_SUBNETS: usize = 8;

/// One host's topology. Field order is the wire format (postcard): only append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTopology {
    /// The host (node name).
    pub host: String,
    /// Higher replaces lower.
    pub version: u64,
    /// Whether the host listens for LLDP and CDP.
    pub listener: ListenerState,
    /// One per interface with an address or a neighbour, by interface name.
    pub links: Vec<Link>,
}

/// Whether a host listens for discovery frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenerState {
    /// Listening on the interfaces listed in its links.
    Listening,
    /// Wanted but impossible; the reason says why (for example no CAP_NET_RAW).
    Off {
        /// One line for humans.
        reason: String,
    },
    /// `[topology] enabled = false`.
    Disabled,
}

impl ListenerState {
    /// One line for humans.
    pub fn describe(&self) -> String {
        match self {
            ListenerState::Listening => "listening for LLDP and CDP".into(),
            ListenerState::Off { reason } => format!("LLDP listening is off: {reason}"),
            ListenerState::Disabled => {
                "LLDP listening is disabled ([topology] enabled = false)".into()
            }
        }
    }
}

/// One interface of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The interface name (for example `eth0`).
    pub interface: String,
    /// Its subnets, from its own addresses.
    pub subnets: Vec<Subnet>,
    /// The switch port it hears, if any.
    pub switch: Option<SwitchPort>,
}

/// A subnet: a network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Subnet {
    /// The network address (host bits zero).
    pub network: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Subnet {
    /// The subnet an interface address with `prefix` belongs to; `None` for a prefix longer
    /// than the address.
    pub fn of(address: IpAddr, prefix: u8) -> Option<Subnet> {
        let network = match address {
            IpAddr::V4(v4) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::from(std::net::Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::from(std::net::Ipv6Addr::from(u128::from(v6) & mask))
            }
            _ => return None,
        };
        Some(Subnet { network, prefix })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The switch and port an interface hears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchPort {
    /// LLDP or CDP.
    pub protocol: Protocol,
    /// The switch's id (LLDP chassis id, CDP device id): the key of the switch in the map.
    pub chassis: Identifier,
    /// Its system name, if it sent one.
    pub name: Option<String>,
    /// The port we are plugged into.
    pub port: Identifier,
    /// The port's description, if sent.
    pub port_description: Option<String>,
    /// The switch's platform (CDP), if sent.
    pub platform: Option<String>,
    /// Its first management address, if sent.
    pub management: Option<IpAddr>,
}

impl SwitchPort {
    /// What the switch is called: its system name, else its id.
    pub fn switch_label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.chassis.text)
    }

    /// The port's name for people: a named port id as is; for a MAC or address id, the port
    /// description when there is one.
    pub fn port_label(&self) -> &str {
        match &self.port_description {
            Some(description) if !self.port.kind.is_name() => description,
            _ => &self.port.text,
        }
    }

    /// `sw-a port p1`.
    pub fn describe(&self) -> String {
        format!("{} port {}", self.switch_label(), self.port_label())
    }
}

/// A record from a peer that cannot be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRecord {
    /// It could not be decoded.
    #[error("undecodable topology record: {0}")]
    Undecodable(String),
    /// It names another host than its gossip key.
    #[error("a topology record for {host} arrived under the key {key}")]
    WrongKey {
        /// The record's host.
        host: String,
        /// The key it came under.
        key: String,
    },
    /// Too many interfaces or subnets, or a text field too long or with control characters.
    #[error("topology record of {host} out of bounds: {what}")]
    OutOfBounds {
        /// The record's host.
        host: String,
        /// What is wrong.
        what: String,
    },
}

impl HostTopology {
    /// Decodes a record received under gossip key `key` and checks it.
    pub fn decode(payload: &[u8], key: &str) -> Result<HostTopology, BadRecord> {
        let record: HostTopology =
            postcard::from_bytes(payload).map_err(|e| BadRecord::Undecodable(e.to_string()))?;
        if record.host != key {
            return Err(BadRecord::WrongKey {
                host: record.host,
                key: key.to_owned(),
            });
        }
        record.check()?;
        Ok(record)
    }

    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Checks the bounds a record from a peer must keep.
    pub fn check(&self) -> Result<(), BadRecord> {
        let out = |what: String| {
            Err(BadRecord::OutOfBounds {
                host: self.host.clone(),
                what,
            })
        };
        if self.links.len() > MAX_LINKS {
            return out(format!("{} interfaces", self.links.len()));
        }
        let mut texts: Vec<&str> = vec![&self.host];
        if let ListenerState::Off { reason } = &self.listener {
            texts.push(reason);
        }
        for link in &self.links {
            if link.subnets.len() > MAX_SUBNETS {
                return out(format!(
                    "{} subnets on {}",
                    link.subnets.len(),
                    link.interface
                ));
            }
            if link
                .subnets
                .iter()
                .any(|s| Subnet::of(s.network, s.prefix) != Some(*s))
            {
                return out(format!("a subnet of {} has host bits set", link.interface));
            }
            texts.push(&link.interface);
            if let Some(switch) = &link.switch {
                texts.extend([switch.chassis.text.as_str(), switch.port.text.as_str()]);
                texts.extend(
                    [&switch.name, &switch.port_description, &switch.platform]
                        .into_iter()
                        .flatten()
                        .map(String::as_str),
                );
            }
        }
        match texts.iter().find(|t| !is_clean(t)) {
            Some(bad) => out(format!("text field {bad:?}")),
            None => Ok(()),
        }
    }

    /// Trims optional details until the encoded record fits [`MAX_RECORD_BYTES`]: port
    /// descriptions and platforms first, then management addresses, then subnets beyond the
    /// first of each interface, then interfaces without a switch, then the last interfaces.
    /// Returns whether anything was left out.
    pub fn fit(&mut self) -> bool {
        let fits = |r: &HostTopology| r.encode().len() + r.host.len() + 16 <= MAX_RECORD_BYTES;
        if fits(self) {
            return false;
        }
        let steps: [fn(&mut HostTopology); 4] = [
            |r| {
                for s in r.links.iter_mut().filter_map(|l| l.switch.as_mut()) {
                    s.port_description = None;
                    s.platform = None;
                }
            },
            |r| {
                for s in r.links.iter_mut().filter_map(|l| l.switch.as_mut()) {
                    s.management = None;
                }
            },
            |r| {
                for l in &mut r.links {
                    l.subnets.truncate(1);
                }
            },
            |r| r.links.retain(|l| l.switch.is_some()),
        ];
        for step in steps {
            step(self);
            if fits(self) {
                return true;
            }
        }
        while !fits(self) && self.links.pop().is_some() {}
        true
    }

    /// The link on `interface`.
    pub fn link(&self, interface: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.interface == interface)
    }
}

/// A text a peer may publish: at most [`MAX_TEXT_CHARS`] characters, no control characters.
fn is_clean(text: &str) -> bool {
    text.chars().count() <= MAX_TEXT_CHARS && !crate::control_chars::has_control(text)
}

/// The next version of a record: above the last one, and above wall-clock ms so that a host
/// that lost its data dir still publishes newer records.
pub fn next_version(last: u64, now_ms: u64) -> u64 {
    last.saturating_add(1).max(now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::frame::IdKind;

    pub(crate) fn switch(name: &str, port: &str) -> SwitchPort {
        SwitchPort {
            protocol: Protocol::Lldp,
            chassis: Identifier {
                kind: IdKind::MacAddress,
                text: format!("02:00:00:00:{name}"),
            },
            name: Some(name.into()),
            port: Identifier {
                kind: IdKind::InterfaceName,
                text: port.into(),
            },
            port_description: Some("a long description of the port".repeat(3)),
            platform: None,
            management: Some("10.0.0.254".parse().unwrap()),
        }
    }

    fn record(links: usize) -> HostTopology {
        HostTopology {
            host: "n1".into(),
            version: 1,
            listener: ListenerState::Listening,
            links: (0..links)
                .map(|i| Link {
                    interface: format!("eth{i}"),
                    subnets: vec![
                        Subnet::of(format!("10.0.{i}.1").parse().unwrap(), 24).unwrap(),
                        Subnet::of("fd00::1".parse().unwrap(), 64).unwrap(),
                    ],
                    switch: (i % 2 == 0).then(|| switch("sw-a", &format!("p{i}"))),
                })
                .collect(),
        }
    }

    #[test]
    fn a_subnet_is_the_address_with_its_host_bits_cleared() {
        let v4 = Subnet::of("10.213.7.42".parse().unwrap(), 24).unwrap();
        assert_eq!(v4.to_string(), "10.213.7.0/24");
        let v6 = Subnet::of("fd00:250::fe".parse().unwrap(), 64).unwrap();
        assert_eq!(v6.to_string(), "fd00:250::/64");
        assert_eq!(
            Subnet::of("10.0.0.1".parse().unwrap(), 0)
                .unwrap()
                .to_string(),
            "0.0.0.0/0"
        );
        assert_eq!(Subnet::of("10.0.0.1".parse().unwrap(), 33), None);
    }

    #[test]
    fn a_record_round_trips_and_one_under_another_key_or_out_of_bounds_is_refused() {
        let r = record(2);
        assert_eq!(HostTopology::decode(&r.encode(), "n1"), Ok(r.clone()));
        assert!(matches!(
            HostTopology::decode(&r.encode(), "n2"),
            Err(BadRecord::WrongKey { .. })
        ));
        assert!(matches!(
            HostTopology::decode(&[0xff, 0xff, 0xff], "n1"),
            Err(BadRecord::Undecodable(_))
        ));
        let mut dirty = r.clone();
        dirty.links[0].interface = "eth0\u{1b}[2J".into();
        assert!(matches!(dirty.check(), Err(BadRecord::OutOfBounds { .. })));
        let mut host_bits = r;
        host_bits.links[0].subnets[0].network = "10.0.0.1".parse().unwrap();
        assert!(host_bits.check().is_err());
        assert!(record(MAX_LINKS + 1).check().is_err());
    }

    #[test]
    fn a_large_record_is_trimmed_to_fit_a_broadcast_keeping_switches_first() {
        let mut small = record(1);
        assert!(!small.fit(), "a small record is left as is");
        let mut big = record(12);
        assert!(big.encode().len() > MAX_RECORD_BYTES);
        assert!(big.fit());
        assert!(big.encode().len() + 18 <= MAX_RECORD_BYTES);
        assert!(!big.links.is_empty());
        assert_eq!(
            big.links.iter().filter(|l| l.switch.is_some()).count(),
            6,
            "every interface on a switch is kept"
        );
        assert_eq!(big.links[0].switch.as_ref().unwrap().port.text, "p0");
    }

    #[test]
    fn the_record_of_a_host_without_cap_net_raw_is_accepted_by_its_peers() {
        let mut r = record(1);
        r.listener = ListenerState::Off {
            reason: crate::topology::socket::NO_CAP_NET_RAW.into(),
        };
        assert_eq!(HostTopology::decode(&r.encode(), "n1"), Ok(r));
    }

    #[test]
    fn versions_grow_past_the_last_one_and_the_clock() {
        assert_eq!(next_version(5, 1_000), 1_000);
        assert_eq!(next_version(2_000, 1_000), 2_001);
        assert_eq!(next_version(u64::MAX, 0), u64::MAX);
    }

    #[test]
    fn a_port_is_shown_by_name_or_by_its_description_when_its_id_is_an_address() {
        let mut s = switch("sw-a", "p1");
        assert_eq!(s.describe(), "sw-a port p1");
        s.port = Identifier {
            kind: IdKind::MacAddress,
            text: "96:b3:9a:15:d9:b6".into(),
        };
        s.port_description = Some("p7".into());
        assert_eq!(s.port_label(), "p7");
        s.name = None;
        assert_eq!(s.switch_label(), "02:00:00:00:sw-a");
    }
}
