//! The border agent's owner task: one per agent with links. It holds each link's state, the
//! RIB of what the links brought, and what was sent on each link; it never waits on a peer.
//!
//! - **Out**: what our team's alert table holds that a link may carry (see [`super::rules`])
//!   goes to the peer once the link is up: a full sync (`SyncStart`, every alert, `SyncEnd`),
//!   then only changes (`UpdateAlert`, `RemoveAlert`). Nothing goes to a team without a
//!   `send-alerts-to` recommendation for its link key.
//! - **In**: an alert received is checked (a `accept-alerts-from` recommendation, an origin
//!   the link justifies), kept in the RIB and relayed into our team with our hop on its path,
//!   so every host of the team lists it.
//! - **Lost**: a link silent for `link_timeout` takes back every alert only it brought
//!   (relayed as removed) and raises the ROVER alert `team-link/<team>` on this host; it is
//!   cleared once the link is up again and its full sync has arrived.
//!
//! Frames are queued on the connection's outbox with `try_send`: a peer that lets
//! [`super::link_io::OUTBOX_FRAMES`] pile up is closed (counted `slow_peer`), never waited for.

use std::collections::{BTreeMap, BTreeSet};

use rover_storage::{Alert, AlertKey, AlertState};
use tokio::sync::{mpsc, oneshot, watch};

mod outbound;
mod transit;

use super::link_io::PeerHello;
use super::rib::{Rib, RibChange};
use super::wire::{self, LinkFrame, LinkMode};
use super::{LinkStatus, Trust};
use crate::config::teams::LinkConfig;

/// What the connections, the trust watcher and the API tell the owner.
#[derive(Debug)]
pub enum Input {
    /// A connection finished its handshake and Hellos.
    Connected {
        /// The link.
        link: usize,
        /// The connection's id.
        conn: u64,
        /// Where its frames go.
        outbox: mpsc::Sender<Vec<u8>>,
        /// Whether we dialed it.
        dialed: bool,
        /// What the peer said.
        hello: PeerHello,
    },
    /// A frame arrived.
    Frame {
        /// The link.
        link: usize,
        /// The connection.
        conn: u64,
        /// The frame.
        frame: LinkFrame,
    },
    /// A connection ended.
    Dropped {
        /// The link.
        link: usize,
        /// The connection.
        conn: u64,
        /// Why.
        reason: &'static str,
    },
    /// Something was refused (a handshake, a frame), counted per reason.
    Refused {
        /// The link, when known.
        link: Option<usize>,
        /// Why.
        reason: &'static str,
    },
    /// The trust recommendations in force changed.
    Trust(Trust),
    /// A link-state advertisement gossiped inside our team.
    LinkState(wire::LinkStateAd),
    /// The API asks for every link's state.
    Status(oneshot::Sender<Vec<LinkStatus>>),
    /// The API asks for the refusals no link could be named for.
    Refusals(oneshot::Sender<BTreeMap<String, u64>>),
}

/// Whether a link is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not up since the agent started.
    Never,
    /// Up: a connection, or frames heard within `link_timeout`.
    Up,
    /// It was up and then silent for `link_timeout`.
    Lost,
}

/// What a link wants of its ROVER alert: `Some(Some(summary))` raised, `Some(None)` cleared,
/// `None` not decided yet (at start: the alert stays as stored until the link settles).
pub type RoverAlertWish = watch::Receiver<Option<Option<String>>>;

/// How often the tick takes back what no link brings any more (table changes do it too).
const SWEEP_EVERY_MS: u64 = 5_000;

/// One link's state.
struct Link {
    config: LinkConfig,
    id: [u8; 32],
    phase: Phase,
    since_ms: u64,
    conn: Option<(u64, mpsc::Sender<Vec<u8>>, bool)>,
    peer: Option<PeerHello>,
    heard_ms: u64,
    /// What the peer holds of ours, as sent: key -> (version, removed).
    sent: BTreeMap<AlertKey, u64>,
    updates_in: u64,
    updates_out: u64,
    dropped: BTreeMap<&'static str, u64>,
    connected: watch::Sender<bool>,
    /// Whether the peer's full sync has arrived since the link came up.
    synced: bool,
}

