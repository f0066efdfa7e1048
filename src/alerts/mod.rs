//! Alerts: the table every agent holds, its owner task, and how alerts spread.
//!
//! One owner task holds the [`table::AlertTable`]. Local changes (checks, `alert raise`/`clear`)
//! bump the version, are stored, and go out as a foca broadcast; alerts heard by gossip or by
//! the anti-entropy [`sync`] are applied if newer, our own included: an agent whose data dir
//! was rolled back takes the highest version of its own alerts that its peers hold, so its
//! next change always wins. Every state change is stored and written to history with its time.
//!
//! A change asked for through the API is stored durably (written and flushed) before it is
//! applied: if storage fails, nothing changes and the caller gets
//! [`AlertChangeError::NotStored`]. A change from a check, or heard from a peer, is applied
//! and gossiped even when it cannot be stored here (a full disk must still raise its alert);
//! it is stored once storage takes writes again.

pub mod sync;
pub mod table;

use std::collections::BTreeSet;

use rover_membership::runtime::unix_ms;
use rover_membership::{BroadcastItem, MembershipHandle, Topic};
use rover_storage::{
    Alert, AlertKey, AlertState, AlertStore, HistoryEntry, HistoryEvent, HistoryStore, Severity,
    Storage,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use self::table::{AlertTable, Applied, DigestEntry};

/// A request to the alerts owner task.
#[derive(Debug)]
pub enum AlertInput {
    /// An alert heard by gossip (the broadcast payload).
    Gossip(Vec<u8>),
    /// Alerts pulled or pushed by anti-entropy.
    Synced(Vec<Alert>),
    /// Raise one of our own alerts.
    Raise {
        /// Alert name.
        name: String,
        /// Severity.
        severity: Severity,
        /// One line for humans.
        summary: String,
        /// Whether the change must be stored durably before it is applied.
        must_store: bool,
        /// The alert as it now stands (`None`: already firing like that).
        reply: Option<oneshot::Sender<ChangeResult>>,
    },
    /// Resolve one of our own alerts.
    Clear {
        /// Alert name.
        name: String,
        /// Optional new summary.
        summary: Option<String>,
        /// Whether the change must be stored durably before it is applied.
        must_store: bool,
        /// The alert as it now stands (`None`: it was not firing).
        reply: Option<oneshot::Sender<ChangeResult>>,
    },
    /// Another team's alert brought into our team by this border agent (or taken back: state
    /// [`AlertState::Removed`]). It gets a version above every copy our team holds and is
    /// gossiped; nothing happens if our team already holds it as given.
    Relay(Alert),
    /// A member of our team failed or left: the other teams' alerts it brought (the last hop
    /// of their path) are taken back here, as removed one version up, so the anti-entropy
    /// sync spreads it; a border agent of ours that still brings one brings it in again.
    RelayerGone(String),
    /// Every alert.
    List(oneshot::Sender<Vec<Alert>>),
    /// Our digest.
    Digest(oneshot::Sender<Vec<DigestEntry>>),
    /// What we hold newer than a peer's digest.
    NewerThan(Vec<DigestEntry>, oneshot::Sender<Vec<Alert>>),
}

/// A cloneable handle to the alerts owner task.
#[derive(Debug, Clone)]
pub struct AlertsHandle {
    inputs: mpsc::Sender<AlertInput>,
    changes: watch::Receiver<u64>,
}

/// The task has stopped (the agent is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the alerts task has stopped")]
pub struct AlertsStopped;

/// Why a raise or clear did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AlertChangeError {
    /// The task has stopped (the agent is shutting down); nothing changed.
    #[error("the alerts task has stopped")]
    Stopped,
    /// The change could not be stored durably; nothing changed.
    #[error("storage is failing, the alert was not changed: {0}")]
    NotStored(String),
}

impl From<AlertsStopped> for AlertChangeError {
    fn from(_: AlertsStopped) -> Self {
        AlertChangeError::Stopped
    }
}

/// What a raise or clear answers: the alert as it now stands (`None`: nothing to change).
pub type ChangeResult = Result<Option<Alert>, AlertChangeError>;

