//! The incident engine's owner task: on the leader, it brings the ledger in line with the
//! cluster ([`super::reconcile`]) and sends what is due ([`rover_election::policy`]).
//!
//! Exactly once: for every message and channel the engine first commits an intent (or takes
//! over an orphaned one with `Reassign`), sends only what it committed itself (`Applied::
//! Changed`), then commits the outcome. A leader killed between the two leaves the intent
//! pending; the next leader sees that its holder is gone and sends it. A Raft commit needs a
//! quorum, so committing the intent is also the confirmation that this node still leads.
//!
//! Never blocked: the loop awaits no notifier, Raft commit or peer. Each channel's claim and
//! send runs in a task of its own ([`super::jobs`]) whose end comes back as an input; a
//! channel with a message in flight gets nothing new until it ends (its work folds into its
//! next message), while the other channels go on. Outcomes that cannot be committed yet are
//! retried [`OUTCOME_RETRY`] apart, from the loop's own deadlines.
//!
//! Not polling: the loop sleeps until the next deadline the policy gives (`next_due_at`:
//! group_wait ending, a reminder, an orphan, retention), or until the member view, the alert
//! table, the leadership or the applied ledger changes, or a task ends; and at least every
//! [`RECHECK`], a backstop for what no watch reports (a member turning suspect).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rover_election::ledger::{LeaderMode, Ledger, LedgerCommand};
use rover_election::policy::{expiry, next_due_at, DueRules, SendView, Work};
use rover_election::state_machine::{LedgerReader, MachineStopped};
use rover_membership::runtime::unix_ms;
use rover_membership::{MemberStatus, MembershipHandle};
use rover_storage::{HistoryStore, Storage};
use tokio::sync::watch;
use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;

use super::jobs::{self, ClaimItem, Deliver, Done, Unrecorded, OUTCOME_ATTEMPTS, OUTCOME_RETRY};
use super::message::Sender;
use super::pass::{plan, PassInput};
use super::reconcile::{HostView, Observed};
use super::switches;
use crate::alerts::AlertsHandle;
use crate::leadership::{LeaderStatus, LeadershipHandle, Mode};
use rover_storage::AlertState;

/// The longest the engine sleeps without looking (a backstop: watches and deadlines wake it).
pub const RECHECK: Duration = Duration::from_secs(10);
/// How soon a pass that held back due openings (a switch or a cut-off still settling) looks
/// again; member changes wake it sooner.
const HELD_RECHECK: Duration = Duration::from_millis(500);
/// Passes are at least this far apart, so a burst of changes (a hundred commits in a row) is
/// looked at a few times, not once per change.
pub const PASS_GAP: Duration = Duration::from_millis(100);
/// A write or a claim that failed is tried again after this long.
pub const WRITE_RETRY: Duration = Duration::from_secs(2);

/// What the engine reads and writes.
pub struct EngineContext<D> {
    /// This node's name.
    pub me: String,
    /// The SWIM view.
    pub membership: MembershipHandle,
    /// Bumped whenever a member comes, fails, leaves or is renamed.
    pub member_changes: watch::Receiver<u64>,
    /// The alert table.
    pub alerts: AlertsHandle,
    /// Where status samples (when a host last talked) are.
    pub storage: Storage,
    /// The ledger and who leads.
    pub leadership: LeadershipHandle,
    /// Where messages go and when they fall due; a reload publishes new ones (see
    /// [`Live`]).
    pub live: watch::Receiver<Live<D>>,
    /// The topology map (switch incidents, cut-off messages).
    pub topology: crate::topology::TopologyHandle,
    /// Where notifications sent are told (the cluster event log).
    pub events: crate::introspection::EventLog,
    /// Our team: other teams' alerts are shown, not notified...
    pub team: String,
    /// ...unless `team.notify_remote` is on.
    pub notify_remote: bool,
}

/// What a config reload may change while the engine runs: new sends go on the channels
/// published last (sends in flight finish on the notifiers they started with), and the next
/// pass uses the rules published last.
pub struct Live<D> {
    /// Where messages go.
    pub notifiers: Arc<D>,
    /// When messages fall due, and how long closed incidents are kept.
    pub rules: DueRules,
}

impl<D> Clone for Live<D> {
    fn clone(&self) -> Self {
        Self {
            notifiers: Arc::clone(&self.notifiers),
            rules: self.rules,
        }
    }
}

/// Runs the engine until the task is aborted.
pub async fn run<D: Deliver>(context: EngineContext<D>) {
    Engine::new(context).run().await;
}

