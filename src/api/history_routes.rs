//! `GET /v1/history` (every host, or one host's timeline, from its replicas when this agent
//! does not keep it: see [`crate::history_remote`]) and `GET /v1/storage`.

use axum::extract::{Query, State};
use axum::Json;
use rover_membership::runtime::unix_ms;
use rover_storage::{AlertStore, HistoryStore, MemberStore, StatusSample};
use serde::Deserialize;

use super::server::{unavailable, ApiResult, ApiState};
use super::{HistoryResponse, HostSummary, StorageResponse};
use crate::history_remote;

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
    Host(Box<HistoryResponse>),
    Hosts(Vec<HostSummary>),
}

/// A host is quiet when no sample of it arrived for 3 sample intervals and for longer than
/// `status.full_every` (an unchanged sample is only sent that often) plus 2 intervals.
fn is_quiet(state: &ApiState, last_heard_ms: Option<u64>) -> bool {
    let interval = u64::try_from(state.status_interval.as_millis()).unwrap_or(u64::MAX);
    let full_every = u64::try_from(state.status_full_every.as_millis()).unwrap_or(u64::MAX);
    let limit = interval
        .saturating_mul(3)
        .max(full_every.saturating_add(interval.saturating_mul(2)));
    last_heard_ms.is_none_or(|t| unix_ms().saturating_sub(t) > limit)
}

pub(super) async fn history(
    State(state): State<ApiState>,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<HistoryAnswer> {
    let remote = match &query.host {
        Some(host) => history_remote::fetch(
            &state.membership,
            state.history_replicas,
            host,
            query.since_ms,
            query.limit.unwrap_or(history_remote::MAX_ENTRIES),
        )
        .await
        .map_err(unavailable)?,
        None => None,
    };
    let history = state.storage.history();
    let last_samples = state.storage.last_samples();
    let answer = tokio::task::spawn_blocking(move || -> anyhow::Result<HistoryAnswer> {
        // The newest sample we hold of a host: in its history, or its last one alone.
        let newest = |host: &str| -> anyhow::Result<Option<StatusSample>> {
            let kept = history.last_sample(host)?;
            let last = last_samples.get(host)?;
            Ok(match (kept, last) {
                (Some(a), Some(b)) => Some(if b.at_ms > a.at_ms { b } else { a }),
                (a, b) => a.or(b),
            })
        };
        match query.host {
            Some(host) => {
                let last_sample = newest(&host)?;
                let last_heard_ms = last_sample.as_ref().map(|s| s.at_ms);
                let local = history.range(&host, query.since_ms, u64::MAX)?;
                let (entries, sources, unanswered) = match remote {
                    None => (
                        history_remote::merge(local, Vec::new(), query.limit),
                        vec!["local".to_owned()],
                        Vec::new(),
                    ),
                    Some(remote) => (
                        history_remote::merge(local, remote.entries, query.limit),
                        remote.answered,
                        remote
                            .failed
                            .into_iter()
                            .map(|(name, why)| format!("{name}: {why}"))
                            .collect(),
                    ),
                };
                Ok(HistoryAnswer::Host(Box::new(HistoryResponse {
                    quiet: is_quiet(&state, last_heard_ms),
                    host,
                    last_heard_ms,
                    last_sample,
                    entries,
                    sources,
                    unanswered,
                })))
            }
            None => {
                let mut names: std::collections::BTreeSet<String> =
                    history.hosts()?.into_iter().collect();
                names.extend(last_samples.all()?.into_iter().map(|s| s.host));
                let mut hosts = Vec::new();
                for host in names {
                    let last_sample = newest(&host)?;
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
