//! Routes of grid-control records, named services, trust, keys and invitations:
//!
//! - `GET /v1/records[?service=S]`, `GET /v1/services`, `GET /v1/services/{name}`,
//!   `GET /v1/trust`, `GET /v1/keys` (fingerprints only): open to local users;
//! - `POST /v1/services/set|remove`, `/v1/trust/add|remove`, `/v1/keys/install|use|remove`,
//!   `/v1/invite` (the answer holds the cluster key), `/v1/join/token`: need the token.
//!
//! A statement answers 200 once it is on disk here; a key step answers with the report of
//! every member (see [`crate::keys::rotation`]).

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use rover_membership::runtime::unix_ms;
use rover_membership::{ClusterKey, MemberStatus};
use rover_storage::grid::payload::{node_addresses, TrustWhat};
use serde::{Deserialize, Serialize};

use super::server::{authorize, unavailable, ApiError, ApiResult, ApiState};
use crate::grid::services::{self, RecordView, ServiceError, ServiceView, TrustView};
use crate::grid::GridError;
use crate::invite::{key_bytes, Invitation, InvitationBody};
use crate::keys::rotation::{self, KeysReport, StepError, StepReport};
use crate::keys::state::{parse_id, KeyOp};

/// Body of `POST /v1/services/set`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceSetRequest {
    /// The service name.
    pub name: String,
    /// Where it is.
    pub addr: String,
}

/// Body of `POST /v1/services/remove`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceRemoveRequest {
    /// The service name.
    pub name: String,
}

/// Body of `POST /v1/trust/add` and `/v1/trust/remove`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustRequest {
    /// The team or node key.
    pub who: String,
    /// Its petname (add only; may be left out once one is set).
    #[serde(default)]
    pub petname: Option<String>,
    /// `accept-alerts-from`, `send-alerts-to` (remove: empty means both).
    #[serde(default)]
    pub what: Vec<String>,
}

/// Body of `POST /v1/keys/install|use|remove`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRequest {
    /// The key (base64, as `keygen` prints it); for remove, its fingerprint will do.
    pub key: String,
}

/// Body of `POST /v1/invite`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InviteRequest {
    /// How long the token is accepted, in seconds.
    pub ttl_secs: u64,
}

/// Answer of `POST /v1/invite`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InviteResponse {
    /// The token.
    pub token: String,
    /// When it expires (Unix ms).
    pub expires_ms: u64,
    /// The addresses it holds.
    pub addrs: Vec<String>,
}

/// Body of `POST /v1/join/token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinTokenRequest {
    /// The token.
    pub token: String,
}

/// Answer of `POST /v1/join/token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinTokenResponse {
    /// The addresses announced to.
    pub announced: Vec<String>,
    /// The fingerprint of the cluster key now primary.
    pub key: String,
}

/// The shortest and longest invitation lifetimes, in seconds.
pub const INVITE_TTL_SECS: std::ops::RangeInclusive<u64> = 60..=30 * 86_400;

/// The routes (merged into the API's router).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/records", get(records))
        .route("/v1/services", get(service_list))
        .route("/v1/services/{name}", get(service_get))
        .route("/v1/services/set", post(service_set))
        .route("/v1/services/remove", post(service_remove))
        .route("/v1/trust", get(trust_list))
        .route("/v1/trust/{step}", post(trust_step))
        .route("/v1/keys", get(keys_list))
        .route("/v1/keys/{step}", post(keys_step))
        .route("/v1/invite", post(invite))
        .route("/v1/join/token", post(join_token))
}

fn bad_request(e: JsonRejection) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.body_text())
}

fn service_error(e: ServiceError) -> ApiError {
    match e {
        ServiceError::BadInput(m) | ServiceError::Grid(GridError::Invalid(m)) => {
            ApiError(StatusCode::BAD_REQUEST, m)
        }
        ServiceError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, m),
        ServiceError::Grid(e) => unavailable(e),
    }
}

fn step_error(e: StepError) -> ApiError {
    match e {
        StepError::Refused(m) => ApiError(StatusCode::CONFLICT, m),
        StepError::Stopped => unavailable(e),
    }
}

#[derive(Debug, Deserialize)]
struct RecordsQuery {
    service: Option<String>,
}

async fn records(
    State(state): State<ApiState>,
    Query(query): Query<RecordsQuery>,
) -> ApiResult<Vec<RecordView>> {
    let records = state.grid.grid.list().await.map_err(unavailable)?;
    Ok(Json(services::record_views(
        &records,
        query.service.as_deref(),
    )))
}

