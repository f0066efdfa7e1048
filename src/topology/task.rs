//! The topology owner task: holds this host's neighbour table, its interfaces and listener
//! threads, and the gossiped table of every host. It publishes this host's record when what
//! it shows changes (at most every [`MIN_PUBLISH_GAP`]), applies records heard by gossip and
//! sync, stores them, records each switch change in history and keeps a watch of the table
//! for the map readers (API, incident engine). It never awaits the network: broadcasts are
//! handed to a spawned task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rover_membership::runtime::unix_ms;
use rover_membership::{BroadcastItem, MembershipHandle, Topic};
use rover_storage::{HistoryEntry, HistoryEvent, HistoryStore, Storage};
use tokio::sync::{mpsc, oneshot, watch};

use super::interfaces::{choose, unusable, LocalInterface};
use super::listener::{self, ListenerEvent, ListenerStats, ListenerThread};
use super::map::TopologyMap;
use super::neighbours::Neighbours;
use super::record::{next_version, HostTopology, Link, ListenerState};
use super::report::{ListenerReport, NeighbourView, TopologyReport};
use super::socket::OpenError;
use super::table::{Applied, DigestEntry, SwitchChange, TopologyTable, MAX_DIGEST};
use super::TopologySettings;

/// Our record is published at most this often (changes in between are coalesced).
pub const MIN_PUBLISH_GAP: Duration = Duration::from_millis(500);
/// Interfaces and addresses are looked at again this often.
pub const RESCAN_EVERY: Duration = Duration::from_secs(10);
/// Frames waiting for the owner task; beyond, listener threads drop and count.
const LISTENER_QUEUE: usize = 256;
/// Version byte of a stored record.
const STORED_VERSION: u8 = 1;

/// A request to the topology owner task.
#[derive(Debug)]
pub enum TopologyInput {
    /// A record heard by gossip under `key`.
    Gossip {
        /// The broadcast key (the host).
        key: String,
        /// The encoded record.
        payload: Vec<u8>,
    },
    /// Records pulled or pushed by the sync.
    Synced(Vec<HostTopology>),
    /// Our digest.
    Digest(oneshot::Sender<Vec<DigestEntry>>),
    /// What we hold newer than a peer's digest.
    NewerThan(Vec<DigestEntry>, oneshot::Sender<Vec<HostTopology>>),
    /// The report `topology` prints; `members` are the names of the current members.
    Report {
        /// Current members, to name those without a record.
        members: Vec<String>,
        /// Where the answer goes.
        reply: oneshot::Sender<TopologyReport>,
    },
    /// A member left the cluster: forget its record.
    Left(String),
}

/// What the task needs.
#[derive(Debug, Clone)]
pub struct TopologyContext {
    /// This node's name.
    pub host: String,
    /// `[topology]`.
    pub settings: TopologySettings,
    /// Where records and history go.
    pub storage: Storage,
    /// Where our record is broadcast.
    pub membership: MembershipHandle,
}

/// A cloneable handle to the owner task.
#[derive(Debug, Clone)]
pub struct TopologyHandle {
    inputs: mpsc::Sender<TopologyInput>,
    table: watch::Receiver<Arc<TopologyTable>>,
}

/// The task has stopped (the agent is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the topology task has stopped")]
pub struct TopologyStopped;

