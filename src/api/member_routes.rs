//! `POST /v1/force-leave`: mark a failed member left on every agent (Serf's `force-leave`).

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use rover_membership::error::ForceLeaveError;
use serde::{Deserialize, Serialize};

use super::server::{authorize, unavailable, ApiError, ApiResult, ApiState};

/// What `POST /v1/force-leave` takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForceLeaveRequest {
    /// The failed member's name.
    pub name: String,
}

/// Marks the failed member left: 404 for an unknown name, 409 for one alive or suspect.
pub(super) async fn force_leave(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<ForceLeaveRequest>, JsonRejection>,
) -> ApiResult<serde_json::Value> {
    authorize(&state, &headers)?;
    let Json(request) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    match state.membership.force_leave(request.name.clone()).await {
        Err(e) => Err(unavailable(e)),
        Ok(Err(e @ ForceLeaveError::Unknown(_))) => {
            Err(ApiError(StatusCode::NOT_FOUND, e.to_string()))
        }
        Ok(Err(e)) => Err(ApiError(StatusCode::CONFLICT, e.to_string())),
        Ok(Ok(())) => Ok(Json(serde_json::json!({ "left": request.name }))),
    }
}