async fn service_list(State(state): State<ApiState>) -> ApiResult<Vec<ServiceView>> {
    let records = state.grid.grid.list().await.map_err(unavailable)?;
    Ok(Json(services::service_views(&records)))
}

async fn service_get(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<ServiceView> {
    let records = state.grid.grid.list().await.map_err(unavailable)?;
    services::service_views(&records)
        .into_iter()
        .find(|s| s.name == name)
        .map(Json)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "no service {:?} is set",
                    crate::control_chars::escape(&name)
                ),
            )
        })
}

async fn service_set(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<ServiceSetRequest>, JsonRejection>,
) -> ApiResult<RecordView> {
    authorize(&state, &headers)?;
    let Json(request) = body.map_err(bad_request)?;
    let record = services::set_service(&state.grid.grid, &request.name, &request.addr)
        .await
        .map_err(service_error)?;
    Ok(Json(view_of(&state, record).await))
}

async fn service_remove(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<ServiceRemoveRequest>, JsonRejection>,
) -> ApiResult<RecordView> {
    authorize(&state, &headers)?;
    let Json(request) = body.map_err(bad_request)?;
    let record = services::remove_service(&state.grid.grid, &request.name)
        .await
        .map_err(service_error)?;
    Ok(Json(view_of(&state, record).await))
}

/// The view of a record we just published.
async fn view_of(state: &ApiState, record: rover_storage::grid::SignedRecord) -> RecordView {
    let records = state.grid.grid.list().await.unwrap_or_default();
    let mut views = services::record_views(&records, Some(&record.service));
    views.retain(|v| v.seqnum == record.seqnum);
    views.pop().unwrap_or_else(|| RecordView {
        service: record.service.clone(),
        signer: rover_storage::grid::payload::key_text(&record.signer),
        fingerprint: record.signer_fingerprint(),
        node: None,
        seqnum: record.seqnum,
        content: String::new(),
        bytes: record.encode().len(),
        encoded: String::new(),
    })
}

async fn trust_list(State(state): State<ApiState>) -> ApiResult<Vec<TrustView>> {
    let records = state.grid.grid.list().await.map_err(unavailable)?;
    Ok(Json(services::trust_views(&records)))
}

fn parse_what(words: &[String]) -> Result<Vec<TrustWhat>, ApiError> {
    words
        .iter()
        .map(|w| {
            TrustWhat::parse(w).ok_or_else(|| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{:?}: expected accept-alerts-from or send-alerts-to",
                        crate::control_chars::escape(w)
                    ),
                )
            })
        })
        .collect()
}

/// `POST /v1/trust/{add|remove}`.
async fn trust_step(
    State(state): State<ApiState>,
    Path(step): Path<String>,
    headers: HeaderMap,
    body: Result<Json<TrustRequest>, JsonRejection>,
) -> ApiResult<RecordView> {
    authorize(&state, &headers)?;
    let Json(request) = body.map_err(bad_request)?;
    let who = services::parse_who(&request.who).map_err(service_error)?;
    let what = parse_what(&request.what)?;
    let grid = &state.grid.grid;
    let record = match step.as_str() {
        "add" => services::add_trust(grid, who, request.petname.as_deref(), &what).await,
        "remove" => services::remove_trust(grid, who, &what).await,
        _ => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                "a trust step is add or remove".into(),
            ))
        }
    }
    .map_err(service_error)?;
    Ok(Json(view_of(&state, record).await))
}

async fn keys_list(State(state): State<ApiState>) -> ApiResult<KeysReport> {
    rotation::survey(&state.grid.keys, &state.membership)
        .await
        .map(Json)
        .map_err(step_error)
}

fn parse_key(text: &str) -> Result<ClusterKey, ApiError> {
    ClusterKey::from_base64(text).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("not a key from `rover-agent keygen` ({e})"),
        )
    })
}

