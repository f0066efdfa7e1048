//! Limits of the cluster port: connections in total and per peer IP address, with tighter
//! limits for connections still in their handshake; and the count of what was refused, by
//! reason, for `info` and `/metrics`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

/// Open connections at most (authenticated or not).
pub const MAX_CONNECTIONS: usize = 256;
/// Open connections at most from one IP address.
pub const MAX_PER_IP: usize = 64;
/// Connections at most that have not finished their handshake.
pub const MAX_HANDSHAKING: usize = 32;
/// Connections at most from one IP address that have not finished their handshake.
pub const MAX_HANDSHAKING_PER_IP: usize = 8;

/// Connections the cluster port refused, by reason.
#[derive(Debug, Default)]
pub struct Refusals {
    handshakes: AtomicU64,
    frames: AtomicU64,
    over_limit: AtomicU64,
    timeouts: AtomicU64,
}

/// A reading of [`Refusals`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefusalCounts {
    /// Handshakes that failed: not our protocol or version, a key we do not hold, a forged
    /// or replayed handshake, a handshake frame over the limit.
    pub handshakes: u64,
    /// Connections closed on a frame that did not decrypt after the handshake (replayed,
    /// reordered, from another connection, forged) or was too long.
    pub frames: u64,
    /// Connections refused at accept because a connection limit was reached.
    pub over_limit: u64,
    /// Connections that did not finish their handshake in time.
    pub timeouts: u64,
}

impl Refusals {
    /// One more handshake refused.
    pub fn handshake(&self) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
    }

    /// One more connection closed on a refused frame.
    pub fn frame(&self) {
        self.frames.fetch_add(1, Ordering::Relaxed);
    }

    /// One more connection refused by a limit.
    pub fn over_limit(&self) {
        self.over_limit.fetch_add(1, Ordering::Relaxed);
    }

    /// One more handshake that timed out.
    pub fn timeout(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn read(&self) -> RefusalCounts {
        RefusalCounts {
            handshakes: self.handshakes.load(Ordering::Relaxed),
            frames: self.frames.load(Ordering::Relaxed),
            over_limit: self.over_limit.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
        }
    }
}

/// Everything this process's cluster port refused (one daemon per process).
pub static REFUSED: Refusals = Refusals {
    handshakes: AtomicU64::new(0),
    frames: AtomicU64::new(0),
    over_limit: AtomicU64::new(0),
    timeouts: AtomicU64::new(0),
};

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    handshaking: usize,
    per_ip: HashMap<IpAddr, (usize, usize)>,
}

/// The open connections, by address. See the module docs.
#[derive(Debug, Default)]
pub struct ConnectionLimits {
    counts: Mutex<Counts>,
}

impl ConnectionLimits {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        match self.counts.lock() {
            Ok(counts) => counts,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A slot for a new connection from `ip`, still in its handshake; `None` if a limit is
    /// reached (the caller closes the connection).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut counts = self.counts();
        let (open, handshaking) = counts.per_ip.get(&ip).copied().unwrap_or((0, 0));
        if counts.open >= MAX_CONNECTIONS
            || counts.handshaking >= MAX_HANDSHAKING
            || open >= MAX_PER_IP
            || handshaking >= MAX_HANDSHAKING_PER_IP
        {
            return None;
        }
        counts.open += 1;
        counts.handshaking += 1;
        counts.per_ip.insert(ip, (open + 1, handshaking + 1));
        Some(Slot {
            limits: self.clone(),
            ip,
            handshaking: true,
        })
    }

    /// Open connections now (authenticated or not) and those still in their handshake.
    pub fn open(&self) -> (usize, usize) {
        let counts = self.counts();
        (counts.open, counts.handshaking)
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
    handshaking: bool,
}

impl Slot {
    /// The handshake succeeded: the connection leaves the handshake limits.
    pub fn authenticated(&mut self) {
        if !self.handshaking {
            return;
        }
        self.handshaking = false;
        let mut counts = self.limits.counts();
        counts.handshaking = counts.handshaking.saturating_sub(1);
        if let Some(entry) = counts.per_ip.get_mut(&self.ip) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let handshaking = usize::from(self.handshaking);
        let mut counts = self.limits.counts();
        counts.open = counts.open.saturating_sub(1);
        counts.handshaking = counts.handshaking.saturating_sub(handshaking);
        let now_empty = counts.per_ip.get_mut(&self.ip).is_some_and(|entry| {
            entry.0 = entry.0.saturating_sub(1);
            entry.1 = entry.1.saturating_sub(handshaking);
            entry.0 == 0
        });
        if now_empty {
            counts.per_ip.remove(&self.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_address_cannot_hold_more_handshakes_than_its_share() {
        let limits = Arc::new(ConnectionLimits::default());
        let held: Vec<Slot> = (0..MAX_HANDSHAKING_PER_IP)
            .map(|_| limits.admit(ip(1)).unwrap())
            .collect();
        assert!(limits.admit(ip(1)).is_none());
        assert!(
            limits.admit(ip(2)).is_some(),
            "another address still gets in"
        );
        drop(held);
        assert_eq!(limits.open(), (0, 0));
        assert!(limits.admit(ip(1)).is_some());
    }

    #[test]
    fn authenticated_connections_leave_the_handshake_limits_but_not_the_total() {
        let limits = Arc::new(ConnectionLimits::default());
        let mut held = Vec::new();
        for _ in 0..MAX_PER_IP {
            let mut slot = limits.admit(ip(1)).unwrap();
            slot.authenticated();
            held.push(slot);
        }
        assert_eq!(limits.open(), (MAX_PER_IP, 0));
        assert!(limits.admit(ip(1)).is_none(), "per-address total");
        let mut others = Vec::new();
        for last in 2..=255u8 {
            match limits.admit(ip(last)) {
                Some(mut slot) => {
                    slot.authenticated();
                    others.push(slot);
                }
                None => break,
            }
        }
        assert_eq!(limits.open().0, MAX_CONNECTIONS);
    }
}
