//! The three services as users see them: building our statements (`service set|remove`,
//! `trust add|remove`, our addresses) and reading what the table holds (`records`, `service
//! get|list`, `trust list`). Text from records is shown with control characters escaped, and
//! text we state is stripped of them first (see [`crate::control_chars`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rover_storage::grid::payload::{
    self, is_service_name, key_text, named_services, node_addresses, recommendations, Addresses,
    Content, NamedService, Recommendation, Service, Trust, TrustWhat, MAX_PETNAME,
    MAX_SERVICE_ADDR, MAX_SERVICE_NAME,
};
use rover_storage::grid::SignedRecord;
use serde::{Deserialize, Serialize};

use super::{GridError, GridHandle};
use crate::control_chars::{escape, strip};

/// Why a statement was not made.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is wrong; nothing changed.
    #[error("{0}")]
    BadInput(String),
    /// There is nothing to remove; nothing changed.
    #[error("{0}")]
    NotFound(String),
    /// The records task refused or failed; nothing changed.
    #[error(transparent)]
    Grid(#[from] GridError),
}

/// One record as `records` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordView {
    /// The service.
    pub service: String,
    /// The signer's public key (unpadded URL-safe base64).
    pub signer: String,
    /// Its short fingerprint.
    pub fingerprint: String,
    /// The signer's node name, from its address record, if known.
    pub node: Option<String>,
    /// The seqnum.
    pub seqnum: u64,
    /// What the record says, in words.
    pub content: String,
    /// Encoded size in bytes.
    pub bytes: usize,
    /// The encoded record (unpadded URL-safe base64), to check or keep elsewhere.
    pub encoded: String,
}

/// One named service in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// Its name.
    pub name: String,
    /// Where it is.
    pub addr: String,
    /// Which node stated it (its fingerprint, and name if known).
    pub fingerprint: String,
    /// The node name of the signer, if known.
    pub node: Option<String>,
    /// The winning record's seqnum.
    pub seqnum: u64,
}

/// One trust recommendation in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustView {
    /// The team or node key it is about (unpadded URL-safe base64).
    pub who: String,
    /// The node name of `who`, if it is a node key with an address record.
    pub who_node: Option<String>,
    /// The recommender's petname for it.
    pub petname: String,
    /// What to do with it.
    pub what: Vec<TrustWhat>,
    /// The recommending node's fingerprint.
    pub signer: String,
    /// Its node name, if known.
    pub signer_node: Option<String>,
    /// The record's seqnum.
    pub seqnum: u64,
}

/// Signer key -> node name, from the address records.
pub fn node_names(records: &[SignedRecord]) -> BTreeMap<[u8; 32], String> {
    node_addresses(records)
        .into_iter()
        .map(|a| (a.signer, a.addresses.node))
        .collect()
}

/// Every record, as `records` lists them; only `service` (exact, or a prefix ending in `/`)
/// if given.
pub fn record_views(records: &[SignedRecord], service: Option<&str>) -> Vec<RecordView> {
    let names = node_names(records);
    records
        .iter()
        .filter(|r| service.is_none_or(|wanted| service_matches(&r.service, wanted)))
        .map(|r| RecordView {
            service: r.service.clone(),
            signer: key_text(&r.signer),
            fingerprint: r.signer_fingerprint(),
            node: names.get(&r.signer).map(|n| escape(n).into_owned()),
            seqnum: r.seqnum,
            content: describe(r),
            bytes: r.encode().len(),
            encoded: URL_SAFE_NO_PAD.encode(r.encode()),
        })
        .collect()
}

/// Whether `service` is what `records --service WANTED` asks for: the exact name, every
/// record of a kind (`addresses`, `service`, `trust`, or a prefix ending in `/`), or a named
/// service by its bare name.
fn service_matches(service: &str, wanted: &str) -> bool {
    let kind = wanted.trim_end_matches('/');
    service == wanted
        || service
            .strip_prefix(kind)
            .is_some_and(|rest| rest.starts_with('/'))
        || service.strip_prefix("service/") == Some(wanted)
}

