//! Invitations (seed 004: "the Invitation will include all of the grid-control-FURLs that you
//! currently know about. If at least one of those is up, you should be able to bootstrap up to
//! the whole grid").
//!
//! A token is one URL-safe line: `rvi1.` and the unpadded URL-safe base64 of a postcard
//! [`Invitation`]: the cluster key, the team, the addresses of the members alive when it was
//! made (from their address records), when it expires, the inviter's node key and its
//! ed25519 signature over all of that. Redeeming checks, in order: the form, the signature
//! (any changed byte fails it), the expiry. The signature proves the token is whole and names
//! who made it; what it grants is the cluster key inside, so a stolen token is a stolen key
//! until the key is rotated (see the README's security section).

use std::net::SocketAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rover_membership::ClusterKey;
use serde::{Deserialize, Serialize};

/// What every token starts with (the `1` is the format version).
pub const TOKEN_PREFIX: &str = "rvi1.";

/// The most addresses a token carries.
pub const MAX_ADDRS: usize = 16;

/// The longest token accepted, in characters.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Bound into the signature so that it means nothing elsewhere.
const SIGNING_DOMAIN: &str = "rover-agent invitation 1";

/// What an invitation says. Field order is the encoding (postcard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationBody {
    /// The cluster key (raw).
    pub cluster_key: [u8; 32],
    /// The team of the cluster.
    pub team: String,
    /// Where members were alive when it was made, the inviter first.
    pub addrs: Vec<SocketAddr>,
    /// When it was made (Unix ms).
    pub issued_ms: u64,
    /// When it stops being accepted (Unix ms).
    pub expires_ms: u64,
    /// The inviter's node key.
    pub inviter: [u8; 32],
}

/// An invitation and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// What it says.
    pub body: InvitationBody,
    /// ed25519 signature (64 bytes) by `body.inviter` over the signed bytes.
    pub signature: Vec<u8>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// Not a token this build reads.
    #[error("this is not an invitation token from `rover-agent invite` ({0})")]
    Malformed(String),
    /// The signature does not verify: a byte was changed.
    #[error("the invitation token was altered (its signature does not verify): ask for a new one")]
    Tampered,
    /// Past its expiry.
    #[error("the invitation token expired {ago_s} s ago: ask for a new one (rover-agent invite)")]
    Expired {
        /// How long ago, in seconds.
        ago_s: u64,
    },
}

fn signed_bytes(body: &InvitationBody) -> Vec<u8> {
    postcard::to_stdvec(&(SIGNING_DOMAIN, body)).unwrap_or_default()
}

impl Invitation {
    /// Makes and signs an invitation.
    pub fn issue(inviter: &SigningKey, mut body: InvitationBody) -> Invitation {
        body.inviter = inviter.verifying_key().to_bytes();
        body.addrs.truncate(MAX_ADDRS);
        let signature = inviter.sign(&signed_bytes(&body)).to_bytes().to_vec();
        Invitation { body, signature }
    }

    /// The token line.
    pub fn to_token(&self) -> String {
        let bytes = postcard::to_stdvec(self).unwrap_or_default();
        format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses and checks a token (form, signature, then expiry at `now_ms`).
    pub fn redeem(token: &str, now_ms: u64) -> Result<Invitation, InviteError> {
        let token = token.trim();
        if token.len() > MAX_TOKEN_LEN {
            return Err(InviteError::Malformed(format!(
                "{} characters",
                token.len()
            )));
        }
        let encoded = token.strip_prefix(TOKEN_PREFIX).ok_or_else(|| {
            InviteError::Malformed(format!("it does not start with {TOKEN_PREFIX}"))
        })?;
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| InviteError::Malformed("not URL-safe base64".into()))?;
        let (invitation, rest) = postcard::take_from_bytes::<Invitation>(&bytes)
            .map_err(|_| InviteError::Malformed("undecodable".into()))?;
        if !rest.is_empty() || invitation.body.addrs.len() > MAX_ADDRS {
            return Err(InviteError::Malformed("unexpected content".into()));
        }
        invitation.verify()?;
        if now_ms >= invitation.body.expires_ms {
            return Err(InviteError::Expired {
                ago_s: (now_ms - invitation.body.expires_ms) / 1000,
            });
        }
        Ok(invitation)
    }

    fn verify(&self) -> Result<(), InviteError> {
        let signature: [u8; 64] = self
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| InviteError::Tampered)?;
        let key =
            VerifyingKey::from_bytes(&self.body.inviter).map_err(|_| InviteError::Tampered)?;
        key.verify_strict(
            &signed_bytes(&self.body),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| InviteError::Tampered)
    }

    /// The cluster key it carries.
    pub fn cluster_key(&self) -> ClusterKey {
        ClusterKey::from_bytes(self.body.cluster_key)
    }
}

/// The raw bytes of a cluster key.
pub fn key_bytes(key: &ClusterKey) -> [u8; 32] {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key.to_base64())
        .unwrap_or_default();
    decoded.try_into().unwrap_or([0; 32])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation(expires_ms: u64) -> Invitation {
        Invitation::issue(
            &SigningKey::from_bytes(&[4; 32]),
            InvitationBody {
                cluster_key: [9; 32],
                team: "home".into(),
                addrs: vec![
                    "127.0.0.1:7900".parse().unwrap(),
                    "127.0.0.2:7900".parse().unwrap(),
                ],
                issued_ms: 1_000,
                expires_ms,
                inviter: [0; 32],
            },
        )
    }

    #[test]
    fn a_token_round_trips_and_is_url_safe() {
        let invitation = invitation(10_000);
        let token = invitation.to_token();
        assert!(token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
        assert_eq!(Invitation::redeem(&token, 5_000).unwrap(), invitation);
        assert_eq!(
            Invitation::redeem(&token, 5_000).unwrap().cluster_key(),
            ClusterKey::from_bytes([9; 32])
        );
    }

    #[test]
    fn a_token_with_any_character_changed_is_refused() {
        let token = invitation(10_000).to_token();
        for i in TOKEN_PREFIX.len()..token.len() {
            let mut chars: Vec<char> = token.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let changed: String = chars.into_iter().collect();
            assert!(
                Invitation::redeem(&changed, 5_000).is_err(),
                "character {i}"
            );
        }
    }

    #[test]
    fn an_expired_or_foreign_token_is_refused_with_its_reason() {
        let token = invitation(10_000).to_token();
        assert_eq!(
            Invitation::redeem(&token, 12_000),
            Err(InviteError::Expired { ago_s: 2 })
        );
        assert!(matches!(
            Invitation::redeem("hello", 0),
            Err(InviteError::Malformed(_))
        ));
        assert!(matches!(
            Invitation::redeem("rvi1.!!!", 0),
            Err(InviteError::Malformed(_))
        ));
        assert!(matches!(
            Invitation::redeem(&"x".repeat(MAX_TOKEN_LEN + 1), 0),
            Err(InviteError::Malformed(_))
        ));
    }

    #[test]
    fn key_bytes_give_back_the_key() {
        let key = ClusterKey::from_bytes([3; 32]);
        assert_eq!(key_bytes(&key), [3; 32]);
    }
}
