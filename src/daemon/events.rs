//! Routes membership events: membership changes go to storage and history, status samples to
//! history, alert broadcasts to the alerts task, and joining a cluster triggers an alert sync.

use std::sync::Arc;

use anyhow::Result;
use rover_membership::runtime::unix_ms;
use rover_membership::{MemberEvent, MemberInfo, Topic};
use rover_storage::{
    HistoryEntry, HistoryEvent, HistoryStore, MemberStore, MetaStore, Storage, StoredMember,
};
use tokio::sync::{watch, Notify};

use crate::alerts::{AlertInput, AlertsHandle};
use crate::introspection::Report;
use crate::status;

/// Meta key under which the last identity generation is kept.
pub const GENERATION_KEY: &str = "generation";

/// Where membership events go.
#[derive(Debug, Clone)]
pub struct EventRouter {
    /// Storage for members, history and the generation.
    pub storage: Storage,
    /// The alerts owner task.
    pub alerts: AlertsHandle,
    /// Wakes the alert sync (on joining a cluster or meeting a new member).
    pub sync_now: Arc<Notify>,
    /// Grid-control records and key rotation.
    pub grid: crate::grid::GridEvents,
    /// Bumped on every change of the member list (the leadership task and the incident engine
    /// read SWIM then).
    pub members_changed: watch::Sender<u64>,
    /// The topology owner task (records heard by gossip, members that left).
    pub topology: crate::topology::TopologyHandle,
    /// Which hosts' full history this agent keeps (`history.replicas`).
    pub placement: crate::history_replicas::Placement,
    /// The cluster event log.
    pub events: crate::introspection::EventLog,
    /// The border links (link-state advertisements gossiped inside the team).
    pub teams: crate::teams::TeamsHandle,
}

impl EventRouter {
    /// Handles one event; failures are logged, never fatal.
    pub async fn route(&self, event: MemberEvent) {
        if let Some(report) = report_of(&event) {
            self.events.report(report);
        }
        self.grid.route(&event).await;
        self.topology.on_member_event(&event);
        let result = match &event {
            MemberEvent::Up(m) => {
                tracing::info!(member = %m.name, addr = %m.addr, "member alive");
                self.placement.member_up(&m.name);
                self.sync_now.notify_one();
                self.member_changed(m, "alive")
            }
            MemberEvent::Failed(m) => {
                tracing::warn!(member = %m.name, addr = %m.addr, "member failed");
                self.placement.member_gone(&m.name);
                let _ = self
                    .alerts
                    .send(AlertInput::RelayerGone(m.name.clone()))
                    .await;
                self.member_changed(m, "failed")
            }
            MemberEvent::Left(m) => {
                tracing::info!(member = %m.name, "member left");
                self.placement.member_gone(&m.name);
                let _ = self
                    .alerts
                    .send(AlertInput::RelayerGone(m.name.clone()))
                    .await;
                self.member_changed(m, "left")
            }
            MemberEvent::Rejoined(me) => {
                tracing::warn!(
                    generation = me.generation,
                    "rejoined with a new generation (the cluster declared us down, or we keep our node \
                     name from another agent)"
                );
                self.storage
                    .meta()
                    .put_u64(GENERATION_KEY, me.generation)
                    .map_err(Into::into)
            }
            MemberEvent::Idle => {
                tracing::warn!("no other member reachable; re-announcing to known seeds");
                Ok(())
            }
            MemberEvent::Active => {
                tracing::info!("in a cluster");
                self.sync_now.notify_one();
                Ok(())
            }
            MemberEvent::Broadcast(item) => match item.topic {
                Topic::Status => {
                    if let Some(sample) = status::decode_sample(item) {
                        // Every host keeps every host's last sample; only the host's replicas
                        // its full history.
                        if let Err(e) = self.storage.last_samples().put(&sample) {
                            tracing::error!(error = %e, "cannot keep a last status sample");
                        }
                        if self.placement.keeps(&sample.host) {
                            status::record_sample(&self.storage, &sample);
                        }
                    }
                    Ok(())
                }
                Topic::TeamLinks => {
                    self.teams.offer_link_state(&item.payload);
                    Ok(())
                }
                Topic::Alert => self
                    .alerts
                    .send(AlertInput::Gossip(item.payload.clone()))
                    .await
                    .map_err(Into::into),
                _ => Ok(()),
            },
            MemberEvent::Renamed { .. }
            | MemberEvent::Suspected { .. }
            | MemberEvent::Refuted { .. }
            | MemberEvent::ProbeFailed { .. } => Ok(()),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot record membership event");
        }
        if !matches!(
            event,
            MemberEvent::Broadcast(_) | MemberEvent::ProbeFailed { .. }
        ) {
            self.members_changed.send_modify(|n| *n = n.wrapping_add(1));
        }
        if matches!(
            event,
            MemberEvent::Up(_) | MemberEvent::Failed(_) | MemberEvent::Left(_)
        ) {
            // Membership changes are rare: make each durable at once, so a kill -9 right after
            // joining still leaves the peers to rejoin through.
            if let Err(e) = self.storage.flush_async().await {
                tracing::error!(error = %e, "cannot flush storage");
            }
        }
    }

    fn member_changed(&self, m: &MemberInfo, status: &str) -> Result<()> {
        self.storage.members().put(&StoredMember {
            name: m.name.clone(),
            team: m.team.clone(),
            addr: m.addr,
            generation: m.generation,
            status: status.to_owned(),
            updated_ms: unix_ms(),
        })?;
        self.storage.history().append(&HistoryEntry {
            host: m.name.clone(),
            at_ms: m.since_ms.unwrap_or_else(unix_ms),
            event: HistoryEvent::Membership {
                status: status.to_owned(),
                detail: format!("{} generation {}", m.addr, m.generation),
            },
        })?;
        Ok(())
    }
}

/// What the event log hears of a membership event (broadcasts and idleness: nothing).
fn report_of(event: &MemberEvent) -> Option<Report> {
    Some(match event {
        MemberEvent::Up(m) => Report::Up {
            name: m.name.clone(),
            generation: m.generation,
        },
        MemberEvent::Failed(m) => Report::Down {
            name: m.name.clone(),
            generation: m.generation,
        },
        MemberEvent::Left(m) => Report::Left {
            name: m.name.clone(),
        },
        MemberEvent::Renamed { to, .. } => Report::Renamed {
            name: to.name.clone(),
            generation: to.generation,
        },
        MemberEvent::Rejoined(me) => Report::RejoinedMyself {
            generation: me.generation,
        },
        MemberEvent::Active => Report::Active,
        MemberEvent::Suspected {
            name,
            generation,
            incarnation,
            by,
        } => Report::Suspected {
            name: name.clone(),
            detail: format!("generation {generation} incarnation {incarnation}, by {by}"),
        },
        MemberEvent::Refuted { name, incarnation } => Report::Refuted {
            name: name.clone(),
            detail: format!("incarnation {incarnation}"),
        },
        MemberEvent::ProbeFailed { name, generation } => Report::ProbeFailed {
            name: name.clone(),
            detail: format!("generation {generation}: no ack to a direct probe"),
        },
        MemberEvent::Idle | MemberEvent::Broadcast(_) => return None,
    })
}
