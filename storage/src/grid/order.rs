//! Which record a node keeps, and why one is dropped: pure rules with no I/O.
//!
//! - A record replaces the one held for its `(signer, service)` only with a strictly higher
//!   seqnum ([`judge`]). The same seqnum with the same content is a duplicate (gossip brings
//!   most records more than once); with other content it is a conflict, and a lower seqnum is
//!   stale: both are dropped, so a replay of an old record changes nothing.
//! - Among the records of one service from different signers, the highest seqnum wins, then
//!   the highest signer key ([`winner`]): every node that holds the same records picks the
//!   same one.
//! - The table is bounded: at most [`MAX_RECORDS_PER_SIGNER`] records per signer and
//!   [`MAX_RECORDS`] in all; a record that would add a slot past either is dropped.

use serde::{Deserialize, Serialize};

use super::signed::{RecordError, SignedRecord};

/// The most records one signer may hold in the table.
pub const MAX_RECORDS_PER_SIGNER: usize = 256;

/// The most records the table holds.
pub const MAX_RECORDS: usize = 8192;

/// What to do with an incoming record, given the one held for its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is held for its slot: keep it.
    New,
    /// It has a higher seqnum than the one held: it replaces it.
    Replaces,
    /// The same record is held already: nothing to do.
    Duplicate,
    /// A lower seqnum than the one held: drop it.
    Stale,
    /// The seqnum held, with other content: drop it.
    Conflicting,
}

/// Judges `incoming` against `held` (the record of the same signer and service, if any).
pub fn judge(held: Option<&SignedRecord>, incoming: &SignedRecord) -> Verdict {
    let Some(held) = held else {
        return Verdict::New;
    };
    debug_assert!(held.signer == incoming.signer && held.service == incoming.service);
    match incoming.seqnum.cmp(&held.seqnum) {
        std::cmp::Ordering::Greater => Verdict::Replaces,
        std::cmp::Ordering::Less => Verdict::Stale,
        std::cmp::Ordering::Equal if held == incoming => Verdict::Duplicate,
        std::cmp::Ordering::Equal => Verdict::Conflicting,
    }
}

/// Whether a record that is [`Verdict::New`] fits the table: `signer_holds` records of its
/// signer and `total` records are held now.
pub fn fits(signer_holds: usize, total: usize) -> bool {
    signer_holds < MAX_RECORDS_PER_SIGNER && total < MAX_RECORDS
}

/// The record that counts among statements of one service by different signers: the highest
/// seqnum, then the highest signer key.
pub fn winner<'a>(records: impl IntoIterator<Item = &'a SignedRecord>) -> Option<&'a SignedRecord> {
    records
        .into_iter()
        .max_by(|a, b| a.seqnum.cmp(&b.seqnum).then(a.signer.cmp(&b.signer)))
}

/// Why a record was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Not a record (truncated, garbage).
    Malformed,
    /// A record format this build does not read.
    UnknownVersion,
    /// Over the size limit.
    TooBig,
    /// A service name this build does not know.
    BadService,
    /// The signature does not verify.
    BadSignature,
    /// The payload does not decode as its service's, or is out of bounds.
    BadPayload,
    /// A lower seqnum than the one held (a replay, or an old copy).
    Stale,
    /// The held seqnum with other content.
    Conflicting,
    /// The table (or the signer's share of it) is full.
    OverLimit,
}

impl DropReason {
    /// Every reason, in order.
    pub const ALL: [DropReason; 9] = [
        DropReason::Malformed,
        DropReason::UnknownVersion,
        DropReason::TooBig,
        DropReason::BadService,
        DropReason::BadSignature,
        DropReason::BadPayload,
        DropReason::Stale,
        DropReason::Conflicting,
        DropReason::OverLimit,
    ];

    /// The reason's name in `info` and the `/metrics` label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnknownVersion => "unknown_version",
            DropReason::TooBig => "too_big",
            DropReason::BadService => "bad_service",
            DropReason::BadSignature => "bad_signature",
            DropReason::BadPayload => "bad_payload",
            DropReason::Stale => "stale",
            DropReason::Conflicting => "conflicting",
            DropReason::OverLimit => "over_limit",
        }
    }
}

