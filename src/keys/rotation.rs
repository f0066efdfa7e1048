//! A rotation step across the cluster, and `keys list`.
//!
//! A step (install, use, remove) is checked first against what the members hold (`use` is
//! refused while an alive member lacks the key; `remove` while it is this member's primary or
//! any alive member still seals with it), then applied here, then sent to every alive or
//! suspect member over the cluster port, sealed with the key this member sealed with before
//! the step, and finally broadcast by gossip for members the direct send missed. Each member
//! persists the step before it acknowledges. The report says, per member: acknowledged,
//! failed (it answered with a refusal) or not reached (no answer, or not alive).

use std::collections::BTreeMap;
use std::sync::Arc;

use rover_membership::runtime::unix_ms;
use rover_membership::{BroadcastItem, Keyring, MemberInfo, MemberStatus, MembershipHandle, Topic};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::state::{id_text, KeyOp};
use super::{peer, KeyChange, KeyringSummary, KeysHandle};

/// How many members a step or a survey talks to at once.
const FAN_OUT: usize = 32;

/// What became of a step (or a survey) at one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// It answered: applied (or, for a survey, here is what it holds).
    Acknowledged,
    /// It answered with a refusal.
    Failed,
    /// No answer: not alive, or unreachable.
    NotReached,
}

impl Outcome {
    /// The word shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Acknowledged => "acknowledged",
            Outcome::Failed => "failed",
            Outcome::NotReached => "not reached",
        }
    }
}

/// One member's row of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberOutcome {
    /// Node name.
    pub name: String,
    /// Its address.
    pub addr: String,
    /// Its status in our member list.
    pub status: MemberStatus,
    /// What became of the step there.
    pub outcome: Outcome,
    /// Why it failed or was not reached (empty when acknowledged).
    pub detail: String,
    /// What it holds now, when it answered.
    pub keys: Option<KeyringSummary>,
}

/// The answer to `keys install|use|remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    /// install, use or remove.
    pub step: String,
    /// The key's fingerprint.
    pub key: String,
    /// The step's version.
    pub version: u64,
    /// How many members acknowledged.
    pub acknowledged: usize,
    /// How many members were alive or suspect (us included): the step is done when every
    /// one of them acknowledged.
    pub reachable: usize,
    /// Per member, by name.
    pub members: Vec<MemberOutcome>,
}

impl StepReport {
    /// Whether every alive or suspect member acknowledged.
    pub fn complete(&self) -> bool {
        self.acknowledged >= self.reachable
    }
}

/// One key of `keys list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLine {
    /// Its fingerprint.
    pub fingerprint: String,
    /// Members that hold it.
    pub held_by: usize,
    /// Members that seal with it.
    pub primary_of: usize,
    /// Members known (alive or not).
    pub members: usize,
    /// Members that do not hold it, or could not be asked, with why.
    pub missing: Vec<String>,
}

/// The answer to `keys list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysReport {
    /// Every key some member holds.
    pub keys: Vec<KeyLine>,
    /// Per member, by name.
    pub members: Vec<MemberOutcome>,
}

/// Why a step was not started; nothing changed anywhere.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The step is refused (see the module docs for when).
    #[error("{0}")]
    Refused(String),
    /// This agent is shutting down.
    #[error("the agent is shutting down")]
    Stopped,
}

fn is_reachable(member: &MemberInfo) -> bool {
    is_reachable_status(member.status)
}

/// Whether a member of this status is asked (alive or suspect).
pub fn is_reachable_status(status: MemberStatus) -> bool {
    matches!(status, MemberStatus::Alive | MemberStatus::Suspect)
}

fn not_reached(member: &MemberInfo, detail: String) -> MemberOutcome {
    MemberOutcome {
        name: member.name.clone(),
        addr: member.addr.to_string(),
        status: member.status,
        outcome: Outcome::NotReached,
        detail,
        keys: None,
    }
}

