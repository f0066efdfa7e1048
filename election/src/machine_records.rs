//! How the ledger state machine lies on the [`crate::disk::RaftDisk`]: one record per
//! incident and per notification, and one for where the log stood, so that an applied batch
//! writes only the records its commands touched.
//!
//! | key | value |
//! |---|---|
//! | `a` | [`AppliedState`]: the last applied log id and membership |
//! | `i` + incident id | the [`Incident`] |
//! | `n` + postcard `(incident id, phase, channel)` | the [`Notification`] |
//!
//! Values are postcard. A key with another first byte, or a value that does not decode, is
//! corruption and reported as such, never skipped.

use openraft::{BasicNode, LogId, StoredMembership};
use serde::{Deserialize, Serialize};

use crate::disk::{DiskError, MachineRecord, MachineWrite};
use crate::ledger::{Incident, Ledger, Notification, Record, RecordKey, RecordRef};

const APPLIED_KEY: &[u8] = b"a";
const INCIDENT_PREFIX: u8 = b'i';
const NOTIFICATION_PREFIX: u8 = b'n';

/// Where the state machine stands in the log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedState {
    /// The last log entry applied.
    pub last_applied: Option<LogId<u64>>,
    /// The last membership applied.
    pub membership: StoredMembership<u64, BasicNode>,
}

/// The disk key of a ledger record.
pub fn key_of(key: &RecordKey) -> Result<Vec<u8>, DiskError> {
    match key {
        RecordKey::Incident(id) => {
            let mut bytes = Vec::with_capacity(1 + id.len());
            bytes.push(INCIDENT_PREFIX);
            bytes.extend_from_slice(id.as_bytes());
            Ok(bytes)
        }
        RecordKey::Notification(id, phase, channel) => {
            let mut bytes = vec![NOTIFICATION_PREFIX];
            postcard::to_io(&(id, phase, channel), &mut bytes).map_err(encoding)?;
            Ok(bytes)
        }
    }
}

/// The disk value of a ledger record.
pub fn value_of(record: RecordRef<'_>) -> Result<Vec<u8>, DiskError> {
    match record {
        RecordRef::Incident(incident) => postcard::to_stdvec(incident),
        RecordRef::Notification(notification) => postcard::to_stdvec(notification),
    }
    .map_err(encoding)
}

/// The write that brings the disk in line with `ledger` for one touched record.
pub fn write_of(ledger: &Ledger, key: &RecordKey) -> Result<MachineWrite, DiskError> {
    let value = ledger.record(key).map(value_of).transpose()?;
    Ok((key_of(key)?, value))
}

/// The write of the applied state.
pub fn applied_write(applied: &AppliedState) -> Result<MachineWrite, DiskError> {
    let value = postcard::to_stdvec(applied).map_err(encoding)?;
    Ok((APPLIED_KEY.to_vec(), Some(value)))
}

/// Every record of a whole state machine (for a snapshot installed, or the old image moved).
pub fn all_records(
    ledger: &Ledger,
    applied: &AppliedState,
) -> Result<Vec<MachineRecord>, DiskError> {
    let mut records = Vec::with_capacity(1 + ledger.incident_count());
    let (key, value) = applied_write(applied)?;
    records.extend(value.map(|v| (key, v)));
    for (key, record) in ledger.records() {
        records.push((key_of(&key)?, value_of(record)?));
    }
    Ok(records)
}

/// The state machine the stored records hold (empty records: a new machine).
pub fn decode_all(records: &[MachineRecord]) -> Result<(AppliedState, Ledger), DiskError> {
    let mut applied = AppliedState::default();
    let mut ledger_records = Vec::with_capacity(records.len());
    for (key, value) in records {
        match key.first() {
            _ if key.as_slice() == APPLIED_KEY => applied = decode(key, value)?,
            Some(&INCIDENT_PREFIX) => {
                let incident: Incident = decode(key, value)?;
                ledger_records.push(Record::Incident(incident));
            }
            Some(&NOTIFICATION_PREFIX) => {
                let notification: Notification = decode(key, value)?;
                ledger_records.push(Record::Notification(notification));
            }
            _ => return Err(corrupt(key, "unknown kind of ledger record")),
        }
    }
    Ok((applied, Ledger::from_records(ledger_records)))
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, DiskError> {
    postcard::from_bytes(value).map_err(|e| corrupt(key, &e.to_string()))
}

fn corrupt(key: &[u8], reason: &str) -> DiskError {
    DiskError(format!(
        "ledger record {} is damaged: {reason}",
        String::from_utf8_lossy(key).escape_debug()
    ))
}

fn encoding(error: postcard::Error) -> DiskError {
    DiskError(format!("cannot encode a ledger record: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{IncidentKind, LeaderMode, LedgerCommand, Outcome, Phase};

    fn sample() -> Ledger {
        let mut ledger = Ledger::default();
        ledger.apply(&LedgerCommand::Open(Incident::new(
            "down/n3/7",
            IncidentKind::HostDown,
            "n3",
            100,
        )));
        ledger.apply(&LedgerCommand::Intend {
            record: Notification {
                incident: "down/n3/7".into(),
                phase: Phase::Opened,
                channel: "email".into(),
                by_node: "n1".into(),
                mode: LeaderMode::Raft,
                intent_at_ms: 110,
                outcome: Outcome::Pending,
            },
        });
        ledger
    }

    #[test]
    fn a_state_machine_decodes_from_the_records_it_was_written_as() {
        let ledger = sample();
        let applied = AppliedState {
            last_applied: Some(LogId::new(openraft::CommittedLeaderId::new(2, 1), 9)),
            ..AppliedState::default()
        };
        let records = all_records(&ledger, &applied).unwrap();
        assert_eq!(
            records.len(),
            3,
            "applied state, one incident, one notification"
        );
        let (decoded_applied, decoded) = decode_all(&records).unwrap();
        assert_eq!(decoded_applied, applied);
        assert_eq!(decoded, ledger);
    }

    #[test]
    fn a_record_of_an_unknown_kind_or_a_damaged_value_is_an_error_not_a_smaller_ledger() {
        let err = decode_all(&[(b"x1".to_vec(), vec![0])]).unwrap_err();
        assert!(err.to_string().contains("unknown kind"), "{err}");
        let err = decode_all(&[(b"iabc".to_vec(), vec![0xff])]).unwrap_err();
        assert!(
            err.to_string().contains("ledger record iabc is damaged"),
            "{err}"
        );
    }

    #[test]
    fn a_removed_record_becomes_a_removal_on_disk() {
        let ledger = sample();
        let gone = RecordKey::Incident("down/n9/1".into());
        let (key, value) = write_of(&ledger, &gone).unwrap();
        assert_eq!(key, b"idown/n9/1".to_vec());
        assert_eq!(value, None);
    }
}
