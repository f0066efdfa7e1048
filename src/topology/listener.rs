//! The listener: one thread per interface (pnet's `next()` blocks), each reading its filtered
//! socket ([`super::socket`]), parsing every frame ([`super::frame::parse_frame`]) and handing
//! what it heard to the owner task with `try_send`: a full queue drops and counts, it never
//! blocks. Every frame is counted, by outcome ([`ListenerStats`]); frames that parse are also
//! rate-limited per interface, so a flood of valid-looking frames cannot flood the owner.
//!
//! A thread that ends (its interface went away, a read error, a panic) says so to the owner
//! through [`ListenerEvent::Ended`], sent from a drop guard so that even a panic is reported.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use pnet_datalink::NetworkInterface;
use tokio::sync::mpsc;

use super::frame::{parse_frame, Dropped, Heard};
use super::report::ListenerCounters;
use super::socket::{self, OpenError};

/// Frames taken per second per interface, on average (LLDP sends one per neighbour every
/// 30 s by default) ...
const RATE_PER_SECOND: f64 = 20.0;
/// ... with bursts of up to this many.
const BURST: f64 = 40.0;

/// What a listener thread tells the owner task.
#[derive(Debug)]
pub enum ListenerEvent {
    /// A neighbour spoke on `interface`.
    Heard {
        /// The interface.
        interface: String,
        /// What it said.
        heard: Heard,
    },
    /// The thread of `interface` ended.
    Ended {
        /// The interface.
        interface: String,
        /// Why, if it was not asked to stop.
        error: Option<String>,
    },
}

/// Counters shared by every listener thread.
#[derive(Debug, Default)]
pub struct ListenerStats {
    frames: AtomicU64,
    taken: AtomicU64,
    rate_limited: AtomicU64,
    queue_full: AtomicU64,
    dropped: [AtomicU64; Dropped::ALL.len()],
}

impl ListenerStats {
    fn count_drop(&self, reason: Dropped) {
        if let Some(i) = Dropped::ALL.iter().position(|r| *r == reason) {
            self.dropped[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A reading of the counters (`records_refused` is the owner's and left at 0).
    pub fn read(&self) -> ListenerCounters {
        ListenerCounters {
            frames: self.frames.load(Ordering::Relaxed),
            taken: self.taken.load(Ordering::Relaxed),
            dropped: Dropped::ALL
                .iter()
                .zip(&self.dropped)
                .map(|(reason, n)| (reason.as_str().to_owned(), n.load(Ordering::Relaxed)))
                .collect::<BTreeMap<_, _>>(),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            queue_full: self.queue_full.load(Ordering::Relaxed),
            records_refused: 0,
        }
    }
}

/// A running listener thread; dropping it asks the thread to stop (within the socket's read
/// timeout).
#[derive(Debug)]
pub struct ListenerThread {
    stop: Arc<AtomicBool>,
}

impl Drop for ListenerThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Opens `interface` and starts its thread. `own_macs` are this host's MACs (frames from
/// them are dropped as [`Dropped::OwnFrame`]).
pub fn start(
    interface: &NetworkInterface,
    own_macs: Vec<[u8; 6]>,
    events: mpsc::Sender<ListenerEvent>,
    stats: Arc<ListenerStats>,
) -> Result<ListenerThread, OpenError> {
    let mut receiver = socket::open(interface)?;
    let stop = Arc::new(AtomicBool::new(false));
    let name = interface.name.clone();
    let thread_stop = stop.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("lldp-{name}"))
        .spawn(move || {
            let mut guard = EndGuard {
                interface: name.clone(),
                events: events.clone(),
                error: Some("the listener thread panicked".into()),
            };
            let mut bucket = TokenBucket::new(Instant::now());
            while !thread_stop.load(Ordering::Relaxed) {
                let frame = match receiver.next() {
                    Ok(frame) => frame,
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        guard.error = Some(format!("read failed: {e}"));
                        return;
                    }
                };
                stats.frames.fetch_add(1, Ordering::Relaxed);
                let heard = match parse_frame(frame) {
                    Ok(heard) if own_macs.contains(&heard.source_mac) => {
                        stats.count_drop(Dropped::OwnFrame);
                        continue;
                    }
                    Ok(heard) => heard,
                    Err(reason) => {
                        stats.count_drop(reason);
                        continue;
                    }
                };
                if !bucket.take(Instant::now()) {
                    stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let event = ListenerEvent::Heard {
                    interface: name.clone(),
                    heard,
                };
                match events.try_send(event) {
                    Ok(()) => {
                        stats.taken.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        stats.queue_full.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        guard.error = None;
                        return;
                    }
                }
            }
            guard.error = None;
        });
    match spawned {
        Ok(_detached) => Ok(ListenerThread { stop }),
        Err(source) => Err(OpenError::Other {
            interface: interface.name.clone(),
            source,
        }),
    }
}

/// Reports the end of a listener thread, also when it unwinds from a panic.
struct EndGuard {
    interface: String,
    events: mpsc::Sender<ListenerEvent>,
    error: Option<String>,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        let _ = self.events.try_send(ListenerEvent::Ended {
            interface: std::mem::take(&mut self.interface),
            error: self.error.take(),
        });
    }
}

/// A token bucket refilled at [`RATE_PER_SECOND`] up to [`BURST`].
#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(now: Instant) -> Self {
        Self {
            tokens: BURST,
            at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * RATE_PER_SECOND).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_bucket_lets_a_burst_through_then_the_steady_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(start);
        let burst = (0..100).filter(|_| bucket.take(start)).count();
        assert_eq!(burst, 40);
        let later = start + Duration::from_secs(1);
        let refilled = (0..100).filter(|_| bucket.take(later)).count();
        assert_eq!(refilled, 20);
    }

    #[test]
    fn counters_are_read_by_reason() {
        let stats = ListenerStats::default();
        stats.count_drop(Dropped::Truncated);
        stats.count_drop(Dropped::Truncated);
        stats.count_drop(Dropped::BadChecksum);
        let read = stats.read();
        assert_eq!(read.dropped["truncated"], 2);
        assert_eq!(read.dropped["bad_checksum"], 1);
        assert_eq!(read.dropped["own_frame"], 0);
        assert_eq!(read.dropped_total(), 3);
    }
}