/// What a spawned task is doing, to know what a panic left behind.
#[derive(Debug)]
enum Job {
    Channel(String),
    Write,
    Record(Unrecorded),
}

/// Why the loop woke.
enum Wake {
    Done(Result<(Id, Done), JoinError>),
    Other,
}

struct Engine<D> {
    context: EngineContext<D>,
    /// The notifiers and rules of this pass (taken from `context.live` at its start).
    notifiers: Arc<D>,
    rules: DueRules,
    /// Wakes the loop on a reload.
    live: Option<watch::Receiver<Live<D>>>,
    tasks: JoinSet<Done>,
    jobs: HashMap<Id, Job>,
    /// Channels with a claim and send in flight.
    sending: BTreeSet<String>,
    /// Channels whose claim failed, resting until then.
    resting: BTreeMap<String, Instant>,
    /// Whether reconciling's changes are being committed.
    writing: bool,
    write_retry_at: Option<Instant>,
    /// Outcomes waiting for their next attempt.
    unrecorded: Vec<Unrecorded>,
    /// The next deadline of the policy.
    due_at: Option<Instant>,
    last_pass: Option<Instant>,
    status: Option<watch::Receiver<LeaderStatus>>,
    members: Option<watch::Receiver<u64>>,
    alerts: Option<watch::Receiver<u64>>,
    ledger: Option<LedgerReader>,
}

impl<D: Deliver> Engine<D> {
    fn new(context: EngineContext<D>) -> Self {
        let Live { notifiers, rules } = context.live.borrow().clone();
        Self {
            notifiers,
            rules,
            live: Some(context.live.clone()),
            status: Some(context.leadership.watch_status()),
            members: Some(context.member_changes.clone()),
            alerts: Some(context.alerts.changes()),
            ledger: None,
            context,
            tasks: JoinSet::new(),
            jobs: HashMap::new(),
            sending: BTreeSet::new(),
            resting: BTreeMap::new(),
            writing: false,
            write_retry_at: None,
            unrecorded: Vec::new(),
            due_at: None,
            last_pass: None,
        }
    }

