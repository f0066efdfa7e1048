//! What the services carry, and the typed views of a set of records.
//!
//! - `addresses`: a node's name, team, advertise address(es) and identity generation. One per
//!   signer; an agent alone bootstraps from them, and invitations carry them.
//! - `service/NAME`: a cluster-wide named service address (registry, steward, beacon...).
//!   Any node may state one; the newest by seqnum, then by signer, wins
//!   ([`super::order::winner`]); a statement without an address removes the service.
//! - `trust/KEY`: a recommendation (seed 004) about the team or node whose public key is
//!   `KEY` (unpadded URL-safe base64): its petname and what to do with it. A statement with
//!   nothing to do withdraws it.
//!
//! Each payload is a [`Record`] (version byte and postcard body); [`Content::of`] decodes the
//! payload a record's service calls for and checks its bounds.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::order::winner;
use super::signed::SignedRecord;
use crate::record::{self, Record};

/// The service name of address records.
pub const ADDRESSES: &str = "addresses";
/// Prefix of named service records.
pub const SERVICE_PREFIX: &str = "service/";
/// Prefix of trust records.
pub const TRUST_PREFIX: &str = "trust/";
/// The longest name of a named service.
pub const MAX_SERVICE_NAME: usize = 48;
/// The most addresses one address record holds.
pub const MAX_ADDRESSES: usize = 8;
/// The longest address text of a named service.
pub const MAX_SERVICE_ADDR: usize = 255;
/// The longest petname, in bytes.
pub const MAX_PETNAME: usize = 64;
/// The longest node or team name in an address record.
pub const MAX_NODE_NAME: usize = 128;

/// What a record's service name says it is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    /// `addresses`.
    Addresses,
    /// `service/NAME`.
    Named(String),
    /// `trust/KEY`.
    Trust([u8; 32]),
}

impl Service {
    /// Parses a service name; `None` unless it is one of the three forms, well made.
    pub fn parse(name: &str) -> Option<Service> {
        if name == ADDRESSES {
            return Some(Service::Addresses);
        }
        if let Some(service) = name.strip_prefix(SERVICE_PREFIX) {
            return is_service_name(service).then(|| Service::Named(service.to_owned()));
        }
        let key = name.strip_prefix(TRUST_PREFIX)?;
        if key.len() != 43 {
            return None;
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key)
            .ok()?;
        bytes.try_into().ok().map(Service::Trust)
    }

    /// The service name.
    pub fn name(&self) -> String {
        match self {
            Service::Addresses => ADDRESSES.to_owned(),
            Service::Named(name) => format!("{SERVICE_PREFIX}{name}"),
            Service::Trust(key) => format!("{TRUST_PREFIX}{}", key_text(key)),
        }
    }
}

/// Whether `name` may name a service: 1 to [`MAX_SERVICE_NAME`] letters, digits, `-`, `_`, `.`.
pub fn is_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SERVICE_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// A public key as the records write it: unpadded URL-safe base64 (43 characters).
pub fn key_text(key: &[u8; 32]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

/// Parses a public key given as standard base64 (how `info` shows node keys), URL-safe base64
/// (padded or not) or 64 hex digits.
pub fn parse_key(text: &str) -> Option<[u8; 32]> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    let decoded = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()
    } else {
        STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE.decode(text))
            .or_else(|_| URL_SAFE_NO_PAD.decode(text))
            .ok()
    };
    decoded?.try_into().ok()
}

/// The payload of `addresses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    /// The node name.
    pub node: String,
    /// Its team.
    pub team: String,
    /// Where its gossip and cluster port are reached, best first.
    pub addrs: Vec<SocketAddr>,
    /// Its identity generation when it stated this.
    pub generation: u64,
}

impl Record for Addresses {
    const VERSION: u8 = 1;
}

/// The payload of `service/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedService {
    /// Where the service is (`host:port` or a URL); `None`: the service was removed.
    pub addr: Option<String>,
}

impl Record for NamedService {
    const VERSION: u8 = 1;
}

/// What a trust recommendation says to do with the team or node it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustWhat {
    /// Take the alerts it sends.
    AcceptAlertsFrom,
    /// Send it our alerts.
    SendAlertsTo,
}

