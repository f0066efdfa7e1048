//! The axum server on the local API address: its routes, and the checks every request passes
//! before a handler runs (token, body size and time, request time; connection limits are in
//! [`super::connections`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rover_membership::{MemberStatus, MembershipHandle};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use super::{ErrorBody, InfoResponse, JoinRequest, JoinResponse, KeyInfo, StatusCounts};
use crate::config::parse_seed;

/// Requests the API makes of the daemon itself.
#[derive(Debug)]
pub enum Control {
    /// Leave the cluster and exit; answered once the goodbye is sent.
    Leave(oneshot::Sender<()>),
    /// Re-read the config file and apply it (`rover-agent reload`); answered with what
    /// changed, or why the file was refused (the running config is then untouched).
    Reload(oneshot::Sender<Result<super::ReloadReport, String>>),
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The membership owner task.
    pub membership: MembershipHandle,
    /// Token that changes must present.
    pub token: Arc<str>,
    /// Team.
    pub team: String,
    /// Data dir, shown by `info`.
    pub data_dir: String,
    /// When the agent started.
    pub started: Instant,
    /// Requests to the daemon.
    pub control: mpsc::Sender<Control>,
    /// The alerts owner task.
    pub alerts: crate::alerts::AlertsHandle,
    /// Storage, for history queries.
    pub storage: rover_storage::Storage,
    /// Start time (unix ms) of the last completed flush.
    pub flushed: tokio::sync::watch::Receiver<u64>,
    /// Status sample interval (a host silent for 3 of them, and for longer than
    /// `status_full_every` and 2 of them, is quiet).
    pub status_interval: std::time::Duration,
    /// The longest time between two samples a host broadcasts.
    pub status_full_every: std::time::Duration,
    /// Connections the cluster TCP port dropped (see [`crate::peer::server::PeerServer`]).
    pub peer_rejected: Arc<std::sync::atomic::AtomicU64>,
    /// The Raft group and leadership.
    pub leadership: crate::leadership::LeadershipHandle,
    /// The notification channels (shared with the incident engine).
    pub notifiers: tokio::sync::watch::Receiver<Arc<crate::notify::Notifiers>>,
    /// Grid-control records, keys and invitations.
    pub grid: crate::grid::GridParts,
    /// The topology owner task.
    pub topology: crate::topology::TopologyHandle,
    /// `history.replicas` (0: the default), to know whom to ask for a host's history.
    pub history_replicas: usize,
    /// The cluster event log (`events`, `monitor`).
    pub events: crate::introspection::EventLog,
    /// Bumped whenever the member view changes (for the dashboard's live stream).
    pub member_changes: tokio::sync::watch::Receiver<u64>,
    /// The border links (`teams`).
    pub teams: crate::teams::TeamsHandle,
}

/// Request bodies at most (the largest change, an alert, is well under 1 KiB).
pub const MAX_BODY: usize = 64 << 10;
/// Time to send a request body once its headers are in.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a request may take in all (`notify test` waits for every channel's 90 s budget).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The API's routes, behind [`guard`].
pub fn router(state: ApiState) -> Router {
    let guarded = state.clone();
    Router::new()
        .route("/v1/members", get(members))
        .route("/v1/info", get(info))
        .route("/v1/join", post(join))
        .route("/v1/leave", post(leave))
        .route("/v1/force-leave", post(super::member_routes::force_leave))
        .route("/v1/reload", post(reload))
        .route("/v1/alerts", get(super::alert_routes::list))
        .route("/v1/teams", get(super::alert_routes::teams))
        .route("/v1/alerts/raise", post(super::alert_routes::raise))
        .route("/v1/alerts/clear", post(super::alert_routes::clear))
        .route("/v1/history", get(super::history_routes::history))
        .route("/v1/storage", get(super::history_routes::storage))
        .route("/v1/leader", get(super::leader_routes::leader))
        .route(
            "/v1/incidents",
            get(super::leader_routes::incidents).post(super::leader_routes::open),
        )
        .route("/v1/notify/test", post(super::notify_routes::test))
        .merge(super::grid_routes::routes())
        .route("/v1/topology", get(super::topology_routes::topology))
        .route("/v1/events", get(super::event_routes::events))
        .route("/v1/monitor", get(super::event_routes::monitor))
        .route("/metrics", get(super::metrics_routes::metrics))
        .route("/", get(super::dashboard_routes::page))
        .route("/v1/dashboard/stream", get(super::dashboard_routes::stream))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(guarded, guard))
        .with_state(state)
}

