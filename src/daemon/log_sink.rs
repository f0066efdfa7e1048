//! The agent's log: `tracing` events to stderr, set up once by the binary.
//!
//! Logging can never kill a task. tracing-subscriber's fmt layer reports a failed write with
//! `eprintln!`, which panics when stderr itself is the problem (the log pipe's reader exited,
//! the log's disk is full): the task that logged would die. Here the writer never fails: a line
//! stderr refuses is dropped and counted ([`LogCounters::dropped_lines`]), and the first line
//! that goes through again says how many were lost.
//!
//! openraft logs every failed RPC to an unreachable peer at WARN or ERROR (one line per retry,
//! thousands in a few minutes of a dead voter). Those lines are dropped here and counted
//! ([`LogCounters::raft_network_lines`]); the Raft transport says instead, once per change,
//! which peer became unreachable and when it is back (`leadership::transport`).

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{EnvFilter, FilterExt};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The filter when `ROVER_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "info,openraft=warn";

/// What the log left out, for `/metrics`.
#[derive(Debug, Default)]
pub struct LogCounters {
    dropped: AtomicU64,
    unreported: AtomicU64,
    raft_network: AtomicU64,
}

impl LogCounters {
    /// Log lines stderr refused (dropped) since the start.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// openraft's per-RPC network error lines left out since the start.
    pub fn raft_network_lines(&self) -> u64 {
        self.raft_network.load(Ordering::Relaxed)
    }
}

/// The process's log counters.
pub static COUNTERS: LogCounters = LogCounters {
    dropped: AtomicU64::new(0),
    unreported: AtomicU64::new(0),
    raft_network: AtomicU64::new(0),
};

/// The counters in the Prometheus text format, for `/metrics`.
pub fn metrics() -> String {
    format!(
        "# HELP rover_log_lines_dropped_total Log lines stderr refused (dropped).\n\
         # TYPE rover_log_lines_dropped_total counter\n\
         rover_log_lines_dropped_total {}\n\
         # HELP rover_log_raft_network_lines_total openraft lines about failed RPCs to one peer, left out of the log.\n\
         # TYPE rover_log_raft_network_lines_total counter\n\
         rover_log_raft_network_lines_total {}\n",
        COUNTERS.dropped_lines(),
        COUNTERS.raft_network_lines()
    )
}

/// The handle that swaps the filter of the installed subscriber ([`set_filter`]).
static FILTER: std::sync::OnceLock<reload::Handle<EnvFilter, tracing_subscriber::Registry>> =
    std::sync::OnceLock::new();

/// Why a log filter was not applied.
#[derive(Debug, thiserror::Error)]
pub enum SetFilterError {
    /// The text is not a filter; the old one stays.
    #[error("not a log filter: {0}")]
    Invalid(String),
    /// The subscriber of [`init`] is not installed (in-process tests); nothing changed.
    #[error("the log is not set up by this process")]
    NotInstalled,
}

/// Replaces the log filter of the subscriber [`init`] installed (`log.level` at start and
/// on a reload).
pub fn set_filter(directives: &str) -> Result<(), SetFilterError> {
    let filter =
        EnvFilter::try_new(directives).map_err(|e| SetFilterError::Invalid(e.to_string()))?;
    let handle = FILTER.get().ok_or(SetFilterError::NotInstalled)?;
    handle
        .reload(filter)
        .map_err(|_| SetFilterError::NotInstalled)
}

/// Installs the subscriber: `ROVER_LOG` (or [`DEFAULT_FILTER`]) to stderr, through
/// [`StderrSink`] and without openraft's per-RPC network errors. A second call does nothing.
/// The filter can be replaced later ([`set_filter`]).
pub fn init() {
    let filter =
        EnvFilter::try_from_env("ROVER_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (filter, handle) = reload::Layer::new(filter);
    if FILTER.set(handle).is_err() {
        return;
    }
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(|| StderrSink)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .log_internal_errors(false)
        .with_filter(filter.and(RaftNetworkNoise));
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(crate::introspection::log_stream::layer())
        .try_init();
}

/// stderr that never fails: a refused line is counted and dropped (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct StderrSink;

impl Write for StderrSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_counted(&mut io::stderr().lock(), buf, &COUNTERS);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes one formatted line to `out`; on failure counts it in `counters`. After failures,
/// the first line that goes through is preceded by how many were dropped.
fn write_counted(out: &mut impl Write, line: &[u8], counters: &LogCounters) {
    let missed = counters.unreported.swap(0, Ordering::Relaxed);
    let mut written = true;
    if missed > 0 {
        let note = format!("[rover-agent] {missed} log lines were dropped: stderr refused them\n");
        written = out.write_all(note.as_bytes()).is_ok();
    }
    written = written && out.write_all(line).is_ok();
    if !written {
        counters.dropped.fetch_add(1, Ordering::Relaxed);
        counters
            .unreported
            .fetch_add(missed.saturating_add(1), Ordering::Relaxed);
    }
}

/// Leaves out openraft's per-RPC network errors (see the module docs), counting them.
#[derive(Debug, Clone, Copy)]
struct RaftNetworkNoise;

impl<S> Filter<S> for RaftNetworkNoise {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        if is_raft_network_noise(meta) {
            COUNTERS.raft_network.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// Whether an event is one of openraft's reports of a failed RPC to one peer: anything of
/// WARN or worse from its replication streams, and the vote and read-confirmation RPC
/// failures of its core (the events that name a `target` peer and an `error`).
fn is_raft_network_noise(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    if !meta.is_event() || *meta.level() > Level::WARN || !target.starts_with("openraft") {
        return false;
    }
    if target.starts_with("openraft::replication")
        || target.starts_with("openraft::engine::handler::replication_handler")
    {
        return true;
    }
    let fields = meta.fields();
    target.starts_with("openraft::core::raft_core")
        && fields.field("target").is_some()
        && fields.field("error").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that refuses everything while `broken`.
    struct Flaky {
        broken: bool,
        text: Vec<u8>,
    }

    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.broken {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            self.text.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn refused_lines_are_counted_and_the_next_line_that_goes_through_says_how_many() {
        let counters = LogCounters::default();
        let mut out = Flaky {
            broken: true,
            text: Vec::new(),
        };
        write_counted(&mut out, b"one\n", &counters);
        write_counted(&mut out, b"two\n", &counters);
        assert_eq!(counters.dropped_lines(), 2);
        out.broken = false;
        write_counted(&mut out, b"three\n", &counters);
        write_counted(&mut out, b"four\n", &counters);
        assert_eq!(
            String::from_utf8(out.text).unwrap(),
            "[rover-agent] 2 log lines were dropped: stderr refused them\nthree\nfour\n"
        );
        assert_eq!(counters.dropped_lines(), 2);
    }
}
