//! What this agent's sends did, per channel, for `/metrics`: how many were delivered and how
//! many not, and how long they took (a histogram with fixed bounds, cumulative as Prometheus
//! reads it). Only configured channels are counted, so the table is bounded by the config.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the send-time histogram's buckets; `+Inf` is implied.
pub const BUCKET_BOUNDS_S: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// One channel's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelSends {
    /// Sends that were delivered.
    pub delivered: u64,
    /// Sends that were not (after their retries).
    pub failed: u64,
    /// Per bucket of [`BUCKET_BOUNDS_S`], the sends that took at most its bound (cumulative).
    pub at_most: [u64; BUCKET_BOUNDS_S.len()],
    /// The seconds all sends took, summed.
    pub seconds: f64,
}

impl ChannelSends {
    /// Sends in all.
    pub fn count(&self) -> u64 {
        self.delivered + self.failed
    }
}

/// The counts of every channel.
#[derive(Debug, Default)]
pub struct SendStats {
    channels: Mutex<BTreeMap<String, ChannelSends>>,
}

impl SendStats {
    /// Counts one send on `channel` that took `took`.
    pub fn record(&self, channel: &str, delivered: bool, took: Duration) {
        let mut channels = match self.channels.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        let sends = channels.entry(channel.to_owned()).or_default();
        if delivered {
            sends.delivered += 1;
        } else {
            sends.failed += 1;
        }
        let seconds = took.as_secs_f64();
        sends.seconds += seconds;
        for (bound, n) in BUCKET_BOUNDS_S.iter().zip(sends.at_most.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
    }

    /// A copy of the counts, by channel name.
    pub fn read(&self) -> BTreeMap<String, ChannelSends> {
        match self.channels.lock() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_is_counted_in_every_bucket_at_or_above_its_time() {
        let stats = SendStats::default();
        stats.record("mail", true, Duration::from_millis(300));
        stats.record("mail", false, Duration::from_secs(40));
        let mail = &stats.read()["mail"];
        assert_eq!((mail.delivered, mail.failed, mail.count()), (1, 1, 2));
        // 0.3 s is above 0.25 and at most 0.5: buckets from 0.5 up hold it; 40 s is in none.
        assert_eq!(mail.at_most, [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
        assert!((mail.seconds - 40.3).abs() < 1e-9);
    }
}
