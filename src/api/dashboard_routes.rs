//! The dashboard: `GET /` serves one page embedded in the binary (HTML, CSS and script in one
//! file, no external asset, so it works with no internet), read-only. It shows the members
//! (status, since, team, switch), every alert with its team and path, the incidents with
//! their notification records, the leader and its mode, and per host a small inline-SVG plot
//! of load, memory and disk over the last three hours.
//!
//! `GET /v1/dashboard/stream` keeps the page live: a server-sent event `change` whenever the
//! member view, the alert table, the applied ledger or the leadership changes (at most one
//! per [`COALESCE`]), and a comment every [`KEEPALIVE`]; the page then reads the usual
//! read-only routes again. A reader that does not read gets at most one pending event: changes
//! are coalesced, never queued.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use tokio::sync::mpsc;

use super::event_routes::LinesBody;
use super::server::ApiState;

/// The page.
const PAGE: &str = include_str!("dashboard/index.html");
/// Changes closer together than this make one event.
const COALESCE: Duration = Duration::from_millis(200);
/// A comment this often keeps proxies and the browser from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// `GET /`.
pub(super) async fn page() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            ),
        ],
        Html(PAGE),
    )
        .into_response()
}

/// `GET /v1/dashboard/stream`.
pub(super) async fn stream(State(state): State<ApiState>) -> Response {
    let (events, body) = mpsc::channel(1);
    let mut members = state.member_changes.clone();
    let mut alerts = state.alerts.changes();
    let mut leadership = state.leadership.watch_status();
    let mut ledger = state.leadership.applied_ledger();
    tokio::spawn(async move {
        if events
            .send(Bytes::from_static(b"event: change\ndata: start\n\n"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let changed = tokio::select! {
                r = members.changed() => r.is_ok(),
                r = alerts.changed() => r.is_ok(),
                r = leadership.changed() => r.is_ok(),
                r = ledger_changed(&mut ledger) => r,
                () = tokio::time::sleep(KEEPALIVE) => {
                    if events.send(Bytes::from_static(b": keepalive\n\n")).await.is_err() {
                        return;
                    }
                    continue;
                }
                () = events.closed() => return,
            };
            if !changed {
                // A source stopped (the agent is shutting down, or the Raft node was
                // replaced): look again after a while rather than spin.
                tokio::time::sleep(COALESCE).await;
                ledger = state.leadership.applied_ledger();
            }
            tokio::time::sleep(COALESCE).await;
            if events
                .try_send(Bytes::from_static(b"event: change\ndata: 1\n\n"))
                .is_err()
                && events.is_closed()
            {
                return;
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::new(LinesBody(body)),
    )
        .into_response()
}

/// Waits for the applied ledger to change; false when the reader's machine stopped.
async fn ledger_changed(reader: &mut Option<rover_election::state_machine::LedgerReader>) -> bool {
    match reader {
        Some(reader) => reader.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}
