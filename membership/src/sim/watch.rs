//! What the nodes of a simulation learnt about the nodes being watched, kept up to date from
//! the outputs they produce, so that "does everyone know yet?" needs no member-list scan
//! (which costs O(N) per node, O(N²) per check).

use std::collections::HashMap;
use std::time::Duration;

use super::NodeId;
use crate::core::{CoreTimer, MemberEvent};

/// The last thing an observer reported about a watched node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// [`MemberEvent::Up`]: it is a live member.
    Up,
    /// [`MemberEvent::Failed`] or [`MemberEvent::Left`]: it is gone.
    Down,
}

/// What the cluster learnt about one watched node since [`super::SimNetwork::watch`].
#[derive(Debug, Clone, Default)]
pub struct WatchedNode {
    /// The last thing each observer reported about it, and when.
    pub heard: HashMap<NodeId, (Heard, Duration)>,
    /// When a node first suspected it itself (a probe of it failed, so foca armed its
    /// suspect-to-down timer); suspicions learnt through gossip do not count.
    pub first_suspected_at: Option<Duration>,
    /// When a node first reported it failed or left.
    pub first_down_at: Option<Duration>,
}

/// The watched nodes, by name (the key events carry).
#[derive(Debug, Default)]
pub(super) struct Watches {
    by_name: HashMap<String, WatchedNode>,
}

impl Watches {
    /// Starts watching `name` afresh.
    pub(super) fn watch(&mut self, name: String) {
        self.by_name.insert(name, WatchedNode::default());
    }

    /// What was learnt about `name`, if it is watched.
    pub(super) fn get(&self, name: &str) -> Option<&WatchedNode> {
        self.by_name.get(name)
    }

    /// Records an event `observer` reported at `now`.
    pub(super) fn on_event(&mut self, now: Duration, observer: NodeId, event: &MemberEvent) {
        if self.by_name.is_empty() {
            return;
        }
        let (info, heard) = match event {
            MemberEvent::Up(info) => (info, Heard::Up),
            MemberEvent::Failed(info) | MemberEvent::Left(info) => (info, Heard::Down),
            _ => return,
        };
        let Some(watched) = self.by_name.get_mut(&info.name) else {
            return;
        };
        watched.heard.insert(observer, (heard, now));
        if heard == Heard::Down && watched.first_down_at.is_none() {
            watched.first_down_at = Some(now);
        }
    }

    /// Records a timer a node scheduled at `now`: a suspect-to-down timer means it suspects.
    pub(super) fn on_schedule(&mut self, now: Duration, timer: &CoreTimer) {
        let CoreTimer::Swim(foca::Timer::ChangeSuspectToDown { member_id, .. }) = timer else {
            return;
        };
        if let Some(watched) = self.by_name.get_mut(member_id.name()) {
            watched.first_suspected_at.get_or_insert(now);
        }
    }
}
