//! The wire codec: foca's postcard codec plus one rule for joining by address.
//!
//! A node joining through `host:port` does not know the seed's name, so it announces to a
//! stand-in identity with an empty name. foca accepts an Announce only when the destination
//! has the receiver's own `Addr` (our node name), so on decode an Announce addressed to a
//! stand-in is re-addressed to this node's name. Nothing else is rewritten.

use bytes::{Buf, BufMut};
use foca::{Codec, Header, Member, Message, PostcardCodec};

use crate::member_id::MemberId;

/// Postcard encoding with seed stand-ins re-addressed to `own_name`.
#[derive(Debug, Clone)]
pub struct WireCodec {
    own_name: String,
}

impl WireCodec {
    /// A codec for the node called `own_name`.
    pub fn new(own_name: impl Into<String>) -> Self {
        Self {
            own_name: own_name.into(),
        }
    }
}

impl Codec<MemberId> for WireCodec {
    type Error = postcard::Error;

    fn encode_header(
        &mut self,
        header: &Header<MemberId>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        PostcardCodec.encode_header(header, buf)
    }

    fn decode_header(&mut self, buf: impl Buf) -> Result<Header<MemberId>, Self::Error> {
        let mut header: Header<MemberId> = PostcardCodec.decode_header(buf)?;
        if header.message == Message::Announce && header.dst.is_seed_placeholder() {
            header.dst = header.dst.renamed(&self.own_name);
        }
        Ok(header)
    }

    fn encode_member(
        &mut self,
        member: &Member<MemberId>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        PostcardCodec.encode_member(member, buf)
    }

    fn decode_member(&mut self, buf: impl Buf) -> Result<Member<MemberId>, Self::Error> {
        PostcardCodec.decode_member(buf)
    }
}
