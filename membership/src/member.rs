//! What the membership core reports: a member's status, one row of the member list, and the
//! events the driver receives.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::broadcast::BroadcastItem;
use crate::identity::NodeIdentity;

/// A member's status as users see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    /// Answering probes.
    Alive,
    /// Missed a probe; will be declared failed unless it refutes in time.
    Suspect,
    /// Declared down by the cluster without having said goodbye.
    Failed,
    /// Left on purpose.
    Left,
}

impl MemberStatus {
    /// The lowercase name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Suspect => "suspect",
            Self::Failed => "failed",
            Self::Left => "left",
        }
    }
}

/// One row of the member list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Node name.
    pub name: String,
    /// Team.
    pub team: String,
    /// Gossip address.
    pub addr: SocketAddr,
    /// Generation of the identity we know.
    pub generation: u64,
    /// SWIM incarnation (bumped by the member to refute suspicion).
    pub incarnation: u16,
    /// Current status.
    pub status: MemberStatus,
    /// When this node saw the status change, in the driver's milliseconds, if it did.
    pub since_ms: Option<u64>,
    /// The member's tags.
    #[serde(default)]
    pub tags: crate::tags::Tags,
}

/// What happened to the cluster, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEvent {
    /// A member became reachable (new, back, or a restarted generation).
    Up(MemberInfo),
    /// A member was declared down without a leave notice.
    Failed(MemberInfo),
    /// A member left on purpose.
    Left(MemberInfo),
    /// A member's identity was replaced by a newer generation.
    Renamed {
        /// The identity we knew.
        from: NodeIdentity,
        /// The one that replaced it.
        to: NodeIdentity,
    },
    /// We were declared down and rejoined with a renewed identity.
    Rejoined(NodeIdentity),
    /// Some other member knows us: we are in a cluster.
    Active,
    /// Every member we knew is gone; the core re-announces to its seeds.
    Idle,
    /// A member is suspected here for the first time at this incarnation: a probe of ours
    /// failed (`by` is us), or another member reported it (confirmations are no events).
    Suspected {
        /// Its name.
        name: String,
        /// Its generation.
        generation: u64,
        /// The suspected incarnation.
        incarnation: u16,
        /// Who suspects it first.
        by: String,
    },
    /// A suspicion was refuted: a member we suspected is alive at a newer incarnation, or we
    /// refuted a suspicion of us (`name` is ours).
    Refuted {
        /// Its name.
        name: String,
        /// The incarnation that refuted it.
        incarnation: u16,
    },
    /// A direct probe of ours got no ack in time (foca then probes indirectly); at most one
    /// per member every [`crate::core::PROBE_EVENT_EVERY`].
    ProbeFailed {
        /// The probed member.
        name: String,
        /// Its generation.
        generation: u64,
    },
    /// A custom broadcast we had not seen (every topic except [`Topic::Leave`]).
    Broadcast(BroadcastItem),
}
