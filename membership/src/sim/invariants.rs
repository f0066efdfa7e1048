//! The invariants every node of a simulation must keep, checked after each event unless a
//! benchmark turns that off.

use super::{NodeId, SimNetwork};
use crate::core::MemberStatus;

impl SimNetwork {
    /// Panics, naming the seed, if an invariant does not hold:
    /// - each running node lists itself exactly once, as alive, under its own generation;
    /// - no node lists a name twice or lists a seed stand-in;
    /// - a node's generation never decreases.
    pub fn check_invariants(&self) {
        for id in 0..self.nodes.len() {
            self.check_node_invariants(id);
        }
    }

    /// The invariants of [`Self::check_invariants`] for one node; run after each event on the
    /// node that handled it (the only one whose state changed).
    pub fn check_node_invariants(&self, id: NodeId) {
        {
            let node = &self.nodes[id];
            let Some(core) = node.core.as_ref() else {
                return;
            };
            let list = core.members();
            let mut names: Vec<&str> = list.iter().map(|m| m.name.as_str()).collect();
            names.sort_unstable();
            let before = names.len();
            names.dedup();
            assert_eq!(
                before,
                names.len(),
                "{} lists a name twice (seed {})",
                node.name,
                self.seed
            );
            assert!(
                names.iter().all(|n| !n.is_empty()),
                "{} lists a seed stand-in (seed {})",
                node.name,
                self.seed
            );
            let me = core.identity();
            assert!(
                me.generation >= node.last_generation,
                "{} generation went back (seed {})",
                node.name,
                self.seed
            );
            let own = list.iter().find(|m| m.name == node.name);
            assert!(
                own.is_some_and(
                    |m| m.generation == me.generation && m.status == MemberStatus::Alive
                ),
                "{} does not list itself as alive (seed {})",
                node.name,
                self.seed
            );
        }
    }
}
