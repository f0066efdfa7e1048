//! Teams and border forwarding (seed 000): a team is one gossip cluster; a border agent holds
//! sealed TCP links, each with a key only the two teams share, to border agents of other
//! teams, and shares alerts with the teams its team trusts.
//!
//! - [`hop`], [`wire`]: names on paths, and the frames on a link.
//! - [`rib`]: what the links brought, keyed by origin, with the path of each copy.
//! - [`rules`]: what a link may carry (direct: only the two teams' own alerts; transit: along
//!   the routes) and the checks on what it brings.
//! - [`routes`]: link state and one shortest path per (origin team, destination team).
//! - [`link_io`]: the listener, the dialers and the pump of each connection.
//! - [`border`]: the owner task's state (links, RIB, what was sent); [`spawn`] wires it.
//!
//! Trust comes from the grid-control records: a link carries our alerts only with a
//! `send-alerts-to` recommendation, and takes alerts only with `accept-alerts-from`, about the
//! link's id ([`link_id`], from its pairwise key; `teams` shows it).

pub mod border;
pub mod hop;
pub mod link_io;
pub mod rib;
pub mod routes;
pub mod rules;
pub mod wire;

#[cfg(test)]
mod figure_tests;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rover_membership::runtime::unix_ms;
use rover_membership::ClusterKey;
use rover_storage::Alert;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};

use self::border::{Border, Input};
use self::link_io::{LinkEnd, LocalEnd};
use crate::alerts::AlertsHandle;
use crate::config::teams::TeamsConfig;
use crate::daemon::supervisor::{Stop, Supervisor};
use crate::grid::GridHandle;

/// How often the owner looks at silences and retries relays the alerts task had no room for.
const TICK: Duration = Duration::from_millis(250);

/// The trust recommendations in force about link ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// Link ids we may send our alerts to.
    pub send: BTreeSet<[u8; 32]>,
    /// Link ids we take alerts from.
    pub accept: BTreeSet<[u8; 32]>,
}

/// One link as `teams` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStatus {
    /// The other team.
    pub team: String,
    /// Its border agent's address, as configured.
    pub peer: String,
    /// Its border agent's host name, once it said it.
    pub peer_host: Option<String>,
    /// `direct` or `transit` (as both ends agreed).
    pub mode: String,
    /// `up`, `lost` or `down` (never up since the agent started).
    pub state: String,
    /// When it entered that state (ms since the epoch).
    pub since_ms: u64,
    /// Whether a connection is open now.
    pub connected: bool,
    /// Whether the peer's full sync has arrived since the link came up.
    pub synced: bool,
    /// Alerts held from the link.
    pub alerts_in: u64,
    /// Alerts the peer holds from us.
    pub alerts_out: u64,
    /// UpdateAlert frames received.
    pub updates_in: u64,
    /// UpdateAlert frames sent.
    pub updates_out: u64,
    /// When a frame was last heard.
    pub last_heard_ms: Option<u64>,
    /// Frames and connections refused, by reason.
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// Whether a `send-alerts-to` recommendation is in force for the link.
    pub trusted_send: bool,
    /// Whether an `accept-alerts-from` recommendation is in force for the link.
    pub trusted_accept: bool,
    /// The link's id, the key trust recommendations name (64 hex digits).
    pub link_id: String,
    /// The same id as `trust list` shows it (unpadded URL-safe base64).
    pub link_id_base64: String,
}

/// The id of a link: trust recommendations name it. Derived from the pairwise key, so both
/// teams compute the same id and nobody without the key learns the key from it.
pub fn link_id(key: &ClusterKey) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"rover-agent team link id v1");
    hash.update(key.to_base64().as_bytes());
    hash.finalize().into()
}

