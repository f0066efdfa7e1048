//! The keyring messages of the cluster port: what a member answers, and the client calls the
//! coordinator and a member that was away make. Every connection is the cluster port's (a
//! handshake under a key of the caller's ring, which the answering member must hold too).

use std::net::SocketAddr;

use anyhow::{bail, Result};
use rover_membership::Keyring;

use super::state::KeyringWire;
use super::{KeyChange, KeyringSummary, KeysHandle};
use crate::peer::{PeerConnection, PeerMessage, EXCHANGE_TIMEOUT};

/// The answer to a keyring request from a peer; `None` for messages that are not one.
pub async fn answer(keys: &KeysHandle, message: &PeerMessage) -> Result<Option<PeerMessage>> {
    Ok(Some(match message {
        PeerMessage::KeyringQuery => PeerMessage::KeyringSummary(keys.summary().await?),
        PeerMessage::KeyringChange(change) => {
            let answer = match change.op() {
                Some(op) => keys.apply(op, change.version).await,
                None => Err("the step names no valid key".to_owned()),
            };
            PeerMessage::KeyringChangeAnswer(answer)
        }
        PeerMessage::KeyringFetch => PeerMessage::KeyringFetchAnswer(keys.state().await?.to_wire()),
        _ => return Ok(None),
    }))
}

async fn ask(addr: SocketAddr, keyring: &Keyring, message: &PeerMessage) -> Result<PeerMessage> {
    let mut connection = PeerConnection::connect(addr, keyring.clone()).await?;
    connection.ask(message, EXCHANGE_TIMEOUT).await
}

/// Which keys the member at `addr` holds.
pub async fn query(addr: SocketAddr, keyring: &Keyring) -> Result<KeyringSummary> {
    match ask(addr, keyring, &PeerMessage::KeyringQuery).await? {
        PeerMessage::KeyringSummary(summary) => Ok(summary),
        _ => bail!("{addr} answered the keyring query with something else"),
    }
}

/// Asks the member at `addr` to apply a step: `Ok(Err(why))` if it refused.
pub async fn change(
    addr: SocketAddr,
    keyring: &Keyring,
    change: &KeyChange,
) -> Result<Result<KeyringSummary, String>> {
    match ask(addr, keyring, &PeerMessage::KeyringChange(change.clone())).await? {
        PeerMessage::KeyringChangeAnswer(answer) => Ok(answer),
        _ => bail!("{addr} answered the keyring step with something else"),
    }
}

/// The whole keyring of the member at `addr`.
pub async fn fetch(addr: SocketAddr, keyring: &Keyring) -> Result<KeyringWire> {
    match ask(addr, keyring, &PeerMessage::KeyringFetch).await? {
        PeerMessage::KeyringFetchAnswer(wire) => Ok(wire),
        _ => bail!("{addr} answered the keyring fetch with something else"),
    }
}

/// Tries `candidates` in order (at most `limit`): the first that answers says which keyring
/// version it holds, and if that is newer than ours its keyring is taken (the key material
/// travels only then). The address it came from, if one was taken.
pub async fn catch_up(
    keys: &KeysHandle,
    candidates: &[SocketAddr],
    limit: usize,
) -> Option<SocketAddr> {
    let ours = keys.state().await.ok()?;
    for addr in candidates.iter().take(limit) {
        let summary = match query(*addr, &ours.ring).await {
            Ok(summary) => summary,
            Err(e) => {
                tracing::debug!(%addr, error = %format!("{e:#}"), "keyring query failed");
                continue;
            }
        };
        if summary.version <= ours.version {
            return None;
        }
        match fetch(*addr, &ours.ring).await {
            Ok(wire) => return keys.adopt(wire).await.unwrap_or(false).then_some(*addr),
            Err(e) => tracing::debug!(%addr, error = %format!("{e:#}"), "keyring fetch failed"),
        }
    }
    None
}