/// The owner's state. See the module docs.
pub struct Border {
    team: String,
    hop: String,
    links: Vec<Link>,
    rib: Rib,
    trust: Trust,
    timeout_ms: u64,
    started_ms: u64,
    /// Alerts to relay into our team, by key (the latest wins), drained without waiting.
    relays: BTreeMap<AlertKey, Alert>,
    /// The ROVER alert each link wants (see [`RoverAlertWish`]).
    rover: Vec<watch::Sender<Option<Option<String>>>>,
    /// When the tick last swept.
    swept_ms: u64,
    /// Refusals whose link is not known (handshakes with unknown keys, limits).
    refused: BTreeMap<&'static str, u64>,
    /// Transit links' link state and routes.
    link_state: transit::LinkState,
}

impl Border {
    /// The owner for `links`, with a `connected` and a ROVER-alert watch per link.
    pub fn new(
        team: &str,
        host: &str,
        links: &[LinkConfig],
        timeout_ms: u64,
        now_ms: u64,
    ) -> (Self, Vec<watch::Receiver<bool>>, Vec<RoverAlertWish>) {
        let mut connected = Vec::new();
        let mut rover = Vec::new();
        let mut rover_rx = Vec::new();
        let links = links
            .iter()
            .map(|config| {
                let (tx, rx) = watch::channel(false);
                connected.push(rx);
                let (rtx, rrx) = watch::channel(None);
                rover.push(rtx);
                rover_rx.push(rrx);
                Link {
                    id: super::link_id(&config.key),
                    config: config.clone(),
                    phase: Phase::Never,
                    since_ms: now_ms,
                    conn: None,
                    peer: None,
                    heard_ms: now_ms,
                    sent: BTreeMap::new(),
                    updates_in: 0,
                    updates_out: 0,
                    dropped: BTreeMap::new(),
                    connected: tx,
                    synced: false,
                }
            })
            .collect();
        let border = Self {
            team: team.to_owned(),
            hop: format!("{team}/{host}"),
            links,
            rib: Rib::new(super::rib::DEFAULT_MAX_PER_LINK),
            trust: Trust::default(),
            timeout_ms,
            started_ms: now_ms,
            relays: BTreeMap::new(),
            rover,
            refused: BTreeMap::new(),
            link_state: transit::LinkState::default(),
            swept_ms: now_ms,
        };
        (border, connected, rover_rx)
    }

    /// Takes the relays queued so far.
    pub fn relays(&mut self) -> &mut BTreeMap<AlertKey, Alert> {
        &mut self.relays
    }

    /// Handles one input at `now_ms`; `table` is our team's alert table as last read.
    pub fn handle_input(&mut self, input: Input, table: &[Alert], now_ms: u64) {
        match input {
            Input::Connected {
                link,
                conn,
                outbox,
                dialed,
                hello,
            } => self.connected(link, conn, outbox, dialed, hello, table),
            Input::Frame { link, conn, frame } => {
                if self
                    .links
                    .get(link)
                    .and_then(|l| l.conn.as_ref())
                    .map(|c| c.0)
                    == Some(conn)
                {
                    self.links[link].heard_ms = now_ms;
                    self.heard_first(link, table, now_ms);
                    self.frame(link, frame, table);
                }
            }
            Input::Dropped { link, conn, reason } => {
                let Some(l) = self.links.get_mut(link) else {
                    return;
                };
                if l.conn.as_ref().map(|c| c.0) == Some(conn) {
                    tracing::info!(team = %l.config.team, reason, "team link connection ended");
                    l.conn = None;
                    l.connected.send_replace(false);
                    if !matches!(reason, "replaced" | "closed") {
                        *l.dropped.entry(reason).or_default() += 1;
                    }
                }
            }
            Input::Refused { link, reason } => match link.and_then(|i| self.links.get_mut(i)) {
                Some(l) => *l.dropped.entry(reason).or_default() += 1,
                None => *self.refused.entry(reason).or_default() += 1,
            },
            Input::Trust(trust) => self.trust_changed(trust, table),
            Input::LinkState(ad) => self.learn(ad, None, table),
            Input::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Input::Refusals(reply) => {
                let _ = reply.send(
                    self.refused
                        .iter()
                        .map(|(reason, n)| ((*reason).to_owned(), *n))
                        .collect(),
                );
            }
        }
    }

