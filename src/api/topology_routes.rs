//! `GET /v1/topology`: the subnet -> switch -> host map this agent holds, its own listener's
//! state and counters, and the members with no topology record yet.

use axum::extract::State;
use axum::Json;
use rover_membership::MemberStatus;

use super::server::{unavailable, ApiResult, ApiState};
use crate::topology::report::TopologyReport;

pub(super) async fn topology(State(state): State<ApiState>) -> ApiResult<TopologyReport> {
    let members = state.membership.members().await.map_err(unavailable)?;
    let names = members
        .into_iter()
        .filter(|m| m.status != MemberStatus::Left)
        .map(|m| m.name)
        .collect();
    let report = state.topology.report(names).await.map_err(unavailable)?;
    Ok(Json(report))
}
