//! Merges of one side's ledger into another's: every incident ends where it ended there.

use super::*;

fn incident(id: &str) -> Incident {
    Incident::new(id, IncidentKind::HostDown, "n3", 100)
}

fn intent(id: &str, phase: Phase, channel: &str, by: &str) -> LedgerCommand {
    LedgerCommand::Intend {
        record: Notification {
            incident: id.into(),
            phase,
            channel: channel.into(),
            by_node: by.into(),
            mode: LeaderMode::Fallback,
            intent_at_ms: 110,
            outcome: Outcome::Pending,
        },
    }
}

fn sent(id: &str, phase: Phase, channel: &str) -> LedgerCommand {
    LedgerCommand::Complete {
        incident: id.into(),
        phase,
        channel: channel.into(),
        outcome: Outcome::Sent {
            at_ms: 120,
            reference: None,
        },
    }
}

fn resolve(id: &str) -> LedgerCommand {
    LedgerCommand::Resolve {
        incident: id.into(),
        at_ms: 150,
    }
}

/// Open, announced on email, resolved, its BACK sent on email: closed.
fn closed(id: &str) -> Ledger {
    let mut ledger = Ledger::default();
    for command in [
        LedgerCommand::Open(incident(id)),
        intent(id, Phase::Opened, "email", "n1"),
        sent(id, Phase::Opened, "email"),
        resolve(id),
        intent(id, Phase::Resolved, "email", "n1"),
        sent(id, Phase::Resolved, "email"),
    ] {
        ledger.apply(&command);
    }
    assert_eq!(ledger.incident(id).unwrap().state, IncidentState::Closed);
    ledger
}

#[test]
fn an_incident_closed_on_one_side_is_closed_where_it_is_merged_not_resolved_for_ever() {
    let side = closed("down/n3/1");
    let mut other = Ledger::default();
    other.apply(&LedgerCommand::Merge(side.as_commands()));
    assert_eq!(
        other.incident("down/n3/1").unwrap().state,
        IncidentState::Closed
    );
    assert_eq!(other.active_incidents().count(), 0);
    let mut again = Ledger::default();
    again.apply(&LedgerCommand::Merge(side.commands_of("down/n3/1")));
    assert_eq!(again, side);
}

#[test]
fn a_merge_into_an_incident_this_side_had_open_closes_it_as_the_other_side_did() {
    let side = closed("down/n3/1");
    let mut other = Ledger::default();
    other.apply(&LedgerCommand::Open(incident("down/n3/1")));
    other.apply(&intent("down/n3/1", Phase::Opened, "email", "n1"));
    other.apply(&sent("down/n3/1", Phase::Opened, "email"));
    other.apply(&LedgerCommand::Merge(side.as_commands()));
    assert_eq!(
        other.incident("down/n3/1").unwrap().state,
        IncidentState::Closed
    );
}

#[test]
fn a_closing_message_settles_a_news_record_its_dead_sender_left_pending() {
    let id = "down/n3/1";
    let mut ledger = Ledger::default();
    ledger.apply(&LedgerCommand::Open(incident(id)));
    ledger.apply(&resolve(id));
    // The other side's fallback leader intended a DOWN and died: merged in, still pending.
    let mut minority = Ledger::default();
    minority.apply(&LedgerCommand::Open(incident(id)));
    minority.apply(&intent(id, Phase::Opened, "email", "n4"));
    ledger.apply(&LedgerCommand::Merge(minority.as_commands()));
    assert!(ledger
        .notification(id, Phase::Opened, "email")
        .unwrap()
        .is_pending());
    ledger.apply(&intent(id, Phase::Resolved, "email", "n1"));
    ledger.apply(&sent(id, Phase::Resolved, "email"));
    assert!(!ledger
        .notification(id, Phase::Opened, "email")
        .unwrap()
        .is_pending());
    assert_eq!(ledger.incident(id).unwrap().state, IncidentState::Closed);
    assert_eq!(ledger.active_incidents().count(), 0);
}