    async fn run(mut self) {
        loop {
            if let Some(last) = self.last_pass {
                tokio::time::sleep_until(last + PASS_GAP).await;
            }
            self.last_pass = Some(Instant::now());
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %format!("{e:#}"), "incident engine");
            }
            if let Wake::Done(joined) = self.wait().await {
                self.finished(joined);
                // Take every task that ended meanwhile before the next pass.
                while let Some(joined) = self.tasks.try_join_next_with_id() {
                    self.finished(joined);
                }
            }
        }
    }

    /// Sleeps until a task ends, a watch changes or the next deadline. A leadership status
    /// published again with the same leader and mode is no news.
    async fn wait(&mut self) -> Wake {
        let deadline = self.next_wake();
        let Self {
            tasks,
            status,
            members,
            alerts,
            ledger,
            live,
            ..
        } = self;
        let mut leading = status.as_ref().map(|s| leading_key(&s.borrow()));
        loop {
            tokio::select! {
                Some(joined) = tasks.join_next_with_id() => return Wake::Done(joined),
                () = tokio::time::sleep_until(deadline) => return Wake::Other,
                () = changed(status) => {
                    let now = status.as_ref().map(|s| leading_key(&s.borrow()));
                    if now != leading {
                        return Wake::Other;
                    }
                    leading = now;
                }
                () = changed(members) => return Wake::Other,
                () = changed(alerts) => return Wake::Other,
                () = changed(live) => return Wake::Other,
                stopped = ledger_changed(ledger) => {
                    if stopped.is_err() {
                        *ledger = None;
                    }
                    return Wake::Other;
                }
            }
        }
    }

    /// The earliest of the policy's deadline, the retries and the backstop.
    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let retries = self
            .unrecorded
            .iter()
            .map(|u| u.retry_at)
            .chain(self.resting.values().copied())
            .chain(self.write_retry_at);
        retries
            .chain(self.due_at)
            .chain([now + RECHECK])
            .min()
            .unwrap_or(now + RECHECK)
    }

    /// Looks at the cluster and the ledger once: starts the writes, sends and records that
    /// are due, and sets the next deadline.
    async fn pass(&mut self) -> Result<()> {
        let Live { notifiers, rules } = self.context.live.borrow_and_update().clone();
        (self.notifiers, self.rules) = (notifiers, rules);
        self.follow_ledger();
        self.due_at = None;
        if !self.context.leadership.status().is_me {
            return Ok(());
        }
        let observed = observe(&self.context).await?;
        // Taken after the awaits above: an apply while this pass holds the snapshot copies it.
        let Some((mode, ledger)) = self.context.leadership.leading_ledger().await else {
            return Ok(());
        };
        let now_ms = unix_ms();
        let now = Instant::now();
        self.resting.retain(|_, until| *until > now);
        let map = self.context.topology.map();
        let channels = self.notifiers.channels();
        let mut busy: Vec<String> = self
            .sending
            .iter()
            .chain(self.resting.keys())
            .cloned()
            .collect();
        let mut idle: Vec<String> = channels.into_iter().filter(|c| !busy.contains(c)).collect();
        let me = self.context.me.clone();
        let plan = plan(&PassInput {
            observed: &observed,
            ledger: &ledger,
            switches: &map.switches(),
            me: &me,
            mode,
            now_ms,
            rules: &self.rules,
            idle: &idle,
            busy: &busy,
        });
        self.start_write(plan.changes, &ledger, mode, now_ms);
        self.start_records(now);
        let work = plan.work;
        let mut per_channel: BTreeMap<String, Vec<Work>> = BTreeMap::new();
        for item in work {
            per_channel
                .entry(item.channel.clone())
                .or_default()
                .push(item);
        }
        for (channel, work) in per_channel {
            let sender = Sender {
                node: me.clone(),
                mode,
                unseen: observed.unseen(),
                context: switches::message_context(&ledger, &observed, &map, &work, &me),
            };
            let claims: Vec<ClaimItem> = work
                .into_iter()
                .filter_map(|item| {
                    let incident = ledger.incident(&item.incident)?;
                    Some(ClaimItem::of(item, incident, &me, mode, now_ms))
                })
                .collect();
            if claims.is_empty() {
                continue;
            }
            // The deadline below counts the channels just started as busy.
            idle.retain(|c| *c != channel);
            busy.push(channel.clone());
            self.start_send(channel, claims, sender);
        }
        let is_alive = |name: &str| name == me || observed.may_be_alive(name);
        let view = SendView {
            me: &me,
            idle: &idle,
            busy: &busy,
            is_alive: &is_alive,
        };
        self.due_at = next_due_at(&ledger, &view, now_ms, &self.rules)
            .map(|at| now + Duration::from_millis(at.saturating_sub(now_ms)));
        if !plan.hold.is_empty() {
            // Held openings are due already; look again soon, not at once.
            self.due_at = self.due_at.map(|at| at.max(now + HELD_RECHECK));
        }
        Ok(())
    }

    /// Keeps waiting on the ledger of the Raft node that is running now.
    fn follow_ledger(&mut self) {
        let current = self.context.leadership.applied_ledger();
        let same = match (&self.ledger, &current) {
            (Some(mine), Some(now)) => mine.same_machine(now),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.ledger = current.map(|mut reader| {
                reader.mark_seen();
                reader
            });
        }
    }

    /// Commits what reconciling (and the switch step) found, and retention as Raft leader,
    /// one write at a time.
    fn start_write(
        &mut self,
        mut changes: Vec<LedgerCommand>,
        ledger: &Ledger,
        mode: LeaderMode,
        now: u64,
    ) {
        if self.writing || self.write_retry_at.is_some_and(|at| at > Instant::now()) {
            return;
        }
        self.write_retry_at = None;
        if mode == LeaderMode::Raft {
            changes.extend(expiry(ledger, now, &self.rules));
        }
        if changes.is_empty() {
            return;
        }
        self.writing = true;
        let task = jobs::write(self.context.leadership.clone(), changes);
        let id = self.tasks.spawn(task).id();
        self.jobs.insert(id, Job::Write);
    }

    fn start_send(&mut self, channel: String, claims: Vec<ClaimItem>, sender: Sender) {
        self.sending.insert(channel.clone());
        let task = jobs::send_on_channel(
            self.context.leadership.clone(),
            Arc::clone(&self.notifiers),
            channel.clone(),
            claims,
            sender,
        );
        let id = self.tasks.spawn(task).id();
        self.jobs.insert(id, Job::Channel(channel));
    }

    /// Starts recording the outcomes whose next attempt is due.
    fn start_records(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unrecorded)
            .into_iter()
            .partition(|u| u.retry_at <= now);
        self.unrecorded = later;
        for outcome in due {
            self.start_record(outcome);
        }
    }

    fn start_record(&mut self, outcome: Unrecorded) {
        let task = jobs::record(self.context.leadership.clone(), outcome.clone());
        let id = self.tasks.spawn(task).id();
        self.jobs.insert(id, Job::Record(outcome));
    }

    /// Takes the end of a spawned task as an input.
    fn finished(&mut self, joined: Result<(Id, Done), JoinError>) {
        let (id, done) = match joined {
            Ok(ended) => ended,
            Err(error) => return self.panicked(&error),
        };
        self.jobs.remove(&id);
        match done {
            Done::Sent {
                channel,
                mode,
                items,
                result,
            } => {
                self.sending.remove(&channel);
                let detail = match &result {
                    Ok(delivery) => {
                        tracing::info!(%channel, incidents = items.len(), reference = ?delivery.reference, "notified");
                        format!("sent, {} incidents", items.len())
                    }
                    Err(e) => {
                        tracing::warn!(%channel, error = %e, "notification failed");
                        format!("failed, {} incidents: {e}", items.len())
                    }
                };
                self.context
                    .events
                    .report(crate::introspection::Report::Notified {
                        channel: channel.clone(),
                        detail,
                    });
                // A delivered message left pending would be sent again by a successor.
                let outcome = Unrecorded::of_send(&channel, mode, items, &result, unix_ms());
                self.start_record(outcome);
            }
            Done::NotClaimed { channel, error } => {
                self.sending.remove(&channel);
                if let Some(error) = error {
                    tracing::warn!(%channel, error = %format!("{error:#}"), "could not claim the messages due; trying again shortly");
                    self.resting.insert(channel, Instant::now() + WRITE_RETRY);
                }
            }
            Done::Wrote(result) => {
                self.writing = false;
                if let Err(e) = result {
                    tracing::warn!(error = %format!("{e:#}"), "could not record what the cluster shows; trying again shortly");
                    self.write_retry_at = Some(Instant::now() + WRITE_RETRY);
                }
            }
            Done::Recorded {
                mut outcome,
                result,
            } => {
                let Err(e) = result else {
                    return;
                };
                outcome.attempts += 1;
                let channel = outcome.channel.clone();
                if outcome.attempts >= OUTCOME_ATTEMPTS {
                    tracing::error!(%channel, error = %format!("{e:#}"), "cannot record a notification's outcome; it stays pending");
                } else {
                    tracing::warn!(%channel, error = %format!("{e:#}"), attempt = outcome.attempts, "recording an outcome failed; retrying");
                    outcome.retry_at = Instant::now() + OUTCOME_RETRY;
                    self.unrecorded.push(outcome);
                }
            }
        }
    }

    /// A task panicked: free what it held; its records stay pending (a successor, or this
    /// node after `orphan_after`, takes them over).
    fn panicked(&mut self, error: &JoinError) {
        match self.jobs.remove(&error.id()) {
            Some(Job::Channel(channel)) => {
                self.sending.remove(&channel);
                tracing::error!(%channel, %error, "a notifier failed; its notifications stay pending");
            }
            Some(Job::Write) => {
                self.writing = false;
                tracing::error!(%error, "recording what the cluster shows failed");
            }
            Some(Job::Record(mut outcome)) => {
                tracing::error!(channel = %outcome.channel, %error, "recording an outcome failed; retrying");
                outcome.attempts += 1;
                outcome.retry_at = Instant::now() + OUTCOME_RETRY;
                if outcome.attempts < OUTCOME_ATTEMPTS {
                    self.unrecorded.push(outcome);
                }
            }
            None => tracing::error!(%error, "an incident engine task failed"),
        }
    }
}

/// What of the leadership status matters to the engine: who leads, how, and whether it is us.
fn leading_key(status: &LeaderStatus) -> (Mode, Option<String>, bool) {
    (status.mode, status.leader.clone(), status.is_me)
}

/// Waits for a change; for ever once the sender is gone (and forgets the receiver).
async fn changed<T>(receiver: &mut Option<watch::Receiver<T>>) {
    let Some(rx) = receiver else {
        return std::future::pending().await;
    };
    if rx.changed().await.is_err() {
        *receiver = None;
        std::future::pending::<()>().await;
    }
}

/// Waits for the applied ledger to change; for ever without one.
async fn ledger_changed(reader: &mut Option<LedgerReader>) -> Result<(), MachineStopped> {
    match reader {
        Some(reader) => reader.changed().await,
        None => std::future::pending().await,
    }
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
    let mut alerts = context.alerts.list().await?;
    // Other teams' alerts are shown, not notified, unless notify_remote. One a border took
    // back (its link lost, or its border gone) is not over: its incident waits for news.
    alerts.retain(|a| {
        a.team == context.team || (context.notify_remote && a.state != AlertState::Removed)
    });
    Ok(Observed { hosts, alerts })
}
