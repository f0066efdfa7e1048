//! `GET /v1/history` (every host, or one host's timeline) and `GET /v1/storage`.

use axum::extract::{Query, State};
use axum::Json;
use rover_membership::runtime::unix_ms;
use rover_storage::{AlertStore, HistoryStore, MemberStore};
use serde::Deserialize;

use super::server::{unavailable, ApiResult, ApiState};
use super::{HistoryResponse, HostSummary, StorageResponse};

/// Query of `GET /v1/history`.
#[derive(Debug, Deserialize)]
pub(super) struct HistoryQuery {
    host: Option<String>,
    #[serde(default)]
    since_ms: u64,
    limit: Option<usize>,
}

/// Either one host's timeline or the list of hosts.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub(super) enum HistoryAnswer {
    Host(HistoryResponse),
    Hosts(Vec<HostSummary>),
}

fn is_quiet(state: &ApiState, last_heard_ms: Option<u64>) -> bool {
    let limit = u64::try_from(state.status_interval.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_mul(3);
    last_heard_ms.is_none_or(|t| unix_ms().saturating_sub(t) > limit)
}

pub(super) async fn history(
    State(state): State<ApiState>,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<HistoryAnswer> {
    let history = state.storage.history();
    let answer = tokio::task::spawn_blocking(move || -> anyhow::Result<HistoryAnswer> {
        match query.host {
            Some(host) => {
                let last_sample = history.last_sample(&host)?;
                let last_heard_ms = last_sample.as_ref().map(|s| s.at_ms);
                let mut entries = history.range(&host, query.since_ms, u64::MAX)?;
                if let Some(limit) = query.limit {
                    let skip = entries.len().saturating_sub(limit);
                    entries.drain(..skip);
                }
                Ok(HistoryAnswer::Host(HistoryResponse {
                    quiet: is_quiet(&state, last_heard_ms),
                    host,
                    last_heard_ms,
                    last_sample,
                    entries,
                }))
            }
            None => {
                let mut hosts = Vec::new();
                for host in history.hosts()? {
                    let last_sample = history.last_sample(&host)?;
                    let last_heard_ms = last_sample.as_ref().map(|s| s.at_ms);
                    hosts.push(HostSummary {
                        quiet: is_quiet(&state, last_heard_ms),
                        host,
                        last_heard_ms,
                        last_sample,
                    });
                }
                Ok(HistoryAnswer::Hosts(hosts))
            }
        }
    })
    .await
    .map_err(unavailable)?
    .map_err(unavailable)?;
    Ok(Json(answer))
}

pub(super) async fn storage(State(state): State<ApiState>) -> ApiResult<StorageResponse> {
    let flushed_before_ms = *state.flushed.borrow();
    let storage = state.storage.clone();
    let counts = tokio::task::spawn_blocking(move || -> anyhow::Result<(usize, usize, usize)> {
        Ok((
            storage.history().len()?,
            storage.alerts().len()?,
            storage.members().all()?.len(),
        ))
    })
    .await
    .map_err(unavailable)?
    .map_err(unavailable)?;
    Ok(Json(StorageResponse {
        history_entries: counts.0,
        alerts: counts.1,
        members: counts.2,
        flushed_before_ms,
    }))
}
