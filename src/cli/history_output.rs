//! Text output of `alerts` and `history`.

use rover_membership::runtime::unix_ms;
use rover_storage::{Alert, HistoryEntry, HistoryEvent, StatusSample};

use super::table::{ago, render};
use crate::api::{HistoryResponse, HostSummary};

/// RFC 3339 time (UTC, milliseconds) of a unix-ms timestamp.
pub fn timestamp(ms: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(time).to_string()
}

/// `alerts` as a table.
pub fn alerts_table(alerts: &[Alert]) -> String {
    let now = unix_ms();
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                a.team.clone(),
                a.host.clone(),
                a.name.clone(),
                format!("{:?}", a.state).to_lowercase(),
                format!("{:?}", a.severity).to_lowercase(),
                ago(Some(a.last_change_ms), now),
                if a.path.is_empty() {
                    "-".into()
                } else {
                    a.path.join(">")
                },
                a.summary.clone(),
            ]
        })
        .collect();
    render(
        &[
            "TEAM", "HOST", "NAME", "STATE", "SEVERITY", "CHANGED", "PATH", "SUMMARY",
        ],
        &rows,
    )
}

fn sample_text(s: &StatusSample) -> String {
    let disks: Vec<String> = s
        .disks
        .iter()
        .map(|d| format!("{} {:.0}%", d.mount, d.used_pct))
        .collect();
    format!(
        "load {:.2} {:.2} {:.2}, mem {:.0}%, disk {}, up {}s, checks {:?}",
        s.load[0],
        s.load[1],
        s.load[2],
        s.mem_used_pct,
        if disks.is_empty() {
            "-".into()
        } else {
            disks.join(" ")
        },
        s.uptime_s,
        s.worst_check
    )
    .replace("checks Ok", "checks ok")
}

fn last_heard(last_heard_ms: Option<u64>, quiet: bool) -> String {
    match last_heard_ms {
        Some(t) if quiet => format!(
            "last heard at {} ({})",
            timestamp(t),
            ago(Some(t), unix_ms())
        ),
        Some(t) => format!("heard {}", ago(Some(t), unix_ms())),
        None => "never heard".into(),
    }
}

/// `history` with no host: one line per host.
pub fn hosts_table(hosts: &[HostSummary]) -> String {
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            vec![
                h.host.clone(),
                last_heard(h.last_heard_ms, h.quiet),
                h.last_sample
                    .as_ref()
                    .map(sample_text)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    render(&["HOST", "LAST HEARD", "LAST SAMPLE"], &rows)
}

fn entry_text(entry: &HistoryEntry) -> (String, String) {
    match &entry.event {
        HistoryEvent::Sample(s) => ("sample".into(), sample_text(s)),
        HistoryEvent::MinuteMean { sample, count } => (
            "minute".into(),
            format!("{} (mean of {count})", sample_text(sample)),
        ),
        HistoryEvent::Membership { status, detail } => {
            ("member".into(), format!("{status} ({detail})"))
        }
        HistoryEvent::Alert {
            name,
            state,
            severity,
            summary,
        } => (
            "alert".into(),
            format!(
                "{name} {} {}: {summary}",
                format!("{state:?}").to_lowercase(),
                format!("{severity:?}").to_lowercase()
            ),
        ),
        HistoryEvent::Notification {
            incident,
            channel,
            detail,
        } => (
            "notify".into(),
            format!("{incident} via {channel}: {detail}"),
        ),
        HistoryEvent::SwitchChange {
            interface,
            from,
            to,
        } => (
            "switch".into(),
            crate::topology::history_text(interface, from.as_deref(), to.as_deref()),
        ),
    }
}

/// `history --host H`: a header line, then the timeline.
pub fn host_timeline(history: &HistoryResponse) -> String {
    let mut out = format!(
        "{}: {}\n",
        crate::control_chars::escape(&history.host),
        last_heard(history.last_heard_ms, history.quiet)
    );
    if !history.sources.is_empty() && history.sources != ["local"] {
        let names: Vec<String> = history
            .sources
            .iter()
            .map(|s| crate::control_chars::escape(s).into_owned())
            .collect();
        out.push_str(&format!("from its replicas {}\n", names.join(", ")));
    }
    for missing in &history.unanswered {
        out.push_str(&format!(
            "replica {} did not answer\n",
            crate::control_chars::escape(missing)
        ));
    }
    let rows: Vec<Vec<String>> = history
        .entries
        .iter()
        .map(|e| {
            let (kind, text) = entry_text(e);
            vec![timestamp(e.at_ms), kind, text]
        })
        .collect();
    out.push_str(&render(&["TIME", "KIND", "WHAT"], &rows));
    out
}
