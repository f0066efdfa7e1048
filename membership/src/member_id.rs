//! [`MemberId`]: the compact identity foca keeps for every member.
//!
//! A member list of N holds N identities, and a simulation of N nodes holds N of those lists,
//! so the identity's size decides what fits: [`crate::NodeIdentity`] is 88 bytes plus two
//! string allocations per copy. A `MemberId` is 16 bytes: a shared, immutable record of what
//! never changes for a running node (name, team, address) and the generation beside it.
//! Clones share the record, so a roster handed to many nodes costs one record per member, not
//! one per node and member. foca's `Addr` ([`MemberName`]) is the record itself, compared and
//! hashed as its name (it borrows as `str`), so foca's member index finds a member by one hash
//! lookup, given the record or just a name.
//!
//! On the wire a `MemberId` is exactly a `NodeIdentity` (name, team, address, generation, in
//! postcard's field order).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::identity::NodeIdentity;
use crate::tags::Tags;

/// What never changes for one running node.
#[derive(PartialEq, Eq)]
struct Fixed {
    name: String,
    team: String,
    addr: SocketAddr,
    tags: Tags,
}

/// The identity foca gossips about; see the module docs.
#[derive(Clone)]
pub struct MemberId {
    fixed: Arc<Fixed>,
    generation: u64,
}

/// foca's `Addr` of a member: its name (the cluster keeps one entry per name).
#[derive(Clone)]
pub struct MemberName(Arc<Fixed>);

impl MemberId {
    /// An identity with these parts.
    pub fn new(name: &str, team: &str, addr: SocketAddr, generation: u64) -> Self {
        Self {
            fixed: Arc::new(Fixed {
                name: name.to_owned(),
                team: team.to_owned(),
                addr,
                tags: Tags::new(),
            }),
            generation,
        }
    }

    /// The same name, team and address with these tags at this generation.
    pub fn with_tags(&self, tags: Tags, generation: u64) -> Self {
        Self {
            fixed: Arc::new(Fixed {
                name: self.fixed.name.clone(),
                team: self.fixed.team.clone(),
                addr: self.fixed.addr,
                tags,
            }),
            generation,
        }
    }

    /// Tags.
    pub fn tags(&self) -> &Tags {
        &self.fixed.tags
    }

    /// A stand-in used only to announce to a seed whose name we do not know yet (see
    /// [`NodeIdentity::seed`]).
    pub fn seed(addr: SocketAddr) -> Self {
        Self::new("", "", addr, 0)
    }

    /// Node name.
    pub fn name(&self) -> &str {
        &self.fixed.name
    }

    /// Team.
    pub fn team(&self) -> &str {
        &self.fixed.team
    }

    /// Gossip address.
    pub fn socket_addr(&self) -> SocketAddr {
        self.fixed.addr
    }

    /// Generation (higher wins).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether this is a seed stand-in rather than a real member.
    pub fn is_seed_placeholder(&self) -> bool {
        self.fixed.name.is_empty()
    }

    /// The same identity under another name (the codec re-addresses announces with it).
    pub fn renamed(&self, name: &str) -> Self {
        Self::new(name, &self.fixed.team, self.fixed.addr, self.generation)
            .with_tags(self.fixed.tags.clone(), self.generation)
    }

    /// The plain, owned form the rest of the agent uses.
    pub fn to_identity(&self) -> NodeIdentity {
        NodeIdentity {
            name: self.fixed.name.clone(),
            team: self.fixed.team.clone(),
            addr: self.fixed.addr,
            generation: self.generation,
            tags: self.fixed.tags.clone(),
        }
    }
}

impl From<&NodeIdentity> for MemberId {
    fn from(id: &NodeIdentity) -> Self {
        Self::new(&id.name, &id.team, id.addr, id.generation)
            .with_tags(id.tags.clone(), id.generation)
    }
}

impl From<NodeIdentity> for MemberId {
    fn from(id: NodeIdentity) -> Self {
        Self::from(&id)
    }
}

impl PartialEq for MemberId {
    fn eq(&self, other: &Self) -> bool {
        self.generation == other.generation
            && (Arc::ptr_eq(&self.fixed, &other.fixed) || self.fixed == other.fixed)
    }
}

impl Eq for MemberId {}

impl Hash for MemberId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fixed.name.hash(state);
        state.write_u64(self.generation);
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}#{} ({})",
            self.fixed.name, self.fixed.addr, self.generation, self.fixed.team
        )
    }
}

impl PartialEq for MemberName {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.name == other.0.name
    }
}

impl Eq for MemberName {}

/// Hashed exactly as its name, so that a `&str` finds it (see [`std::borrow::Borrow`]).
impl Hash for MemberName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl std::borrow::Borrow<str> for MemberName {
    fn borrow(&self) -> &str {
        &self.0.name
    }
}

impl fmt::Debug for MemberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.name)
    }
}

impl foca::Identity for MemberId {
    type Addr = MemberName;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            fixed: Arc::clone(&self.fixed),
            generation: self.generation.wrapping_add(1),
        })
    }

    fn addr(&self) -> MemberName {
        MemberName(Arc::clone(&self.fixed))
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

/// The wire form, borrowed: the fields of [`NodeIdentity`] in its order.
#[derive(Serialize)]
struct WireIdentity<'a> {
    name: &'a str,
    team: &'a str,
    addr: SocketAddr,
    generation: u64,
    tags: &'a Tags,
}

impl Serialize for MemberId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireIdentity {
            name: &self.fixed.name,
            team: &self.fixed.team,
            addr: self.fixed.addr,
            generation: self.generation,
            tags: &self.fixed.tags,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MemberId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        NodeIdentity::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn node(generation: u64) -> NodeIdentity {
        NodeIdentity {
            name: "n1".into(),
            team: "home".into(),
            addr: "127.0.0.1:7900".parse().unwrap(),
            generation,
            tags: Tags::new(),
        }
    }

    #[test]
    fn on_the_wire_a_member_id_is_a_node_identity() {
        let id = MemberId::from(node(7));
        let bytes = postcard::to_stdvec(&id).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&node(7)).unwrap());
        let back: MemberId = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, id);
        assert_eq!(back.to_identity(), node(7));
    }

    #[test]
    fn a_member_id_is_sixteen_bytes_and_clones_share_the_names() {
        assert_eq!(std::mem::size_of::<MemberId>(), 16);
        let id = MemberId::from(node(1));
        let copy = id.clone();
        assert!(Arc::ptr_eq(&id.fixed, &copy.fixed));
    }

    #[test]
    fn identities_are_keyed_by_name_and_a_renewed_one_wins() {
        let old = MemberId::from(node(5));
        let decoded_elsewhere = MemberId::from(node(6));
        assert_eq!(old.addr(), decoded_elsewhere.addr());
        assert_ne!(old, decoded_elsewhere);
        let new = old.renew().unwrap();
        assert_eq!(new, decoded_elsewhere);
        assert!(new.win_addr_conflict(&old) && !old.win_addr_conflict(&new));
        assert_ne!(
            old.addr(),
            MemberId::new("n2", "home", old.socket_addr(), 5).addr()
        );
    }

    #[test]
    fn a_seed_stand_in_has_no_name_until_renamed() {
        let seed = MemberId::seed("127.0.0.1:7900".parse().unwrap());
        assert!(seed.is_seed_placeholder());
        assert_eq!(seed.renamed("n3").name(), "n3");
    }
}