/// Serves the API on `listener` with its connection limits until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()>,
) {
    super::connections::serve(listener, router(state), shutdown).await;
}

/// Runs before every handler: a change (any method but GET and HEAD) must present the token
/// before its body is read; a body is refused past [`MAX_BODY`] (by its announced length, then
/// as it arrives) or when it takes longer than [`BODY_TIMEOUT`]; the whole request is bounded
/// by [`REQUEST_TIMEOUT`].
async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let reads_only = request.method() == Method::GET || request.method() == Method::HEAD;
    if !reads_only {
        if let Err(refused) = authorize(&state, request.headers()) {
            return refused.into_response();
        }
    }
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > MAX_BODY as u64) {
        return too_large();
    }
    let request = if reads_only && announced.unwrap_or(0) == 0 {
        request
    } else {
        let (parts, body) = request.into_parts();
        let limited = http_body_util::Limited::new(body, MAX_BODY);
        match tokio::time::timeout(BODY_TIMEOUT, http_body_util::BodyExt::collect(limited)).await {
            Ok(Ok(collected)) => Request::from_parts(parts, Body::from(collected.to_bytes())),
            Ok(Err(_)) => return too_large(),
            Err(_) => {
                return ApiError(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("request body not sent within {BODY_TIMEOUT:?}"),
                )
                .into_response()
            }
        }
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no answer within {REQUEST_TIMEOUT:?}"),
        )
        .into_response(),
    }
}

fn too_large() -> Response {
    ApiError(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body over {MAX_BODY} bytes"),
    )
    .into_response()
}

/// Binds the API address; fails clearly if it is taken.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot bind the API on {addr}: {e} (pick another with --api)")
    })
}

/// An error answer: status and message.
pub(super) struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

pub(super) type ApiResult<T> = Result<Json<T>, ApiError>;

pub(super) fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

pub(super) fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let expected = state.token.as_bytes();
    let same = presented.len() == expected.len()
        && presented
            .bytes()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: changes need the token file from the agent's data dir \
             (--data-dir or ROVER_TOKEN_FILE)"
                .into(),
        ))
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct MembersQuery {
    status: Option<String>,
}

pub(super) async fn members(
    State(state): State<ApiState>,
    Query(query): Query<MembersQuery>,
) -> ApiResult<Vec<rover_membership::MemberInfo>> {
    let wanted = match query.status.as_deref() {
        None | Some("") => None,
        Some("alive") => Some(MemberStatus::Alive),
        Some("suspect") => Some(MemberStatus::Suspect),
        Some("failed") => Some(MemberStatus::Failed),
        Some("left") => Some(MemberStatus::Left),
        Some(other) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("unknown status {other:?} (expected alive, suspect, failed or left)"),
            ));
        }
    };
    let mut list = state.membership.members().await.map_err(unavailable)?;
    if let Some(wanted) = wanted {
        list.retain(|m| m.status == wanted);
    }
    Ok(Json(list))
}

pub(super) async fn info(State(state): State<ApiState>) -> ApiResult<InfoResponse> {
    info_of(&state).await.map(Json).map_err(unavailable)
}

/// What `GET /v1/info` answers (also asked over the cluster port, `info --via`).
pub async fn info_of(state: &ApiState) -> Result<InfoResponse, String> {
    let status = state.membership.status().await.map_err(|e| e.to_string())?;
    let members = state
        .membership
        .members()
        .await
        .map_err(|e| e.to_string())?;
    let election = state.leadership.status();
    Ok(InfoResponse {
        node: status.identity.name.clone(),
        team: state.team.clone(),
        cluster: status.keyring.primary().fingerprint(),
        addr: status.identity.addr.to_string(),
        generation: status.identity.generation,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        leader: election.leader.clone(),
        leader_stable: super::leader_routes::is_stable(&election),
        election: Some(election),
        cluster_port: crate::peer::SENT.read(),
        members: StatusCounts::of(&members),
        keys: status
            .keyring
            .keys()
            .enumerate()
            .map(|(i, k)| KeyInfo {
                fingerprint: k.fingerprint(),
                primary: i == 0,
            })
            .collect(),
        counters: status.counters,
        peer_rejected: state
            .peer_rejected
            .load(std::sync::atomic::Ordering::Relaxed),
        cluster_port_refused: crate::peer::limits::REFUSED.read(),
        uptime_secs: state.started.elapsed().as_secs(),
        data_dir: state.data_dir.clone(),
        storage: super::StorageStatus::of(&state.storage.health()),
        records: state.grid.grid.counters().await.ok(),
        events: state.events.counts().await.ok(),
        team_links: state.teams.status().await,
        team_link_refused: state.teams.refusals().await,
    })
}

