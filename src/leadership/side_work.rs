//! The side ledgers as the owner task keeps them: writes and outcomes of this node as fallback
//! leader, and the merge of the fallback ledger and of a yielded group's ledger into the Raft
//! ledger once a Raft leader is back (in a spawned task that reports back).

use rover_election::ledger::{Applied, LedgerCommand};

use super::owner::{Input, Owner};
use super::{LeadershipError, Mode, Writer};

/// A failed merge is tried again after this long.
const MERGE_RETRY_MS: u64 = 2_000;

impl Owner {
    pub(super) fn write_fallback(
        &mut self,
        commands: &[LedgerCommand],
    ) -> Result<Vec<Applied>, LeadershipError> {
        let status = self.status_tx.borrow().clone();
        if !(status.is_me && status.mode == Mode::Fallback) {
            return Err(LeadershipError::NotLeader {
                leader: status.leader,
            });
        }
        let base = self.raft_ledger();
        self.side
            .apply_fallback(commands, &base)
            .map_err(|e| LeadershipError::Fatal(format!("cannot store the fallback ledger: {e:#}")))
    }

    pub(super) fn record_fallback_outcomes(
        &mut self,
        commands: Vec<LedgerCommand>,
    ) -> Result<(Vec<LedgerCommand>, bool), LeadershipError> {
        let fatal = |e: anyhow::Error| {
            LeadershipError::Fatal(format!("cannot store the side ledgers: {e:#}"))
        };
        if self.side.fallback().notifications().next().is_some() {
            let base = self.raft_ledger();
            self.side.apply_fallback(&commands, &base).map_err(fatal)?;
            return Ok((Vec::new(), true));
        }
        if self.side.pending_len() > 0 {
            self.side.add_pending(commands).map_err(fatal)?;
            return Ok((Vec::new(), true));
        }
        Ok((commands, false))
    }

    /// Hands the fallback ledger and any pending merge to the Raft leader.
    pub(super) fn merge_side_ledgers(&mut self, now: u64) {
        if self.merging || self.merge_retry_ms.is_some_and(|at| at > now) {
            if let Some(at) = self.merge_retry_ms {
                self.wake_at(at);
            }
            return;
        }
        if let Err(e) = self.side.hand_over_fallback() {
            tracing::error!(error = %format!("{e:#}"), "cannot hand the fallback ledger over");
            return;
        }
        let Some(merge) = self.side.pending_merge() else {
            return;
        };
        let count = self.side.pending_len();
        self.merging = true;
        let (writer, reports) = (self.writer.clone(), self.reports.clone());
        tokio::spawn(async move {
            let result = write_through(&writer, vec![merge]).await;
            let _ = reports
                .send(Input::MergeDone {
                    count,
                    result: result.map_err(|e| e.to_string()),
                })
                .await;
        });
    }

    pub(super) fn merge_done(&mut self, count: usize, result: Result<(), String>) {
        self.merging = false;
        match result {
            Ok(()) => {
                self.merge_retry_ms = None;
                match self.side.merged(count) {
                    Ok(()) => tracing::info!(
                        commands = count,
                        "merged a side ledger into the raft ledger"
                    ),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "cannot store the side ledgers")
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "merging a side ledger failed; trying again");
                self.merge_retry_ms = Some(self.contact.now_ms() + MERGE_RETRY_MS);
            }
        }
    }
}

/// Writes `commands` through this partition's leader.
async fn write_through(
    writer: &Writer,
    commands: Vec<LedgerCommand>,
) -> Result<(), LeadershipError> {
    let status = writer.status.borrow().clone();
    if status.is_me && status.mode == Mode::Raft {
        return writer.raft(commands).await.map(drop);
    }
    let leader = status
        .leader
        .filter(|_| status.mode == Mode::Raft)
        .ok_or(LeadershipError::NotLeader { leader: None })?;
    writer.forward(&leader, commands).await
}
