//! The agent's log lines for `monitor --log-level L`: a `tracing` layer that, only while a
//! reader wants a level, formats events at that level or more severe into a bounded broadcast
//! ([`LOG_QUEUE`] lines; a reader that falls behind loses the oldest and is told how many).
//! With no reader, the layer's filter says no and nothing is formatted.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};

/// Lines a reader may fall behind by before it loses the oldest.
pub const LOG_QUEUE: usize = 512;

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When (Unix ms).
    pub at_ms: u64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// The message and its fields (`key=value`).
    pub message: String,
}

/// A level `monitor --log-level` takes that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {0:?} (expected error, warn, info, debug or trace)")]
pub struct UnknownLevel(pub String);

/// Parses `error`, `warn`, `info`, `debug`, `trace` (any case).
pub fn parse_level(text: &str) -> Result<Level, UnknownLevel> {
    text.trim()
        .parse::<Level>()
        .map_err(|_| UnknownLevel(text.to_owned()))
}

/// Readers by level: index 0 is ERROR ... 4 is TRACE.
static READERS: [AtomicUsize; 5] = [
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
];

fn index(level: Level) -> usize {
    match level {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        Level::TRACE => 4,
    }
}

fn lines() -> &'static broadcast::Sender<LogLine> {
    static LINES: OnceLock<broadcast::Sender<LogLine>> = OnceLock::new();
    LINES.get_or_init(|| broadcast::channel(LOG_QUEUE).0)
}

/// A reader of log lines at `level` or more severe; it stops counting as one when dropped.
#[derive(Debug)]
pub struct LogReader {
    level: Level,
    /// The lines (only those at `level` or more severe are meant for this reader: check with
    /// [`LogReader::wants`]).
    pub lines: broadcast::Receiver<LogLine>,
}

impl LogReader {
    /// Starts reading lines at `level` or more severe.
    pub fn new(level: Level) -> Self {
        READERS[index(level)].fetch_add(1, Ordering::Relaxed);
        Self {
            level,
            lines: lines().subscribe(),
        }
    }

    /// Whether `line` is at this reader's level or more severe.
    pub fn wants(&self, line: &LogLine) -> bool {
        line.level
            .parse::<Level>()
            .is_ok_and(|level| index(level) <= index(self.level))
    }
}

impl Drop for LogReader {
    fn drop(&mut self) {
        READERS[index(self.level)].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether some reader wants lines at `level`.
fn wanted(level: Level) -> bool {
    READERS[index(level)..]
        .iter()
        .any(|r| r.load(Ordering::Relaxed) > 0)
}

/// The layer to add to the subscriber (see the module docs).
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    Broadcast.with_filter(WhileRead)
}

struct Broadcast;

impl<S: Subscriber> Layer<S> for Broadcast {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let meta = event.metadata();
        let _ = lines().send(LogLine {
            at_ms: rover_membership::runtime::unix_ms(),
            level: meta.level().to_string(),
            target: meta.target().to_owned(),
            message: message.0,
        });
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            self.0.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

/// Lets events through only while a reader wants their level; asked on every event, never
/// cached per callsite.
struct WhileRead;

impl<S> Filter<S> for WhileRead {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        meta.is_event() && wanted(*meta.level())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_event() && *meta.level() <= LevelFilter::DEBUG {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_whatever_their_case() {
        assert_eq!(parse_level("WARN"), Ok(Level::WARN));
        assert_eq!(parse_level("debug"), Ok(Level::DEBUG));
        assert!(parse_level("loud").is_err());
    }

    #[test]
    fn a_reader_wants_its_level_and_more_severe_ones_only_while_it_reads() {
        let reader = LogReader::new(Level::WARN);
        let line = |level: &str| LogLine {
            at_ms: 0,
            level: level.into(),
            target: "t".into(),
            message: String::new(),
        };
        assert!(reader.wants(&line("ERROR")));
        assert!(reader.wants(&line("WARN")));
        assert!(!reader.wants(&line("INFO")));
        assert!(wanted(Level::ERROR));
        drop(reader);
    }
}
