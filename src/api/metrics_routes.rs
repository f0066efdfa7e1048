//! `/metrics`: what an operator graphs, in the Prometheus text format (0.0.4), checked by
//! `promtool check metrics` in tests/metrics.rs. Every family has HELP and TYPE; counters end
//! in `_total`; times are in seconds and sizes in bytes.
//!
//! Families: gossip traffic and drops by reason; cluster-port handshakes and refusals by
//! reason; API evictions; storage health and size; members by status; alerts by team, state
//! and severity; open incidents by kind; ledger notifications by channel and outcome; this
//! agent's sends by channel and outcome, and their time (a histogram); the Raft term, whether
//! this agent leads and the leader mode; anti-entropy rounds and what they moved; check runs
//! by check and state; topology nodes by kind and LLDP/CDP frames; grid-control records; the
//! event log; the log's own losses.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::State;
use rover_election::ledger::{IncidentKind, IncidentState, Outcome};
use rover_storage::{AlertState, Severity};

use super::server::{unavailable, ApiError, ApiState};
use super::StatusCounts;
use crate::leadership::Mode;
use crate::notify::send_stats::BUCKET_BOUNDS_S;

/// The text being written: families, each with its HELP and TYPE lines, then its samples.
#[derive(Default)]
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, label)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(label));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`.
pub(super) async fn metrics(State(state): State<ApiState>) -> Result<String, ApiError> {
    let mut text = Exposition::default();
    gossip_and_ports(&state, &mut text).await?;
    storage(&state, &mut text).await;
    members_and_alerts(&state, &mut text).await?;
    ledger_and_leadership(&state, &mut text);
    sends(&state, &mut text);
    syncs_and_checks(&mut text);
    topology(&state, &mut text).await;
    team_links(&state, &mut text).await;
    let mut out = text.out;
    super::grid_routes::metrics(&state, &mut out).await;
    if let Ok(events) = state.events.counts().await {
        out.push_str(&crate::introspection::metrics(&events));
    }
    out.push_str(&crate::daemon::log_sink::metrics());
    Ok(out)
}

async fn gossip_and_ports(state: &ApiState, text: &mut Exposition) -> Result<(), ApiError> {
    let c = state
        .membership
        .status()
        .await
        .map_err(unavailable)?
        .counters;
    for (name, help, value) in [
        (
            "rover_gossip_packets_in_total",
            "Datagrams received.",
            c.packets_in,
        ),
        ("rover_gossip_bytes_in_total", "Bytes received.", c.bytes_in),
        (
            "rover_gossip_packets_out_total",
            "Datagrams sent.",
            c.packets_out,
        ),
        ("rover_gossip_bytes_out_total", "Bytes sent.", c.bytes_out),
        (
            "rover_gossip_dropped_unsealed_total",
            "Datagrams that failed to open.",
            c.dropped_unsealed,
        ),
        (
            "rover_gossip_dropped_rejected_total",
            "Opened datagrams SWIM rejected.",
            c.dropped_rejected,
        ),
        (
            "rover_gossip_dropped_version_total",
            "Datagrams of another envelope version.",
            c.dropped_version,
        ),
        (
            "rover_gossip_dropped_replayed_total",
            "Datagrams already seen inside the replay window.",
            c.dropped_replayed,
        ),
        (
            "rover_gossip_dropped_stale_total",
            "Datagrams sent outside the replay window (clock skew or replay).",
            c.dropped_stale,
        ),
    ] {
        text.single(name, "counter", help, value);
    }
    text.family(
        "rover_gossip_dropped_total",
        "counter",
        "Datagrams dropped, by reason (the same counts as the rover_gossip_dropped_<reason>_total series).",
    );
    for (reason, n) in [
        ("unsealed", c.dropped_unsealed),
        ("rejected", c.dropped_rejected),
        ("version", c.dropped_version),
        ("replayed", c.dropped_replayed),
        ("stale", c.dropped_stale),
        ("other_team", c.dropped_other_team),
    ] {
        text.sample("rover_gossip_dropped_total", &[("reason", reason)], n);
    }
    let sent = crate::peer::SENT.read();
    text.single(
        "rover_api_connections_evicted_total",
        "counter",
        "API connections closed to make room, or refused because all were busy.",
        super::connections::EVICTED.load(std::sync::atomic::Ordering::Relaxed),
    );
    text.single(
        "rover_cluster_handshakes_total",
        "counter",
        "Cluster-port handshakes completed.",
        sent.handshakes,
    );
    text.single(
        "rover_cluster_bytes_out_total",
        "counter",
        "Bytes sent on the cluster TCP port (handshakes included).",
        sent.bytes_out,
    );
    let refused = crate::peer::limits::REFUSED.read();
    text.family(
        "rover_cluster_refused_total",
        "counter",
        "Cluster-port connections refused, by reason.",
    );
    for (reason, n) in [
        ("handshake", refused.handshakes),
        ("frame", refused.frames),
        ("over_limit", refused.over_limit),
        ("timeout", refused.timeouts),
    ] {
        text.sample("rover_cluster_refused_total", &[("reason", reason)], n);
    }
    Ok(())
}

async fn storage(state: &ApiState, text: &mut Exposition) {
    let health = state.storage.health();
    text.single(
        "rover_storage_failing",
        "gauge",
        "1 while storage refuses writes (the agent retries; see info), else 0.",
        u8::from(!health.is_ok()),
    );
    text.single(
        "rover_storage_failed_writes",
        "gauge",
        "Writes and flushes that failed since storage started failing.",
        health.failing.as_ref().map_or(0, |f| f.failed_writes),
    );
    text.single(
        "rover_storage_recoveries_total",
        "counter",
        "Times the database was reopened after failing.",
        health.recoveries,
    );
    let storage = state.storage.clone();
    let size = tokio::task::spawn_blocking(move || storage.size_on_disk().ok())
        .await
        .ok()
        .flatten();
    if let Some(bytes) = size {
        text.single(
            "rover_storage_size_bytes",
            "gauge",
            "Size on disk of the agent's database (history, alerts, ledger, records).",
            bytes,
        );
    }
}

async fn members_and_alerts(state: &ApiState, text: &mut Exposition) -> Result<(), ApiError> {
    let members = state.membership.members().await.map_err(unavailable)?;
    let counts = StatusCounts::of(&members);
    text.family("rover_members", "gauge", "Members by status.");
    for (status, n) in [
        ("alive", counts.alive),
        ("suspect", counts.suspect),
        ("failed", counts.failed),
        ("left", counts.left),
    ] {
        text.sample("rover_members", &[("status", status)], n);
    }
    let alerts = state.alerts.list().await.map_err(unavailable)?;
    let mut by_kind: BTreeMap<(String, &str, &str), u64> = BTreeMap::new();
    for alert in &alerts {
        let alert_state = match alert.state {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
            AlertState::Removed => continue,
        };
        let severity = match alert.severity {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        };
        *by_kind
            .entry((alert.team.clone(), alert_state, severity))
            .or_default() += 1;
    }
    text.family(
        "rover_alerts",
        "gauge",
        "Alerts in this agent's table, by team, state and severity.",
    );
    for ((team, alert_state, severity), n) in &by_kind {
        text.sample(
            "rover_alerts",
            &[
                ("team", team),
                ("state", alert_state),
                ("severity", severity),
            ],
            n,
        );
    }
    Ok(())
}

fn ledger_and_leadership(state: &ApiState, text: &mut Exposition) {
    let ledger = state
        .leadership
        .applied_ledger()
        .map(|reader| reader.ledger())
        .unwrap_or_default();
    let mut open: BTreeMap<&str, u64> = [
        "host_down",
        "alert_firing",
        "team_link_lost",
        "switch_unreachable",
        "manual",
    ]
    .into_iter()
    .map(|kind| (kind, 0))
    .collect();
    for incident in ledger.incidents() {
        if matches!(
            incident.state,
            IncidentState::Open | IncidentState::Notified
        ) {
            *open.entry(kind_label(incident.kind)).or_default() += 1;
        }
    }
    text.family(
        "rover_incidents_open",
        "gauge",
        "Incidents not over yet in the Raft ledger as applied here, by kind.",
    );
    for (kind, n) in &open {
        text.sample("rover_incidents_open", &[("kind", kind)], n);
    }
    let mut records: BTreeMap<(String, &str), u64> = BTreeMap::new();
    for notification in ledger.notifications() {
        let outcome = match notification.outcome {
            Outcome::Pending => "pending",
            Outcome::Sent { .. } => "sent",
            Outcome::Failed { .. } => "failed",
        };
        *records
            .entry((notification.channel.clone(), outcome))
            .or_default() += 1;
    }
    text.family(
        "rover_ledger_notifications",
        "gauge",
        "Notification records kept in the Raft ledger (within incidents.retention), by channel and outcome.",
    );
    for ((channel, outcome), n) in &records {
        text.sample(
            "rover_ledger_notifications",
            &[("channel", channel), ("outcome", outcome)],
            n,
        );
    }
    let status = state.leadership.status();
    text.single(
        "rover_raft_term",
        "gauge",
        "The Raft term this agent knows.",
        status.term,
    );
    text.single(
        "rover_leader",
        "gauge",
        "1 while this agent leads its partition (Raft or fallback), else 0.",
        u8::from(status.is_me),
    );
    text.family(
        "rover_leader_mode",
        "gauge",
        "How this agent's partition is led: 1 for the current mode, 0 for the others.",
    );
    for mode in [Mode::Raft, Mode::Fallback, Mode::Waiting] {
        let label = mode.to_string();
        text.sample(
            "rover_leader_mode",
            &[("mode", &label)],
            u8::from(status.mode == mode),
        );
    }
}

fn kind_label(kind: IncidentKind) -> &'static str {
    match kind {
        IncidentKind::HostDown => "host_down",
        IncidentKind::AlertFiring => "alert_firing",
        IncidentKind::TeamLinkLost => "team_link_lost",
        IncidentKind::SwitchUnreachable => "switch_unreachable",
        IncidentKind::Manual => "manual",
    }
}

fn sends(state: &ApiState, text: &mut Exposition) {
    let stats = state.notifiers.borrow().send_stats();
    text.family(
        "rover_notify_sends_total",
        "counter",
        "Messages this agent sent, by channel and outcome (after retries).",
    );
    for (channel, sends) in &stats {
        for (outcome, n) in [("delivered", sends.delivered), ("failed", sends.failed)] {
            text.sample(
                "rover_notify_sends_total",
                &[("channel", channel), ("outcome", outcome)],
                n,
            );
        }
    }
    let name = "rover_notify_send_duration_seconds";
    text.family(
        name,
        "histogram",
        "Time one send took, retries included, by channel.",
    );
    for (channel, sends) in &stats {
        for (bound, n) in BUCKET_BOUNDS_S.iter().zip(sends.at_most) {
            let le = bound.to_string();
            text.sample(
                &format!("{name}_bucket"),
                &[("channel", channel), ("le", &le)],
                n,
            );
        }
        text.sample(
            &format!("{name}_bucket"),
            &[("channel", channel), ("le", "+Inf")],
            sends.count(),
        );
        text.sample(
            &format!("{name}_sum"),
            &[("channel", channel)],
            sends.seconds,
        );
        text.sample(
            &format!("{name}_count"),
            &[("channel", channel)],
            sends.count(),
        );
    }
}

fn syncs_and_checks(text: &mut Exposition) {
    let syncs = crate::alerts::sync::SYNCS.read();
    text.family(
        "rover_sync_rounds_total",
        "counter",
        "Anti-entropy exchanges with a peer, by outcome.",
    );
    text.sample(
        "rover_sync_rounds_total",
        &[("outcome", "ok")],
        syncs.rounds,
    );
    text.sample(
        "rover_sync_rounds_total",
        &[("outcome", "failed")],
        syncs.failed,
    );
    text.family(
        "rover_sync_alerts_total",
        "counter",
        "Alerts anti-entropy moved, by direction.",
    );
    text.sample(
        "rover_sync_alerts_total",
        &[("direction", "pulled")],
        syncs.alerts_pulled,
    );
    text.sample(
        "rover_sync_alerts_total",
        &[("direction", "pushed")],
        syncs.alerts_pushed,
    );
    text.family(
        "rover_sync_records_total",
        "counter",
        "Grid-control records anti-entropy moved, by direction.",
    );
    text.sample(
        "rover_sync_records_total",
        &[("direction", "pulled")],
        syncs.records_pulled,
    );
    text.sample(
        "rover_sync_records_total",
        &[("direction", "pushed")],
        syncs.records_pushed,
    );
    text.family(
        "rover_check_runs_total",
        "counter",
        "Runs of each local check, by the state the run found.",
    );
    for (check, check_state, n) in crate::checks::run_counts::CHECK_RUNS.read() {
        text.sample(
            "rover_check_runs_total",
            &[("check", &check), ("state", check_state)],
            n,
        );
    }
}

async fn topology(state: &ApiState, text: &mut Exposition) {
    let Ok(report) = state.topology.report(Vec::new()).await else {
        return;
    };
    let mut nodes: BTreeMap<&str, u64> = [("subnet", 0), ("switch", 0), ("host", 0)].into();
    for node in &report.map.nodes {
        let kind = match node.kind {
            crate::topology::map::NodeKind::Subnet => "subnet",
            crate::topology::map::NodeKind::Switch => "switch",
            crate::topology::map::NodeKind::Host => "host",
        };
        *nodes.entry(kind).or_default() += 1;
    }
    text.family(
        "rover_topology_nodes",
        "gauge",
        "Nodes of the topology map as this agent holds it, by kind.",
    );
    for (kind, n) in &nodes {
        text.sample("rover_topology_nodes", &[("kind", kind)], n);
    }
    let counters = &report.listener.counters;
    text.single(
        "rover_topology_frames_total",
        "counter",
        "LLDP and CDP frames this agent's listener received.",
        counters.frames,
    );
    text.single(
        "rover_topology_frames_dropped_total",
        "counter",
        "LLDP and CDP frames the listener skipped (truncated, bad length, unknown type).",
        counters.dropped_total(),
    );
}

/// The border links: up or not, UpdateAlert frames each way, alerts held, drops by reason.
async fn team_links(state: &ApiState, text: &mut Exposition) {
    let links = state.teams.status().await;
    text.family(
        "rover_team_link_up",
        "gauge",
        "1 while the border link to the team is up (lost or never up: 0).",
    );
    for l in &links {
        text.sample(
            "rover_team_link_up",
            &[("team", &l.team)],
            u8::from(l.state == "up"),
        );
    }
    text.family(
        "rover_team_link_updates_total",
        "counter",
        "UpdateAlert frames on the border link, by direction.",
    );
    for l in &links {
        for (direction, n) in [("in", l.updates_in), ("out", l.updates_out)] {
            text.sample(
                "rover_team_link_updates_total",
                &[("team", &l.team), ("direction", direction)],
                n,
            );
        }
    }
    text.family(
        "rover_team_link_alerts",
        "gauge",
        "Alerts the border link carries, by direction (in: held from it; out: the peer holds from us).",
    );
    for l in &links {
        for (direction, n) in [("in", l.alerts_in), ("out", l.alerts_out)] {
            text.sample(
                "rover_team_link_alerts",
                &[("team", &l.team), ("direction", direction)],
                n,
            );
        }
    }
    text.family(
        "rover_team_link_refused_total",
        "counter",
        "Connections to the link port refused before a link could be named (unknown key, limits, slow handshake), by reason.",
    );
    for (reason, n) in state.teams.refusals().await {
        text.sample("rover_team_link_refused_total", &[("reason", &reason)], n);
    }
    text.family(
        "rover_team_link_dropped_total",
        "counter",
        "Frames and connections of the border link refused, by reason.",
    );
    for l in &links {
        for (reason, n) in &l.dropped {
            text.sample(
                "rover_team_link_dropped_total",
                &[("team", &l.team), ("reason", reason)],
                n,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_families_have_help_and_type() {
        let mut text = Exposition::default();
        text.family("rover_x_total", "counter", "X.");
        text.sample("rover_x_total", &[("team", "a\"b\\c\nd"), ("k", "v")], 3);
        assert_eq!(
            text.out,
            "# HELP rover_x_total X.\n# TYPE rover_x_total counter\n\
             rover_x_total{team=\"a\\\"b\\\\c\\nd\",k=\"v\"} 3\n"
        );
    }
}
