//! The event log's owner task: turns reports and leadership changes into [`ClusterEvent`]s,
//! keeps them in the ring and in storage, and publishes each to the `monitor` readers.
//!
//! It waits on its inputs, the leadership status watch and, while this node leads, the next
//! `LeaderHeart` deadline; never on a polling tick, and never on a reader (nor on the beacon:
//! with `--beacon` each event is offered to [`crate::beacon::sender::Feed`], which drops it,
//! counted, rather than wait).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rover_membership::runtime::unix_ms;
use rover_storage::Storage;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use super::ring::EventRing;
use super::{
    ClusterEvent, EventLog, EventOp, Input, Report, SharedCounters, MONITOR_QUEUE, REPORT_QUEUE,
};
use crate::leadership::{LeaderStatus, Mode};

/// While this node leads, a `LeaderHeart` this often.
pub const LEADER_HEART_EVERY: Duration = Duration::from_secs(60);

/// Members remembered at most (to tell a join from a rejoin); past that the oldest-named
/// down or left ones are forgotten.
const MAX_KNOWN: usize = 100_000;

/// Who this agent is and how many events it keeps.
#[derive(Debug, Clone)]
pub struct EventLogSettings {
    /// This node's name.
    pub me: String,
    /// Its generation at start (the `Reboot` event's detail).
    pub generation: u64,
    /// `introspection.events`.
    pub capacity: usize,
    /// With `--beacon`: each event is also handed to the beacon's queue (never waited on).
    pub beacon: Option<crate::beacon::sender::Feed>,
}

/// The owner's end of the channel, made before the tasks that report to it; [`Inbox::run`]
/// starts it once the leadership watch exists.
#[derive(Debug)]
pub struct Inbox {
    inputs: mpsc::Receiver<Input>,
    live: broadcast::Sender<ClusterEvent>,
    counters: Arc<SharedCounters>,
}

