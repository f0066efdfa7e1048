//! The pre-vote (Raft thesis, section 9.6): before a voter raises its term to call an
//! election, it asks the other voters whether they would vote for it, and calls one only when
//! a majority (itself included) says yes. Pure decisions; the agent carries the question over
//! its sealed cluster port.
//!
//! The SWIM election gate ([`crate::group::election_gate`]) alone is not enough: at the start
//! of a partition a minority's SWIM view still lists members of the other side alive for a few
//! seconds, so its gate can open, and the term it raises then deposes the majority's healthy
//! leader at the heal (tests/heal.rs saw it). A pre-vote needs answers from a majority, which
//! a minority cannot get.
//!
//! A voter grants a pre-vote when it is not leading, has accepted no leader's entries for
//! [`GRANT_AFTER_SILENT_MS`], and the candidate is not behind it (its next term at least this
//! voter's term, its log at least as long). Granting changes nothing on the voter: several
//! candidates may all win their pre-votes; the real vote still picks one.

use serde::{Deserialize, Serialize};

/// A voter that accepted a leader's entries within this long refuses pre-votes: its leader is
/// there (about 1.4 heartbeat periods: one heartbeat missed at most). The candidate's own gate
/// waits longer ([`crate::group::SUSPECT_LEADER_SILENT_MS`]) before it asks, so voters that
/// heard the same leader up to one heartbeat later than the candidate still grant.
pub const GRANT_AFTER_SILENT_MS: u64 = 1_500;

/// "Would you vote for me?"
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVoteRequest {
    /// The term the candidate would campaign in (its current term plus one).
    pub term: u64,
    /// The index of the candidate's last log entry, if any.
    pub last_log_index: Option<u64>,
}

/// What a voter knows of itself when asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoterView {
    /// Its current term.
    pub current_term: u64,
    /// The index of its last log entry, if any.
    pub last_log_index: Option<u64>,
    /// Whether it is the leader.
    pub leading: bool,
    /// How long ago it last accepted a leader's entries (`None`: never).
    pub leader_heard_ms_ago: Option<u64>,
}

/// Whether a voter in the state `voter` grants `request` (see the module docs).
pub fn grants(request: &PreVoteRequest, voter: &VoterView) -> bool {
    let leader_silent = voter
        .leader_heard_ms_ago
        .is_none_or(|ms| ms >= GRANT_AFTER_SILENT_MS);
    !voter.leading
        && leader_silent
        && request.term >= voter.current_term
        && request.last_log_index >= voter.last_log_index
}

/// Whether `granted` pre-votes (the candidate's own included) are a majority of `voters`.
pub fn won(granted: usize, voters: usize) -> bool {
    granted > voters / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    const SILENT: VoterView = VoterView {
        current_term: 3,
        last_log_index: Some(20),
        leading: false,
        leader_heard_ms_ago: Some(5_000),
    };
    const ASK: PreVoteRequest = PreVoteRequest {
        term: 4,
        last_log_index: Some(20),
    };

    #[test]
    fn a_voter_whose_leader_went_silent_grants_an_up_to_date_candidate() {
        assert!(grants(&ASK, &SILENT));
        let never_heard = VoterView {
            leader_heard_ms_ago: None,
            ..SILENT
        };
        assert!(grants(&ASK, &never_heard));
    }

    #[test]
    fn a_voter_that_heard_its_leader_lately_refuses() {
        let heard = VoterView {
            leader_heard_ms_ago: Some(GRANT_AFTER_SILENT_MS - 1),
            ..SILENT
        };
        assert!(!grants(&ASK, &heard));
    }

    #[test]
    fn the_leader_refuses() {
        let leading = VoterView {
            leading: true,
            leader_heard_ms_ago: None,
            ..SILENT
        };
        assert!(!grants(&ASK, &leading));
    }

    #[test]
    fn a_candidate_behind_in_term_or_log_is_refused() {
        let behind_in_term = PreVoteRequest { term: 2, ..ASK };
        assert!(!grants(&behind_in_term, &SILENT));
        let shorter_log = PreVoteRequest {
            last_log_index: Some(19),
            ..ASK
        };
        assert!(!grants(&shorter_log, &SILENT));
        let no_log = PreVoteRequest {
            last_log_index: None,
            ..ASK
        };
        assert!(!grants(&no_log, &SILENT));
    }

    #[test]
    fn a_minority_of_grants_does_not_win() {
        // A 2|3 split: the two-node side gets its own grant and its neighbour's.
        assert!(!won(2, 5));
        assert!(won(3, 5));
        assert!(won(1, 1));
        assert!(!won(1, 2));
        assert!(won(2, 3));
    }
}
