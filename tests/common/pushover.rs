//! `PushoverSink`: a local HTTP server speaking Pushover's message API
//! (`POST /1/messages.json`, form-encoded) on 127.0.0.1, recording every request with the time
//! it arrived, with a queue of forced answers (500s, 429s) to script failures. Also
//! `BackgroundServer`, which runs any axum router on its own thread (other HTTP test servers
//! use it too).

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

/// A valid application token (30 letters and digits, like Pushover's).
pub const TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
/// A valid user key.
pub const USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";

/// An axum router served on 127.0.0.1 (port 0) by a runtime on its own thread; stopped on drop.
pub struct BackgroundServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundServer {
    /// Binds 127.0.0.1:0 and serves `router` until dropped.
    pub fn start(router: Router) -> BackgroundServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        BackgroundServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct PushoverRequest {
    /// The form fields (a repeated field keeps its last value).
    pub fields: BTreeMap<String, String>,
    /// The `Content-Type` header.
    pub content_type: String,
    /// When it arrived.
    pub at: Instant,
}

impl PushoverRequest {
    /// A field's value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// An answer forced on the next request, whatever it holds.
#[derive(Debug, Clone)]
pub struct ForcedAnswer {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` in seconds, if any.
    pub retry_after: Option<u64>,
    /// JSON body.
    pub body: String,
}

#[derive(Debug, Default)]
struct SinkState {
    token: String,
    user: String,
    requests: Vec<PushoverRequest>,
    forced: VecDeque<ForcedAnswer>,
}

/// A local Pushover API; see the module docs.
pub struct PushoverSink {
    state: Arc<Mutex<SinkState>>,
    server: BackgroundServer,
}

impl PushoverSink {
    /// A sink accepting [`TOKEN`] and [`USER`].
    pub fn start() -> PushoverSink {
        Self::start_with(TOKEN, USER)
    }

    /// A sink accepting this token and user key.
    pub fn start_with(token: &str, user: &str) -> PushoverSink {
        let state = Arc::new(Mutex::new(SinkState {
            token: token.into(),
            user: user.into(),
            ..SinkState::default()
        }));
        let router = Router::new()
            .route("/1/messages.json", post(messages))
            .with_state(state.clone());
        PushoverSink {
            state,
            server: BackgroundServer::start(router),
        }
    }

    /// The API address to configure as `api_url`, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<PushoverRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Waits until at least `n` requests have arrived; returns them all. Panics after
    /// `timeout`.
    pub fn wait_for_count(&self, n: usize, timeout: Duration) -> Vec<PushoverRequest> {
        let mut requests = Vec::new();
        let arrived = super::wait_for(timeout, || {
            requests = self.requests();
            requests.len() >= n
        });
        assert!(
            arrived.is_some(),
            "expected {n} Pushover requests within {timeout:?}, got {}",
            requests.len()
        );
        requests
    }

    /// Answers the next request with `answer` (queued after earlier forced answers).
    pub fn force(&self, answer: ForcedAnswer) {
        self.state.lock().unwrap().forced.push_back(answer);
    }

    /// Answers the next `n` requests with `status` and a Pushover-style error body.
    pub fn fail_next(&self, n: usize, status: u16) {
        for _ in 0..n {
            self.force(ForcedAnswer {
                status,
                retry_after: None,
                body: r#"{"status":0,"errors":["forced failure"],"request":"forced"}"#.into(),
            });
        }
    }

    /// Answers the next request with a 429 (and `Retry-After`, if given).
    pub fn rate_limit_next(&self, retry_after: Option<u64>) {
        self.force(ForcedAnswer {
            status: 429,
            retry_after,
            body: r#"{"status":0,"errors":["application is over its monthly message limit"],"request":"limited"}"#.into(),
        });
    }
}

async fn messages(
    State(state): State<Arc<Mutex<SinkState>>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let at = Instant::now();
    // A body that is not a form counts as one without fields (Pushover then blames the token).
    let fields: BTreeMap<String, String> = form
        .map(|Form(pairs)| pairs.into_iter().collect())
        .unwrap_or_default();
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut state = state.lock().unwrap();
    let number = state.requests.len() + 1;
    state.requests.push(PushoverRequest {
        fields: fields.clone(),
        content_type: content_type.clone(),
        at,
    });
    if let Some(forced) = state.forced.pop_front() {
        let mut response = (
            StatusCode::from_u16(forced.status).unwrap(),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            forced.body,
        )
            .into_response();
        if let Some(seconds) = forced.retry_after {
            response
                .headers_mut()
                .insert("retry-after", seconds.to_string().parse().unwrap());
        }
        return response;
    }
    let request = format!("5042853c-402d-4a18-abcb-{number:012}");
    match validate(&state, &fields, &content_type) {
        Err((key, error)) => json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ key: "invalid", "errors": [error], "status": 0, "request": request }),
        ),
        Ok(()) if fields.get("priority").map(String::as_str) == Some("2") => json(
            StatusCode::OK,
            serde_json::json!({ "status": 1, "request": request, "receipt": format!("rcpt{number}") }),
        ),
        Ok(()) => json(
            StatusCode::OK,
            serde_json::json!({ "status": 1, "request": request }),
        ),
    }
}

/// Pushover's checks: the field it would blame and its error text.
fn validate(
    state: &SinkState,
    fields: &BTreeMap<String, String>,
    content_type: &str,
) -> Result<(), (&'static str, &'static str)> {
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(("token", "application token is invalid"));
    }
    if field("token") != state.token {
        return Err(("token", "application token is invalid"));
    }
    if field("user") != state.user {
        return Err(("user", "user identifier is invalid"));
    }
    if field("message").is_empty() {
        return Err(("message", "message cannot be blank"));
    }
    if field("message").chars().count() > 1024 {
        return Err(("message", "message is too long"));
    }
    if field("title").chars().count() > 250 {
        return Err(("title", "title is too long"));
    }
    match field("priority") {
        "" | "-2" | "-1" | "0" | "1" => Ok(()),
        "2" => {
            let retry: u64 = field("retry")
                .parse()
                .map_err(|_| ("retry", "retry is invalid"))?;
            let expire: u64 = field("expire")
                .parse()
                .map_err(|_| ("expire", "expire is invalid"))?;
            if retry < 30 {
                return Err(("retry", "retry is too small"));
            }
            if expire > 10_800 {
                return Err(("expire", "expire is too large"));
            }
            Ok(())
        }
        _ => Err(("priority", "priority is invalid")),
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}