/// The handle and the owner's inbox.
pub fn spawn() -> (EventLog, Inbox) {
    let (inputs_tx, inputs) = mpsc::channel(REPORT_QUEUE);
    let (live, _) = broadcast::channel(MONITOR_QUEUE);
    let counters = Arc::new(SharedCounters::default());
    let handle = EventLog {
        inputs: inputs_tx,
        live: live.downgrade(),
        counters: counters.clone(),
    };
    (
        handle,
        Inbox {
            inputs,
            live,
            counters,
        },
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Up,
    Down,
    Left,
}

#[derive(Debug, Clone, Copy)]
struct Known {
    generation: u64,
    seen: Seen,
}

struct Owner {
    settings: EventLogSettings,
    ring: EventRing,
    storage: Storage,
    live: broadcast::Sender<ClusterEvent>,
    counters: Arc<SharedCounters>,
    known: HashMap<String, Known>,
    joined_myself: bool,
    cluster: String,
    leader: Option<(String, Mode)>,
    heart_at: Option<Instant>,
    unstored: u64,
}

impl Inbox {
    /// Runs the owner until every handle is gone (or the task is dropped at shutdown).
    pub async fn run(
        self,
        settings: EventLogSettings,
        storage: Storage,
        mut leadership: watch::Receiver<LeaderStatus>,
    ) {
        let mut owner = Owner {
            ring: EventRing::new(settings.capacity),
            settings,
            storage,
            live: self.live,
            counters: self.counters,
            known: HashMap::new(),
            joined_myself: false,
            cluster: String::new(),
            leader: None,
            heart_at: None,
            unstored: 0,
        };
        owner.restore();
        let me = owner.settings.me.clone();
        let generation = owner.settings.generation;
        owner.record(
            EventOp::Reboot,
            me,
            format!("agent started, generation {generation}"),
        );
        let mut inputs = self.inputs;
        let mut watching = true;
        let status = leadership.borrow_and_update().clone();
        owner.on_leadership(&status);
        loop {
            let heart = owner.heart_at;
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => owner.on_input(input),
                    None => return,
                },
                changed = leadership.changed(), if watching => {
                    if changed.is_err() {
                        watching = false;
                        continue;
                    }
                    let status = leadership.borrow_and_update().clone();
                    owner.on_leadership(&status);
                }
                () = sleep_until(heart) => owner.heartbeat(),
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Owner {
    /// Loads the events kept before a restart.
    fn restore(&mut self) {
        let kept = match self.storage.event_log().newest(self.ring.capacity()) {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the stored event log; starting empty");
                return;
            }
        };
        let mut events = Vec::with_capacity(kept.len());
        for (seq, bytes) in kept {
            match serde_json::from_slice::<ClusterEvent>(&bytes) {
                Ok(mut event) => {
                    event.seq = seq;
                    events.push(event);
                }
                Err(_) => self.unstored += 1,
            }
        }
        self.ring.restore(events);
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Report(report) => self.on_report(report),
            Input::Query(filter, reply) => {
                let _ = reply.send(self.ring.query(&filter));
            }
            Input::Counts(reply) => {
                let mut counts = self.ring.counts();
                counts.dropped_reports = self
                    .counters
                    .dropped_reports
                    .load(std::sync::atomic::Ordering::Relaxed);
                counts.monitor_dropped = self
                    .counters
                    .monitor_dropped
                    .load(std::sync::atomic::Ordering::Relaxed);
                counts.unstored = self.unstored;
                counts.beacon_dropped = self.settings.beacon.as_ref().map_or(0, |b| b.dropped());
                let _ = reply.send(counts);
            }
        }
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Up { name, generation } => self.member_up(name, generation),
            Report::Down { name, generation } => {
                if self.set_seen(&name, generation, Seen::Down) != Some(Seen::Down) {
                    self.record(EventOp::Down, name, format!("generation {generation}"));
                }
            }
            Report::Left { name } => {
                let generation = self.known.get(&name).map_or(0, |k| k.generation);
                if self.set_seen(&name, generation, Seen::Left) != Some(Seen::Left) {
                    self.record(EventOp::Leave, name, String::new());
                }
            }
            // A new generation: a Reboot, and a Rejoin too if it was down.
            Report::Renamed { name, generation } => self.member_up(name, generation),
            Report::RejoinedMyself { generation } => {
                let me = self.settings.me.clone();
                self.record(
                    EventOp::Rejoin,
                    me,
                    format!("rejoined with generation {generation} (declared down, or keeping our name)"),
                );
            }
            Report::Active => {
                if !self.joined_myself {
                    self.joined_myself = true;
                    let me = self.settings.me.clone();
                    self.record(EventOp::Join, me, "in a cluster".into());
                }
            }
            Report::Suspected { name, detail } => self.record(EventOp::Suspect, name, detail),
            Report::Refuted { name, detail } => self.record(EventOp::Refute, name, detail),
            Report::ProbeFailed { name, detail } => self.record(EventOp::Probe, name, detail),
            Report::Alert { host, detail } => self.record(EventOp::Alert, host, detail),
            Report::Notified { channel, detail } => {
                let me = self.settings.me.clone();
                self.record(EventOp::Notification, me, format!("{channel}: {detail}"));
            }
        }
    }

    fn member_up(&mut self, name: String, generation: u64) {
        if name == self.settings.me {
            return;
        }
        let before = self.known.get(&name).copied();
        self.set_seen(&name, generation, Seen::Up);
        let detail = format!("generation {generation}");
        match before {
            None
            | Some(Known {
                seen: Seen::Left, ..
            }) => self.record(EventOp::Join, name, detail),
            Some(Known {
                seen: Seen::Down,
                generation: old,
            }) => {
                if generation > old {
                    self.record(EventOp::Reboot, name.clone(), detail.clone());
                }
                self.record(EventOp::Rejoin, name, detail);
            }
            Some(Known {
                seen: Seen::Up,
                generation: old,
            }) => {
                if generation > old {
                    self.record(EventOp::Reboot, name, detail);
                }
            }
        }
    }

    /// Remembers what was last seen of `name`; returns what was seen before.
    fn set_seen(&mut self, name: &str, generation: u64, seen: Seen) -> Option<Seen> {
        if name == self.settings.me {
            return None;
        }
        if self.known.len() >= MAX_KNOWN && !self.known.contains_key(name) {
            let gone = self
                .known
                .iter()
                .filter(|(_, k)| k.seen != Seen::Up)
                .map(|(n, _)| n.clone())
                .min();
            if let Some(gone) = gone {
                self.known.remove(&gone);
            }
        }
        self.known
            .insert(name.to_owned(), Known { generation, seen })
            .map(|k| k.seen)
    }

    fn on_leadership(&mut self, status: &LeaderStatus) {
        let cluster = status.cluster_id.clone().unwrap_or_default();
        if cluster != self.cluster {
            let old = std::mem::replace(&mut self.cluster, cluster.clone());
            if !old.is_empty() && !cluster.is_empty() {
                let me = self.settings.me.clone();
                self.record_with(
                    EventOp::Merge,
                    me,
                    Some(old.clone()),
                    format!("group {old} became {cluster}"),
                );
            }
        }
        let leading = status
            .leader
            .clone()
            .filter(|_| status.mode != Mode::Waiting)
            .map(|name| (name, status.mode));
        if let Some((name, mode)) = leading.clone() {
            if self.leader.as_ref() != Some(&(name.clone(), mode)) {
                match self.leader.take() {
                    None => self.record(
                        EventOp::LeaderStart,
                        name,
                        format!("{mode} leader, term {}", status.term),
                    ),
                    Some((old, old_mode)) => self.record(
                        EventOp::LeaderChange,
                        name.clone(),
                        format!(
                            "{old} ({old_mode}) -> {name} ({mode}), term {}",
                            status.term
                        ),
                    ),
                }
                self.leader = leading;
            }
        }
        if status.is_me && status.mode != Mode::Waiting {
            self.heart_at
                .get_or_insert_with(|| Instant::now() + LEADER_HEART_EVERY);
        } else {
            self.heart_at = None;
        }
    }

    fn heartbeat(&mut self) {
        self.heart_at = Some(Instant::now() + LEADER_HEART_EVERY);
        let me = self.settings.me.clone();
        let detail = self
            .leader
            .as_ref()
            .map_or_else(String::new, |(_, mode)| format!("{mode} leader"));
        self.record(EventOp::LeaderHeart, me, detail);
    }

    fn record(&mut self, op: EventOp, node: String, detail: String) {
        self.record_with(op, node, None, detail);
    }

    fn record_with(
        &mut self,
        op: EventOp,
        node: String,
        old_cluster: Option<String>,
        detail: String,
    ) {
        let members = 1 + self.known.values().filter(|k| k.seen == Seen::Up).count();
        let event = self
            .ring
            .push(ClusterEvent {
                seq: 0,
                op,
                node,
                at_ms: unix_ms(),
                cluster: self.cluster.clone(),
                old_cluster,
                members,
                detail,
            })
            .clone();
        tracing::debug!(op = %event.op, node = %event.node, detail = %event.detail, "cluster event");
        let stored = serde_json::to_vec(&event)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                self.storage
                    .event_log()
                    .append(event.seq, &bytes, self.ring.capacity())
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = stored {
            self.unstored += 1;
            tracing::debug!(error = %e, "event not stored");
        }
        if let Some(beacon) = &self.settings.beacon {
            beacon.offer(&event);
        }
        // No reader: nothing to do; a slow reader loses the oldest (it is told on its side).
        let _ = self.live.send(event);
    }
}
