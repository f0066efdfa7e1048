//! Raft RPCs over whatever carries them: [`RaftRequest`] / [`RaftReply`] are plain serde types
//! that the agent sends in sealed frames on its cluster TCP port (tests route them in memory).
//! A peer that cannot be reached is reported as `Unreachable`, so openraft backs off quietly.

use std::future::Future;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use serde::{Deserialize, Serialize};

use crate::types::LedgerRaft;

/// A Raft RPC. Only append variants (postcard).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RaftRequest {
    /// Replicate entries / heartbeat.
    AppendEntries(AppendEntriesRequest<LedgerRaft>),
    /// Ask for a vote.
    Vote(VoteRequest<u64>),
    /// Send a snapshot chunk.
    InstallSnapshot(InstallSnapshotRequest<LedgerRaft>),
}

/// The answer to a [`RaftRequest`], with the remote node's Raft error if it had one.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    /// To `AppendEntries`.
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    /// To `Vote`.
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    /// To `InstallSnapshot`.
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
#[error("raft peer {addr}: {reason}")]
pub struct TransportError {
    /// The peer's address.
    pub addr: String,
    /// What failed.
    pub reason: String,
}

/// Carries requests to peers (by node id and address) and brings back their replies.
pub trait RaftTransport: Clone + Send + Sync + 'static {
    /// Sends `request` to node `target` at `addr` and waits for its reply.
    fn call(
        &self,
        target: u64,
        addr: &str,
        request: RaftRequest,
    ) -> impl Future<Output = Result<RaftReply, TransportError>> + Send;
}

/// Answers a request with the local Raft node (the server side of [`RaftTransport`]).
pub async fn serve(raft: &Raft<LedgerRaft>, request: RaftRequest) -> RaftReply {
    match request {
        RaftRequest::AppendEntries(rpc) => RaftReply::AppendEntries(raft.append_entries(rpc).await),
        RaftRequest::Vote(rpc) => RaftReply::Vote(raft.vote(rpc).await),
        RaftRequest::InstallSnapshot(rpc) => {
            RaftReply::InstallSnapshot(raft.install_snapshot(rpc).await)
        }
    }
}

/// openraft's network factory over a transport.
#[derive(Debug, Clone)]
pub struct Network<T> {
    transport: T,
}

impl<T: RaftTransport> Network<T> {
    /// A factory using `transport`.
    pub fn new(transport: T) -> Self {
        Self { transport }
    }
}

impl<T: RaftTransport> RaftNetworkFactory<LedgerRaft> for Network<T> {
    type Network = Connection<T>;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        Connection {
            transport: self.transport.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

/// The client side towards one peer.
#[derive(Debug, Clone)]
pub struct Connection<T> {
    transport: T,
    target: u64,
    addr: String,
}

#[derive(Debug, thiserror::Error)]
#[error("peer answered a different request")]
struct MismatchedReply;

impl<T: RaftTransport> Connection<T> {
    async fn call<E: std::error::Error>(
        &self,
        request: RaftRequest,
    ) -> Result<RaftReply, RPCError<u64, BasicNode, E>> {
        self.transport
            .call(self.target, &self.addr, request)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }

    fn remote<E: std::error::Error>(&self, error: E) -> RPCError<u64, BasicNode, E> {
        RPCError::RemoteError(RemoteError::new_with_node(
            self.target,
            BasicNode::new(&self.addr),
            error,
        ))
    }
}

fn mismatched<E: std::error::Error>() -> RPCError<u64, BasicNode, E> {
    RPCError::Network(NetworkError::new(&MismatchedReply))
}

impl<T: RaftTransport> RaftNetwork<LedgerRaft> for Connection<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<LedgerRaft>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(RaftRequest::AppendEntries(rpc)).await? {
            RaftReply::AppendEntries(reply) => reply.map_err(|e| self.remote(e)),
            _ => Err(mismatched()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<LedgerRaft>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        match self.call(RaftRequest::InstallSnapshot(rpc)).await? {
            RaftReply::InstallSnapshot(reply) => reply.map_err(|e| self.remote(e)),
            _ => Err(mismatched()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(RaftRequest::Vote(rpc)).await? {
            RaftReply::Vote(reply) => reply.map_err(|e| self.remote(e)),
            _ => Err(mismatched()),
        }
    }
}