impl AlertsHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> AlertInput,
    ) -> Result<T, AlertsStopped> {
        let (tx, rx) = oneshot::channel();
        self.inputs
            .send(make(tx))
            .await
            .map_err(|_| AlertsStopped)?;
        rx.await.map_err(|_| AlertsStopped)
    }

    /// Hands over an input without waiting for an answer.
    pub async fn send(&self, input: AlertInput) -> Result<(), AlertsStopped> {
        self.inputs.send(input).await.map_err(|_| AlertsStopped)
    }

    /// Raises one of our alerts. With `must_store`, the change is stored durably first and
    /// nothing changes if that fails ([`AlertChangeError::NotStored`]).
    pub async fn raise(
        &self,
        name: &str,
        severity: Severity,
        summary: &str,
        must_store: bool,
    ) -> ChangeResult {
        self.ask(|tx| AlertInput::Raise {
            name: name.to_owned(),
            severity,
            summary: summary.to_owned(),
            must_store,
            reply: Some(tx),
        })
        .await?
    }

    /// Clears one of our alerts; `must_store` as for [`AlertsHandle::raise`].
    pub async fn clear(&self, name: &str, summary: Option<&str>, must_store: bool) -> ChangeResult {
        self.ask(|tx| AlertInput::Clear {
            name: name.to_owned(),
            summary: summary.map(str::to_owned),
            must_store,
            reply: Some(tx),
        })
        .await?
    }

    /// A counter bumped whenever the table changes (the incident engine waits on it).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Hands over a relayed alert without waiting ([`AlertInput::Relay`]); gives it back
    /// when the task's queue is full (try again later) or the task has stopped.
    pub fn try_relay(&self, alert: Alert) -> Result<(), Box<Alert>> {
        match self.inputs.try_send(AlertInput::Relay(alert)) {
            Ok(()) => Ok(()),
            Err(e) => match e.into_inner() {
                AlertInput::Relay(alert) => Err(Box::new(alert)),
                _ => Ok(()),
            },
        }
    }

    /// Every alert we know.
    pub async fn list(&self) -> Result<Vec<Alert>, AlertsStopped> {
        self.ask(AlertInput::List).await
    }

    /// Our digest.
    pub async fn digest(&self) -> Result<Vec<DigestEntry>, AlertsStopped> {
        self.ask(AlertInput::Digest).await
    }

    /// What we hold newer than `digest`.
    pub async fn newer_than(&self, digest: Vec<DigestEntry>) -> Result<Vec<Alert>, AlertsStopped> {
        self.ask(|tx| AlertInput::NewerThan(digest, tx)).await
    }
}

/// Whether `held` already says what a relayed `alert` says: all but the version and the
/// hops inside our team (two border agents of our team bringing the same alert by the same
/// path agree on it). A relay happens only when a border agent's links bring news, so two
/// borders bringing it by different paths take turns only as often as that.
fn relayed_as_given(held: &Alert, alert: &Alert, our_team: &str) -> bool {
    let outside = |a: &Alert| -> Vec<String> {
        let mut path = a.path.clone();
        while path
            .last()
            .is_some_and(|hop| hop.split('/').next() == Some(our_team))
        {
            path.pop();
        }
        path
    };
    held.state == alert.state
        && held.severity == alert.severity
        && held.summary == alert.summary
        && held.first_seen_ms == alert.first_seen_ms
        && held.last_change_ms == alert.last_change_ms
        && (alert.state == AlertState::Removed || outside(held) == outside(alert))
}

/// Who we are and where alerts go.
#[derive(Debug, Clone)]
pub struct AlertsContext {
    /// Our team.
    pub team: String,
    /// Our node name.
    pub host: String,
    /// Where alerts and history are stored.
    pub storage: Storage,
    /// Where our own alerts are broadcast.
    pub membership: MembershipHandle,
    /// Where state changes are told (the cluster event log).
    pub events: crate::introspection::EventLog,
}

/// Loads the stored alerts and starts the owner task.
pub fn spawn(context: AlertsContext) -> anyhow::Result<(AlertsHandle, JoinHandle<()>)> {
    let stored = context.storage.alerts().all()?;
    let (inputs, rx) = mpsc::channel(256);
    let (changed, changes) = watch::channel(0);
    let task = AlertsTask {
        table: AlertTable::from_alerts(stored),
        context,
        changed,
        unstored: BTreeSet::new(),
    };
    Ok((AlertsHandle { inputs, changes }, tokio::spawn(task.run(rx))))
}

struct AlertsTask {
    table: AlertTable,
    context: AlertsContext,
    changed: watch::Sender<u64>,
    /// Alerts changed in the table but not stored (storage was failing).
    unstored: BTreeSet<AlertKey>,
}

