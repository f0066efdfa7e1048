//! The records this agent holds, in memory: what the owner task offers every incoming record
//! to. Pure (no storage, no network): it decodes, verifies, judges by the rules of
//! [`rover_storage::grid::order`], keeps the table bounded and counts every drop by reason.

use std::collections::BTreeMap;

use rover_storage::grid::order::{fits, judge, Verdict};
use rover_storage::grid::payload::Content;
use rover_storage::grid::{DropCounts, DropReason, SignedRecord};
use serde::{Deserialize, Serialize};

/// One entry of a records digest: which record of a slot a node holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    /// The signer.
    pub signer: [u8; 32],
    /// The service.
    pub service: String,
    /// The seqnum held.
    pub seqnum: u64,
}

/// What [`GridTable::offer`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// The record is news: it is in the table now (store it).
    Kept(SignedRecord),
    /// The table holds this very record already.
    Duplicate,
    /// Dropped (and counted) for this reason.
    Dropped(DropReason, String),
}

/// The in-memory table. See the module docs.
#[derive(Debug, Default)]
pub struct GridTable {
    records: BTreeMap<([u8; 32], String), SignedRecord>,
    per_signer: BTreeMap<[u8; 32], usize>,
    dropped: DropCounts,
    duplicates: u64,
    accepted: u64,
}

/// What the table counted, for `info` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridCounters {
    /// Records held.
    pub records: u64,
    /// Records taken as news (received or our own).
    pub accepted: u64,
    /// Copies of records already held (gossip brings most records more than once).
    pub duplicates: u64,
    /// Records dropped, by reason.
    pub dropped: DropCounts,
}

impl GridTable {
    /// Offers encoded bytes (from gossip or the anti-entropy sync).
    pub fn offer_bytes(&mut self, bytes: &[u8]) -> Offered {
        match SignedRecord::decode_verified(bytes) {
            Ok(record) => self.offer(record),
            Err(error) => self.drop_for(DropReason::from(&error), error.to_string()),
        }
    }

    /// Offers a decoded record: verified, its payload checked, judged against what is held.
    pub fn offer(&mut self, record: SignedRecord) -> Offered {
        match self.check(&record) {
            Ok(Verdict::New) => {
                *self.per_signer.entry(record.signer).or_default() += 1;
                self.keep(record)
            }
            Ok(Verdict::Replaces) => self.keep(record),
            Ok(_) => {
                self.duplicates = self.duplicates.saturating_add(1);
                Offered::Duplicate
            }
            Err((reason, why)) => self.drop_for(reason, why),
        }
    }

    /// What [`Self::offer`] would do with `record`, without doing it or counting: `Ok` with
    /// [`Verdict::New`], [`Verdict::Replaces`] or [`Verdict::Duplicate`], or why it would be
    /// dropped.
    pub fn check(&self, record: &SignedRecord) -> Result<Verdict, (DropReason, String)> {
        record
            .verify()
            .map_err(|e| (DropReason::from(&e), e.to_string()))?;
        Content::of(record).map_err(|why| (DropReason::BadPayload, why))?;
        match judge(self.get(&record.signer, &record.service), record) {
            Verdict::New => {
                let held_by_signer = self.per_signer.get(&record.signer).copied().unwrap_or(0);
                if fits(held_by_signer, self.records.len()) {
                    Ok(Verdict::New)
                } else {
                    Err((
                        DropReason::OverLimit,
                        format!("{} records held", self.records.len()),
                    ))
                }
            }
            Verdict::Stale => Err((DropReason::Stale, format!("seqnum {}", record.seqnum))),
            Verdict::Conflicting => Err((
                DropReason::Conflicting,
                format!("seqnum {} with other content", record.seqnum),
            )),
            verdict @ (Verdict::Replaces | Verdict::Duplicate) => Ok(verdict),
        }
    }

    fn keep(&mut self, record: SignedRecord) -> Offered {
        self.accepted = self.accepted.saturating_add(1);
        let slot = (record.signer, record.service.clone());
        self.records.insert(slot, record.clone());
        Offered::Kept(record)
    }

    fn drop_for(&mut self, reason: DropReason, why: String) -> Offered {
        self.dropped.count(reason);
        Offered::Dropped(reason, why)
    }

    /// The record held for `signer` and `service`.
    pub fn get(&self, signer: &[u8; 32], service: &str) -> Option<&SignedRecord> {
        self.records.get(&(*signer, service.to_owned()))
    }

    /// Every record, by signer then service.
    pub fn records(&self) -> impl Iterator<Item = &SignedRecord> {
        self.records.values()
    }

