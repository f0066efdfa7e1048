//! What an operator changes at run time: this node's tags (a new generation re-announces
//! them) and force-leave (a failed member marked left everywhere, Serf's `force-leave`).

use foca::State;

use super::{MembershipCore, Output};
use crate::broadcast::{BroadcastItem, Topic};
use crate::error::{ForceLeaveError, TagError};
use crate::member::MemberEvent;
use crate::tags::{validate_tags, Tags};

impl MembershipCore {
    /// Replaces our tags. The identity takes the next generation, so every member replaces
    /// the one it knows (foca's rename of a newer identity) and sees the new tags; reported
    /// as [`MemberEvent::Rejoined`] so the driver keeps the generation. Unchanged tags do
    /// nothing.
    pub fn handle_set_tags(&mut self, now_ms: u64, tags: Tags) -> Result<(), TagError> {
        self.now_ms = now_ms;
        validate_tags(&tags)?;
        let me = self.foca.identity();
        if *me.tags() == tags || self.has_left {
            return Ok(());
        }
        let renewed = me.with_tags(tags, me.generation().saturating_add(1));
        if let Err(e) = self.foca.change_identity(renewed, &mut self.runtime) {
            tracing::debug!(error = %e, "changing our tags failed");
            return Ok(());
        }
        let me = self.identity();
        self.out.push_back(Output::Event(MemberEvent::Rejoined(me)));
        self.arm_eager_gossip();
        self.drain();
        Ok(())
    }

    /// Marks the failed member `name` left: a leave notice in its name and generation, as if
    /// it had said goodbye, applied here and gossiped. A later start of that host has a newer
    /// generation and joins as usual.
    pub fn handle_force_leave(&mut self, now_ms: u64, name: &str) -> Result<(), ForceLeaveError> {
        self.now_ms = now_ms;
        if name == self.foca.identity().name() {
            return Err(ForceLeaveError::Ourselves(name.to_owned()));
        }
        let member = self
            .member_named(name)
            .filter(|m| !m.id().is_seed_placeholder())
            .ok_or_else(|| ForceLeaveError::Unknown(name.to_owned()))?;
        let (id, state) = (member.id().clone(), member.state());
        match self.status_of(&id, state) {
            crate::member::MemberStatus::Left => return Ok(()),
            status if state != State::Down => {
                return Err(ForceLeaveError::NotFailed(name.to_owned(), status.as_str()))
            }
            _ => {}
        }
        let notice = BroadcastItem {
            topic: Topic::Leave,
            key: id.name().to_owned(),
            version: id.generation(),
            payload: Vec::new(),
        };
        if let Err(e) = self.foca.add_broadcast(&notice.encode()) {
            tracing::debug!(error = %e, "force-leave notice not queued");
        }
        while self.news.try_recv().is_ok() {}
        self.on_broadcast(notice);
        self.arm_eager_gossip();
        self.drain();
        Ok(())
    }
}