impl AlertsTask {
    async fn run(mut self, mut inputs: mpsc::Receiver<AlertInput>) {
        while let Some(input) = inputs.recv().await {
            self.handle(input).await;
        }
    }

    async fn handle(&mut self, input: AlertInput) {
        self.store_unstored();
        match input {
            AlertInput::Gossip(payload) => match postcard::from_bytes::<Alert>(&payload) {
                Ok(alert) => self.apply_remote(alert, "gossip"),
                Err(e) => tracing::debug!(error = %e, "undecodable alert broadcast dropped"),
            },
            AlertInput::Synced(alerts) => {
                for alert in alerts {
                    self.apply_remote(alert, "sync");
                }
            }
            AlertInput::Raise {
                name,
                severity,
                summary,
                must_store,
                reply,
            } => {
                let origin = (self.context.team.as_str(), self.context.host.as_str());
                let key = AlertKey {
                    team: self.context.team.clone(),
                    host: self.context.host.clone(),
                    name: name.clone(),
                };
                let was_firing = self
                    .table
                    .get(&key)
                    .is_some_and(|a| a.state == AlertState::Firing);
                let before = self.table.get(&key).cloned();
                let changed = self
                    .table
                    .raise(origin, &name, severity, &summary, unix_ms());
                let answer = self
                    .commit(key, before, changed, must_store, !was_firing)
                    .await;
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
            }
            AlertInput::Clear {
                name,
                summary,
                must_store,
                reply,
            } => {
                let key = AlertKey {
                    team: self.context.team.clone(),
                    host: self.context.host.clone(),
                    name,
                };
                let before = self.table.get(&key).cloned();
                let changed = self.table.clear(&key, summary.as_deref(), unix_ms());
                let answer = self.commit(key, before, changed, must_store, true).await;
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
            }
            AlertInput::Relay(alert) => self.relay(alert).await,
            AlertInput::RelayerGone(host) => self.relayer_gone(&host),
            AlertInput::List(reply) => {
                let _ = reply.send(self.table.all().cloned().collect());
            }
            AlertInput::Digest(reply) => {
                let _ = reply.send(self.table.digest());
            }
            AlertInput::NewerThan(digest, reply) => {
                let _ = reply.send(self.table.newer_than(&digest));
            }
        }
    }

    /// Finishes a change the table made to one of our alerts (`changed`; `before` is what the
    /// table held): with `must_store`, stores it durably first and puts `before` back if that
    /// fails; then stores, records and broadcasts it.
    async fn commit(
        &mut self,
        key: AlertKey,
        before: Option<Alert>,
        changed: Option<Alert>,
        must_store: bool,
        state_changed: bool,
    ) -> ChangeResult {
        let Some(alert) = changed else {
            return Ok(None);
        };
        if must_store {
            if let Err(e) = self.store_durably(&alert).await {
                self.table.restore(key, before);
                tracing::warn!(alert = %alert.key(), error = %e, "alert change refused: storage is failing");
                return Err(AlertChangeError::NotStored(e.to_string()));
            }
        }
        self.publish(&alert, state_changed).await;
        Ok(Some(alert))
    }

    /// Writes `alert` and waits for the flush.
    async fn store_durably(&self, alert: &Alert) -> Result<(), rover_storage::StorageError> {
        self.context.storage.alerts().put(alert)?;
        self.context.storage.flush_async().await
    }

    /// Stores the alerts changed while storage was failing, once it takes writes again.
    fn store_unstored(&mut self) {
        if self.unstored.is_empty() || !self.context.storage.health().is_ok() {
            return;
        }
        let store = self.context.storage.alerts();
        let keys = std::mem::take(&mut self.unstored);
        for key in keys {
            let stored = match self.table.get(&key) {
                Some(alert) => store.put(alert),
                None => store.remove(&key),
            };
            if stored.is_err() {
                self.unstored.insert(key);
            }
        }
        if self.unstored.is_empty() {
            tracing::info!("alerts changed while storage was failing are stored now");
        }
    }