    /// Advertisements to gossip inside our team, taken.
    pub fn take_gossip(&mut self) -> Vec<wire::LinkStateAd> {
        std::mem::take(&mut self.link_state.to_gossip)
    }

    fn connected(
        &mut self,
        index: usize,
        conn: u64,
        outbox: mpsc::Sender<Vec<u8>>,
        dialed: bool,
        hello: PeerHello,
        table: &[Alert],
    ) {
        let Some(link) = self.links.get_mut(index) else {
            return;
        };
        // Both ends may dial at once: the connection dialed by the lower team name stays.
        let preferred = |dialed: bool| dialed == (self.team < link.config.team);
        if let Some((_, _, held_dialed)) = &link.conn {
            if preferred(*held_dialed) || !preferred(dialed) {
                return; // dropping `outbox` closes the new connection
            }
        }
        tracing::debug!(team = %link.config.team, peer = %hello.host, "team link connected");
        link.conn = Some((conn, outbox, dialed));
        link.peer = Some(hello);
        link.connected.send_replace(true);
        self.send_link_state(index);
        self.full_sync(index, table);
    }

    /// A link is up once the peer's first frame after the Hellos arrives (a peer that shakes
    /// hands and then refuses us never is).
    fn heard_first(&mut self, index: usize, table: &[Alert], now_ms: u64) {
        if self.links[index].phase == Phase::Up {
            return;
        }
        let mode = self.mode(index);
        let link = &mut self.links[index];
        tracing::info!(team = %link.config.team, %mode, "team link up");
        link.phase = Phase::Up;
        link.since_ms = now_ms;
        link.synced = false;
        self.advertise(table, now_ms);
        self.send_link_state(index);
    }

    /// New trust recommendations: a link no longer accepted gives back what it brought; one
    /// accepted anew connects again, so the peer's full sync (refused until now) comes again.
    fn trust_changed(&mut self, trust: Trust, table: &[Alert]) {
        let old = std::mem::replace(&mut self.trust, trust);
        for index in 0..self.links.len() {
            let (id, team) = (self.links[index].id, self.links[index].config.team.clone());
            let (had, has) = (old.accept.contains(&id), self.trust.accept.contains(&id));
            if had && !has {
                self.drop_paths(&team, |rib| rib.remove_link(&team));
            }
            if !had && has && self.links[index].conn.is_some() {
                tracing::info!(%team, "team link accepted anew: connecting again for a full sync");
                self.close(index);
            }
        }
        self.send_changes(table);
    }

    /// Closes link `index`'s connection (the dialers open a new one).
    pub(super) fn close(&mut self, index: usize) {
        let link = &mut self.links[index];
        link.conn = None;
        link.connected.send_replace(false);
        link.sent.clear();
    }

    /// Takes back what we brought into our team and no link of ours holds any more, once
    /// the link it came by has settled (synced since it came up, lost, never up in time, or
    /// no longer configured): what a restart, a mode change or a removed link left behind.
    pub(super) fn sweep(&mut self, table: &[Alert], now_ms: u64) {
        let stale: Vec<AlertKey> = table
            .iter()
            .filter(|a| a.team != self.team && a.state != AlertState::Removed)
            .filter(|a| a.path.last() == Some(&self.hop))
            .filter(|a| {
                let key = a.key();
                self.rib.get(&key).is_none() && !self.relays.contains_key(&key)
            })
            .filter(|a| {
                let via = a
                    .path
                    .len()
                    .checked_sub(2)
                    .and_then(|i| super::hop::team_of(&a.path[i]));
                self.settled(via, now_ms)
            })
            .map(Alert::key)
            .collect();
        if !stale.is_empty() {
            tracing::info!(
                alerts = stale.len(),
                "taking back other teams' alerts no link brings any more"
            );
            self.take_back(stale);
        }
    }