impl TrustWhat {
    /// Every kind, in order.
    pub const ALL: [TrustWhat; 2] = [TrustWhat::AcceptAlertsFrom, TrustWhat::SendAlertsTo];

    /// The word the CLI and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustWhat::AcceptAlertsFrom => "accept-alerts-from",
            TrustWhat::SendAlertsTo => "send-alerts-to",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(word: &str) -> Option<TrustWhat> {
        Self::ALL.into_iter().find(|w| w.as_str() == word)
    }
}

/// The payload of `trust/KEY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    /// The name the signer gives the team or node.
    pub petname: String,
    /// What to do with it, sorted, each once; empty: the recommendation is withdrawn.
    pub what: Vec<TrustWhat>,
}

impl Record for Trust {
    const VERSION: u8 = 1;
}

/// A record's decoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Of `addresses`.
    Addresses(Addresses),
    /// Of `service/NAME`.
    Named(String, NamedService),
    /// Of `trust/KEY`.
    Trust([u8; 32], Trust),
}

impl Content {
    /// Decodes the payload `record`'s service calls for and checks its bounds; the error
    /// says what is wrong.
    pub fn of(record: &SignedRecord) -> Result<Content, String> {
        let service = Service::parse(&record.service).ok_or("unknown service")?;
        let tree = "grid payload";
        let key = record.service.as_bytes();
        let decode_error = |e: crate::StorageError| e.to_string();
        match service {
            Service::Addresses => {
                let a: Addresses =
                    record::decode(tree, key, &record.payload).map_err(decode_error)?;
                if a.node.is_empty() || a.node.len() > MAX_NODE_NAME || a.team.len() > MAX_NODE_NAME
                {
                    return Err("node or team name out of bounds".into());
                }
                if a.addrs.is_empty() || a.addrs.len() > MAX_ADDRESSES {
                    return Err(format!(
                        "{} addresses (1 to {MAX_ADDRESSES})",
                        a.addrs.len()
                    ));
                }
                Ok(Content::Addresses(a))
            }
            Service::Named(name) => {
                let s: NamedService =
                    record::decode(tree, key, &record.payload).map_err(decode_error)?;
                if s.addr
                    .as_ref()
                    .is_some_and(|a| a.is_empty() || a.len() > MAX_SERVICE_ADDR)
                {
                    return Err("service address out of bounds".into());
                }
                Ok(Content::Named(name, s))
            }
            Service::Trust(who) => {
                let t: Trust = record::decode(tree, key, &record.payload).map_err(decode_error)?;
                if t.petname.len() > MAX_PETNAME {
                    return Err("petname too long".into());
                }
                if !t.what.windows(2).all(|w| w[0] < w[1]) {
                    return Err("what is not sorted and unique".into());
                }
                Ok(Content::Trust(who, t))
            }
        }
    }
}

/// Encodes a payload; encoding these types cannot fail.
pub fn encode<T: Record>(payload: &T) -> Vec<u8> {
    record::encode(payload).unwrap_or_default()
}

/// The named services now in force: for each name, the winning record's address (removed
/// services are left out), with the winning record.
pub fn named_services<'a>(
    records: impl IntoIterator<Item = &'a SignedRecord>,
) -> BTreeMap<String, (&'a SignedRecord, String)> {
    let mut by_name: BTreeMap<String, Vec<&SignedRecord>> = BTreeMap::new();
    for record in records {
        if let Some(Service::Named(name)) = Service::parse(&record.service) {
            by_name.entry(name).or_default().push(record);
        }
    }
    by_name
        .into_iter()
        .filter_map(|(name, candidates)| {
            let best = winner(candidates)?;
            match Content::of(best) {
                Ok(Content::Named(_, NamedService { addr: Some(addr) })) => {
                    Some((name, (best, addr)))
                }
                _ => None,
            }
        })
        .collect()
}

/// One address record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddresses {
    /// The signer (the node's key).
    pub signer: [u8; 32],
    /// What it stated.
    pub addresses: Addresses,
    /// The record's seqnum.
    pub seqnum: u64,
}

/// Every node's address record.
pub fn node_addresses<'a>(
    records: impl IntoIterator<Item = &'a SignedRecord>,
) -> Vec<NodeAddresses> {
    records
        .into_iter()
        .filter_map(|record| match Content::of(record) {
            Ok(Content::Addresses(addresses)) => Some(NodeAddresses {
                signer: record.signer,
                addresses,
                seqnum: record.seqnum,
            }),
            _ => None,
        })
        .collect()
}

