//! Custom broadcasts: versioned items that ride along foca's messages.
//!
//! An item is `(topic, key, version, payload)`. A node keeps and re-transmits an item only if it
//! is newer than the version it already holds for `(topic, key)`; a newer version invalidates
//! older ones still queued. Later features put alerts, status samples and signed records here;
//! membership itself uses [`Topic::Leave`] to tell a graceful leave from a failure.

use std::collections::HashMap;
use std::sync::mpsc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What an item is about. Numbering is part of the wire format: only append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Topic {
    /// A member announces it leaves on purpose. Key: node name; version: its generation.
    Leave,
    /// An alert (filled in by the alerts feature).
    Alert,
    /// A status sample (filled in by the alerts feature).
    Status,
    /// A signed grid-control record.
    Record,
    /// A cluster-wide keyring operation.
    Keyring,
    /// A host's LLDP/CDP topology (which switch port each interface hears, its subnets).
    /// Key: node name; version: grows with every change.
    Topology,
    /// A member's own failed probes (Lifeguard's confirmations, see [`crate::suspicion`]).
    /// Key: the reporter's name; version: its clock, strictly increasing.
    Suspicion,
    /// A border agent's transit links (a team link-state advertisement). Key: its hop
    /// `team/host`; version: its sequence number.
    TeamLinks,
}

/// One broadcast item. Field order is the wire format (postcard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastItem {
    /// What the item is about.
    pub topic: Topic,
    /// Which thing of that topic (for example a node name).
    pub key: String,
    /// Higher replaces lower for the same `(topic, key)`.
    pub version: u64,
    /// Topic-specific bytes.
    pub payload: Vec<u8>,
}

impl BroadcastItem {
    /// Encodes the item as it travels.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }
}

/// Bytes of a foca message header beside its two identities: the sender's incarnation (a
/// varint of at most 3 bytes) and the message kind (1).
const HEADER_FIXED: usize = 4;
/// Bytes around one item in a message: foca's item count (2) and the item's length (2).
const ITEM_FRAMING: usize = 4;

/// The largest item that fits in one datagram of `max_packet_size` bytes between two members
/// whose encoded identities are at most `identity_len` bytes: the header of a gossip message
/// carries both, and nothing else need share the datagram.
pub fn item_capacity(max_packet_size: usize, identity_len: usize) -> usize {
    max_packet_size.saturating_sub(2 * identity_len + HEADER_FIXED + ITEM_FRAMING)
}

/// The longest an encoded identity gets when its name and team are at most 32 bytes each
/// and it has no tags: two length bytes, 64 bytes of text, an IPv6 address (1 + 16 + 3), a
/// generation (10) and the empty tag map (1). Tags take up to
/// [`crate::tags::MAX_TAGS_BYTES`] more in each of the two identities of a header.
pub const SHORT_NAMES_IDENTITY_LEN: usize = 2 + 64 + 20 + 10 + 1;

/// The item size always carried by one broadcast in a cluster whose node names and teams are
/// at most 32 bytes (foca's 1 400-byte packets) and untagged members: 1 198 bytes. The alert summary limit is
/// derived from it.
pub const GUARANTEED_ITEM_BYTES: usize =
    1400 - (2 * SHORT_NAMES_IDENTITY_LEN + HEADER_FIXED + ITEM_FRAMING);

/// The identity foca uses to decide which queued items a newer one replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemKey {
    topic: Topic,
    key: String,
    version: u64,
}

impl foca::Invalidates for ItemKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.topic == other.topic && self.key == other.key && self.version >= other.version
    }
}

/// A broadcast that could not be decoded. Foca drops the rest of that packet's items.
#[derive(Debug, Error)]
#[error("undecodable broadcast item: {0}")]
pub struct UndecodableItem(String);

/// foca's broadcast handler: remembers the newest version per `(topic, key)` and hands every
/// news item to the core through a channel (foca gives no access to its handler).
pub struct BroadcastInbox {
    newest: HashMap<(Topic, String), u64>,
    news: mpsc::Sender<BroadcastItem>,
}

