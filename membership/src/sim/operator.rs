//! Operator commands in a simulation: change a node's tags, force a failed member to leave.

use super::{NodeId, SimNetwork};
use crate::error::{ForceLeaveError, TagError};
use crate::tags::Tags;

impl SimNetwork {
    /// Node `id` replaces its tags (see [`crate::MembershipCore::handle_set_tags`]).
    pub fn set_tags(&mut self, id: NodeId, tags: Tags) -> Result<(), TagError> {
        let now_ms = self.now_ms();
        let result = match self.nodes[id].core.as_mut() {
            Some(core) => core.handle_set_tags(now_ms, tags),
            None => Ok(()),
        };
        self.flush(id);
        result
    }

    /// Node `id` marks the member named `name` left (see
    /// [`crate::MembershipCore::handle_force_leave`]).
    pub fn force_leave(&mut self, id: NodeId, name: &str) -> Result<(), ForceLeaveError> {
        let now_ms = self.now_ms();
        let result = match self.nodes[id].core.as_mut() {
            Some(core) => core.handle_force_leave(now_ms, name),
            None => Ok(()),
        };
        self.flush(id);
        result
    }
}
