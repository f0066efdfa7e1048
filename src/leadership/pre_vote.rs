//! The pre-vote of the owner task (decided by `rover_election::pre_vote`): once the SWIM gate
//! opens, a voter asks the other voters, over the cluster port, whether they would vote for
//! it, and opens openraft's elections only when a majority (itself included) grants. The
//! question goes on a connection of its own, so it never waits behind a Raft RPC to the lost
//! leader.
//!
//! A won pre-vote keeps elections open for [`HOLDS_FOR_MS`] (long enough for openraft's timer
//! to run an election or two); then, still without a leader, the voter asks again. A lost one
//! is asked again after [`RETRY_MS`]. The other side of the exchange, answering, is
//! [`LeadershipHandle::serve_pre_vote`].

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ServerState;
use rover_election::pre_vote::{grants, won, PreVoteRequest, VoterView};
use tokio::task::JoinSet;

use super::owner::{Input, Owner, Reading};
use super::LeadershipHandle;
use crate::peer::PeerMessage;

/// A won pre-vote keeps elections open this long.
const HOLDS_FOR_MS: u64 = 5_000;
/// A lost pre-vote is asked again after this.
const RETRY_MS: u64 = 1_000;
/// One pre-vote round waits this long at most for the answers (connection and handshake
/// included).
const ROUND_TIMEOUT: Duration = Duration::from_millis(1_000);

/// Where the owner's pre-vote stands.
#[derive(Debug, Default)]
pub(super) struct PreVoteState {
    /// A round is under way.
    running: bool,
    /// When (monotonic ms) the last round was won, while it still holds.
    won_at: Option<u64>,
    /// No round starts before this (monotonic ms).
    next_round_ms: u64,
    /// The last outcome logged, so only changes are logged.
    logged: Option<bool>,
}

impl Owner {
    /// Whether this voter's pre-vote allows it to call an election now (the SWIM gate being
    /// open: `gate_open`); starts a round when one is due.
    pub(super) fn pre_vote_allows(
        &mut self,
        reading: &Reading,
        voters: &BTreeSet<String>,
        gate_open: bool,
        now: u64,
    ) -> bool {
        if !gate_open || reading.metrics.state == ServerState::Leader {
            // Closed: the next loss of a leader asks afresh, and is logged afresh.
            self.pre_vote.won_at = None;
            self.pre_vote.logged = None;
            return false;
        }
        if let Some(at) = self.pre_vote.won_at {
            let until = at.saturating_add(HOLDS_FOR_MS);
            if now < until {
                self.wake_at(until);
                return true;
            }
            self.pre_vote.won_at = None;
        }
        let others: Vec<String> = voters
            .iter()
            .filter(|v| **v != self.settings.name)
            .cloned()
            .collect();
        if others.is_empty() {
            return true; // a group of one: nobody to ask
        }
        if self.pre_vote.running {
            return false;
        }
        if now < self.pre_vote.next_round_ms {
            self.wake_at(self.pre_vote.next_round_ms);
            return false;
        }
        let Some(cluster) = self.node().and_then(|n| n.cluster) else {
            return false;
        };
        let request = PreVoteRequest {
            term: reading.metrics.current_term.saturating_add(1),
            last_log_index: reading.metrics.last_log_index,
        };
        self.pre_vote.running = true;
        let (transport, reports, voters) =
            (self.transport.clone(), self.reports.clone(), voters.len());
        tokio::spawn(async move {
            let mut asks = JoinSet::new();
            for name in others {
                let transport = transport.clone();
                asks.spawn(async move {
                    let question = PeerMessage::PreVote { cluster, request };
                    matches!(
                        transport.ask_once(&name, &question, ROUND_TIMEOUT).await,
                        Ok(PeerMessage::PreVoteAnswer(true))
                    )
                });
            }
            let mut granted = 1; // our own
            while let Some(answer) = asks.join_next().await {
                if answer.unwrap_or(false) {
                    granted += 1;
                    if won(granted, voters) {
                        break; // dropping the set stops the other questions
                    }
                }
            }
            let _ = reports
                .send(Input::PreVoteDone {
                    term: request.term,
                    granted,
                    voters,
                })
                .await;
        });
        false
    }

    /// A pre-vote round for `term` ended with `granted` of `voters`.
    pub(super) fn pre_vote_done(&mut self, term: u64, granted: usize, voters: usize) {
        let now = self.now_ms();
        self.pre_vote.running = false;
        let outcome = won(granted, voters);
        if outcome {
            self.pre_vote.won_at = Some(now);
        } else {
            self.pre_vote.next_round_ms = now.saturating_add(RETRY_MS);
        }
        if self.pre_vote.logged != Some(outcome) {
            if outcome {
                tracing::info!(term, granted, voters, "pre-vote won: elections open");
            } else {
                tracing::info!(
                    term,
                    granted,
                    voters,
                    "pre-vote lost: no majority of the voters would vote for us (asking again while no leader is heard)"
                );
            }
            self.pre_vote.logged = Some(outcome);
        }
    }
}

impl LeadershipHandle {
    /// Answers a pre-vote from a voter of group `cluster` (see `rover_election::pre_vote`).
    pub fn serve_pre_vote(&self, cluster: u64, request: &PreVoteRequest) -> bool {
        let Some(node) = self.writer.node.borrow().clone() else {
            return false;
        };
        if node.cluster != Some(cluster) {
            return false;
        }
        let now = self.contact.now_ms();
        let view = {
            let metrics = node.raft.metrics();
            let metrics = metrics.borrow();
            VoterView {
                current_term: metrics.current_term,
                last_log_index: metrics.last_log_index,
                leading: metrics.state == ServerState::Leader,
                leader_heard_ms_ago: self.contact.entries_at().map(|at| now.saturating_sub(at)),
            }
        };
        let granted = grants(request, &view);
        tracing::debug!(?request, ?view, granted, "pre-vote asked");
        granted
    }
}