impl BroadcastInbox {
    /// A handler and the receiving end the core drains after each foca call.
    pub fn new() -> (Self, mpsc::Receiver<BroadcastItem>) {
        let (news, rx) = mpsc::channel();
        (
            Self {
                newest: HashMap::new(),
                news,
            },
            rx,
        )
    }
}

impl<T> foca::BroadcastHandler<T> for BroadcastInbox {
    type Key = ItemKey;
    type Error = UndecodableItem;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&T>,
    ) -> Result<Option<Self::Key>, Self::Error> {
        let item: BroadcastItem =
            postcard::from_bytes(data).map_err(|e| UndecodableItem(e.to_string()))?;
        let slot = (item.topic, item.key.clone());
        if self.newest.get(&slot).is_some_and(|v| *v >= item.version) {
            return Ok(None);
        }
        self.newest.insert(slot, item.version);
        let key = ItemKey {
            topic: item.topic,
            key: item.key.clone(),
            version: item.version,
        };
        // The receiver lives in the same core; if it is gone the core is being dropped.
        let _ = self.news.send(item);
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::{BroadcastHandler, Invalidates};

    fn item(version: u64) -> BroadcastItem {
        BroadcastItem {
            topic: Topic::Alert,
            key: "home/n1/disk".into(),
            version,
            payload: vec![1, 2, 3],
        }
    }

    #[test]
    fn only_newer_versions_count_as_news() {
        let (mut inbox, rx) = BroadcastInbox::new();
        let handler: &mut dyn BroadcastHandler<(), Key = ItemKey, Error = UndecodableItem> =
            &mut inbox;
        assert!(handler
            .receive_item(&item(2).encode(), None)
            .unwrap()
            .is_some());
        assert!(handler
            .receive_item(&item(2).encode(), None)
            .unwrap()
            .is_none());
        assert!(handler
            .receive_item(&item(1).encode(), None)
            .unwrap()
            .is_none());
        assert!(handler
            .receive_item(&item(3).encode(), None)
            .unwrap()
            .is_some());
        let got: Vec<u64> = rx.try_iter().map(|i| i.version).collect();
        assert_eq!(got, vec![2, 3]);
    }

    #[test]
    fn the_guaranteed_item_fits_beside_the_longest_header_of_short_names() {
        use foca::{Codec, Header, Message, PostcardCodec};
        let long = crate::identity::NodeIdentity {
            name: "n".repeat(32),
            team: "t".repeat(32),
            addr: "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
                .parse()
                .unwrap(),
            generation: u64::MAX,
            tags: Default::default(),
        };
        assert_eq!(
            postcard::to_stdvec(&long).unwrap().len(),
            SHORT_NAMES_IDENTITY_LEN
        );
        let header = Header {
            src: long.clone(),
            src_incarnation: u16::MAX,
            dst: long,
            message: Message::Gossip,
        };
        let mut buf = Vec::new();
        PostcardCodec.encode_header(&header, &mut buf).unwrap();
        assert!(buf.len() + ITEM_FRAMING + GUARANTEED_ITEM_BYTES <= 1400);
        assert_eq!(
            GUARANTEED_ITEM_BYTES,
            item_capacity(1400, SHORT_NAMES_IDENTITY_LEN)
        );
        assert_eq!(GUARANTEED_ITEM_BYTES, 1198);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let (mut inbox, _rx) = BroadcastInbox::new();
        let result = BroadcastHandler::<()>::receive_item(&mut inbox, &[0xff; 3], None);
        assert!(result.is_err());
    }

    #[test]
    fn a_newer_version_invalidates_an_older_one_of_the_same_key_only() {
        let key = |k: &str, v| ItemKey {
            topic: Topic::Alert,
            key: k.into(),
            version: v,
        };
        assert!(key("a", 2).invalidates(&key("a", 1)));
        assert!(!key("a", 1).invalidates(&key("a", 2)));
        assert!(!key("b", 2).invalidates(&key("a", 1)));
    }
}