async fn join(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<JoinRequest>, JsonRejection>,
) -> ApiResult<JoinResponse> {
    authorize(&state, &headers)?;
    let Json(request) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    if request.seeds.is_empty() {
        return Err(ApiError(StatusCode::BAD_REQUEST, "no seed given".into()));
    }
    let mut seeds = Vec::new();
    for seed in &request.seeds {
        let seed = seed.clone();
        let resolved =
            tokio::task::spawn_blocking(move || parse_seed(&seed).map_err(|e| (seed, e)))
                .await
                .map_err(unavailable)?;
        match resolved {
            Ok(addr) => seeds.push(addr),
            Err((seed, e)) => {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("seed {seed:?}: {e}"),
                ));
            }
        }
    }
    let conflicts_before = state
        .membership
        .status()
        .await
        .map_err(unavailable)?
        .counters
        .name_conflicts;
    state
        .membership
        .join(seeds.clone())
        .await
        .map_err(unavailable)?;
    if let Some(holder) = name_conflict_after_join(&state, &seeds, conflicts_before).await {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "the agent at {holder} already uses our node name: node names must be unique \
                 in a cluster; restart this agent with another --node"
            ),
        ));
    }
    Ok(Json(JoinResponse {
        announced: seeds.iter().map(ToString::to_string).collect(),
    }))
}

/// Waits up to [`JOIN_ANSWER_WAIT`] for every seed to be a member or for a name conflict;
/// the other holder's address if there was one.
async fn name_conflict_after_join(
    state: &ApiState,
    seeds: &[std::net::SocketAddr],
    conflicts_before: u64,
) -> Option<std::net::SocketAddr> {
    let deadline = tokio::time::Instant::now() + JOIN_ANSWER_WAIT;
    loop {
        let counters = state.membership.status().await.ok()?.counters;
        let recent = rover_membership::runtime::unix_ms()
            .saturating_sub(counters.name_conflict_at_ms)
            < RECENT_CONFLICT_MS;
        let holder = counters.name_conflict_with;
        if counters.name_conflicts > conflicts_before
            || (recent && holder.is_some_and(|h| seeds.contains(&h)))
        {
            return holder;
        }
        let members = state.membership.members().await.ok()?;
        let all_in = seeds
            .iter()
            .all(|seed| members.iter().any(|m| m.addr == *seed));
        if all_in || tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A name conflict with a seed seen this recently answers a join at once.
const RECENT_CONFLICT_MS: u64 = 10_000;

/// How long `POST /v1/join` waits for the seeds' answers (a name conflict, or membership).
const JOIN_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

async fn leave(State(state): State<ApiState>, headers: HeaderMap) -> ApiResult<serde_json::Value> {
    authorize(&state, &headers)?;
    let (tx, rx) = oneshot::channel();
    state
        .control
        .send(Control::Leave(tx))
        .await
        .map_err(unavailable)?;
    rx.await.map_err(unavailable)?;
    Ok(Json(serde_json::json!({ "left": true })))
}

/// `POST /v1/reload`: 422 with the reason when the file is refused.
async fn reload(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> ApiResult<super::ReloadReport> {
    authorize(&state, &headers)?;
    let (tx, rx) = oneshot::channel();
    state
        .control
        .send(Control::Reload(tx))
        .await
        .map_err(unavailable)?;
    match rx.await.map_err(unavailable)? {
        Ok(report) => Ok(Json(report)),
        Err(why) => Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, why)),
    }
}
