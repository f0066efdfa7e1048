//! Typed errors of the membership crate.

use thiserror::Error;

/// Why a packet could not be opened. The packet is dropped and counted; nothing is parsed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than the envelope itself; dropped, state untouched.
    #[error("packet of {0} bytes is shorter than the envelope")]
    TooShort(usize),
    /// The version byte is not one this build reads; dropped, state untouched.
    #[error("unknown envelope version {0}")]
    UnknownVersion(u8),
    /// No key of the keyring has the id the packet names; dropped, state untouched.
    #[error("sealed with a key this keyring does not hold")]
    UnknownKey,
    /// The key id matched but authentication failed; dropped, state untouched.
    #[error("authentication failed (forged or corrupted packet)")]
    Forged,
}

/// Why a key line could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyParseError {
    /// The text is not base64; nothing was changed.
    #[error("key is not valid base64")]
    NotBase64,
    /// The text decodes to the wrong number of bytes; nothing was changed.
    #[error("key decodes to {0} bytes, expected 32")]
    WrongLength(usize),
}

/// Why a keyring operation was refused. A refused operation leaves the keyring as it was.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyringError {
    /// The primary key seals every packet; it must be replaced (`use`) before removal.
    #[error("refusing to remove the primary key; make another key primary first")]
    RemovingPrimary,
    /// The key is not in the keyring.
    #[error("key is not installed")]
    NotInstalled,
    /// A persisted keyring held no key.
    #[error("keyring holds no key")]
    Empty,
    /// A persisted keyring held an unreadable key.
    #[error(transparent)]
    BadKey(#[from] KeyParseError),
}

/// Why a packet that opened was still not accepted by the core.
#[derive(Debug, Error)]
pub enum PacketError {
    /// The envelope did not open; the packet was dropped and counted, state untouched.
    #[error("dropped: {0}")]
    Unsealed(#[from] OpenError),
    /// The envelope opened but was already seen inside the replay window; counted, state
    /// untouched.
    #[error("dropped: replayed")]
    Replayed,
    /// The envelope opened but its sender time is outside the replay window; counted, state
    /// untouched.
    #[error("dropped: sent {skew_ms} ms away from our clock, outside the replay window")]
    Stale {
        /// Our clock minus the sender's, in ms.
        skew_ms: i64,
    },
    /// The envelope opened but the SWIM payload was rejected by foca; counted, state untouched.
    #[error("rejected by SWIM: {0}")]
    Rejected(String),
    /// Sent by another agent using our node name (at this address); counted, logged, and
    /// answered with a notice, never handed to SWIM.
    #[error("refused: the agent at {0} uses our node name")]
    NameConflict(std::net::SocketAddr),
    /// Sent by an older generation of a name that a newer one holds at another address (the
    /// agent there); counted as a name conflict there, never handed to SWIM.
    #[error("refused: an older holder of a name the agent at {0} holds now")]
    OutdatedName(std::net::SocketAddr),
    /// Sent by an agent of another team holding our key; counted, logged once per address,
    /// never handed to SWIM.
    #[error("refused: the agent at {addr} is of team {team:?}, not ours")]
    OtherTeam {
        /// Its team.
        team: String,
        /// Its address.
        addr: std::net::SocketAddr,
    },
}

/// Why a broadcast could not be queued.
#[derive(Debug, Error)]
pub enum BroadcastError {
    /// The encoded item is larger than fits in one datagram; nothing was queued.
    #[error("broadcast of {0} bytes does not fit in one packet")]
    TooBig(usize),
    /// foca refused the item; nothing was queued.
    #[error("broadcast refused: {0}")]
    Refused(String),
}

/// Why a list of already-known members was not fully applied.
#[derive(Debug, Error)]
pub enum KnownMembersError {
    /// foca refused one of the members; those before it in the list were applied, the rest
    /// were not.
    #[error("member list refused by SWIM: {0}")]
    Refused(String),
}

/// Why the runtime stopped or a command could not be delivered.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// Binding the UDP socket failed; no task was started.
    #[error("cannot bind gossip socket {addr}: {source}")]
    Bind {
        /// The address we tried.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The owner task has stopped; the command was not run.
    #[error("membership task has stopped")]
    Stopped,
}

/// Why tags were refused (config file, command line or a change at run time); nothing was
/// changed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TagError {
    /// A `--tag` without `=`.
    #[error("tag {0:?} is not KEY=VALUE")]
    NoEquals(String),
    /// The key is empty, longer than 64 or holds other than `A-Z a-z 0-9 _ . -`.
    #[error("tag key {0:?} must be 1 to 64 characters of A-Z a-z 0-9 _ . -")]
    BadKey(String),
    /// The value is longer than 256 bytes.
    #[error("tag {0:?}: value of {1} bytes is longer than 256")]
    LongValue(String, usize),
    /// The value holds a control character.
    #[error("tag {0:?}: value holds a control character")]
    ControlInValue(String),
    /// More than 32 tags.
    #[error("{0} tags, at most 32")]
    TooMany(usize),
    /// The tags take more than their share of a gossip datagram.
    #[error("tags take {0} bytes encoded, at most 256 (they ride in every gossip datagram)")]
    TooBig(usize),
}

/// Why a force-leave was refused; nothing was changed or sent.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ForceLeaveError {
    /// No member of that name is known here.
    #[error("no member named {0:?}")]
    Unknown(String),
    /// The member is alive or suspect: only a failed member can be marked left.
    #[error("member {0:?} is {1}, not failed: only a failed member can be forced to leave")]
    NotFailed(String, &'static str),
    /// That is us: leave with `leave` instead.
    #[error("{0:?} is this agent: use leave")]
    Ourselves(String),
}
