//! What `members` and `info` print as text (and JSON): the member table with its tags, and
//! the info lines (leader, storage, records, events).

use anyhow::{Context, Result};
use rover_membership::runtime::unix_ms;
use rover_membership::MemberInfo;

use super::commands::{write_line, write_text};
use super::table::{ago, render};
use super::Format;
use crate::api::InfoResponse;

macro_rules! say {
    ($($arg:tt)*) => { write_text(&format!($($arg)*)) };
}

macro_rules! sayln {
    ($($arg:tt)*) => { write_line(&format!($($arg)*)) };
}

pub(super) fn print_members(format: Format, members: &[MemberInfo]) -> Result<()> {
    if format == Format::Json {
        sayln!("{}", serde_json::to_string_pretty(members)?);
        return Ok(());
    }
    let now = unix_ms();
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.addr.to_string(),
                m.status.as_str().to_owned(),
                m.team.clone(),
                m.generation.to_string(),
                ago(m.since_ms, now),
                tags_text(&m.tags),
            ]
        })
        .collect();
    say!(
        "{}",
        render(
            &[
                "NAME",
                "ADDRESS",
                "STATUS",
                "TEAM",
                "GENERATION",
                "SINCE",
                "TAGS"
            ],
            &rows
        )
    );
    Ok(())
}

/// `k=v,k2=v2` with control characters escaped (tags come from other agents).
fn tags_text(tags: &rover_membership::Tags) -> String {
    let text: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    crate::control_chars::escape(&text.join(",")).into_owned()
}

pub(super) fn print_info(format: Format, info: &InfoResponse) -> Result<()> {
    if format == Format::Json {
        sayln!(
            "{}",
            serde_json::to_string_pretty(info).context("encoding info")?
        );
        return Ok(());
    }
    let keys: Vec<String> = info
        .keys
        .iter()
        .map(|k| {
            if k.primary {
                format!("{} (primary)", k.fingerprint)
            } else {
                k.fingerprint.clone()
            }
        })
        .collect();
    let c = &info.counters;
    let rows = vec![
        vec!["node".into(), info.node.clone()],
        vec!["team".into(), info.team.clone()],
        vec!["cluster".into(), info.cluster.clone()],
        vec!["address".into(), info.addr.clone()],
        vec!["generation".into(), info.generation.to_string()],
        vec!["version".into(), info.version.clone()],
        vec![
            "leader".into(),
            info.leader.clone().unwrap_or_else(|| "none yet".into()),
        ],
        vec!["leader stable".into(), info.leader_stable.to_string()],
        vec![
            "election".into(),
            info.election.as_ref().map_or_else(
                || "unknown".into(),
                |e| {
                    format!(
                        "{} mode, term {}, voters {}, learners {}",
                        e.mode,
                        e.term,
                        e.voters.join(" "),
                        e.learners.join(" ")
                    )
                },
            ),
        ],
        vec![
            "members".into(),
            format!(
                "{} alive, {} suspect, {} failed, {} left",
                info.members.alive, info.members.suspect, info.members.failed, info.members.left
            ),
        ],
        vec!["keys".into(), keys.join(", ")],
        vec![
            "packets".into(),
            format!(
                "in {} ({} B), out {} ({} B), dropped {} unsealed, {} rejected, {} replayed, \
                 {} stale, {} other version, {} other team",
                c.packets_in,
                c.bytes_in,
                c.packets_out,
                c.bytes_out,
                c.dropped_unsealed,
                c.dropped_rejected,
                c.dropped_replayed,
                c.dropped_stale,
                c.dropped_version,
                c.dropped_other_team
            ),
        ],
        vec![
            "cluster port".into(),
            format!(
                "{} connections rejected ({} handshakes, {} frames, {} over the limit, {} timed \
                 out); {} handshakes; sent {} frames ({} B), raft {} frames ({} B)",
                info.peer_rejected,
                info.cluster_port_refused.handshakes,
                info.cluster_port_refused.frames,
                info.cluster_port_refused.over_limit,
                info.cluster_port_refused.timeouts,
                info.cluster_port.handshakes,
                info.cluster_port.frames_out,
                info.cluster_port.bytes_out,
                info.cluster_port.raft_frames_out,
                info.cluster_port.raft_bytes_out
            ),
        ],
        vec!["uptime".into(), format!("{}s", info.uptime_secs)],
        vec!["data dir".into(), info.data_dir.clone()],
        vec!["storage".into(), storage_line(&info.storage)],
    ];
    let mut rows = rows;
    if let Some(records) = &info.records {
        rows.push(vec!["records".into(), records_line(records)]);
    }
    if let Some(events) = &info.events {
        rows.push(vec!["events".into(), events_line(events)]);
    }
    if !info.team_link_refused.is_empty() {
        rows.push(vec![
            "team link port".into(),
            info.team_link_refused
                .iter()
                .map(|(reason, n)| format!("{n} refused ({reason})"))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    for link in &info.team_links {
        rows.push(vec![
            format!("team link {}", link.team),
            format!(
                "{} {} ({}), {} in, {} out",
                link.peer, link.state, link.mode, link.alerts_in, link.alerts_out
            ),
        ]);
    }
    say!("{}", render(&["FIELD", "VALUE"], &rows));
    Ok(())
}

/// The `records` row of `info`: held, taken, and drops by reason.
fn records_line(records: &crate::grid::table::GridCounters) -> String {
    let drops: Vec<String> = rover_storage::grid::DropReason::ALL
        .iter()
        .filter_map(|r| {
            let n = records.dropped.get(*r);
            (n > 0).then(|| format!("{} {}", n, r.as_str()))
        })
        .collect();
    format!(
        "{} held, {} taken, {} duplicates, dropped: {}",
        records.records,
        records.accepted,
        records.duplicates,
        if drops.is_empty() {
            "none".to_owned()
        } else {
            drops.join(", ")
        }
    )
}

/// The `events` row of `info`: held, recorded by op, and what was lost.
fn events_line(events: &crate::introspection::EventCounts) -> String {
    let by_op: Vec<String> = events
        .by_op
        .iter()
        .map(|(op, n)| format!("{op} {n}"))
        .collect();
    format!(
        "{} of {} held; since start: {}; {} evicted, {} reports dropped, {} lost by slow monitors, {} not stored",
        events.held,
        events.capacity,
        if by_op.is_empty() {
            "none".to_owned()
        } else {
            by_op.join(", ")
        },
        events.evicted,
        events.dropped_reports,
        events.monitor_dropped,
        events.unstored
    )
}

/// The `storage` row of `info`.
fn storage_line(storage: &crate::api::StorageStatus) -> String {
    match storage.state.as_str() {
        "" | "ok" if storage.recoveries == 0 => "ok".to_owned(),
        "" | "ok" => format!("ok (recovered {} times)", storage.recoveries),
        state => format!(
            "{} since {} ms: {} failed writes; {}",
            state.to_uppercase(),
            storage.failing_since_ms.unwrap_or(0),
            storage.failed_writes,
            storage.error.as_deref().unwrap_or("no error text")
        ),
    }
}
