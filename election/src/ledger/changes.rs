//! The ledger record by record, for a store that writes only what changed: [`RecordKey`]
//! names one incident or one notification record, [`Changes`] collects the keys an applied
//! command touched, and [`Record`] is one record as stored.
//!
//! Also the ledger's serialized form ([`LedgerImage`]), which is the snapshot format and the
//! format of the fallback ledger kept in the meta tree: the same bytes as before the ledger
//! was indexed by incident.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::records::{Incident, IncidentId, Notification, Phase};

/// One record of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKey {
    /// An incident.
    Incident(IncidentId),
    /// A notification record: the incident, the message and the channel.
    Notification(IncidentId, Phase, String),
}

/// The records a command touched (added, changed or removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    keys: BTreeSet<RecordKey>,
}

impl Changes {
    /// Notes that the record `key` was touched.
    pub(crate) fn touch(&mut self, key: RecordKey) {
        self.keys.insert(key);
    }

    /// Notes that the incident `id` was touched.
    pub(crate) fn incident(&mut self, id: &str) {
        self.touch(RecordKey::Incident(id.to_owned()));
    }

    /// Notes that the notification record `(id, phase, channel)` was touched.
    pub(crate) fn notification(&mut self, id: &str, phase: Phase, channel: &str) {
        self.touch(RecordKey::Notification(
            id.to_owned(),
            phase,
            channel.to_owned(),
        ));
    }

    /// Whether nothing was touched.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many records were touched.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The touched records, in key order.
    pub fn keys(&self) -> impl Iterator<Item = &RecordKey> {
        self.keys.iter()
    }
}

/// One record, borrowed from the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordRef<'a> {
    /// An incident.
    Incident(&'a Incident),
    /// A notification record.
    Notification(&'a Notification),
}

/// One record, owned (as loaded from a store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An incident.
    Incident(Incident),
    /// A notification record.
    Notification(Notification),
}

/// The ledger as serialized: every incident by id, every notification record by (incident,
/// message, channel). Field order and types are the on-disk format (postcard).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LedgerImage {
    pub(crate) incidents: BTreeMap<IncidentId, Incident>,
    pub(crate) notifications: BTreeMap<(IncidentId, Phase, String), Notification>,
}

/// Serializes like `LedgerImage::notifications` from the per-incident index, without copying.
pub(crate) struct FlatNotifications<'a>(
    pub(crate) &'a BTreeMap<IncidentId, BTreeMap<(Phase, String), Notification>>,
);

impl Serialize for FlatNotifications<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let count = self.0.values().map(BTreeMap::len).sum::<usize>();
        let entries = self.0.iter().flat_map(|(id, records)| {
            records
                .iter()
                .map(move |((phase, channel), record)| ((id, phase, channel), record))
        });
        serializer.collect_map(ExactLen { entries, count })
    }
}

/// An iterator that knows its length (postcard needs a map's length up front).
struct ExactLen<I> {
    entries: I,
    count: usize,
}

impl<I: Iterator> Iterator for ExactLen<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let next = self.entries.next();
        if next.is_some() {
            self.count = self.count.saturating_sub(1);
        }
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.count, Some(self.count))
    }
}