impl From<&RecordError> for DropReason {
    fn from(error: &RecordError) -> Self {
        match error {
            RecordError::Malformed(_) => DropReason::Malformed,
            RecordError::UnknownVersion(_) => DropReason::UnknownVersion,
            RecordError::TooBig { .. } => DropReason::TooBig,
            RecordError::BadService(_) => DropReason::BadService,
            RecordError::BadSignature => DropReason::BadSignature,
        }
    }
}

/// Dropped records by reason. Field names are the reasons' names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCounts {
    /// See [`DropReason::Malformed`].
    pub malformed: u64,
    /// See [`DropReason::UnknownVersion`].
    pub unknown_version: u64,
    /// See [`DropReason::TooBig`].
    pub too_big: u64,
    /// See [`DropReason::BadService`].
    pub bad_service: u64,
    /// See [`DropReason::BadSignature`].
    pub bad_signature: u64,
    /// See [`DropReason::BadPayload`].
    pub bad_payload: u64,
    /// See [`DropReason::Stale`].
    pub stale: u64,
    /// See [`DropReason::Conflicting`].
    pub conflicting: u64,
    /// See [`DropReason::OverLimit`].
    pub over_limit: u64,
}

impl DropCounts {
    fn slot(&mut self, reason: DropReason) -> &mut u64 {
        match reason {
            DropReason::Malformed => &mut self.malformed,
            DropReason::UnknownVersion => &mut self.unknown_version,
            DropReason::TooBig => &mut self.too_big,
            DropReason::BadService => &mut self.bad_service,
            DropReason::BadSignature => &mut self.bad_signature,
            DropReason::BadPayload => &mut self.bad_payload,
            DropReason::Stale => &mut self.stale,
            DropReason::Conflicting => &mut self.conflicting,
            DropReason::OverLimit => &mut self.over_limit,
        }
    }

    /// Counts one drop.
    pub fn count(&mut self, reason: DropReason) {
        let slot = self.slot(reason);
        *slot = slot.saturating_add(1);
    }

    /// The count of `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        let mut copy = *self;
        *copy.slot(reason)
    }

    /// Every drop, whatever the reason.
    pub fn total(&self) -> u64 {
        DropReason::ALL
            .iter()
            .fold(0u64, |sum, r| sum.saturating_add(self.get(*r)))
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;

    fn record(signer: u8, seqnum: u64, payload: &[u8]) -> SignedRecord {
        let key = SigningKey::from_bytes(&[signer; 32]);
        SignedRecord::sign(&key, "service/registry", seqnum, payload.to_vec()).unwrap()
    }

    #[test]
    fn only_a_strictly_higher_seqnum_replaces() {
        let held = record(1, 5, b"a");
        assert_eq!(judge(None, &held), Verdict::New);
        assert_eq!(judge(Some(&held), &record(1, 6, b"b")), Verdict::Replaces);
        assert_eq!(judge(Some(&held), &record(1, 4, b"b")), Verdict::Stale);
        assert_eq!(judge(Some(&held), &record(1, 5, b"a")), Verdict::Duplicate);
        assert_eq!(
            judge(Some(&held), &record(1, 5, b"b")),
            Verdict::Conflicting
        );
    }

    #[test]
    fn the_winner_is_the_highest_seqnum_then_the_highest_signer() {
        let (a, b, c) = (record(1, 9, b"a"), record(2, 9, b"b"), record(3, 8, b"c"));
        let high_signer = if a.signer > b.signer { &a } else { &b };
        assert_eq!(winner([&a, &b, &c]), Some(high_signer));
        assert_eq!(winner([&c]), Some(&c));
        assert_eq!(winner(Vec::<&SignedRecord>::new()), None);
    }

    #[test]
    fn the_table_bounds_hold_per_signer_and_in_all() {
        assert!(fits(0, 0));
        assert!(!fits(MAX_RECORDS_PER_SIGNER, 10));
        assert!(!fits(1, MAX_RECORDS));
    }

    #[test]
    fn drops_are_counted_per_reason() {
        let mut counts = DropCounts::default();
        counts.count(DropReason::BadSignature);
        counts.count(DropReason::BadSignature);
        counts.count(DropReason::Stale);
        assert_eq!(counts.get(DropReason::BadSignature), 2);
        assert_eq!(counts.bad_signature, 2);
        assert_eq!(counts.total(), 3);
    }
}
