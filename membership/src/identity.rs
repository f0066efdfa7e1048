//! Who a member is: node name, team, advertised address and a generation number.
//!
//! The node name is foca's `Addr`: the cluster keeps one entry per name. The generation grows
//! on every start and on every `renew` (after being declared down), so a newer incarnation of a
//! node always wins over a stale one.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::tags::Tags;

/// The identity foca gossips about. Field order is the wire format (postcard).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// Cluster-unique node name (default: the hostname).
    pub name: String,
    /// Team the node belongs to.
    pub team: String,
    /// Address the node's gossip socket is reachable at.
    pub addr: SocketAddr,
    /// Bumped at every start and every rejoin; higher wins.
    pub generation: u64,
    /// The member's tags (see [`crate::tags`]); last on the wire.
    pub tags: Tags,
}

impl NodeIdentity {
    /// A stand-in identity used only to announce to a seed whose name we do not know yet.
    ///
    /// Its name is empty (real names never are) and its generation is zero; the receiving
    /// codec re-addresses an Announce to it (see [`crate::codec`]).
    pub fn seed(addr: SocketAddr) -> Self {
        Self {
            name: String::new(),
            team: String::new(),
            addr,
            generation: 0,
            tags: Tags::new(),
        }
    }

    /// Whether this is a seed stand-in rather than a real member.
    pub fn is_seed_placeholder(&self) -> bool {
        self.name.is_empty()
    }
}

impl foca::Identity for NodeIdentity {
    type Addr = String;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            generation: self.generation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> String {
        self.name.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn id(generation: u64) -> NodeIdentity {
        NodeIdentity {
            name: "n1".into(),
            team: "home".into(),
            addr: "127.0.0.1:7900".parse().unwrap(),
            generation,
            tags: Tags::new(),
        }
    }

    #[test]
    fn a_renewed_identity_wins_over_the_one_it_replaces() {
        let old = id(5);
        let new = old.renew().unwrap();
        assert_eq!(new.generation, 6);
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
    }

    #[test]
    fn identities_are_keyed_by_name() {
        assert_eq!(id(1).addr(), id(2).addr());
        assert!(NodeIdentity::seed("127.0.0.1:1".parse().unwrap()).is_seed_placeholder());
    }
}
