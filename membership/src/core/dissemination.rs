//! Spreading news sooner and to everyone.
//!
//! - Eager gossip: a node that learns of a new or dead member gossips at once (after a few
//!   milliseconds, so that a burst of joins goes out together) instead of at its next periodic
//!   round, at most once per [`EAGER_GOSSIP_SPACING`] (a burst of 100 joins costs each node
//!   a few extra rounds, not one per join).
//! - Transmissions sized for the news: foca fixes how many times it sends an update
//!   (`max_transmissions`, memberlist's `4 · ceil(log10(n + 1))`) when it queues it, from the
//!   cluster size it is configured for. A node that learns many members at once (a joiner's
//!   first Feed; a seed taking a burst of joins) would queue them sized for the small cluster it
//!   was, and send them too few times: with 100 agents joining through one seed at once, a few
//!   members stayed unknown to some agents for tens of seconds, until a periodic announce
//!   found them. So before foca reads a datagram carrying `k` updates, the core sizes foca's
//!   configuration for `members + 1 + k` (an upper bound), and back to the real size after.
//! - Hello to a new member: a node that learns of a member it did not know sends it one
//!   datagram at once. An Announce is answered by one Feed, one datagram of at most about 45
//!   members, so a node joining a cluster of 100 learnt the members that joined before it only
//!   from the seed's Feed and from their probes (one a round of 100 periods): in a real join
//!   of 100 agents a few agents missed a few members for 30 s and more. With the hellos a
//!   joiner learns every member as soon as that member learns of it (memberlist gets the
//!   whole list from its seed over TCP instead).

use std::time::Duration;

use super::{CoreTimer, MembershipCore, Output};
use crate::member_id::MemberId;

/// How long a node waits after learning news before gossiping it, to batch a burst.
pub const EAGER_GOSSIP_DELAY: Duration = Duration::from_millis(5);
/// The shortest time between two eager rounds of one node.
pub const EAGER_GOSSIP_SPACING: Duration = Duration::from_millis(50);

/// What the core keeps for eager gossip.
#[derive(Debug, Default)]
pub(super) struct EagerGossip {
    armed: bool,
    last_ms: Option<u64>,
}

impl MembershipCore {
    /// A member came up or went down here: gossip soon, at least [`EAGER_GOSSIP_SPACING`]
    /// after our last eager round.
    pub(super) fn arm_eager_gossip(&mut self) {
        if self.eager.armed || self.has_left {
            return;
        }
        let spacing = u64::try_from(EAGER_GOSSIP_SPACING.as_millis()).unwrap_or(u64::MAX);
        let since_last = self
            .eager
            .last_ms
            .map_or(u64::MAX, |last| self.now_ms.saturating_sub(last));
        let wait = Duration::from_millis(spacing.saturating_sub(since_last));
        self.eager.armed = true;
        self.out.push_back(Output::Schedule {
            after: EAGER_GOSSIP_DELAY.max(wait),
            timer: CoreTimer::EagerGossip,
        });
    }

    pub(super) fn eager_gossip(&mut self) {
        self.eager.armed = false;
        self.eager.last_ms = Some(self.now_ms);
        if self.foca.num_members() == 0 {
            return;
        }
        if let Err(e) = self.foca.gossip(&mut self.runtime) {
            tracing::debug!(error = %e, "eager gossip failed");
        }
    }

    /// Sizes foca's configuration for a datagram bringing `updates` member updates; returns
    /// whether it changed anything (then call [`Self::unsize_after_packet`]).
    pub(super) fn size_for_packet(&mut self, updates: u16) -> bool {
        if updates == 0 {
            return false;
        }
        let bound = self.foca.num_members() + 1 + usize::from(updates);
        let config = self.tunables.foca_config(bound);
        if config.max_transmissions == self.tunables.foca_config(self.sized_for).max_transmissions {
            return false;
        }
        self.foca.set_config(config).is_ok()
    }

    /// Back to the configuration for the cluster's real size.
    pub(super) fn unsize_after_packet(&mut self) {
        let config = self.tunables.foca_config(self.sized_for);
        if let Err(e) = self.foca.set_config(config) {
            tracing::debug!(error = %e, "cannot restore foca's configuration");
        }
    }

    /// A member we did not know is up: say hello to it directly, so that it learns of us
    /// whatever its Feeds held (a joiner learns every member as fast as they learn of it).
    pub(super) fn greet(&mut self, id: &MemberId) {
        if !self.has_left {
            self.send_direct(id, &[], None);
        }
    }
}
