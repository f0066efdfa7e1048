//! `GET /v1/alerts`, `POST /v1/alerts/raise`, `POST /v1/alerts/clear`.
//!
//! A raise or clear answers 200 only once the change is on disk; when storage fails it answers
//! 503 with the reason, and nothing changed.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use rover_storage::Alert;

use super::server::{authorize, unavailable, ApiError, ApiResult, ApiState};
use super::{ClearRequest, RaiseRequest};

/// Every alert, but those another team's border agent took back (state `removed`).
pub(super) async fn list(State(state): State<ApiState>) -> ApiResult<Vec<Alert>> {
    let mut alerts = state.alerts.list().await.map_err(unavailable)?;
    alerts.retain(|a| a.state != rover_storage::AlertState::Removed);
    Ok(Json(alerts))
}

/// `GET /v1/teams`: every border link of this agent (empty when it has none).
pub(super) async fn teams(
    State(state): State<ApiState>,
) -> ApiResult<Vec<crate::teams::LinkStatus>> {
    Ok(Json(state.teams.status().await))
}

fn bad_request(e: JsonRejection) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.body_text())
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("alert name {name:?}: use 1 to 128 letters, digits, '-', '_' or '.'"),
        ))
    }
}

pub(super) async fn raise(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<RaiseRequest>, JsonRejection>,
) -> ApiResult<Option<Alert>> {
    authorize(&state, &headers)?;
    let Json(request) = body.map_err(bad_request)?;
    check_name(&request.name)?;
    let alert = state
        .alerts
        .raise(&request.name, request.severity, &request.summary, true)
        .await
        .map_err(unavailable)?;
    Ok(Json(alert))
}

pub(super) async fn clear(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<ClearRequest>, JsonRejection>,
) -> ApiResult<Option<Alert>> {
    authorize(&state, &headers)?;
    let Json(request) = body.map_err(bad_request)?;
    check_name(&request.name)?;
    let alert = state
        .alerts
        .clear(&request.name, request.summary.as_deref(), true)
        .await
        .map_err(unavailable)?;
    Ok(Json(alert))
}
