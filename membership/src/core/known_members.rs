//! Starting a core that already knows its cluster: members applied as alive in one call,
//! without gossiping them, as if this node had been in the cluster all along.
//!
//! Meant for simulations that need a large converged cluster without paying for thousands of
//! joins, and for restoring a member list saved before a restart.

use foca::OwnedNotification;

use super::MembershipCore;
use crate::error::KnownMembersError;
use crate::identity::NodeIdentity;
#[cfg(doc)]
use crate::member::MemberEvent;

impl MembershipCore {
    /// Learn `members` as alive at incarnation 0, without broadcasting them: the caller asserts
    /// that the rest of the cluster knows them already. Our own entry and seed stand-ins are
    /// skipped; members we know already keep what we know of them.
    ///
    /// No [`MemberEvent::Up`] is reported for these members (a large cluster would produce one
    /// per member per node); [`MemberEvent::Active`] is, if we were alone. The size-dependent
    /// settings are derived once for the new size.
    ///
    /// foca looks every member up in its list, so this costs O(members²) per call.
    pub fn handle_known_members(
        &mut self,
        now_ms: u64,
        members: impl IntoIterator<Item = NodeIdentity>,
    ) -> Result<(), KnownMembersError> {
        self.now_ms = now_ms;
        let own_name = self.identity().name.clone();
        let alive = members
            .into_iter()
            .filter(|id| id.name != own_name && !id.is_seed_placeholder())
            .map(foca::Member::alive);
        let applied = self.foca.apply_many(alive, false, &mut self.runtime);
        while let Some(notification) = self.runtime.to_notify() {
            match notification {
                OwnedNotification::MemberUp(id) => {
                    self.status_since.insert(id.name, now_ms);
                }
                other => self.on_notification(other),
            }
        }
        self.resize();
        self.drain();
        applied.map_err(|e| KnownMembersError::Refused(e.to_string()))
    }
}
