//! How `teams` prints the border links.

use rover_membership::runtime::unix_ms;

use super::table::render;
use crate::teams::LinkStatus;

/// One row per link: team, peer, mode, state, since, alerts in and out, frames in and out,
/// last heartbeat, trust, frames dropped by reason.
pub fn links_table(links: &[LinkStatus]) -> String {
    if links.is_empty() {
        return "no team links (this agent has no [[team.link]])\n".to_owned();
    }
    let now = unix_ms();
    let ago = |ms: u64| format!("{}s ago", now.saturating_sub(ms) / 1000);
    let rows: Vec<Vec<String>> = links
        .iter()
        .map(|l| {
            let trust = match (l.trusted_send, l.trusted_accept) {
                (true, true) => "send+accept",
                (true, false) => "send",
                (false, true) => "accept",
                (false, false) => "none",
            };
            let dropped = if l.dropped.is_empty() {
                "-".to_owned()
            } else {
                l.dropped
                    .iter()
                    .map(|(reason, n)| format!("{reason}={n}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            vec![
                l.team.clone(),
                match &l.peer_host {
                    Some(host) => format!("{} ({host})", l.peer),
                    None => l.peer.clone(),
                },
                l.mode.clone(),
                l.state.clone(),
                ago(l.since_ms),
                l.alerts_in.to_string(),
                l.alerts_out.to_string(),
                format!("{}/{}", l.updates_in, l.updates_out),
                l.last_heard_ms.map_or_else(|| "never".into(), ago),
                trust.to_owned(),
                dropped,
            ]
        })
        .collect();
    let mut out = render(
        &[
            "TEAM",
            "PEER",
            "MODE",
            "STATE",
            "SINCE",
            "IN",
            "OUT",
            "UPDATES IN/OUT",
            "HEARD",
            "TRUST",
            "DROPPED",
        ],
        &rows,
    );
    for l in links {
        out.push_str(&format!(
            "link id of {}: {} (in `trust list`: {})\n",
            l.team, l.link_id, l.link_id_base64
        ));
    }
    out
}