/// One trust recommendation in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    /// Who recommends (a node key).
    pub signer: [u8; 32],
    /// The team or node key it is about.
    pub who: [u8; 32],
    /// The signer's name for it.
    pub petname: String,
    /// What to do with it.
    pub what: Vec<TrustWhat>,
    /// The record's seqnum.
    pub seqnum: u64,
}

/// Every recommendation in force (withdrawn ones left out), by signer then who.
pub fn recommendations<'a>(
    records: impl IntoIterator<Item = &'a SignedRecord>,
) -> Vec<Recommendation> {
    let mut out: Vec<Recommendation> = records
        .into_iter()
        .filter_map(|record| match Content::of(record) {
            Ok(Content::Trust(who, trust)) if !trust.what.is_empty() => Some(Recommendation {
                signer: record.signer,
                who,
                petname: trust.petname,
                what: trust.what,
                seqnum: record.seqnum,
            }),
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| a.signer.cmp(&b.signer).then(a.who.cmp(&b.who)));
    out
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes(&[byte; 32])
    }

    fn named(signer: u8, seqnum: u64, addr: Option<&str>) -> SignedRecord {
        let payload = encode(&NamedService {
            addr: addr.map(str::to_owned),
        });
        SignedRecord::sign(&key(signer), "service/registry", seqnum, payload).unwrap()
    }

    #[test]
    fn service_names_parse_back_to_themselves() {
        let who = key(9).verifying_key().to_bytes();
        for service in [
            Service::Addresses,
            Service::Named("registry".into()),
            Service::Trust(who),
        ] {
            assert_eq!(Service::parse(&service.name()), Some(service.clone()));
        }
        assert_eq!(Service::parse("service/a/b"), None);
        assert_eq!(Service::parse(&format!("service/{}", "x".repeat(49))), None);
    }

    #[test]
    fn keys_parse_from_base64_url_safe_base64_and_hex() {
        let who = key(4).verifying_key().to_bytes();
        use base64::engine::general_purpose::STANDARD;
        let hex: String = who.iter().map(|b| format!("{b:02x}")).collect();
        for text in [STANDARD.encode(who), key_text(&who), hex] {
            assert_eq!(parse_key(&text), Some(who), "{text}");
        }
        assert_eq!(parse_key("bob"), None);
    }

    #[test]
    fn the_newest_statement_of_a_service_wins_and_a_removal_hides_it() {
        let a = named(1, 5, Some("10.0.0.1:1"));
        let b = named(2, 6, Some("10.0.0.2:1"));
        let services = named_services([&a, &b]);
        assert_eq!(services["registry"].1, "10.0.0.2:1");
        let removed = named(1, 7, None);
        assert!(named_services([&a, &b, &removed]).is_empty());
    }

    #[test]
    fn a_payload_out_of_bounds_is_refused_by_content() {
        let payload = encode(&Addresses {
            node: "n1".into(),
            team: "t".into(),
            addrs: Vec::new(),
            generation: 1,
        });
        let record = SignedRecord::sign(&key(1), ADDRESSES, 1, payload).unwrap();
        assert!(Content::of(&record).is_err());
        let garbage = SignedRecord::sign(&key(1), ADDRESSES, 1, vec![1, 0xff]).unwrap();
        assert!(Content::of(&garbage).is_err());
    }

    #[test]
    fn withdrawn_recommendations_are_left_out() {
        let who = key(7).verifying_key().to_bytes();
        let service = Service::Trust(who).name();
        let trust = |what: Vec<TrustWhat>| {
            encode(&Trust {
                petname: "Bob".into(),
                what,
            })
        };
        let kept = SignedRecord::sign(
            &key(1),
            &service,
            1,
            trust(vec![TrustWhat::AcceptAlertsFrom, TrustWhat::SendAlertsTo]),
        )
        .unwrap();
        let withdrawn = SignedRecord::sign(&key(2), &service, 1, trust(Vec::new())).unwrap();
        let all = recommendations([&kept, &withdrawn]);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].who, who);
        assert_eq!(all[0].petname, "Bob");
    }
}
