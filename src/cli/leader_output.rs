//! How `leader` prints the election status.

use rover_membership::runtime::unix_ms;

use super::table::render;
use crate::api::leader_routes::is_stable;
use crate::leadership::LeaderStatus;

/// The leader, how it was chosen, and the Raft group, as a table.
pub fn leader_table(status: &LeaderStatus) -> String {
    let how = match status.mode.as_str() {
        "raft" => format!("raft leader, term {}", status.term),
        "fallback" => "fallback leader of a partition without raft quorum".to_owned(),
        _ => "none yet (no raft quorum, fallback not due)".to_owned(),
    };
    let stable_for = unix_ms().saturating_sub(status.stable_since_ms) / 1000;
    let rows = vec![
        vec![
            "leader".into(),
            status.leader.clone().unwrap_or_else(|| "none".into()),
        ],
        vec!["mode".into(), status.mode.clone()],
        vec!["chosen by".into(), how],
        vec!["term".into(), status.term.to_string()],
        vec![
            "stable".into(),
            format!(
                "{} (unchanged for {stable_for}s)",
                if is_stable(status) { "yes" } else { "no" }
            ),
        ],
        vec!["voters".into(), status.voters.join(", ")],
        vec!["learners".into(), status.learners.join(", ")],
        vec!["this node".into(), status.raft_state.clone()],
        vec![
            "raft group".into(),
            status
                .cluster_id
                .clone()
                .unwrap_or_else(|| "none yet".into()),
        ],
        vec!["pending merge".into(), status.pending_merge.to_string()],
    ];
    render(&["FIELD", "VALUE"], &rows)
}