    fn settled(&self, via: Option<&str>, now_ms: u64) -> bool {
        let link = via.and_then(|team| self.links.iter().find(|l| l.config.team == team));
        match link {
            None => true,
            Some(link) => match link.phase {
                Phase::Up => link.synced,
                Phase::Lost => true,
                Phase::Never => now_ms.saturating_sub(self.started_ms) >= self.timeout_ms,
            },
        }
    }

    fn frame(&mut self, index: usize, frame: LinkFrame, table: &[Alert]) {
        let link = &mut self.links[index];
        let team = link.config.team.clone();
        match frame {
            LinkFrame::Heartbeat | LinkFrame::Hello { .. } => {}
            LinkFrame::LinkState(ad) => {
                if self.mode(index) == LinkMode::Transit {
                    self.learn(ad, Some(index), table);
                } else {
                    *self.links[index]
                        .dropped
                        .entry("link_state_on_direct")
                        .or_default() += 1;
                }
            }
            LinkFrame::SyncStart => self.rib.sync_started(&team),
            LinkFrame::SyncEnd { .. } => {
                link.synced = true;
                self.drop_paths(&team, |rib| rib.sync_finished(&team));
                self.rover[index].send_replace(Some(None));
                self.sweep(table, rover_membership::runtime::unix_ms());
            }
            LinkFrame::UpdateAlert(alert) => {
                link.updates_in += 1;
                if !self.trust.accept.contains(&link.id) {
                    *link.dropped.entry("not_trusted").or_default() += 1;
                    return;
                }
                let mode = self.mode(index);
                if let Err(reason) = super::rules::justify(&self.team, &team, mode, &alert) {
                    *self.links[index]
                        .dropped
                        .entry(reason.reason())
                        .or_default() += 1;
                    return;
                }
                match self.rib.update(&team, alert.clone()) {
                    RibChange::New | RibChange::Replaced => self.bring_in(&alert.key()),
                    RibChange::Refused(refusal) => {
                        *self.links[index]
                            .dropped
                            .entry(refusal.reason())
                            .or_default() += 1;
                    }
                    _ => {}
                }
            }
            LinkFrame::RemoveAlert { key, version } => {
                if self.rib.remove(&team, &key, version) == RibChange::Removed {
                    self.take_back(vec![key]);
                } else {
                    self.bring_in(&key);
                }
            }
            LinkFrame::RemoveTeamAlerts { team: gone } => {
                self.drop_paths(&team, |rib| rib.remove_team(&team, &gone));
            }
        }
    }

    /// The mode both ends agreed on (direct until the peer said).
    fn mode(&self, index: usize) -> LinkMode {
        let link = &self.links[index];
        link.peer
            .as_ref()
            .map_or(LinkMode::Direct, |p| link.config.mode.agreed(p.mode))
    }

    /// Queues the RIB's alert `key` for our team, with our hop on its path.
    fn bring_in(&mut self, key: &AlertKey) {
        if let Some(alert) = self.rib.get(key) {
            let mut alert = alert.clone();
            if alert.path.last() != Some(&self.hop) {
                alert.path.push(self.hop.clone());
            }
            self.relays.insert(key.clone(), alert);
        }
    }

    /// Runs a RIB operation that drops paths of link `team`: what is gone is taken back, what
    /// another link still carries is brought in again with the path it has now.
    fn drop_paths(&mut self, team: &str, drop: impl FnOnce(&mut Rib) -> Vec<Alert>) {
        let before = self.rib.carried_by(team);
        let gone: BTreeSet<AlertKey> = drop(&mut self.rib).iter().map(Alert::key).collect();
        for key in before {
            if !gone.contains(&key) && self.rib.get(&key).is_some() {
                self.bring_in(&key);
            }
        }
        self.take_back(gone.into_iter().collect());
    }

