//! How the core shows the members: the member list and the lookups the rest of the core uses
//! (by name through foca's index, whether an identity is active, a member's status with our
//! left notices taken into account).

use foca::State;

use super::MembershipCore;
use crate::member::{MemberInfo, MemberStatus};
use crate::member_id::MemberId;

impl MembershipCore {
    /// The longest encoded identity among us and the members we know: every datagram's header
    /// carries two of them.
    pub(super) fn longest_identity(&self) -> usize {
        let len = |id: &MemberId| postcard::experimental::serialized_size(id).unwrap_or(0);
        self.foca
            .iter_membership_state()
            .map(|m| len(m.id()))
            .chain(std::iter::once(len(self.foca.identity())))
            .max()
            .unwrap_or(0)
    }

    /// Every member we know, us included, sorted by name.
    pub fn members(&self) -> Vec<MemberInfo> {
        let me = self.foca.identity();
        let mut list = vec![MemberInfo {
            name: me.name().to_owned(),
            team: me.team().to_owned(),
            addr: me.socket_addr(),
            generation: me.generation(),
            incarnation: 0,
            status: if self.has_left {
                MemberStatus::Left
            } else {
                MemberStatus::Alive
            },
            since_ms: None,
            tags: me.tags().clone(),
        }];
        list.extend(
            self.foca
                .iter_membership_state()
                .filter(|m| !m.id().is_seed_placeholder())
                .map(|m| self.info(m.id(), m.incarnation(), m.state())),
        );
        list.sort_by(|a, b| a.name.cmp(&b.name).then(b.generation.cmp(&a.generation)));
        list
    }

    /// Names of the other members we list as alive, without building the member list.
    pub fn alive_member_names(&self) -> impl Iterator<Item = &str> {
        self.foca
            .iter_membership_state()
            .filter(|m| m.state() == State::Alive && !m.id().is_seed_placeholder())
            .map(|m| m.id().name())
    }

    pub(super) fn info(&self, id: &MemberId, incarnation: u16, state: State) -> MemberInfo {
        MemberInfo {
            name: id.name().to_owned(),
            team: id.team().to_owned(),
            addr: id.socket_addr(),
            generation: id.generation(),
            incarnation,
            status: self.status_of(id, state),
            since_ms: self
                .status_since
                .get(id.name())
                .copied()
                .or(self.roster_since_ms),
            tags: id.tags().clone(),
        }
    }

    pub(super) fn status_of(&self, id: &MemberId, state: State) -> MemberStatus {
        match state {
            State::Alive => MemberStatus::Alive,
            State::Suspect => MemberStatus::Suspect,
            State::Down if self.left_notices.get(id.name()) == Some(&id.generation()) => {
                MemberStatus::Left
            }
            State::Down => MemberStatus::Failed,
        }
    }

    /// The member called `name` (active or down), by one lookup in foca's index.
    pub(super) fn member_named(&self, name: &str) -> Option<&foca::Member<MemberId>> {
        self.foca.member_by(name)
    }

    pub(super) fn is_active(&self, id: &MemberId) -> bool {
        self.member_named(id.name())
            .is_some_and(|m| m.id() == id && m.state() != State::Down)
    }

    pub(super) fn known(&self, id: &MemberId) -> MemberInfo {
        let (incarnation, state) = self
            .member_named(id.name())
            .filter(|m| m.id() == id)
            .map(|m| (m.incarnation(), m.state()))
            .unwrap_or((0, State::Down));
        self.info(id, incarnation, state)
    }
}
