//! The records this agent holds, in memory: what the owner task offers every incoming record
//! to. Pure (no storage, no network): it decodes, verifies, judges by the rules of
//! [`rover_storage::grid::order`], keeps the table bounded and counts every drop by reason.
//!
//! A withdrawal (`service remove`: a named service without an address; `trust remove`: a
//! trust record with nothing left) must stay for a while, or a peer that missed it would bring
//! the old statement back; but it must not take one of the signer's
//! [`MAX_RECORDS_PER_SIGNER`] places forever, or a node that removed what it had set could
//! never state anything new. So withdrawals are counted apart: at most
//! [`MAX_WITHDRAWALS_PER_SIGNER`] per signer, and past that the oldest (lowest seqnum) is
//! forgotten, the same one on every node. The cost: a peer that slept through that many
//! later withdrawals of one signer can bring an old statement back (remove it again).

use std::collections::BTreeMap;

use rover_storage::grid::order::{fits, judge, Verdict, MAX_RECORDS_PER_SIGNER};
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

/// The most withdrawals one signer may have in the table; see the module docs.
pub const MAX_WITHDRAWALS_PER_SIGNER: usize = 256;

/// Whether `record` withdraws what its signer stated (see the module docs).
fn is_withdrawal(record: &SignedRecord) -> bool {
    match Content::of(record) {
        Ok(Content::Named(_, named)) => named.addr.is_none(),
        Ok(Content::Trust(_, trust)) => trust.what.is_empty(),
        _ => false,
    }
}

/// The in-memory table. See the module docs.
#[derive(Debug, Default)]
pub struct GridTable {
    records: BTreeMap<([u8; 32], String), SignedRecord>,
    /// Statements (not withdrawals) held per signer.
    per_signer: BTreeMap<[u8; 32], usize>,
    /// Withdrawals held per signer, by (seqnum, service).
    withdrawals: BTreeMap<[u8; 32], std::collections::BTreeSet<(u64, String)>>,
    /// Slots forgotten since [`Self::take_forgotten`] was last called (to remove from storage).
    forgotten: Vec<([u8; 32], String)>,
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
            Ok(verdict @ (Verdict::New | Verdict::Replaces)) => {
                let was_statement = verdict == Verdict::Replaces
                    && self
                        .get(&record.signer, &record.service)
                        .is_some_and(|held| !is_withdrawal(held));
                if let Some(set) = self.withdrawals.get_mut(&record.signer) {
                    set.retain(|(_, service)| *service != record.service);
                }
                if was_statement {
                    self.count_statement(&record.signer, false);
                }
                if is_withdrawal(&record) {
                    self.add_withdrawal(&record);
                } else {
                    self.count_statement(&record.signer, true);
                }
                self.keep(record)
            }
            Ok(_) => {
                self.duplicates = self.duplicates.saturating_add(1);
                Offered::Duplicate
            }
            Err((reason, why)) => self.drop_for(reason, why),
        }
    }

    fn count_statement(&mut self, signer: &[u8; 32], added: bool) {
        let count = self.per_signer.entry(*signer).or_default();
        *count = if added {
            count.saturating_add(1)
        } else {
            count.saturating_sub(1)
        };
    }

    /// Notes a withdrawal; forgets the signer's oldest when it has too many.
    fn add_withdrawal(&mut self, record: &SignedRecord) {
        let set = self.withdrawals.entry(record.signer).or_default();
        set.insert((record.seqnum, record.service.clone()));
        while set.len() > MAX_WITHDRAWALS_PER_SIGNER {
            let Some((_, service)) = set.pop_first() else {
                break;
            };
            self.records.remove(&(record.signer, service.clone()));
            self.forgotten.push((record.signer, service));
        }
    }

    /// The slots forgotten (old withdrawals) since the last call: the caller removes them
    /// from storage.
    pub fn take_forgotten(&mut self) -> Vec<([u8; 32], String)> {
        std::mem::take(&mut self.forgotten)
    }

    /// What [`Self::offer`] would do with `record`, without doing it or counting: `Ok` with
    /// [`Verdict::New`], [`Verdict::Replaces`] or [`Verdict::Duplicate`], or why it would be
    /// dropped.
    pub fn check(&self, record: &SignedRecord) -> Result<Verdict, (DropReason, String)> {
        record
            .verify()
            .map_err(|e| (DropReason::from(&e), e.to_string()))?;
        Content::of(record).map_err(|why| (DropReason::BadPayload, why))?;
        let held = self.get(&record.signer, &record.service);
        let verdict = judge(held, record);
        // A new statement needs a place; a withdrawal, or a statement replacing one, does not.
        let needs_place = match verdict {
            Verdict::New => !is_withdrawal(record),
            Verdict::Replaces => held.is_some_and(is_withdrawal) && !is_withdrawal(record),
            _ => false,
        };
        let held_by_signer = self.per_signer.get(&record.signer).copied().unwrap_or(0);
        if needs_place && !fits(held_by_signer, 0) {
            return Err((
                DropReason::OverLimit,
                format!(
                    "{held_by_signer} statements of this signer held (at most \
                     {MAX_RECORDS_PER_SIGNER}; removed ones do not count)"
                ),
            ));
        }
        if verdict == Verdict::New && !fits(0, self.records.len()) {
            return Err((
                DropReason::OverLimit,
                format!("{} records held", self.records.len()),
            ));
        }
        match verdict {
            Verdict::New => Ok(Verdict::New),
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
    fn removed_statements_free_their_place_and_the_oldest_withdrawals_are_forgotten() {
        let mut table = GridTable::default();
        let key = SigningKey::from_bytes(&[6; 32]);
        let statement = |name: &str, seqnum: u64, addr: Option<&str>| {
            let payload = encode(&NamedService {
                addr: addr.map(str::to_owned),
            });
            SignedRecord::sign(&key, &format!("service/{name}"), seqnum, payload).unwrap()
        };
        let limit = MAX_RECORDS_PER_SIGNER;
        for i in 0..limit {
            let kept = table.offer(statement(&format!("s{i}"), 1, Some("x:1")));
            assert!(matches!(kept, Offered::Kept(_)));
        }
        assert!(matches!(
            table.offer(statement("one-more", 1, Some("x:1"))),
            Offered::Dropped(DropReason::OverLimit, _)
        ));
        // Removing one frees a place for a new statement.
        assert!(matches!(
            table.offer(statement("s0", 2, None)),
            Offered::Kept(_)
        ));
        assert!(matches!(
            table.offer(statement("one-more", 1, Some("x:1"))),
            Offered::Kept(_)
        ));
        // Setting a removed one again needs a place too: none is left.
        assert!(matches!(
            table.offer(statement("s0", 3, Some("x:1"))),
            Offered::Dropped(DropReason::OverLimit, _)
        ));
        // Withdrawals are bounded apart: past the bound the oldest is forgotten.
        for i in 0..MAX_WITHDRAWALS_PER_SIGNER {
            let seqnum = 10 + u64::try_from(i).unwrap();
            table.offer(statement(&format!("gone{i}"), seqnum, None));
        }
        assert_eq!(
            table.take_forgotten(),
            vec![(key.verifying_key().to_bytes(), "service/s0".to_owned())]
        );
        assert!(table
            .get(&key.verifying_key().to_bytes(), "service/s0")
            .is_none());
        assert!(table.take_forgotten().is_empty());
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
