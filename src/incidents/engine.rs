//! The incident engine's owner task: on the leader, every tick, bring the ledger in line with
//! the cluster ([`super::reconcile`]), then send what is due ([`rover_election::policy`]).
//!
//! Exactly once: for every message and channel the engine first commits an intent (or takes
//! over an orphaned one with `Reassign`), sends only what it committed itself (`Applied::
//! Changed`), then commits the outcome. A leader killed between the two leaves the intent
//! pending; the next leader sees that its holder is gone and sends it. A Raft commit needs a
//! quorum, so committing the intent is also the confirmation that this node still leads.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rover_election::ledger::{
    Applied, Incident, Ledger, LedgerCommand, Notification, Outcome, Phase,
};
use rover_election::policy::{due_work, Claim, DueRules, Work};
use rover_membership::runtime::unix_ms;
use rover_membership::{MemberStatus, MembershipHandle};
use rover_storage::{HistoryStore, Storage};
use tokio::task::JoinSet;

use super::message::{compose, Sender};
use super::reconcile::{reconcile, HostView, Observed};
use super::switches;
use crate::alerts::AlertsHandle;
use crate::leadership::LeadershipHandle;
use crate::notify::{Delivery, Message, NotifyError};

/// How often the engine looks.
pub const TICK: Duration = Duration::from_millis(500);

/// Recording an outcome is tried this often, [`OUTCOME_RETRY`] apart (an election takes a few
/// seconds; a successor takes over a pending record only after minutes).
const OUTCOME_ATTEMPTS: u32 = 15;
const OUTCOME_RETRY: Duration = Duration::from_secs(2);

/// Where messages go: the configured notifiers, by channel name.
pub trait Deliver: Send + Sync + 'static {
    /// Channel names, the same on every node with the same config.
    fn channels(&self) -> Vec<String>;
    /// Sends `message` on `channel`.
    fn deliver(
        &self,
        channel: &str,
        message: &Message,
    ) -> impl Future<Output = Result<Delivery, NotifyError>> + Send;
}

impl Deliver for crate::notify::Notifiers {
    fn channels(&self) -> Vec<String> {
        self.names()
    }

    async fn deliver(&self, channel: &str, message: &Message) -> Result<Delivery, NotifyError> {
        self.send(channel, message).await
    }
}

/// What the engine reads and writes.
pub struct EngineContext<D> {
    /// This node's name.
    pub me: String,
    /// The SWIM view.
    pub membership: MembershipHandle,
    /// The alert table.
    pub alerts: AlertsHandle,
    /// Where status samples (when a host last talked) are.
    pub storage: Storage,
    /// The ledger and who leads.
    pub leadership: LeadershipHandle,
    /// Where messages go.
    pub notifiers: Arc<D>,
    /// When messages fall due.
    pub rules: DueRules,
    /// The topology map (switch incidents, cut-off messages).
    pub topology: crate::topology::TopologyHandle,
}

/// Runs the engine until the task is aborted.
pub async fn run<D: Deliver>(context: EngineContext<D>) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = tick(&context).await {
            tracing::warn!(error = %format!("{e:#}"), "incident engine");
        }
    }
}

async fn tick<D: Deliver>(context: &EngineContext<D>) -> Result<()> {
    let Some((mode, ledger)) = context.leadership.leading_ledger().await else {
        return Ok(());
    };
    let observed = observe(context).await?;
    let now = unix_ms();
    let mut changes = reconcile(&observed, &ledger, now);
    // Switch incidents look at the ledger as reconcile leaves it.
    let map = context.topology.map();
    let mut reconciled = ledger.clone();
    for change in &changes {
        reconciled.apply(change);
    }
    let switch_step = switches::switch_step(
        &reconciled,
        &observed,
        &map.switches(),
        &context.me,
        mode,
        now,
        context.rules.group_wait_ms,
    );
    changes.extend(switch_step.commands);
    if !changes.is_empty() {
        context.leadership.write_here(changes).await?;
    }
    let Some((mode, ledger)) = context.leadership.leading_ledger().await else {
        return Ok(());
    };
    let is_alive = |name: &str| name == context.me || observed.may_be_alive(name);
    let work = due_work(&ledger, &context.me, &is_alive, unix_ms(), &context.rules);
    let work = switches::keep_sendable(work, &ledger, &switch_step.hold);
    if work.is_empty() {
        return Ok(());
    }
    let sender = Sender {
        node: context.me.clone(),
        mode,
        unseen: observed.unseen(),
        context: switches::message_context(&ledger, &observed, &map, &work, &context.me),
    };
    notify(context, &ledger, work, &sender).await
}