    /// Applies an alert from elsewhere if it is newer than ours, our own alerts included.
    fn apply_remote(&mut self, alert: Alert, via: &str) {
        let Some(alert) = table::sanitized(alert) else {
            tracing::debug!(via, "alert with control characters in its key dropped");
            return;
        };
        let own = alert.team == self.context.team && alert.host == self.context.host;
        let held = own
            .then(|| self.table.get(&alert.key()).map(|a| a.version))
            .flatten();
        // Our own alerts come back to us through peers. A peer's copy newer than ours means
        // our data dir was rolled back (restored, or lost its last writes): we take it, so
        // that our next change gets a version above every copy and wins everywhere.
        let applied = self.table.apply(alert.clone());
        if applied == Applied::Stale {
            return;
        }
        if let Some(held) = held {
            tracing::warn!(alert = %alert.key(), ours = held, theirs = alert.version, via,
                "a peer holds a newer version of our own alert (data dir rolled back?): taking it");
        } else {
            tracing::debug!(alert = %alert.key(), version = alert.version, via, "alert updated");
        }
        self.record(&alert, applied);
    }

    /// See [`AlertInput::RelayerGone`].
    fn relayer_gone(&mut self, host: &str) {
        let hop = format!("{}/{host}", self.context.team);
        let brought: Vec<Alert> = self
            .table
            .all()
            .filter(|a| a.team != self.context.team && a.state != AlertState::Removed)
            .filter(|a| a.path.last() == Some(&hop))
            .cloned()
            .collect();
        if !brought.is_empty() {
            tracing::info!(
                border = host,
                alerts = brought.len(),
                "another team's alerts taken back: the border agent that brought them is gone"
            );
        }
        for alert in brought {
            let removed = Alert {
                state: AlertState::Removed,
                version: alert.version + 1,
                ..alert
            };
            self.table.apply(removed.clone());
            self.record(
                &removed,
                Applied::Updated {
                    state_changed: true,
                },
            );
        }
    }

    /// See [`AlertInput::Relay`].
    async fn relay(&mut self, alert: Alert) {
        if alert.team == self.context.team {
            tracing::debug!(alert = %alert.key(), "not relaying an alert of our own team");
            return;
        }
        let Some(mut alert) = table::sanitized(alert) else {
            return;
        };
        let held = self.table.get(&alert.key());
        let team = self.context.team.as_str();
        if held.is_some_and(|h| relayed_as_given(h, &alert, team)) {
            return;
        }
        if held.is_none() && alert.state == AlertState::Removed {
            return;
        }
        alert.version = held.map_or(0, |h| h.version + 1).max(unix_ms());
        let state_changed = held.is_none_or(|h| h.state != alert.state);
        self.table.apply(alert.clone());
        self.publish(&alert, state_changed).await;
    }

    /// Stores, records and broadcasts a change to one of our own alerts.
    async fn publish(&mut self, alert: &Alert, state_changed: bool) {
        self.record(alert, Applied::Updated { state_changed });
        let item = BroadcastItem {
            topic: Topic::Alert,
            key: alert.key().to_string(),
            version: alert.version,
            payload: postcard::to_stdvec(alert).unwrap_or_default(),
        };
        if let Err(e) = self.context.membership.broadcast(item).await {
            tracing::warn!(error = %e, "alert not broadcast");
        }
    }

    fn record(&mut self, alert: &Alert, applied: Applied) {
        self.changed
            .send_modify(|version| *version = version.wrapping_add(1));
        if let Err(e) = self.context.storage.alerts().put(alert) {
            tracing::warn!(alert = %alert.key(), error = %e, "alert not stored here (kept in memory and gossiped; stored once storage recovers)");
            self.unstored.insert(alert.key());
        }
        let transition = match applied {
            Applied::New => alert.state == AlertState::Firing,
            Applied::Updated { state_changed } => state_changed,
            Applied::Stale => false,
        };
        // Another team's alert: its host is not one of ours, and may share a name with one.
        let ours = alert.team == self.context.team;
        if transition && !ours {
            tracing::info!(alert = %alert.key(), state = ?alert.state, "another team's alert");
        }
        if transition && ours {
            tracing::info!(alert = %alert.key(), state = ?alert.state, severity = ?alert.severity, summary = %alert.summary, "alert");
            self.context
                .events
                .report(crate::introspection::Report::Alert {
                    host: alert.host.clone(),
                    detail: format!(
                        "{} {:?} {:?}: {}",
                        alert.name, alert.state, alert.severity, alert.summary
                    ),
                });
            let entry = HistoryEntry {
                host: alert.host.clone(),
                at_ms: alert.last_change_ms,
                event: HistoryEvent::Alert {
                    name: alert.name.clone(),
                    state: alert.state,
                    severity: alert.severity,
                    summary: alert.summary.clone(),
                },
            };
            if let Err(e) = self.context.storage.history().append(&entry) {
                tracing::error!(error = %e, "cannot record alert in history");
            }
        }
    }
}