/// What a record says, in words, with control characters escaped.
fn describe(record: &SignedRecord) -> String {
    match Content::of(record) {
        Ok(Content::Addresses(a)) => format!(
            "{} ({}) at {} generation {}",
            escape(&a.node),
            escape(&a.team),
            a.addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            a.generation
        ),
        Ok(Content::Named(_, NamedService { addr: Some(addr) })) => escape(&addr).into_owned(),
        Ok(Content::Named(_, NamedService { addr: None })) => "removed".to_owned(),
        Ok(Content::Trust(_, t)) if t.what.is_empty() => {
            format!("{}: withdrawn", escape(&t.petname))
        }
        Ok(Content::Trust(_, t)) => format!(
            "{}: {}",
            escape(&t.petname),
            t.what
                .iter()
                .map(|w| w.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(why) => format!("unreadable: {why}"),
    }
}

/// The named services in force, by name.
pub fn service_views(records: &[SignedRecord]) -> Vec<ServiceView> {
    let names = node_names(records);
    named_services(records)
        .into_iter()
        .map(|(name, (record, addr))| ServiceView {
            name,
            addr: escape(&addr).into_owned(),
            fingerprint: record.signer_fingerprint(),
            node: names.get(&record.signer).map(|n| escape(n).into_owned()),
            seqnum: record.seqnum,
        })
        .collect()
}

/// The trust recommendations in force.
pub fn trust_views(records: &[SignedRecord]) -> Vec<TrustView> {
    let names = node_names(records);
    recommendations(records)
        .into_iter()
        .map(|r: Recommendation| TrustView {
            who: key_text(&r.who),
            who_node: names.get(&r.who).map(|n| escape(n).into_owned()),
            petname: escape(&r.petname).into_owned(),
            what: r.what,
            signer: rover_storage::grid::signed::fingerprint(&r.signer),
            signer_node: names.get(&r.signer).map(|n| escape(n).into_owned()),
            seqnum: r.seqnum,
        })
        .collect()
}

/// Whether some recommendation in force says `what` about the team or node key `who`: the
/// question the teams' border links ask.
pub fn is_trusted(records: &[SignedRecord], who: &[u8; 32], what: TrustWhat) -> bool {
    recommendations(records)
        .iter()
        .any(|r| r.who == *who && r.what.contains(&what))
}

/// Every recommendation in force that says `what` (for the teams' border links: which team
/// keys to take alerts from, or send them to).
pub async fn trusted_for(
    grid: &GridHandle,
    what: TrustWhat,
) -> Result<Vec<Recommendation>, GridError> {
    let records = grid.list().await?;
    Ok(recommendations(&records)
        .into_iter()
        .filter(|r| r.what.contains(&what))
        .collect())
}

fn checked_service_name(name: &str) -> Result<(), ServiceError> {
    if is_service_name(name) {
        Ok(())
    } else {
        Err(ServiceError::BadInput(format!(
            "service name {:?}: use 1 to {MAX_SERVICE_NAME} letters, digits, '-', '_' or '.'",
            escape(name)
        )))
    }
}

/// Checks a service address: `host:port` (an IPv6 host in brackets) with a port from 1 to
/// 65535, or a URL `scheme://host[:port][/path]`; no spaces.
pub fn check_service_addr(addr: &str) -> Result<(), String> {
    if addr.chars().any(char::is_whitespace) {
        return Err("no spaces".into());
    }
    let (authority, port_needed) = match addr.split_once("://") {
        Some((scheme, rest)) => {
            let scheme_ok = scheme
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
            if !scheme_ok {
                return Err(format!("bad URL scheme {scheme:?}"));
            }
            (
                rest.split(['/', '?', '#']).next().unwrap_or_default(),
                false,
            )
        }
        None => (addr, true),
    };
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an IPv6 host needs its ']'")?;
        host.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{host:?} is not an IPv6 address"))?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or("':' expected after ']'")?),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    match port {
        Some(port) => match port.parse::<u16>() {
            Ok(p) if p > 0 => Ok(()),
            _ => Err(format!("port {port:?}: 1 to 65535")),
        },
        None if port_needed => Err("no port".into()),
        None => Ok(()),
    }
}

/// `service set NAME ADDR`.
pub async fn set_service(
    grid: &GridHandle,
    name: &str,
    addr: &str,
) -> Result<SignedRecord, ServiceError> {
    checked_service_name(name)?;
    let addr = strip(addr);
    if addr.is_empty() || addr.len() > MAX_SERVICE_ADDR {
        return Err(ServiceError::BadInput(format!(
            "service address: 1 to {MAX_SERVICE_ADDR} characters (host:port or a URL)"
        )));
    }
    check_service_addr(&addr).map_err(|why| {
        ServiceError::BadInput(format!(
            "service address {:?}: {why} (host:port or a URL)",
            escape(&addr)
        ))
    })?;
    let payload = payload::encode(&NamedService { addr: Some(addr) });
    Ok(grid
        .publish(Service::Named(name.to_owned()), payload)
        .await?)
}

/// `service remove NAME`: a statement without an address, above the one in force.
pub async fn remove_service(grid: &GridHandle, name: &str) -> Result<SignedRecord, ServiceError> {
    checked_service_name(name)?;
    let records = grid.list().await?;
    if !named_services(&records).contains_key(name) {
        return Err(ServiceError::NotFound(format!(
            "no service {name:?} is set"
        )));
    }
    let payload = payload::encode(&NamedService { addr: None });
    Ok(grid
        .publish(Service::Named(name.to_owned()), payload)
        .await?)
}

/// Parses a team or node key given on the command line.
pub fn parse_who(who: &str) -> Result<[u8; 32], ServiceError> {
    payload::parse_key(who).ok_or_else(|| {
        ServiceError::BadInput(format!(
            "{:?} is not a public key (32 bytes as base64 or 64 hex digits, e.g. a node key from \
             `records --service addresses`)",
            escape(who)
        ))
    })
}

/// Our current recommendation about `who`, if any.
fn our_trust(records: &[SignedRecord], signer: &[u8; 32], who: &[u8; 32]) -> Option<Trust> {
    let service = Service::Trust(*who).name();
    records
        .iter()
        .find(|r| r.signer == *signer && r.service == service)
        .and_then(|r| match Content::of(r) {
            Ok(Content::Trust(_, t)) => Some(t),
            _ => None,
        })
}

/// `trust add WHO --petname P --what W...`: adds `what` to our recommendation about `who`
/// (the petname replaces the old one; it may be left out once one is set).
pub async fn add_trust(
    grid: &GridHandle,
    who: [u8; 32],
    petname: Option<&str>,
    what: &[TrustWhat],
) -> Result<SignedRecord, ServiceError> {
    if what.is_empty() {
        return Err(ServiceError::BadInput(
            "say what to trust it for: accept-alerts-from, send-alerts-to or both".into(),
        ));
    }
    let records = grid.list().await?;
    let old = our_trust(&records, &grid.signer(), &who);
    let petname = match petname.map(strip) {
        Some(p) if !p.is_empty() => p,
        _ => match &old {
            Some(t) if !t.petname.is_empty() => t.petname.clone(),
            _ => {
                return Err(ServiceError::BadInput(
                    "give it a petname (--petname NAME)".into(),
                ))
            }
        },
    };
    if petname.len() > MAX_PETNAME {
        return Err(ServiceError::BadInput(format!(
            "petname: at most {MAX_PETNAME} bytes"
        )));
    }
    let mut all: Vec<TrustWhat> = old.map(|t| t.what).unwrap_or_default();
    all.extend_from_slice(what);
    all.sort();
    all.dedup();
    let payload = payload::encode(&Trust { petname, what: all });
    Ok(grid.publish(Service::Trust(who), payload).await?)
}

/// `trust remove WHO [--what W]`: withdraws `what` (everything if empty) from our
/// recommendation about `who`.
pub async fn remove_trust(
    grid: &GridHandle,
    who: [u8; 32],
    what: &[TrustWhat],
) -> Result<SignedRecord, ServiceError> {
    let records = grid.list().await?;
    let old = our_trust(&records, &grid.signer(), &who)
        .filter(|t| !t.what.is_empty())
        .ok_or_else(|| {
            ServiceError::NotFound(format!(
                "this node recommends nothing about {}",
                key_text(&who)
            ))
        })?;
    let left: Vec<TrustWhat> = if what.is_empty() {
        Vec::new()
    } else {
        old.what.into_iter().filter(|w| !what.contains(w)).collect()
    };
    let payload = payload::encode(&Trust {
        petname: old.petname,
        what: left,
    });
    Ok(grid.publish(Service::Trust(who), payload).await?)
}

/// States our addresses (at start, and when the address or generation changes).
pub async fn publish_addresses(
    grid: &GridHandle,
    node: &str,
    team: &str,
    addrs: Vec<SocketAddr>,
    generation: u64,
) -> Result<SignedRecord, ServiceError> {
    let payload = payload::encode(&Addresses {
        node: node.to_owned(),
        team: team.to_owned(),
        addrs,
        generation,
    });
    Ok(grid.publish(Service::Addresses, payload).await?)
}

#[cfg(test)]
mod tests {
    use super::check_service_addr;

    #[test]
    fn service_addresses_are_host_port_or_urls_with_real_ports() {
        for good in [
            "127.0.0.1:9999",
            "registry.example.org:443",
            "[::1]:7900",
            "https://ntfy.example.org/topic",
            "http://user@10.0.0.1:8080/x?y=1",
            "udp://[fe80::1]:53",
        ] {
            assert_eq!(check_service_addr(good), Ok(()), "{good}");
        }
        for bad in [
            "127.0.0.1:99999",
            "127.0.0.1:0",
            "notanaddr",
            ":80",
            "host:port",
            "a b:1",
            "[::1",
            "[zz]:1",
            "1http://x",
            "http://:80/",
        ] {
            assert!(check_service_addr(bad).is_err(), "{bad} accepted");
        }
    }
}