    /// The digest: every slot and the seqnum held.
    pub fn digest(&self) -> Vec<DigestEntry> {
        self.records
            .values()
            .map(|r| DigestEntry {
                signer: r.signer,
                service: r.service.clone(),
                seqnum: r.seqnum,
            })
            .collect()
    }

    /// The records held newer than (or missing from) a peer's digest, encoded.
    pub fn newer_than(&self, digest: &[DigestEntry]) -> Vec<Vec<u8>> {
        let theirs: BTreeMap<(&[u8; 32], &str), u64> = digest
            .iter()
            .map(|e| ((&e.signer, e.service.as_str()), e.seqnum))
            .collect();
        self.records
            .values()
            .filter(|r| {
                theirs
                    .get(&(&r.signer, r.service.as_str()))
                    .is_none_or(|seq| *seq < r.seqnum)
            })
            .map(SignedRecord::encode)
            .collect()
    }

    /// What the table counted.
    pub fn counters(&self) -> GridCounters {
        GridCounters {
            records: self.records.len() as u64,
            accepted: self.accepted,
            duplicates: self.duplicates,
            dropped: self.dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use rover_storage::grid::payload::{encode, NamedService};

    use super::*;

    fn named(signer: u8, seqnum: u64, addr: &str) -> SignedRecord {
        let key = SigningKey::from_bytes(&[signer; 32]);
        let payload = encode(&NamedService {
            addr: Some(addr.to_owned()),
        });
        SignedRecord::sign(&key, "service/registry", seqnum, payload).unwrap()
    }

    #[test]
    fn a_forged_record_is_dropped_and_counted_and_changes_nothing() {
        let mut table = GridTable::default();
        let good = named(1, 5, "127.0.0.1:9999");
        assert!(matches!(table.offer(good.clone()), Offered::Kept(_)));
        let mut forged = named(1, 9, "10.6.6.6:1");
        forged.signature = named(2, 9, "10.6.6.6:1").signature;
        assert!(matches!(
            table.offer_bytes(&forged.encode()),
            Offered::Dropped(DropReason::BadSignature, _)
        ));
        assert_eq!(table.get(&good.signer, &good.service), Some(&good));
        assert_eq!(table.counters().dropped.bad_signature, 1);
    }

    #[test]
    fn a_replayed_older_record_and_a_truncated_one_are_dropped_and_counted() {
        let mut table = GridTable::default();
        let old = named(1, 5, "a:1");
        let new = named(1, 6, "b:1");
        table.offer(old.clone());
        table.offer(new.clone());
        assert!(matches!(
            table.offer(old.clone()),
            Offered::Dropped(DropReason::Stale, _)
        ));
        let bytes = new.encode();
        assert!(matches!(
            table.offer_bytes(&bytes[..bytes.len() / 2]),
            Offered::Dropped(DropReason::Malformed, _)
        ));
        assert_eq!(table.offer(new.clone()), Offered::Duplicate);
        let counters = table.counters();
        assert_eq!((counters.dropped.stale, counters.dropped.malformed), (1, 1));
        assert_eq!(counters.records, 1);
        assert_eq!(table.get(&new.signer, &new.service), Some(&new));
    }

    #[test]
    fn the_digest_exchange_finds_what_the_other_side_lacks() {
        let mut ours = GridTable::default();
        let mut theirs = GridTable::default();
        ours.offer(named(1, 5, "a:1"));
        ours.offer(named(2, 5, "a:2"));
        theirs.offer(named(1, 4, "a:0"));
        theirs.offer(named(3, 1, "c:1"));
        let push = ours.newer_than(&theirs.digest());
        assert_eq!(push.len(), 2);
        for bytes in push {
            assert!(matches!(theirs.offer_bytes(&bytes), Offered::Kept(_)));
        }
        assert_eq!(theirs.newer_than(&ours.digest()).len(), 1);
    }

    #[test]
    fn a_signer_cannot_fill_the_table_past_its_share() {
        let mut table = GridTable::default();
        let key = SigningKey::from_bytes(&[5; 32]);
        let limit = rover_storage::grid::order::MAX_RECORDS_PER_SIGNER;
        let mut over = 0;
        for i in 0..limit + 3 {
            let payload = encode(&NamedService {
                addr: Some("x:1".into()),
            });
            let record = SignedRecord::sign(&key, &format!("service/s{i}"), 1, payload).unwrap();
            if let Offered::Dropped(DropReason::OverLimit, _) = table.offer(record) {
                over += 1;
            }
        }
        assert_eq!(over, 3);
        assert_eq!(table.counters().records, limit as u64);
    }
}