fn answered(member: &MemberInfo, answer: Result<KeyringSummary, String>) -> MemberOutcome {
    let (outcome, detail, keys) = match answer {
        Ok(summary) => (Outcome::Acknowledged, String::new(), Some(summary)),
        Err(why) => (Outcome::Failed, why, None),
    };
    MemberOutcome {
        name: member.name.clone(),
        addr: member.addr.to_string(),
        status: member.status,
        outcome,
        detail,
        keys,
    }
}

/// Calls `ask` for every other member that is alive or suspect (at most [`FAN_OUT`] at once),
/// with `here` for this member and "not reached" for the rest; sorted by name.
async fn each_member<F, Fut>(
    membership: &MembershipHandle,
    me: &str,
    here: MemberOutcome,
    ask: F,
) -> Result<Vec<MemberOutcome>, StepError>
where
    F: Fn(MemberInfo) -> Fut,
    Fut: std::future::Future<Output = MemberOutcome> + Send + 'static,
{
    let members = membership.members().await.map_err(|_| StepError::Stopped)?;
    let limit = Arc::new(Semaphore::new(FAN_OUT));
    let mut calls = JoinSet::new();
    let mut rows = vec![here];
    for member in members.into_iter().filter(|m| m.name != me) {
        if !is_reachable(&member) {
            let why = member.status.as_str().to_owned();
            rows.push(not_reached(&member, why));
            continue;
        }
        let call = ask(member);
        let limit = limit.clone();
        calls.spawn(async move {
            let _permit = limit.acquire_owned().await;
            call.await
        });
    }
    while let Some(row) = calls.join_next().await {
        if let Ok(row) = row {
            rows.push(row);
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// What every member holds (a survey: `keys list`, and the checks before `use` and `remove`).
pub async fn survey(
    keys: &KeysHandle,
    membership: &MembershipHandle,
) -> Result<KeysReport, StepError> {
    let state = keys.state().await.map_err(|_| StepError::Stopped)?;
    let me = keys.node().to_owned();
    let status = membership.status().await.map_err(|_| StepError::Stopped)?;
    let here = MemberOutcome {
        name: me.clone(),
        addr: status.identity.addr.to_string(),
        status: MemberStatus::Alive,
        outcome: Outcome::Acknowledged,
        detail: String::new(),
        keys: Some(keys.summary().await.map_err(|_| StepError::Stopped)?),
    };
    let ring = state.ring.clone();
    let rows = each_member(membership, &me, here, |member| {
        let ring = ring.clone();
        async move {
            match peer::query(member.addr, &ring).await {
                Ok(summary) => answered(&member, Ok(summary)),
                Err(e) => not_reached(&member, format!("{e:#}")),
            }
        }
    })
    .await?;
    Ok(KeysReport {
        keys: key_lines(&rows),
        members: rows,
    })
}

/// Per key, who holds it and who does not.
fn key_lines(rows: &[MemberOutcome]) -> Vec<KeyLine> {
    let mut keys: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for summary in rows.iter().filter_map(|r| r.keys.as_ref()) {
        for key in &summary.keys {
            let entry = keys.entry(key.clone()).or_default();
            entry.0 += 1;
            if *key == summary.primary {
                entry.1 += 1;
            }
        }
    }
    keys.into_iter()
        .map(|(fingerprint, (held_by, primary_of))| KeyLine {
            missing: rows
                .iter()
                .filter_map(|r| match &r.keys {
                    Some(s) if s.keys.contains(&fingerprint) => None,
                    Some(_) => Some(format!("{} (lacks it)", r.name)),
                    None => Some(format!("{} ({}: {})", r.name, r.outcome.as_str(), r.detail)),
                })
                .collect(),
            fingerprint,
            held_by,
            primary_of,
            members: rows.len(),
        })
        .collect()
}

/// Checks that `op` may start, given what the members hold.
async fn check(
    op: &KeyOp,
    keys: &KeysHandle,
    membership: &MembershipHandle,
) -> Result<(), StepError> {
    let fingerprint = id_text(&op.key_id());
    match op {
        KeyOp::Install(_) => Ok(()),
        KeyOp::Use(_) => {
            let report = survey(keys, membership).await?;
            let lacking: Vec<String> = report
                .members
                .iter()
                .filter(|r| r.outcome == Outcome::Acknowledged)
                .filter(|r| {
                    r.keys
                        .as_ref()
                        .is_some_and(|s| !s.keys.contains(&fingerprint))
                })
                .map(|r| r.name.clone())
                .collect();
            // An alive or suspect member that did not answer may lack it too: sealing with a
            // key it cannot open would cut it off.
            let unknown: Vec<String> = report
                .members
                .iter()
                .filter(|r| r.outcome != Outcome::Acknowledged && is_reachable_status(r.status))
                .map(|r| r.name.clone())
                .collect();
            if !lacking.is_empty() {
                Err(StepError::Refused(format!(
                    "{} lack key {fingerprint}: install it first (keys install)",
                    lacking.join(", ")
                )))
            } else if !unknown.is_empty() {
                Err(StepError::Refused(format!(
                    "{} did not answer, so it is not known whether they hold key \
                     {fingerprint}: try again once they answer or are listed failed",
                    unknown.join(", ")
                )))
            } else {
                Ok(())
            }
        }
        KeyOp::Remove(_) => {
            let report = survey(keys, membership).await?;
            let sealing: Vec<String> = report
                .members
                .iter()
                .filter(|r| r.keys.as_ref().is_some_and(|s| s.primary == fingerprint))
                .map(|r| r.name.clone())
                .collect();
            if sealing.is_empty() {
                Ok(())
            } else {
                Err(StepError::Refused(format!(
                    "key {fingerprint} is still the primary key of {}: make another key primary first (keys use)",
                    sealing.join(", ")
                )))
            }
        }
    }
}

/// Runs one step across the cluster (see the module docs).
pub async fn run_step(
    op: KeyOp,
    keys: &KeysHandle,
    membership: &MembershipHandle,
) -> Result<StepReport, StepError> {
    check(&op, keys, membership).await?;
    let before = keys.state().await.map_err(|_| StepError::Stopped)?;
    let version = unix_ms().max(before.version.saturating_add(1));
    let me = keys.node().to_owned();
    let addr = membership
        .status()
        .await
        .map_err(|_| StepError::Stopped)?
        .identity
        .addr;
    let here = answered(
        &MemberInfo {
            name: me.clone(),
            team: String::new(),
            addr,
            generation: 0,
            incarnation: 0,
            status: MemberStatus::Alive,
            since_ms: None,
            tags: Default::default(),
        },
        keys.apply(op.clone(), version).await,
    );
    if here.outcome != Outcome::Acknowledged {
        return Err(StepError::Refused(here.detail));
    }
    let change = KeyChange::of(&op, version);
    let ring: Keyring = before.ring;
    let rows = each_member(membership, &me, here, |member| {
        let (ring, change) = (ring.clone(), change.clone());
        async move {
            match peer::change(member.addr, &ring, &change).await {
                Ok(answer) => answered(&member, answer),
                Err(e) => not_reached(&member, format!("{e:#}")),
            }
        }
    })
    .await?;
    let item = BroadcastItem {
        topic: Topic::Keyring,
        key: id_text(&op.key_id()),
        version,
        payload: postcard::to_stdvec(&change).unwrap_or_default(),
    };
    if let Err(e) = membership.broadcast(item).await {
        tracing::warn!(error = %e, "the keyring step was not gossiped");
    }
    Ok(StepReport {
        step: op.verb().to_owned(),
        key: id_text(&op.key_id()),
        version,
        acknowledged: rows
            .iter()
            .filter(|r| r.outcome == Outcome::Acknowledged)
            .count(),
        reachable: rows
            .iter()
            .filter(|r| is_reachable_status(r.status))
            .count(),
        members: rows,
    })
}