/// `POST /v1/keys/{install|use|remove}`: the step across the cluster.
async fn keys_step(
    State(state): State<ApiState>,
    Path(step): Path<String>,
    headers: HeaderMap,
    body: Result<Json<KeyRequest>, JsonRejection>,
) -> ApiResult<StepReport> {
    authorize(&state, &headers)?;
    let Json(request) = body.map_err(bad_request)?;
    let key = request.key.trim();
    let op = match step.as_str() {
        "install" => KeyOp::Install(parse_key(key)?),
        "use" => match parse_id(key) {
            // A fingerprint names a key this agent holds already (installed).
            Some(id) => {
                let held = state
                    .grid
                    .keys
                    .state()
                    .await
                    .ok()
                    .and_then(|s| s.ring.by_id(id).cloned());
                KeyOp::Use(held.ok_or_else(|| {
                    ApiError(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "no installed key has fingerprint {key}: give the key itself, or \
                             install it first (keys install)"
                        ),
                    )
                })?)
            }
            None => KeyOp::Use(parse_key(key)?),
        },
        "remove" => match ClusterKey::from_base64(key) {
            Ok(key) => KeyOp::Remove(key.id()),
            Err(_) => KeyOp::Remove(parse_id(key).ok_or_else(|| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    "expected a key (base64) or its fingerprint (8 hex digits, from keys list)"
                        .into(),
                )
            })?),
        },
        _ => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                "a key step is install, use or remove".into(),
            ))
        }
    };
    rotation::run_step(op, &state.grid.keys, &state.membership)
        .await
        .map(Json)
        .map_err(step_error)
}

async fn invite(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<InviteRequest>, JsonRejection>,
) -> ApiResult<InviteResponse> {
    authorize(&state, &headers)?;
    let Json(request) = body.map_err(bad_request)?;
    if !INVITE_TTL_SECS.contains(&request.ttl_secs) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "--ttl: from 1m to 30d".into(),
        ));
    }
    let status = state.membership.status().await.map_err(unavailable)?;
    let members = state.membership.members().await.map_err(unavailable)?;
    let records = state.grid.grid.list().await.map_err(unavailable)?;
    let recorded = node_addresses(&records);
    let mut addrs: Vec<SocketAddr> = vec![status.identity.addr];
    for member in members
        .iter()
        .filter(|m| m.status == MemberStatus::Alive && m.name != status.identity.name)
    {
        let stated = recorded.iter().find(|a| a.addresses.node == member.name);
        let theirs = stated.map_or_else(|| vec![member.addr], |a| a.addresses.addrs.clone());
        addrs.extend(
            theirs
                .into_iter()
                .filter(|a| !addrs.contains(a))
                .collect::<Vec<_>>(),
        );
    }
    let now = unix_ms();
    let expires_ms = now.saturating_add(request.ttl_secs.saturating_mul(1000));
    let invitation = Invitation::issue(
        state.grid.node_key.signing_key(),
        InvitationBody {
            cluster_key: key_bytes(status.keyring.primary()),
            team: state.grid.team.clone(),
            addrs,
            issued_ms: now,
            expires_ms,
            inviter: [0; 32],
        },
    );
    tracing::info!(
        expires_ms,
        addrs = invitation.body.addrs.len(),
        "invitation made"
    );
    Ok(Json(InviteResponse {
        token: invitation.to_token(),
        expires_ms,
        addrs: invitation
            .body
            .addrs
            .iter()
            .map(ToString::to_string)
            .collect(),
    }))
}

async fn join_token(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<JoinTokenRequest>, JsonRejection>,
) -> ApiResult<JoinTokenResponse> {
    authorize(&state, &headers)?;
    let Json(request) = body.map_err(bad_request)?;
    let invitation = Invitation::redeem(&request.token, unix_ms())
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let key = invitation.cluster_key();
    // Only here: this agent takes the cluster's key; the version stays, so that the cluster's
    // own keyring (taken once joined) wins over whatever this agent held.
    let summary = state
        .grid
        .keys
        .apply(KeyOp::Use(key), 0)
        .await
        .map_err(unavailable)?;
    state
        .membership
        .join(invitation.body.addrs.clone())
        .await
        .map_err(unavailable)?;
    Ok(Json(JoinTokenResponse {
        announced: invitation
            .body
            .addrs
            .iter()
            .map(ToString::to_string)
            .collect(),
        key: summary.primary,
    }))
}

/// The records' lines of `/metrics`.
pub(super) async fn metrics(state: &ApiState, out: &mut String) {
    let Ok(counters) = state.grid.grid.counters().await else {
        return;
    };
    out.push_str(&format!(
        "# HELP rover_records Grid-control records held.\n# TYPE rover_records gauge\nrover_records {}\n",
        counters.records
    ));
    out.push_str(&format!(
        "# HELP rover_records_accepted_total Grid-control records taken as news.\n# TYPE rover_records_accepted_total counter\nrover_records_accepted_total {}\n",
        counters.accepted
    ));
    out.push_str("# HELP rover_records_dropped_total Grid-control records dropped, by reason.\n# TYPE rover_records_dropped_total counter\n");
    for reason in rover_storage::grid::DropReason::ALL {
        out.push_str(&format!(
            "rover_records_dropped_total{{reason=\"{}\"}} {}\n",
            reason.as_str(),
            counters.dropped.get(reason)
        ));
    }
}
