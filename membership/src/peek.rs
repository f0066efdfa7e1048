//! A look at a foca datagram's header without copying it: which message it is, from whom, and
//! how many member updates ride on it.
//!
//! The core reads what foca does not report: its own pings and the acks that answer them (for
//! local health, see [`crate::local_health`]), and how many updates a packet brings before foca
//! applies them (see `MembershipCore::handle_packet`). Names are borrowed from the datagram, so
//! a peek allocates nothing.

use std::net::SocketAddr;

use bytes::Buf;
use foca::{Header, Message};
use serde::Deserialize;

/// An identity as it lies in a datagram (the wire form of [`crate::NodeIdentity`]).
#[derive(Debug, Deserialize)]
pub struct PeekedId<'a> {
    /// Node name.
    pub name: &'a str,
    /// Team.
    pub team: &'a str,
    /// Gossip address.
    pub addr: SocketAddr,
    /// Generation.
    pub generation: u64,
    /// Tags, borrowed (an identity without tags allocates nothing).
    #[serde(borrow)]
    pub tags: Vec<(&'a str, &'a str)>,
}

impl PeekedId<'_> {
    /// An owned copy.
    pub fn to_identity(&self) -> crate::NodeIdentity {
        crate::NodeIdentity {
            name: self.name.to_owned(),
            team: self.team.to_owned(),
            addr: self.addr,
            generation: self.generation,
            tags: self
                .tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

/// What a datagram's header says.
#[derive(Debug)]
pub struct Peeked<'a> {
    /// The sender.
    pub src: PeekedId<'a>,
    /// The sender's SWIM incarnation.
    pub src_incarnation: u16,
    /// The message.
    pub message: Message<PeekedId<'a>>,
    /// Member updates that follow the header (0 for messages that carry none).
    pub updates: u16,
}

/// The header of foca datagram `plaintext`, or `None` if it does not decode (foca then
/// rejects the datagram itself).
pub fn peek(plaintext: &[u8]) -> Option<Peeked<'_>> {
    let (header, mut rest) = postcard::take_from_bytes::<Header<PeekedId<'_>>>(plaintext).ok()?;
    let carries_updates = !matches!(
        header.message,
        Message::Announce | Message::TurnUndead | Message::Broadcast
    );
    let updates = if carries_updates && rest.len() >= 2 {
        rest.get_u16()
    } else {
        0
    };
    Some(Peeked {
        src: header.src,
        src_incarnation: header.src_incarnation,
        message: header.message,
        updates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member_id::MemberId;
    use bytes::BufMut;
    use foca::{Codec, Member, PostcardCodec};

    fn id(name: &str) -> MemberId {
        MemberId::new(name, "home", "127.0.0.1:7900".parse().unwrap(), 3)
    }

    fn datagram(message: Message<MemberId>, updates: &[Member<MemberId>]) -> Vec<u8> {
        let header = Header {
            src: id("n1"),
            src_incarnation: 2,
            dst: id("n2"),
            message,
        };
        let mut buf = Vec::new();
        PostcardCodec.encode_header(&header, &mut buf).unwrap();
        if !updates.is_empty() {
            buf.put_u16(updates.len() as u16);
            for update in updates {
                PostcardCodec.encode_member(update, &mut buf).unwrap();
            }
        }
        buf
    }

    #[test]
    fn a_ping_is_read_with_its_probe_number_sender_and_update_count() {
        let packet = datagram(
            Message::Ping(7),
            &[Member::alive(id("n3")), Member::alive(id("n4"))],
        );
        let peeked = peek(&packet).unwrap();
        assert!(matches!(peeked.message, Message::Ping(7)));
        assert_eq!((peeked.src.name, peeked.src.generation), ("n1", 3));
        assert_eq!(peeked.src_incarnation, 2);
        assert_eq!(peeked.updates, 2);
    }

    #[test]
    fn a_forwarded_ack_names_its_origin_and_an_announce_carries_no_updates() {
        let ack = datagram(
            Message::ForwardedAck {
                origin: id("n5"),
                probe_number: 9,
            },
            &[],
        );
        match peek(&ack).unwrap().message {
            Message::ForwardedAck {
                origin,
                probe_number,
            } => assert_eq!((origin.name, probe_number), ("n5", 9)),
            other => panic!("read {other:?}"),
        }
        assert_eq!(peek(&datagram(Message::Announce, &[])).unwrap().updates, 0);
    }

    #[test]
    fn garbage_is_not_a_header() {
        assert!(peek(&[0xff; 5]).is_none());
        assert!(peek(&[]).is_none());
    }
}
