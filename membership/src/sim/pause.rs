//! Pausing a node like SIGSTOP: it handles nothing while paused; the datagrams and timers
//! that came due for it wait, and on resume (SIGCONT) it handles them all at once, in the
//! order they came, as a stopped process finds its socket buffer and its overdue timers.

use super::{NodeId, SimNetwork};

impl SimNetwork {
    /// Stops node `id` handling anything until [`Self::resume`].
    pub fn pause(&mut self, id: NodeId) {
        let node = &mut self.nodes[id];
        if node.core.is_some() && node.held.is_none() {
            node.held = Some(Vec::new());
        }
    }

    /// Lets node `id` handle, now, everything that came due while it was paused.
    pub fn resume(&mut self, id: NodeId) {
        let Some(held) = self.nodes[id].held.take() else {
            return;
        };
        let now = self.now;
        for event in held {
            self.queue.push(now, event);
        }
    }

    /// Whether node `id` is paused.
    pub fn is_paused(&self, id: NodeId) -> bool {
        self.nodes[id].held.is_some()
    }

    /// Node `id`'s traffic counters, if it is running.
    pub fn counters(&self, id: NodeId) -> Option<crate::core::Counters> {
        self.nodes[id].core.as_ref().map(|core| core.counters())
    }

    /// Node `id`'s local health score (see [`crate::local_health`]), if it is running.
    pub fn local_health(&self, id: NodeId) -> Option<u32> {
        self.nodes[id].core.as_ref().map(|core| core.local_health())
    }
}
