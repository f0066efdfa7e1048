//! This agent's share of the cluster's history (`history.replicas`): which hosts' full
//! history it keeps, from the alive members its membership events report. The placement
//! itself (rendezvous hashing, the default count) is [`rover_storage::placement`]; every host
//! still keeps every host's last sample (storage's `last_samples`), and its own history.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

pub use rover_storage::placement::{
    replica_count, replicas, weight, DEFAULT_REPLICAS, EVERYONE_UP_TO,
};

/// This node's view, for recording: the alive members (us included) as membership events
/// report them, and whether we keep a host's history. Cheap to clone; clones share the view.
#[derive(Debug, Clone)]
pub struct Placement {
    own: Arc<str>,
    configured: usize,
    alive: Arc<Mutex<BTreeSet<String>>>,
}

impl Placement {
    /// The placement of node `own` with `history.replicas` = `configured` (0: the default).
    pub fn new(own: &str, configured: usize) -> Self {
        Self {
            own: Arc::from(own),
            configured,
            alive: Arc::new(Mutex::new(BTreeSet::from([own.to_owned()]))),
        }
    }

    /// `history.replicas` as configured (0: the default).
    pub fn configured(&self) -> usize {
        self.configured
    }

    /// `member` is alive (or still suspect) here.
    pub fn member_up(&self, member: &str) {
        self.view().insert(member.to_owned());
    }

    /// `member` failed or left.
    pub fn member_gone(&self, member: &str) {
        if member != &*self.own {
            self.view().remove(member);
        }
    }

    /// Whether this node keeps `host`'s full history: its own, or it is one of its replicas.
    pub fn keeps(&self, host: &str) -> bool {
        if host == &*self.own {
            return true;
        }
        let alive = self.view();
        let count = replica_count(self.configured, alive.len());
        if count >= alive.len() {
            return true;
        }
        replicas(host, alive.iter().map(String::as_str), count)
            .iter()
            .any(|r| *r == *self.own)
    }

    fn view(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // The set is replaced entry by entry; a panic elsewhere cannot leave it half-changed.
        self.alive.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn a_small_cluster_keeps_everything_everywhere_and_a_large_one_only_its_share() {
        let placement = Placement::new("n0", 0);
        for name in names(10) {
            placement.member_up(&name);
        }
        assert!(names(10).iter().all(|h| placement.keeps(h)));
        for name in names(60) {
            placement.member_up(&name);
        }
        let kept = names(60).iter().filter(|h| placement.keeps(h)).count();
        assert!((1..30).contains(&kept), "n0 keeps {kept} of 60 hosts");
        assert!(placement.keeps("n0"), "its own history always");
        placement.member_gone("n0");
        assert!(placement.keeps("n0"));
    }
}
