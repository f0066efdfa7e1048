//! `GET /v1/leader`, `GET /v1/incidents` and `POST /v1/incidents` (open a manual incident
//! through this partition's leader).

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use rover_election::ledger::{Incident, IncidentKind, LedgerCommand};
use rover_membership::runtime::unix_ms;
use serde::{Deserialize, Serialize};

use super::server::{authorize, ApiError, ApiResult, ApiState};
use crate::leadership::{LeaderStatus, LedgerView};

/// A leader counts as stable once mode and leader have not changed for this long.
pub const STABLE_AFTER_MS: u64 = 5_000;

/// Body of `POST /v1/incidents`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenIncidentRequest {
    /// What the incident is about (free text, at most 200 characters).
    pub subject: String,
}

/// Answer of `POST /v1/incidents`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenIncidentResponse {
    /// The incident id.
    pub id: String,
}

pub(super) async fn leader(State(state): State<ApiState>) -> ApiResult<LeaderStatus> {
    Ok(Json(state.leadership.status()))
}

/// Whether `status` names a leader that has been the same for [`STABLE_AFTER_MS`].
pub fn is_stable(status: &LeaderStatus) -> bool {
    status.leader.is_some() && unix_ms().saturating_sub(status.stable_since_ms) >= STABLE_AFTER_MS
}

pub(super) async fn incidents(State(state): State<ApiState>) -> ApiResult<LedgerView> {
    Ok(Json(state.leadership.ledger().await))
}

pub(super) async fn open(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<OpenIncidentRequest>, JsonRejection>,
) -> ApiResult<OpenIncidentResponse> {
    authorize(&state, &headers)?;
    let Json(request) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let subject = crate::control_chars::strip(&request.subject);
    let subject = subject.as_str();
    if subject.is_empty() || subject.chars().count() > 200 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "subject: give 1 to 200 characters".into(),
        ));
    }
    let now = unix_ms();
    let id = format!("manual/{subject}/{now}");
    let command = LedgerCommand::Open(Incident::new(
        id.clone(),
        IncidentKind::Manual,
        subject.to_owned(),
        now,
    ));
    state
        .leadership
        .write(vec![command])
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")))?;
    Ok(Json(OpenIncidentResponse { id }))
}
