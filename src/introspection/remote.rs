//! Asking a member from outside the cluster (seed 002: "you have to be in the cluster to find
//! out about the cluster"): `members`, `info` and `events` with `--via HOST:PORT --key-file
//! FILE` open a sealed cluster-port connection with the cluster key, ask one
//! [`IntrospectQuery`] and print the answer, without joining.
//!
//! Read-only: the answers are those of the local API's reads. A wrong key never gets past the
//! handshake: the member answers nothing and counts the refusal (`cluster_port_refused` in
//! `info`, `rover_cluster_refused_total{reason="handshake"}` in `/metrics`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, bail, Context, Result};
use rover_membership::Keyring;
use serde::{Deserialize, Serialize};

use super::EventFilter;
use crate::api::server::ApiState;
use crate::peer::{PeerConnection, PeerMessage, EXCHANGE_TIMEOUT};

/// What an outside reader may ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntrospectQuery {
    /// The member list, as `GET /v1/members`.
    Members,
    /// As `GET /v1/info`.
    Info,
    /// The events that pass the filter, as `GET /v1/events`.
    Events(EventFilter),
}

/// The answer, as the JSON text the local API would send (so the answer's shape can grow
/// without a new message), or why there is none.
pub type IntrospectAnswer = Result<String, String>;

/// What the cluster port needs to answer: the local API's state, set once the API is up
/// (a query before then is answered "not ready").
#[derive(Debug, Clone, Default)]
pub struct Answerer {
    api: Arc<OnceLock<ApiState>>,
}

impl Answerer {
    /// Makes the answerer able to answer.
    pub fn ready(&self, state: ApiState) {
        let _ = self.api.set(state);
    }

    /// The answer to `query`.
    pub async fn answer(&self, query: IntrospectQuery) -> PeerMessage {
        PeerMessage::IntrospectAnswer(self.answer_text(query).await)
    }

    async fn answer_text(&self, query: IntrospectQuery) -> IntrospectAnswer {
        let Some(state) = self.api.get() else {
            return Err("the agent is starting; ask again shortly".into());
        };
        let json = match query {
            IntrospectQuery::Members => {
                let members = state
                    .membership
                    .members()
                    .await
                    .map_err(|e| e.to_string())?;
                serde_json::to_string(&members)
            }
            IntrospectQuery::Info => {
                let info = crate::api::server::info_of(state).await?;
                serde_json::to_string(&info)
            }
            IntrospectQuery::Events(filter) => {
                let events = state
                    .events
                    .query(filter)
                    .await
                    .map_err(|e| e.to_string())?;
                serde_json::to_string(&events)
            }
        };
        json.map_err(|e| e.to_string())
    }
}

/// Asks the member at `via` with the key in `key_file`; the answer's JSON text.
pub async fn ask(via: SocketAddr, key_file: &Path, query: IntrospectQuery) -> Result<String> {
    let key = crate::data_dir::read_key_file(key_file)?;
    let mut connection = PeerConnection::connect(via, Keyring::new(key))
        .await
        .with_context(|| {
            format!(
                "no answer from {via}: is it a member's cluster port, and is {} its cluster key?",
                key_file.display()
            )
        })?;
    let answer = connection
        .ask(&PeerMessage::IntrospectQuery(query), EXCHANGE_TIMEOUT)
        .await
        .with_context(|| {
            format!(
                "no answer from {via} (a wrong cluster key in {} gets none)",
                key_file.display()
            )
        })?;
    match answer {
        PeerMessage::IntrospectAnswer(Ok(json)) => Ok(json),
        PeerMessage::IntrospectAnswer(Err(why)) => Err(anyhow!("{via} refused: {why}")),
        _ => bail!("{via} sent an unexpected answer"),
    }
}
