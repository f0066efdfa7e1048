//! Anti-entropy of grid-control records, and the cluster-port messages of records and keys.
//!
//! The exchange rides on the alert sync's connection ([`crate::alerts::sync`]): the client
//! sends its digest (`(signer, service, seqnum)` of every record), the server answers with
//! the records it holds newer and its own digest, and the client pushes what the server
//! lacks. Records travel one encoding each, so a bad one is dropped and counted alone.

use anyhow::{bail, Result};

use rover_storage::grid::order::MAX_RECORDS;

use super::{GridHandle, GridInput};
use crate::keys::KeysHandle;
use crate::peer::{PeerConnection, PeerMessage};

/// Records moved by one exchange.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordSyncStats {
    /// Records received.
    pub pulled: usize,
    /// Records sent.
    pub pushed: usize,
}

/// One records exchange on an open connection, as the client.
pub async fn exchange(
    connection: &mut PeerConnection,
    grid: &GridHandle,
) -> Result<RecordSyncStats> {
    connection
        .send(&PeerMessage::RecordDigest(grid.digest().await?))
        .await?;
    let Some(PeerMessage::RecordDelta { records, digest }) = connection.receive().await? else {
        bail!("the peer did not answer the records digest");
    };
    let (mut records, mut digest) = (records, digest);
    records.truncate(MAX_RECORDS);
    digest.truncate(MAX_RECORDS);
    let pulled = records.len();
    if pulled > 0 {
        grid.send(GridInput::Synced(records)).await?;
    }
    let push = grid.newer_than(digest).await?;
    let pushed = push.len();
    if pushed > 0 {
        connection.send(&PeerMessage::RecordPush(push)).await?;
    }
    Ok(RecordSyncStats { pulled, pushed })
}

/// What the cluster port needs to answer records and keyring messages.
#[derive(Debug, Clone)]
pub struct GridPeer {
    /// The records owner task.
    pub grid: GridHandle,
    /// The keys owner task.
    pub keys: KeysHandle,
}

/// What [`GridPeer::handle`] did with a message.
#[derive(Debug)]
pub enum Handled {
    /// Not a records or keyring request.
    NotOurs,
    /// Send this answer.
    Answer(Box<PeerMessage>),
    /// Taken; nothing to answer.
    Taken,
}

impl GridPeer {
    /// Answers a records or keyring request from a peer.
    pub async fn handle(&self, message: PeerMessage) -> Result<Handled> {
        match message {
            PeerMessage::RecordDigest(mut digest) => {
                digest.truncate(MAX_RECORDS);
                Ok(Handled::Answer(Box::new(PeerMessage::RecordDelta {
                    records: self.grid.newer_than(digest).await?,
                    digest: self.grid.digest().await?,
                })))
            }
            PeerMessage::RecordPush(mut records) => {
                // A table holds at most MAX_RECORDS: more in one push is not one table's worth.
                records.truncate(MAX_RECORDS);
                self.grid.send(GridInput::Synced(records)).await?;
                Ok(Handled::Taken)
            }
            other => Ok(match crate::keys::peer::answer(&self.keys, &other).await? {
                Some(answer) => Handled::Answer(Box::new(answer)),
                None => Handled::NotOurs,
            }),
        }
    }
}
