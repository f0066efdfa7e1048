//! Refusing replayed datagrams: a window on the sender's time, and a bounded memory of the
//! nonces seen inside it.
//!
//! Every sealed datagram carries the time its sender sealed it (authenticated, see
//! [`crate::envelope`]). A datagram sent more than the window away from our clock, either way,
//! is refused as stale; one whose `(time, nonce)` was already seen is refused as a replay. Only
//! datagrams that opened are remembered, so forged packets cannot fill the memory. The memory
//! holds at most `capacity` entries: when it is full the oldest entry is forgotten and its time
//! becomes a floor, at or below which every datagram is refused, so a forgotten nonce can never
//! be replayed. The window is a clock-skew requirement: agents whose clocks differ by more than
//! the window cannot talk to each other.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::envelope::NONCE_LEN;

/// How far from our clock a datagram's time may be (60 s).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// How many nonces are remembered at most (about 1 MiB; 500 datagrams/s for a minute).
pub const DEFAULT_CAPACITY: usize = 32_768;

/// Why a datagram that opened was still refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Sent further than the window from our clock (or at or below the floor).
    Stale {
        /// Our clock minus the sender's, in ms (negative: the sender is ahead).
        skew_ms: i64,
    },
    /// Already seen inside the window.
    Replayed,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    window_ms: u64,
    capacity: usize,
    seen: BTreeSet<(u64, u128)>,
    floor_ms: Option<u64>,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW, DEFAULT_CAPACITY)
    }
}

impl ReplayGuard {
    /// A guard with this window and memory size.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            capacity: capacity.max(1),
            seen: BTreeSet::new(),
            floor_ms: None,
        }
    }

    /// The window.
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    /// Nonces remembered now.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    /// Admits a datagram that opened, sent at `sent_ms` with `nonce`, at our time `now_ms`;
    /// remembers it if admitted.
    pub fn admit(
        &mut self,
        now_ms: u64,
        sent_ms: u64,
        nonce: &[u8; NONCE_LEN],
    ) -> Result<(), Refusal> {
        let skew_ms = i64::try_from(i128::from(now_ms) - i128::from(sent_ms)).unwrap_or(i64::MAX);
        let below_floor = self.floor_ms.is_some_and(|floor| sent_ms <= floor);
        if now_ms.abs_diff(sent_ms) > self.window_ms || below_floor {
            return Err(Refusal::Stale { skew_ms });
        }
        self.forget_before(now_ms.saturating_sub(self.window_ms));
        let mut prefix = [0u8; 16];
        prefix.copy_from_slice(&nonce[..16]);
        if !self.seen.insert((sent_ms, u128::from_be_bytes(prefix))) {
            return Err(Refusal::Replayed);
        }
        while self.seen.len() > self.capacity {
            if let Some((oldest, _)) = self.seen.pop_first() {
                self.floor_ms = Some(self.floor_ms.map_or(oldest, |f| f.max(oldest)));
            }
        }
        Ok(())
    }

    /// Drops what is older than `oldest_ms`: the window refuses it anyway.
    fn forget_before(&mut self, oldest_ms: u64) {
        while self.seen.first().is_some_and(|(sent, _)| *sent < oldest_ms) {
            self.seen.pop_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce(n: u8) -> [u8; NONCE_LEN] {
        [n; NONCE_LEN]
    }

    #[test]
    fn a_datagram_seen_twice_is_refused_the_second_time() {
        let mut guard = ReplayGuard::default();
        assert_eq!(guard.admit(1_000, 1_000, &nonce(1)), Ok(()));
        assert_eq!(guard.admit(1_500, 1_000, &nonce(1)), Err(Refusal::Replayed));
        assert_eq!(guard.admit(1_500, 1_000, &nonce(2)), Ok(()));
    }

    #[test]
    fn a_datagram_outside_the_window_is_stale_either_way() {
        let mut guard = ReplayGuard::new(Duration::from_secs(60), 16);
        let now = 10_000_000;
        assert_eq!(
            guard.admit(now, now - 120_000, &nonce(1)),
            Err(Refusal::Stale { skew_ms: 120_000 })
        );
        assert_eq!(
            guard.admit(now, now + 61_000, &nonce(2)),
            Err(Refusal::Stale { skew_ms: -61_000 })
        );
        assert_eq!(guard.admit(now, now - 59_000, &nonce(3)), Ok(()));
    }

    #[test]
    fn a_replay_after_the_window_is_stale_not_forgotten() {
        let mut guard = ReplayGuard::default();
        assert_eq!(guard.admit(0, 0, &nonce(1)), Ok(()));
        // Two minutes later the entry is forgotten, but the time refuses the replay.
        assert_eq!(guard.admit(120_000, 120_000, &nonce(2)), Ok(()));
        assert_eq!(guard.remembered(), 1);
        assert_eq!(
            guard.admit(120_000, 0, &nonce(1)),
            Err(Refusal::Stale { skew_ms: 120_000 })
        );
    }

    #[test]
    fn a_full_memory_refuses_what_it_had_to_forget() {
        let mut guard = ReplayGuard::new(Duration::from_secs(60), 3);
        for (i, sent) in [100u64, 200, 300, 400].into_iter().enumerate() {
            let n = u8::try_from(i).unwrap();
            assert_eq!(guard.admit(500, sent, &nonce(n)), Ok(()));
        }
        assert_eq!(guard.remembered(), 3);
        // The datagram at 100 was forgotten: its replay is refused by the floor.
        assert!(matches!(
            guard.admit(500, 100, &nonce(0)),
            Err(Refusal::Stale { .. })
        ));
        assert_eq!(guard.admit(500, 400, &nonce(3)), Err(Refusal::Replayed));
        assert_eq!(guard.admit(500, 450, &nonce(9)), Ok(()));
    }
}
