//! Helpers of the records, keys and invitation tests: reading records and services through
//! the CLI, and talking to an agent's cluster port or gossip socket as a peer holding the
//! cluster key would (to inject forged, replayed or truncated records).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use rover_agent::peer::{PeerConnection, PeerMessage};
use rover_membership::{
    BroadcastItem, ClusterKey, CoreSettings, Keyring, NodeIdentity, Topic, Tunables,
};
use serde_json::Value;

use super::Agent;

/// `service get NAME` on `agent`: the address, or `None` if it fails.
pub fn service_get(agent: &Agent, name: &str) -> Option<String> {
    let out = agent.cli(&["service", "get", name]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `records --format json` on `agent` (only `service` if given).
pub fn records(agent: &Agent, service: Option<&str>) -> Vec<Value> {
    let mut args = vec!["records", "--format", "json"];
    if let Some(service) = service {
        args.extend(["--service", service]);
    }
    let out = agent.cli(&args);
    if !out.status.success() {
        return Vec::new();
    }
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// The `records` counters of `info`.
pub fn counters(agent: &Agent) -> Value {
    agent
        .info()
        .map(|i| i["records"].clone())
        .unwrap_or(Value::Null)
}

/// A dropped-records counter of `info` (`bad_signature`, `stale`...).
pub fn dropped(agent: &Agent, reason: &str) -> u64 {
    counters(agent)["dropped"][reason].as_u64().unwrap_or(0)
}

/// Runs a CLI command and parses its `--format json` output (`Null` if it is not JSON).
pub fn cli_json(agent: &Agent, args: &[&str]) -> (Output, Value) {
    let mut args = args.to_vec();
    args.extend(["--format", "json"]);
    let out = agent.cli(&args);
    let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, value)
}

/// Text of a CLI run's stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The cluster key in `key_file`.
pub fn read_key(key_file: &Path) -> ClusterKey {
    let text = std::fs::read_to_string(key_file).unwrap();
    ClusterKey::from_base64(text.trim()).unwrap()
}

/// Pushes encoded records to the agent at `peer` over its cluster port, as a member holding
/// `key` would in an anti-entropy exchange.
pub fn push_records(peer: SocketAddr, key: &ClusterKey, records: Vec<Vec<u8>>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut connection = PeerConnection::connect(peer, Keyring::new(key.clone()))
            .await
            .unwrap();
        connection
            .send(&PeerMessage::RecordPush(records))
            .await
            .unwrap();
        // The server answers nothing to a push: close once it has read it (bounded wait).
        let _ = tokio::time::timeout(Duration::from_secs(1), connection.receive()).await;
    });
}

/// A membership-only peer in the test process: it holds the cluster key, joins like an agent
/// and gossips whatever records it is told to. Dropping it stops it.
pub struct Intruder {
    runtime: tokio::runtime::Runtime,
    handle: rover_membership::MembershipHandle,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Intruder {
    /// Joins the cluster at `seed` as `name` holding `key`; returns once `seed` is a member.
    pub fn join(seed: SocketAddr, key: &ClusterKey, name: &str) -> Intruder {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (handle, task) = runtime.block_on(async {
            let settings = CoreSettings {
                identity: NodeIdentity {
                    name: name.to_owned(),
                    team: "default".to_owned(),
                    addr: "127.0.0.1:0".parse().unwrap(),
                    generation: 1,
                    tags: Default::default(),
                },
                tunables: Tunables::from(rover_membership::Profile::Lan),
                keyring: Keyring::new(key.clone()),
                rng_seed: 7,
            };
            // Events are not needed: an unbounded channel whose receiver is dropped.
            let (events, _) = tokio::sync::mpsc::unbounded_channel();
            let (handle, task) =
                rover_membership::runtime::spawn(settings, "127.0.0.1:0".parse().unwrap(), events)
                    .await
                    .unwrap();
            handle.join(vec![seed]).await.unwrap();
            (handle, task)
        });
        let intruder = Intruder {
            runtime,
            handle,
            task: Some(task),
        };
        let joined = super::wait_for(Duration::from_secs(20), || {
            intruder
                .runtime
                .block_on(intruder.handle.members())
                .is_ok_and(|members| members.iter().any(|m| m.addr == seed))
        });
        assert!(joined.is_some(), "the intruder did not join {seed}");
        intruder
    }

    /// Gossips each payload as a record item.
    pub fn gossip_records(&self, payloads: Vec<Vec<u8>>) {
        for (i, payload) in payloads.into_iter().enumerate() {
            let item = BroadcastItem {
                topic: Topic::Record,
                key: format!("intruder-{i}"),
                version: 1 + i as u64,
                payload,
            };
            assert!(self.runtime.block_on(self.handle.broadcast(item)).unwrap());
        }
    }
}

impl Drop for Intruder {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let task = self.task.take();
        self.runtime.block_on(async move {
            let _ = handle.leave().await;
            let _ = handle.stop().await;
            if let Some(task) = task {
                let _ = task.await;
            }
        });
    }
}

/// Forgets every member an agent's stopped data dir remembers, so that only its
/// grid-control records can bring it back into the cluster.
pub fn forget_members(data_dir: &Path) {
    use rover_storage::MemberStore;
    let storage = rover_storage::Storage::open(data_dir.join("db")).unwrap();
    let members = storage.members();
    for member in members.all().unwrap() {
        members.remove(&member.name).unwrap();
    }
    storage.flush().unwrap();
}