/// The members (with when each last sent a status sample) and the alert table.
async fn observe<D: Deliver>(context: &EngineContext<D>) -> Result<Observed> {
    let members = context.membership.members().await?;
    let history = context.storage.history();
    let mut hosts: Vec<HostView> = members
        .into_iter()
        .map(|m| HostView {
            last_heard_ms: history.last_sample(&m.name).ok().flatten().map(|s| s.at_ms),
            name: m.name,
            generation: m.generation,
            status: m.status,
        })
        .collect();
    if !hosts.iter().any(|h| h.name == context.me) {
        hosts.push(HostView {
            name: context.me.clone(),
            generation: 0,
            status: MemberStatus::Alive,
            last_heard_ms: None,
        });
    }
    let alerts = context.alerts.list().await?;
    Ok(Observed { hosts, alerts })
}

/// Claims the due work, sends one message per channel covering everything claimed on it,
/// and records each outcome.
async fn notify<D: Deliver>(
    context: &EngineContext<D>,
    ledger: &Ledger,
    work: Vec<Work>,
    sender: &Sender,
) -> Result<()> {
    let now = unix_ms();
    let mut claims: Vec<(String, Phase, String)> = Vec::new();
    let mut commands = Vec::new();
    for item in &work {
        let held: Vec<(String, Option<String>)> = match &item.claim {
            Claim::Fresh => context
                .notifiers
                .channels()
                .into_iter()
                .map(|c| (c, None))
                .collect(),
            Claim::TakeOver(held) => held
                .iter()
                .map(|(c, n)| (c.clone(), Some(n.clone())))
                .collect(),
        };
        for (channel, from_node) in held {
            commands.push(match from_node {
                None => LedgerCommand::Intend {
                    record: Notification {
                        incident: item.incident.clone(),
                        phase: item.phase,
                        channel: channel.clone(),
                        by_node: context.me.clone(),
                        mode: sender.mode,
                        intent_at_ms: now,
                        outcome: Outcome::Pending,
                    },
                },
                Some(from_node) => LedgerCommand::Reassign {
                    incident: item.incident.clone(),
                    phase: item.phase,
                    channel: channel.clone(),
                    from_node,
                    to_node: context.me.clone(),
                    mode: sender.mode,
                    at_ms: now,
                },
            });
            claims.push((item.incident.clone(), item.phase, channel));
        }
    }
    let applied = context.leadership.write_here(commands).await?;
    let mut per_channel: BTreeMap<String, Vec<(Incident, Phase)>> = BTreeMap::new();
    for ((incident, phase, channel), applied) in claims.into_iter().zip(applied) {
        if applied != Applied::Changed {
            continue;
        }
        if let Some(incident) = ledger.incident(&incident) {
            per_channel
                .entry(channel)
                .or_default()
                .push((incident.clone(), phase));
        }
    }

    let mut sends = JoinSet::new();
    for (channel, items) in per_channel {
        let refs: Vec<(&Incident, Phase)> = items.iter().map(|(i, p)| (i, *p)).collect();
        let message = compose(&refs, sender);
        let notifiers = Arc::clone(&context.notifiers);
        sends.spawn(async move {
            let result = notifiers.deliver(&channel, &message).await;
            (channel, items, result)
        });
    }
    // Each channel's outcome is recorded as soon as that channel is done, so a slow channel
    // never leaves a delivered message looking pending (a successor would send it again).
    while let Some(joined) = sends.join_next().await {
        let Ok((channel, items, result)) = joined else {
            // A panicking channel leaves its own records pending (a successor retries them
            // after `orphan_after`); the other channels go on.
            tracing::error!("a notifier panicked; its notifications stay pending");
            continue;
        };
        let at_ms = unix_ms();
        let outcome = match result {
            Ok(delivery) => {
                tracing::info!(%channel, incidents = items.len(), reference = ?delivery.reference, "notified");
                Outcome::Sent {
                    at_ms,
                    reference: delivery.reference,
                }
            }
            Err(e) => {
                tracing::warn!(%channel, error = %e, "notification failed");
                Outcome::Failed {
                    at_ms,
                    error: e.to_string(),
                }
            }
        };
        let outcomes = items
            .into_iter()
            .map(|(incident, phase)| LedgerCommand::Complete {
                incident: incident.id,
                phase,
                channel: channel.clone(),
                outcome: outcome.clone(),
            })
            .collect();
        record_outcomes(context, sender, &channel, outcomes).await;
    }
    Ok(())
}

/// Records outcomes, retrying while the ledger cannot take them (an election under way): a
/// delivered message left pending would be sent again by a successor.
async fn record_outcomes<D: Deliver>(
    context: &EngineContext<D>,
    sender: &Sender,
    channel: &str,
    outcomes: Vec<LedgerCommand>,
) {
    for attempt in 1..=OUTCOME_ATTEMPTS {
        let recorded = context
            .leadership
            .record_outcomes(sender.mode, outcomes.clone())
            .await;
        match recorded {
            Ok(()) => return,
            Err(e) if attempt == OUTCOME_ATTEMPTS => {
                tracing::error!(%channel, error = %format!("{e:#}"), "cannot record a notification's outcome; it stays pending");
            }
            Err(e) => {
                tracing::warn!(%channel, error = %format!("{e:#}"), attempt, "recording an outcome failed; retrying");
                tokio::time::sleep(OUTCOME_RETRY).await;
            }
        }
    }
}