    /// Queues the removal of alerts the RIB no longer holds (relayed as removed).
    fn take_back(&mut self, keys: Vec<AlertKey>) {
        for key in keys {
            let alert = self.relays.remove(&key).unwrap_or_else(|| Alert {
                team: key.team.clone(),
                host: key.host.clone(),
                name: key.name.clone(),
                severity: rover_storage::Severity::Warning,
                summary: String::new(),
                first_seen_ms: 0,
                last_change_ms: 0,
                version: 0,
                state: AlertState::Removed,
                path: vec![self.hop.clone()],
            });
            self.relays.insert(
                key,
                Alert {
                    state: AlertState::Removed,
                    ..alert
                },
            );
        }
    }

    /// Looks at every link's silence at `now_ms`: a link up and silent for the timeout is
    /// lost; one never up after the timeout since start raises its ROVER alert too.
    pub fn handle_tick(&mut self, table: &[Alert], now_ms: u64) {
        for index in 0..self.links.len() {
            let link = &mut self.links[index];
            let silent = now_ms.saturating_sub(link.heard_ms) >= self.timeout_ms;
            match link.phase {
                Phase::Up if silent && link.conn.is_none() => {
                    tracing::warn!(team = %link.config.team, "team link lost");
                    link.phase = Phase::Lost;
                    link.since_ms = now_ms;
                    link.sent.clear();
                    let summary = format!(
                        "link to team {} lost (silent for {} s)",
                        link.config.team,
                        self.timeout_ms / 1000
                    );
                    let team = link.config.team.clone();
                    self.rover[index].send_replace(Some(Some(summary)));
                    self.drop_paths(&team, |rib| rib.remove_link(&team));
                    self.tell_team_lost(&team);
                }
                Phase::Never
                    if now_ms.saturating_sub(self.started_ms) >= self.timeout_ms
                        && !matches!(*self.rover[index].borrow(), Some(Some(_))) =>
                {
                    let summary = format!(
                        "link to team {} not up since the agent started ({})",
                        link.config.team,
                        link.dropped
                            .iter()
                            .max_by_key(|(_, n)| **n)
                            .map_or("no answer", |(reason, _)| reason)
                    );
                    self.rover[index].send_replace(Some(Some(summary)));
                }
                _ => {}
            }
        }
        self.advertise(table, now_ms);
        if now_ms.saturating_sub(self.swept_ms) >= SWEEP_EVERY_MS {
            self.swept_ms = now_ms;
            self.sweep(table, now_ms);
        }
    }

    /// Every link's state, for `teams` and `/metrics`.
    pub fn status(&self) -> Vec<LinkStatus> {
        self.links
            .iter()
            .enumerate()
            .map(|(index, link)| LinkStatus {
                team: link.config.team.clone(),
                peer: link.config.peer.clone(),
                peer_host: link.peer.as_ref().map(|p| p.host.clone()),
                // As agreed once the peer said; as configured before.
                mode: match link.peer {
                    Some(_) => self.mode(index).to_string(),
                    None => link.config.mode.to_string(),
                },
                state: match link.phase {
                    Phase::Never => "down",
                    Phase::Up => "up",
                    Phase::Lost => "lost",
                }
                .to_owned(),
                since_ms: link.since_ms,
                connected: link.conn.is_some(),
                synced: link.synced,
                alerts_in: self.rib.count_from(&link.config.team) as u64,
                alerts_out: link.sent.len() as u64,
                updates_in: link.updates_in,
                updates_out: link.updates_out,
                last_heard_ms: (link.phase != Phase::Never).then_some(link.heard_ms),
                dropped: link
                    .dropped
                    .iter()
                    .map(|(reason, n)| ((*reason).to_owned(), *n))
                    .collect(),
                trusted_send: self.trust.send.contains(&link.id),
                trusted_accept: self.trust.accept.contains(&link.id),
                link_id: super::link_id_text(&link.id),
                link_id_base64: {
                    use base64::Engine;
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(link.id)
                },
            })
            .collect()
    }
}
