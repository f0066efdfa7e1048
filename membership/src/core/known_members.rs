//! Starting a core that already knows its cluster: members applied as alive in one call,
//! without gossiping them, as if this node had been in the cluster all along.
//!
//! Meant for simulations that need a large converged cluster without paying for thousands of
//! joins, and for restoring a member list saved before a restart.

use foca::OwnedNotification;

use super::MembershipCore;
use crate::error::KnownMembersError;
#[cfg(doc)]
use crate::member::MemberEvent;
use crate::member_id::MemberId;

impl MembershipCore {
    /// Learn `members` as alive at incarnation 0, without broadcasting them: the caller asserts
    /// that the rest of the cluster knows them already. Our own entry and seed stand-ins are
    /// skipped; members we know already keep what we know of them.
    ///
    /// No [`MemberEvent::Up`] is reported for these members (a large cluster would produce one
    /// per member per node); [`MemberEvent::Active`] is, if we were alone. The size-dependent
    /// settings are derived once for the new size.
    ///
    /// foca's member list is indexed (membership/vendor/README.md), so this costs O(members)
    /// per call; identities are shared with the caller's, not copied.
    pub fn handle_known_members(
        &mut self,
        now_ms: u64,
        members: impl IntoIterator<Item = MemberId>,
    ) -> Result<(), KnownMembersError> {
        self.now_ms = now_ms;
        let own = foca::Identity::addr(self.foca.identity());
        let alive = members
            .into_iter()
            .filter(|id| foca::Identity::addr(id) != own && !id.is_seed_placeholder())
            .map(foca::Member::alive);
        let applied = self.foca.apply_many(alive, false, &mut self.runtime);
        // Their status dates from now: one time for all, not one entry per member.
        self.roster_since_ms.get_or_insert(now_ms);
        while let Some(notification) = self.runtime.to_notify() {
            match notification {
                OwnedNotification::MemberUp(_) => {}
                other => self.on_notification(other),
            }
        }
        self.resize();
        self.drain();
        applied.map_err(|e| KnownMembersError::Refused(e.to_string()))
    }
}
