//! The `ui.bind` listener: the dashboard for other machines, read-only. It serves the page,
//! its live stream and the read routes the page uses (members, info, leader, alerts,
//! incidents, topology, history) and nothing else: no route that changes anything exists
//! here, whatever the method. Every request must show the viewer token (kept in the data dir,
//! printed by `rover-agent ui token`): as `Authorization: Bearer TOKEN`, as the
//! `rover_viewer` cookie, or once as `/?token=TOKEN`, which sets that cookie (HttpOnly,
//! SameSite=Strict) and sends the browser back to `/` so the token leaves the address bar.
//! The same connection limits and timeouts as the API apply ([`super::connections`]).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::server::ApiState;

/// The cookie that carries the viewer token.
const COOKIE: &str = "rover_viewer";

#[derive(Clone)]
struct Viewer {
    token: Arc<str>,
}

/// The read-only router of the `ui.bind` listener.
pub fn router(state: ApiState, token: &str) -> Router {
    let viewer = Viewer {
        token: Arc::from(token),
    };
    Router::new()
        .route("/", get(super::dashboard_routes::page))
        .route("/v1/dashboard/stream", get(super::dashboard_routes::stream))
        .route("/v1/members", get(super::server::members))
        .route("/v1/info", get(super::server::info))
        .route("/v1/leader", get(super::leader_routes::leader))
        .route("/v1/alerts", get(super::alert_routes::list))
        .route("/v1/incidents", get(super::leader_routes::incidents))
        .route("/v1/topology", get(super::topology_routes::topology))
        .route("/v1/history", get(super::history_routes::history))
        .layer(axum::extract::DefaultBodyLimit::max(0))
        .layer(axum::middleware::from_fn_with_state(viewer, check_token))
        .with_state(state)
}

/// Serves the read-only dashboard on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    token: &str,
    shutdown: impl std::future::Future<Output = ()>,
) {
    super::connections::serve(listener, router(state, token), shutdown).await;
}

async fn check_token(State(viewer): State<Viewer>, request: Request, next: Next) -> Response {
    if let Some(given) = query_token(request.uri().query()) {
        if !same(&given, &viewer.token) {
            return refused();
        }
        let cookie = format!("{COOKIE}={given}; Path=/; HttpOnly; SameSite=Strict");
        return (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, cookie),
                (header::LOCATION, "/".to_owned()),
            ],
        )
            .into_response();
    }
    if presented(request.headers()).is_some_and(|t| same(&t, &viewer.token)) {
        return next.run(request).await;
    }
    refused()
}

/// The token in `?token=...`, if given.
fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(str::to_owned)
}

/// The token in the `Authorization` header or the viewer cookie, if any.
fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
    {
        return Some(bearer.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_owned)
        })
}

/// Compares in time independent of where they differ.
fn same(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn refused() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Html(
            "<!doctype html><title>rover-agent</title><p>This dashboard needs its viewer token: \
             run <code>rover-agent ui token</code> on the host, then open \
             <code>/?token=TOKEN</code> here.</p>",
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_taken_from_the_query_the_bearer_header_or_the_cookie() {
        assert_eq!(query_token(Some("a=1&token=abc")), Some("abc".into()));
        assert_eq!(query_token(Some("a=1")), None);
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "x=1; rover_viewer=t0k".parse().unwrap());
        assert_eq!(presented(&headers), Some("t0k".into()));
        headers.insert(header::AUTHORIZATION, "bearer b3".parse().unwrap());
        assert_eq!(presented(&headers), Some("b3".into()));
        assert!(same("abc", "abc"));
        assert!(!same("abd", "abc"));
        assert!(!same("ab", "abc"));
    }
}
