//! How `leader` prints the election status.

use rover_membership::runtime::unix_ms;

use super::table::render;
use crate::api::leader_routes::is_stable;
use crate::leadership::{LeaderStatus, Mode};

/// The leader, how it was chosen, and the Raft group, as a table.
pub fn leader_table(status: &LeaderStatus) -> String {
    let how = match status.mode {
        Mode::Raft => format!("raft leader, term {}", status.term),
        Mode::Fallback => "fallback leader of a partition without raft quorum".to_owned(),
        Mode::Waiting => "none yet (no raft quorum, fallback not due)".to_owned(),
    };
    let stable_for = unix_ms().saturating_sub(status.stable_since_ms) / 1000;
    let rows = vec![
        vec![
            "leader".into(),
            status.leader.clone().unwrap_or_else(|| "none".into()),
        ],
        vec!["mode".into(), status.mode.to_string()],
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
        vec![
            "elections".into(),
            status
                .elections_held
                .clone()
                .map_or_else(|| "allowed".to_owned(), |why| format!("held: {why}")),
        ],
    ];
    render(&["FIELD", "VALUE"], &rows)
}
