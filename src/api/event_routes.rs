//! `GET /v1/events` (the buffer, filtered) and `GET /v1/monitor` (new events, and log lines
//! with `log_level`, as JSON lines on a chunked response until the reader hangs up).
//!
//! A monitor reader never slows the agent: events reach it through the event log's broadcast
//! and log lines through the log layer's, each bounded, and its relay task moves them at once
//! into the reader's own queue of [`BODY_QUEUE`] lines without waiting. A reader that falls
//! behind loses what does not fit (counted in `info`'s `monitor_dropped` for events), and the
//! stream says so with a `dropped` line before the next one it gets.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hyper::body::Frame;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use super::server::{unavailable, ApiError, ApiResult, ApiState};
use crate::introspection::log_stream::{self, LogLine, LogReader};
use crate::introspection::{ClusterEvent, EventFilter, EventOp};

/// Query of `GET /v1/events` and `GET /v1/monitor`.
#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    /// Only events at or after this time (Unix ms).
    pub since_ms: Option<u64>,
    /// Only these ops, comma-separated.
    pub ops: Option<String>,
    /// Only events about this node.
    pub node: Option<String>,
    /// (`monitor` only) also log lines at this level or more severe.
    pub log_level: Option<String>,
}

impl EventsQuery {
    fn filter(&self) -> Result<EventFilter, ApiError> {
        let ops = self
            .ops
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(str::parse::<EventOp>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
        Ok(EventFilter {
            since_ms: self.since_ms,
            ops,
            node: self.node.clone().filter(|n| !n.is_empty()),
        })
    }
}

pub(super) async fn events(
    State(state): State<ApiState>,
    Query(query): Query<EventsQuery>,
) -> ApiResult<Vec<ClusterEvent>> {
    let filter = query.filter()?;
    state
        .events
        .query(filter)
        .await
        .map(Json)
        .map_err(unavailable)
}

/// One line of the monitor stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MonitorLine {
    /// The first line: the stream is live from here on.
    Started {
        /// The agent's node name.
        node: String,
    },
    /// An event.
    Event(ClusterEvent),
    /// A log line.
    Log(LogLine),
    /// This reader lost these many events and log lines since the last line it got.
    Dropped {
        /// Events lost.
        events: u64,
        /// Log lines lost.
        log_lines: u64,
    },
}

/// Lines waiting for the connection at most, per reader (past that its broadcasts lag).
const BODY_QUEUE: usize = 16;

pub(super) async fn monitor(
    State(state): State<ApiState>,
    Query(query): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let filter = query.filter()?;
    let logs = match query.log_level.as_deref().filter(|l| !l.is_empty()) {
        Some(level) => Some(LogReader::new(
            log_stream::parse_level(level)
                .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?,
        )),
        None => None,
    };
    let events = state
        .events
        .subscribe()
        .ok_or_else(|| unavailable("the event log is not running"))?;
    let node = state
        .membership
        .status()
        .await
        .map_err(unavailable)?
        .identity
        .name;
    let (lines, body) = mpsc::channel(BODY_QUEUE);
    let relay = Relay {
        filter,
        events,
        logs,
        lines,
        lost_events: 0,
        lost_lines: 0,
        log: state.events.clone(),
    };
    tokio::spawn(relay.run(node));
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::new(LinesBody(body)),
    )
        .into_response())
}

/// Moves one reader's lines from the broadcasts to its connection; ends when the reader
/// hangs up or the event log stops.
struct Relay {
    filter: EventFilter,
    events: broadcast::Receiver<ClusterEvent>,
    logs: Option<LogReader>,
    lines: mpsc::Sender<Bytes>,
    lost_events: u64,
    lost_lines: u64,
    log: crate::introspection::EventLog,
}

impl Relay {
    async fn run(mut self, node: String) {
        if self
            .lines
            .send(encode(&MonitorLine::Started { node }))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let line = tokio::select! {
                received = self.events.recv() => match received {
                    Ok(event) if self.filter.matches(&event) => MonitorLine::Event(event),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        self.lost_events += n;
                        self.log.count_monitor_drops(n);
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                received = next_log(&mut self.logs) => match received {
                    Ok(line) => MonitorLine::Log(line),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        self.lost_lines += n;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.logs = None;
                        continue;
                    }
                },
            };
            if !self.offer(line) {
                return;
            }
        }
    }

    /// Queues `line` for the connection without waiting, after a `dropped` line if this
    /// reader lost some; a full queue drops it (counted). False once the reader is gone.
    fn offer(&mut self, line: MonitorLine) -> bool {
        if self.lost_events > 0 || self.lost_lines > 0 {
            let dropped = MonitorLine::Dropped {
                events: self.lost_events,
                log_lines: self.lost_lines,
            };
            match self.lines.try_send(encode(&dropped)) {
                Ok(()) => (self.lost_events, self.lost_lines) = (0, 0),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.lose(&line);
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        match self.lines.try_send(encode(&line)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lose(&line);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn lose(&mut self, line: &MonitorLine) {
        match line {
            MonitorLine::Log(_) => self.lost_lines += 1,
            _ => {
                self.lost_events += 1;
                self.log.count_monitor_drops(1);
            }
        }
    }
}

/// A line of the stream: JSON and a newline.
fn encode(line: &MonitorLine) -> Bytes {
    let mut text = serde_json::to_vec(line).unwrap_or_default();
    text.push(b'\n');
    Bytes::from(text)
}

/// The next log line this reader wants (never, without `log_level`).
async fn next_log(logs: &mut Option<LogReader>) -> Result<LogLine, broadcast::error::RecvError> {
    let Some(reader) = logs else {
        return std::future::pending().await;
    };
    loop {
        let line = reader.lines.recv().await?;
        if reader.wants(&line) {
            return Ok(line);
        }
    }
}

/// A response body of the lines a [`Relay`] queues.
pub(super) struct LinesBody(pub(super) mpsc::Receiver<Bytes>);

impl hyper::body::Body for LinesBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|l| Ok(Frame::data(l))))
    }
}