impl TopologyHandle {
    /// Hands over an input without waiting (dropped and logged when the queue is full: the
    /// sync repairs a lost record).
    pub fn offer(&self, input: TopologyInput) {
        if let Err(e) = self.inputs.try_send(input) {
            tracing::debug!(error = %e, "topology input dropped");
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> TopologyInput,
    ) -> Result<T, TopologyStopped> {
        let (tx, rx) = oneshot::channel();
        self.inputs
            .send(make(tx))
            .await
            .map_err(|_| TopologyStopped)?;
        rx.await.map_err(|_| TopologyStopped)
    }

    /// Our digest.
    pub async fn digest(&self) -> Result<Vec<DigestEntry>, TopologyStopped> {
        self.ask(TopologyInput::Digest).await
    }

    /// What we hold newer than `digest`.
    pub async fn newer_than(
        &self,
        digest: Vec<DigestEntry>,
    ) -> Result<Vec<HostTopology>, TopologyStopped> {
        self.ask(|tx| TopologyInput::NewerThan(digest, tx)).await
    }

    /// Records from a peer (the sync).
    pub async fn synced(&self, records: Vec<HostTopology>) -> Result<(), TopologyStopped> {
        self.inputs
            .send(TopologyInput::Synced(records))
            .await
            .map_err(|_| TopologyStopped)
    }

    /// The report `topology` prints.
    pub async fn report(&self, members: Vec<String>) -> Result<TopologyReport, TopologyStopped> {
        self.ask(|reply| TopologyInput::Report { members, reply })
            .await
    }

    /// The map as of now (built from the latest table; no round trip to the task).
    pub fn map(&self) -> TopologyMap {
        TopologyMap::build(&self.table.borrow())
    }
}

/// Loads the stored records and starts the owner task.
pub fn spawn(
    context: TopologyContext,
) -> anyhow::Result<(TopologyHandle, tokio::task::JoinHandle<()>)> {
    let stored = load_stored(&context.storage)?;
    let last_version = stored
        .iter()
        .find(|r| r.host == context.host)
        .map_or(0, |r| r.version);
    let table = TopologyTable::from_records(stored);
    let (table_tx, table_rx) = watch::channel(Arc::new(table.clone()));
    let (inputs, inputs_rx) = mpsc::channel(256);
    let (events_tx, events_rx) = mpsc::channel(LISTENER_QUEUE);
    let listener_state = if context.settings.enabled {
        ListenerState::Listening
    } else {
        ListenerState::Disabled
    };
    let task = TopologyTask {
        context,
        table,
        table_tx,
        neighbours: Neighbours::default(),
        interfaces: Vec::new(),
        unusable: Vec::new(),
        listeners: BTreeMap::new(),
        listener_state,
        stats: Arc::new(ListenerStats::default()),
        records_refused: 0,
        events_tx,
        last_version,
        dirty: true,
        last_publish_ms: 0,
    };
    let handle = TopologyHandle {
        inputs,
        table: table_rx,
    };
    Ok((handle, tokio::spawn(task.run(inputs_rx, events_rx))))
}

/// The stored records. One that cannot be read is said at ERROR, naming its key, and
/// removed: the map is a copy of what peers publish, and the sync brings that host's record
/// back within one interval (the tree itself is checked by the storage crate).
pub fn load_stored(storage: &Storage) -> anyhow::Result<Vec<HostTopology>> {
    let tree = storage.topology();
    let mut stored = Vec::new();
    for (host, bytes) in tree.all()? {
        let record = match bytes.split_first() {
            Some((&STORED_VERSION, body)) => postcard::from_bytes::<HostTopology>(body)
                .map_err(|e| e.to_string())
                .and_then(|r| r.check().map(|()| r).map_err(|e| e.to_string())),
            Some((version, _)) => Err(format!("unknown record version {version}")),
            None => Err("empty value".to_owned()),
        };
        match record {
            Ok(record) if record.host == host => stored.push(record),
            Ok(record) => drop_stored(
                &tree,
                &host,
                &format!("holds the record of {:?}", record.host),
            )?,
            Err(why) => drop_stored(&tree, &host, &why)?,
        }
    }
    Ok(stored)
}

fn drop_stored(tree: &rover_storage::TopologyTree, host: &str, why: &str) -> anyhow::Result<()> {
    tracing::error!(
        tree = "topology",
        key = %host,
        "unreadable topology record in storage ({why}): removed; peers send it again"
    );
    tree.remove(host)?;
    Ok(())
}

struct TopologyTask {
    context: TopologyContext,
    table: TopologyTable,
    table_tx: watch::Sender<Arc<TopologyTable>>,
    neighbours: Neighbours,
    interfaces: Vec<LocalInterface>,
    /// Configured interfaces that cannot be listened on, with why (said when it changes).
    unusable: Vec<String>,
    listeners: BTreeMap<String, ListenerThread>,
    listener_state: ListenerState,
    stats: Arc<ListenerStats>,
    records_refused: u64,
    events_tx: mpsc::Sender<ListenerEvent>,
    last_version: u64,
    /// Our record changed since it was last published.
    dirty: bool,
    last_publish_ms: u64,
}

impl TopologyTask {
    async fn run(
        mut self,
        mut inputs: mpsc::Receiver<TopologyInput>,
        mut events: mpsc::Receiver<ListenerEvent>,
    ) {
        self.scan();
        let mut rescan =
            tokio::time::interval_at(tokio::time::Instant::now() + RESCAN_EVERY, RESCAN_EVERY);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = self.next_wake(unix_ms());
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => self.handle(input),
                    None => return,
                },
                Some(event) = events.recv() => self.on_listener(event),
                _ = rescan.tick() => self.scan(),
                _ = tokio::time::sleep(wake) => {}
            }
            let now = unix_ms();
            if self.neighbours.handle_expiry(now) {
                self.dirty = true;
            }
            let gap = u64::try_from(MIN_PUBLISH_GAP.as_millis()).unwrap_or(500);
            if self.dirty && now.saturating_sub(self.last_publish_ms) >= gap {
                self.publish(now);
            }
        }
    }

    /// How long until something is due: a TTL running out, or a coalesced publish.
    fn next_wake(&self, now_ms: u64) -> Duration {
        let gap = u64::try_from(MIN_PUBLISH_GAP.as_millis()).unwrap_or(500);
        let publish = self.dirty.then(|| self.last_publish_ms.saturating_add(gap));
        let due = [self.neighbours.next_expiry(), publish]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now_ms + 60_000);
        Duration::from_millis(due.saturating_sub(now_ms).max(1))
    }

    fn handle(&mut self, input: TopologyInput) {
        match input {
            TopologyInput::Gossip { key, payload } => match HostTopology::decode(&payload, &key) {
                Ok(record) => self.apply_remote(record),
                Err(e) => {
                    self.records_refused += 1;
                    tracing::debug!(error = %e, "topology record dropped");
                }
            },
            TopologyInput::Synced(records) => {
                for record in records.into_iter().take(MAX_DIGEST) {
                    match record.check() {
                        Ok(()) => self.apply_remote(record),
                        Err(e) => {
                            self.records_refused += 1;
                            tracing::debug!(error = %e, "synced topology record dropped");
                        }
                    }
                }
            }
            TopologyInput::Digest(reply) => {
                let _ = reply.send(self.table.digest());
            }
            TopologyInput::NewerThan(digest, reply) => {
                let _ = reply.send(self.table.newer_than(&digest));
            }
            TopologyInput::Report { members, reply } => {
                let _ = reply.send(self.report(&members));
            }
            TopologyInput::Left(host) => {
                if host != self.context.host && self.table.remove(&host) {
                    if let Err(e) = self.context.storage.topology().remove(&host) {
                        tracing::error!(error = %e, "cannot remove a topology record");
                    }
                    self.table_tx.send_replace(Arc::new(self.table.clone()));
                }
            }
        }
    }

    fn on_listener(&mut self, event: ListenerEvent) {
        match event {
            ListenerEvent::Heard { interface, heard } => {
                if self.neighbours.handle_heard(&interface, heard, unix_ms()) {
                    self.dirty = true;
                }
            }
            ListenerEvent::Ended { interface, error } => {
                // A thread we stopped (its interface is gone) ends quietly; any other end is
                // said, and the next scan opens the interface again.
                if let Some(error) = error {
                    tracing::warn!(%interface, %error, "LLDP listener thread ended; reopening at the next scan");
                    self.listeners.remove(&interface);
                }
            }
        }
    }

    /// Looks at the interfaces: starts listening on new ones, stops on those gone, and
    /// notes address changes.
    fn scan(&mut self) {
        if self.listener_state == ListenerState::Disabled {
            return;
        }
        let all = pnet_datalink::interfaces();
        let unusable = unusable(&all, &self.context.settings.interfaces);
        if unusable != self.unusable {
            if !unusable.is_empty() {
                tracing::warn!(
                    "topology.interfaces names interfaces that cannot be listened on: {}",
                    unusable.join(", ")
                );
            }
            self.unusable = unusable;
        }
        let chosen = choose(all, &self.context.settings.interfaces);
        let names: Vec<&str> = chosen.iter().map(|i| i.name.as_str()).collect();
        let before: Vec<_> = self
            .interfaces
            .iter()
            .map(|i| (&i.name, &i.subnets))
            .collect();
        let after: Vec<_> = chosen.iter().map(|i| (&i.name, &i.subnets)).collect();
        if before != after {
            self.dirty = true;
        }
        let gone: Vec<String> = self
            .listeners
            .keys()
            .filter(|n| !names.contains(&n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            self.listeners.remove(&name);
            self.neighbours.forget_interface(&name);
        }
        if matches!(self.listener_state, ListenerState::Listening) {
            let own_macs: Vec<[u8; 6]> = chosen.iter().map(|i| i.mac).collect();
            let new: Vec<&LocalInterface> = chosen
                .iter()
                .filter(|i| !self.listeners.contains_key(&i.name))
                .collect();
            for interface in new {
                match listener::start(
                    &interface.pnet,
                    own_macs.clone(),
                    self.events_tx.clone(),
                    self.stats.clone(),
                ) {
                    Ok(thread) => {
                        tracing::info!(interface = %interface.name, "listening for LLDP and CDP");
                        self.listeners.insert(interface.name.clone(), thread);
                    }
                    Err(OpenError::NoCapability) => {
                        let reason = OpenError::NoCapability.to_string();
                        tracing::warn!(
                            "LLDP listening is off: {reason}; the agent runs on without topology \
                             of its own (to listen: {})",
                            super::socket::CAP_NET_RAW_REMEDY
                        );
                        self.listener_state = ListenerState::Off { reason };
                        self.listeners.clear();
                        self.dirty = true;
                        break;
                    }
                    Err(e) => tracing::warn!(error = %e, "LLDP listener not started"),
                }
            }
        }
        self.interfaces = chosen;
    }

    /// Our record as it stands.
    fn own_links(&self) -> Vec<Link> {
        self.interfaces
            .iter()
            .map(|i| Link {
                interface: i.name.clone(),
                subnets: i.subnets.clone(),
                switch: self
                    .neighbours
                    .current(&i.name)
                    .map(super::neighbours::Neighbour::switch_port),
            })
            .filter(|l| !l.subnets.is_empty() || l.switch.is_some())
            .collect()
    }

    fn publish(&mut self, now_ms: u64) {
        self.dirty = false;
        self.last_publish_ms = now_ms;
        let mut record = HostTopology {
            host: self.context.host.clone(),
            version: next_version(self.last_version, now_ms),
            listener: self.listener_state.clone(),
            links: self.own_links(),
        };
        let unchanged = self
            .table
            .get(&record.host)
            .is_some_and(|held| held.listener == record.listener && held.links == record.links);
        if unchanged && self.last_version > 0 {
            return;
        }
        if let Err(e) = record.check() {
            tracing::error!(error = %e, "this host's topology record would be refused by its peers");
        }
        if record.fit() {
            tracing::warn!("this host's topology record was trimmed to fit a gossip broadcast");
        }
        self.last_version = record.version;
        let item = BroadcastItem {
            topic: Topic::Topology,
            key: record.host.clone(),
            version: record.version,
            payload: record.encode(),
        };
        self.take(record, "local");
        let membership = self.context.membership.clone();
        tokio::spawn(async move {
            if let Err(e) = membership.broadcast(item).await {
                tracing::debug!(error = %e, "topology record not broadcast");
            }
        });
    }

    fn apply_remote(&mut self, record: HostTopology) {
        if record.host == self.context.host {
            // Our own record comes back through peers; ours is the truth. A newer one means
            // an earlier life of this host published past our version: go above it.
            if record.version > self.last_version {
                self.last_version = record.version;
                self.dirty = true;
            }
            return;
        }
        self.take(record, "remote");
    }

    /// Applies a record to the table; stores it and records switch changes in history.
    fn take(&mut self, record: HostTopology, via: &str) {
        let bytes = {
            let mut bytes = vec![STORED_VERSION];
            bytes.extend(record.encode());
            bytes
        };
        let host = record.host.clone();
        match self.table.apply(record) {
            Applied::Stale => {}
            Applied::Full => {
                self.records_refused += 1;
                tracing::warn!(%host, "topology table full: record refused");
            }
            Applied::Taken(changes) => {
                if let Err(e) = self.context.storage.topology().put(&host, &bytes) {
                    tracing::error!(error = %e, "cannot store a topology record");
                }
                for change in changes {
                    self.record_change(&change, via);
                }
                self.table_tx.send_replace(Arc::new(self.table.clone()));
            }
        }
    }

    fn record_change(&self, change: &SwitchChange, via: &str) {
        tracing::info!(
            host = %change.host,
            interface = %change.interface,
            via,
            "{}",
            super::history_text(&change.interface, change.from.as_deref(), change.to.as_deref())
        );
        let entry = HistoryEntry {
            host: change.host.clone(),
            at_ms: unix_ms(),
            event: HistoryEvent::SwitchChange {
                interface: change.interface.clone(),
                from: change.from.clone(),
                to: change.to.clone(),
            },
        };
        if let Err(e) = self.context.storage.history().append(&entry) {
            tracing::error!(error = %e, "cannot record a switch change in history");
        }
    }

    fn report(&self, members: &[String]) -> TopologyReport {
        let mut counters = self.stats.read();
        counters.records_refused = self.records_refused;
        TopologyReport {
            node: self.context.host.clone(),
            listener: ListenerReport {
                state: self.listener_state.clone(),
                remedy: matches!(&self.listener_state, ListenerState::Off { reason }
                    if reason == super::socket::NO_CAP_NET_RAW)
                .then(|| super::socket::CAP_NET_RAW_REMEDY.to_owned()),
                interfaces: self.listeners.keys().cloned().collect(),
                counters,
                neighbours: self
                    .neighbours
                    .iter()
                    .map(|(interface, n)| NeighbourView {
                        interface: interface.to_owned(),
                        protocol: n.heard.protocol.as_str().to_owned(),
                        switch_port: n.switch_port().describe(),
                        chassis: n.heard.chassis.text.clone(),
                        ttl_s: n.heard.ttl_s,
                        first_heard_ms: n.first_heard_ms,
                        last_heard_ms: n.last_heard_ms,
                        expires_ms: n.expires_ms,
                    })
                    .collect(),
            },
            map: TopologyMap::build(&self.table).view(),
            without_record: members
                .iter()
                .filter(|m| self.table.get(m).is_none())
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::record::{ListenerState, Subnet};

    fn record(host: &str) -> HostTopology {
        HostTopology {
            host: host.into(),
            version: 7,
            listener: ListenerState::Listening,
            links: vec![Link {
                interface: "eth0".into(),
                subnets: vec![Subnet::of("10.0.0.1".parse().unwrap(), 24).unwrap()],
                switch: None,
            }],
        }
    }

    #[test]
    fn stored_records_load_and_an_unreadable_one_is_removed_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let tree = storage.topology();
        let mut good = vec![STORED_VERSION];
        good.extend(record("n1").encode());
        tree.put("n1", &good).unwrap();
        tree.put("n2", &[STORED_VERSION, 0xff, 0xff]).unwrap();
        tree.put("n3", &[9, 1, 2]).unwrap();
        tree.put("n4", &good).unwrap(); // n1's record under n4's key
        let loaded = load_stored(&storage).unwrap();
        assert_eq!(loaded, vec![record("n1")]);
        let keys: Vec<String> = tree.all().unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["n1"]);
    }
}