/// [`link_id`] as text: 64 hex digits, as `trust add` takes it (never starting with `-`,
/// which a command line would read as an option).
pub fn link_id_text(id: &[u8; 32]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// A handle to the owner task (absent when the agent has no link).
#[derive(Debug, Clone)]
pub struct TeamsHandle {
    inputs: Option<mpsc::Sender<Input>>,
}

impl TeamsHandle {
    /// Connections to the link port refused before any link could be named (a key no link
    /// holds, over the limits, a handshake too slow), by reason.
    pub async fn refusals(&self) -> std::collections::BTreeMap<String, u64> {
        let Some(inputs) = &self.inputs else {
            return Default::default();
        };
        let (tx, rx) = oneshot::channel();
        if inputs.send(Input::Refusals(tx)).await.is_err() {
            return Default::default();
        }
        rx.await.unwrap_or_default()
    }

    /// A link-state advertisement heard by gossip (dropped when checked bad, or when the
    /// owner is busy: the next refresh repeats it).
    pub fn offer_link_state(&self, payload: &[u8]) {
        let Some(inputs) = &self.inputs else { return };
        match postcard::from_bytes::<wire::LinkStateAd>(payload) {
            Ok(ad) if wire::check_ad(&ad).is_ok() => {
                let _ = inputs.try_send(Input::LinkState(ad));
            }
            _ => {}
        }
    }

    /// Every link's state (empty without links).
    pub async fn status(&self) -> Vec<LinkStatus> {
        let Some(inputs) = &self.inputs else {
            return Vec::new();
        };
        let (tx, rx) = oneshot::channel();
        if inputs.send(Input::Status(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

/// What the teams tasks need.
pub struct TeamsContext {
    /// Our team.
    pub team: String,
    /// Our host name.
    pub host: String,
    /// `[team]`.
    pub config: TeamsConfig,
    /// The alert table.
    pub alerts: AlertsHandle,
    /// The records (trust).
    pub grid: GridHandle,
    /// Gossip, for link-state advertisements inside the team.
    pub membership: rover_membership::MembershipHandle,
}

/// Starts the listener, the dialers and the owner under `supervisor` (nothing without links).
pub async fn start(context: TeamsContext, supervisor: &mut Supervisor) -> Result<TeamsHandle> {
    let config = context.config.clone();
    clear_unconfigured_rover_alerts(&context).await;
    let keyring = context.membership.status().await?.keyring;
    if let Some(link) = config
        .links
        .iter()
        .find(|l| keyring.by_id(l.key.id()).is_some())
    {
        anyhow::bail!(
            "team.link to {}: its key_file holds this cluster's own key (the other team would hold our gossip key): give the link a key of its own (`rover-agent keygen`)",
            link.team
        );
    }
    let Some(bind) = config.link_bind.filter(|_| !config.links.is_empty()) else {
        return Ok(TeamsHandle { inputs: None });
    };
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen for team links on {bind} (team.link_bind)"))?;
    tracing::info!(%bind, links = config.links.len(), "listening for team links");
    let timeout_ms = u64::try_from(config.link_timeout.as_millis()).unwrap_or(u64::MAX);
    // The links open knowing the trust in force, so nothing the peer syncs at once is refused.
    let trust = read_trust(&context.grid).await;
    let (mut border, connected, rover) = Border::new(
        &context.team,
        &context.host,
        &config.links,
        timeout_ms,
        unix_ms(),
    );
    border.handle_input(Input::Trust(trust.clone()), &[], unix_ms());
    let (tx, rx) = mpsc::channel(4096);
    let local = LocalEnd {
        team: context.team.clone(),
        host: context.host.clone(),
    };
    let ends: Vec<LinkEnd> = config
        .links
        .iter()
        .enumerate()
        .map(|(index, link)| LinkEnd {
            index,
            team: link.team.clone(),
            key: link.key.clone(),
            mode: link.mode,
        })
        .collect();
    supervisor.spawn_critical(
        "team-links-listener",
        Stop::Dropped,
        link_io::listen(
            listener,
            local.clone(),
            ends.clone(),
            config.link_timeout,
            tx.clone(),
        ),
    );
    for ((end, link), connected) in ends.iter().zip(&config.links).zip(connected) {
        supervisor.spawn_critical(
            "team-link-dialer",
            Stop::Dropped,
            link_io::dial(
                link.peer.clone(),
                local.clone(),
                end.clone(),
                config.link_timeout,
                tx.clone(),
                connected,
            ),
        );
    }
    for (link, wants) in config.links.iter().zip(rover) {
        supervisor.spawn_critical(
            "team-link-alert",
            Stop::Dropped,
            rover_alert(link.team.clone(), wants, context.alerts.clone()),
        );
    }
    supervisor.spawn_critical(
        "team-trust",
        Stop::Dropped,
        watch_trust(context.grid.clone(), tx.clone(), trust),
    );
    let (gossip_tx, gossip_rx) = mpsc::channel(64);
    supervisor.spawn_critical(
        "team-link-state-gossip",
        Stop::Dropped,
        gossip_link_state(gossip_rx, context.membership.clone()),
    );
    supervisor.spawn_critical(
        "team-links",
        Stop::Dropped,
        run(border, rx, context.alerts.clone(), gossip_tx),
    );
    Ok(TeamsHandle { inputs: Some(tx) })
}

/// Clears this host's ROVER alerts `team-link/<team>` for teams it no longer has a link to (a
/// link removed or renamed in the config left its alert firing).
async fn clear_unconfigured_rover_alerts(context: &TeamsContext) {
    let Ok(alerts) = context.alerts.list().await else {
        return;
    };
    for alert in alerts {
        let Some(team) = alert.name.strip_prefix("team-link/") else {
            continue;
        };
        let ours = alert.team == context.team && alert.host == context.host;
        let configured = context.config.links.iter().any(|l| l.team == team);
        if ours && !configured && alert.state == rover_storage::AlertState::Firing {
            let summary = format!("no link to team {team} is configured any more");
            if let Err(e) = context
                .alerts
                .clear(&alert.name, Some(&summary), false)
                .await
            {
                tracing::warn!(error = %e, alert = %alert.name, "cannot clear a ROVER alert");
            }
        }
    }
}

/// The owner loop: inputs, table changes and ticks; never waits on a peer or the alerts task.
async fn run(
    mut border: Border,
    mut inputs: mpsc::Receiver<Input>,
    alerts: AlertsHandle,
    gossip: mpsc::Sender<wire::LinkStateAd>,
) {
    let table_rx = watch_table(alerts.clone());
    let mut table_rx = table_rx;
    let mut table: Arc<Vec<Alert>> = table_rx.borrow().clone();
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            input = inputs.recv() => {
                let Some(input) = input else { return };
                border.handle_input(input, &table, unix_ms());
            }
            changed = table_rx.changed() => {
                if changed.is_err() { return; }
                table = table_rx.borrow_and_update().clone();
                border.handle_table(&table, unix_ms());
            }
            _ = tick.tick() => border.handle_tick(&table, unix_ms()),
        }
        for ad in border.take_gossip() {
            if gossip.try_send(ad).is_err() {
                tracing::debug!("team link-state gossip queue full (the next refresh repeats it)");
            }
        }
        let relays = border.relays();
        while let Some((key, alert)) = relays.pop_first() {
            if let Err(alert) = alerts.try_relay(alert) {
                relays.insert(key, *alert);
                break;
            }
        }
    }
}

/// Gossips our team's link-state advertisements as they come.
async fn gossip_link_state(
    mut ads: mpsc::Receiver<wire::LinkStateAd>,
    membership: rover_membership::MembershipHandle,
) {
    while let Some(ad) = ads.recv().await {
        let item = rover_membership::BroadcastItem {
            topic: rover_membership::Topic::TeamLinks,
            key: ad.border.clone(),
            version: ad.seq,
            payload: postcard::to_stdvec(&ad).unwrap_or_default(),
        };
        if let Err(e) = membership.broadcast(item).await {
            tracing::debug!(error = %e, "link state not gossiped");
        }
    }
}

/// A task that reads the alert table whenever it changes and publishes it.
fn watch_table(alerts: AlertsHandle) -> watch::Receiver<Arc<Vec<Alert>>> {
    let (tx, rx) = watch::channel(Arc::new(Vec::new()));
    tokio::spawn(async move {
        let mut changes = alerts.changes();
        loop {
            match alerts.list().await {
                Ok(table) => {
                    if tx.send(Arc::new(table)).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
            if changes.changed().await.is_err() {
                return;
            }
            // Changes in a burst are read once.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    rx
}

/// The trust recommendations in force now.
async fn read_trust(grid: &GridHandle) -> Trust {
    use rover_storage::grid::payload::TrustWhat;
    let mut trust = Trust::default();
    for (what, set) in [
        (TrustWhat::SendAlertsTo, &mut trust.send),
        (TrustWhat::AcceptAlertsFrom, &mut trust.accept),
    ] {
        if let Ok(recommendations) = crate::grid::services::trusted_for(grid, what).await {
            set.extend(recommendations.into_iter().map(|r| r.who));
        }
    }
    trust
}

/// Reads the trust recommendations whenever the records change and tells the owner (it
/// started with `first`).
async fn watch_trust(grid: GridHandle, owner: mpsc::Sender<Input>, first: Trust) {
    let mut changes = grid.changes();
    let mut last = first;
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        let trust = read_trust(&grid).await;
        if trust != last {
            last = trust.clone();
            if owner.send(Input::Trust(trust)).await.is_err() {
                return;
            }
        }
    }
}

/// Raises and clears the ROVER alert `team-link/<team>` on this host as the owner wants it.
async fn rover_alert(team: String, mut wants: border::RoverAlertWish, alerts: AlertsHandle) {
    let name = format!("team-link/{team}");
    loop {
        let wanted = wants.borrow_and_update().clone();
        let done = match &wanted {
            None => true,
            Some(Some(summary)) => alerts
                .raise(&name, rover_storage::Severity::Critical, summary, false)
                .await
                .is_ok(),
            Some(None) => alerts
                .clear(&name, Some(&format!("link to team {team} up again")), false)
                .await
                .is_ok(),
        };
        if !done {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if wants.changed().await.is_err() {
            return;
        }
    }
}
