//! Raft groups of the ledger wired through an in-memory router: exactly one leader in groups of
//! 1, 2, 3 and 5; a new leader after the leader dies; committed ledger entries on every node.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::{BasicNode, Raft};
use rover_election::config::raft_config;
use rover_election::disk::MemoryDisk;
use rover_election::ledger::{Applied, Incident, IncidentKind, LedgerCommand};
use rover_election::log_store::LogStore;
use rover_election::network::{
    serve, Network, RaftReply, RaftRequest, RaftTransport, TransportError,
};
use rover_election::state_machine::{LedgerMachine, LedgerReader};
use rover_election::types::LedgerRaft;

/// Routes requests to in-process nodes; a node marked down is unreachable.
#[derive(Clone, Default)]
struct Router {
    nodes: Arc<Mutex<HashMap<u64, Raft<LedgerRaft>>>>,
    down: Arc<Mutex<HashSet<u64>>>,
}

impl RaftTransport for Router {
    async fn call(
        &self,
        target: u64,
        addr: &str,
        request: RaftRequest,
    ) -> Result<RaftReply, TransportError> {
        let raft = {
            let down = self.down.lock().unwrap().contains(&target);
            let nodes = self.nodes.lock().unwrap();
            nodes.get(&target).filter(|_| !down).cloned()
        };
        match raft {
            Some(raft) => Ok(serve(&raft, request).await),
            None => Err(TransportError {
                addr: addr.to_owned(),
                reason: "down".into(),
            }),
        }
    }
}

struct Group {
    router: Router,
    readers: HashMap<u64, LedgerReader>,
}

impl Group {
    async fn start(size: u64) -> Self {
        let router = Router::default();
        let mut readers = HashMap::new();
        for id in 1..=size {
            let disk = MemoryDisk::default();
            let machine = LedgerMachine::open(disk.clone()).unwrap();
            readers.insert(id, machine.reader());
            let raft = Raft::new(
                id,
                raft_config("test").unwrap(),
                Network::new(router.clone()),
                LogStore::new(disk),
                machine,
            )
            .await
            .unwrap();
            // The agent opens elections through its SWIM gate; here every node may elect.
            raft.runtime_config().elect(true);
            router.nodes.lock().unwrap().insert(id, raft);
        }
        let members: BTreeMap<u64, BasicNode> = (1..=size)
            .map(|id| (id, BasicNode::new(format!("node{id}"))))
            .collect();
        router.raft(1).initialize(members).await.unwrap();
        Self { router, readers }
    }

    fn live(&self) -> Vec<u64> {
        let down = self.router.down.lock().unwrap().clone();
        let mut ids: Vec<u64> = self
            .router
            .nodes
            .lock()
            .unwrap()
            .keys()
            .copied()
            .filter(|id| !down.contains(id))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The leader every live node agrees on, once they all agree and that node says it leads.
    fn agreed_leader(&self) -> Option<u64> {
        let live = self.live();
        let leaders: HashSet<Option<u64>> = live
            .iter()
            .map(|id| self.router.raft(*id).metrics().borrow().current_leader)
            .collect();
        let leader = match leaders.into_iter().collect::<Vec<_>>().as_slice() {
            [Some(leader)] => *leader,
            _ => return None,
        };
        let says_leader = live
            .iter()
            .filter(|id| self.router.raft(**id).metrics().borrow().state.is_leader())
            .count();
        (live.contains(&leader) && says_leader == 1).then_some(leader)
    }

    async fn wait_leader(&self, timeout: Duration) -> Option<(u64, Duration)> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(leader) = self.agreed_leader() {
                return Some((leader, start.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    async fn kill(&self, id: u64) {
        self.router.down.lock().unwrap().insert(id);
        self.router.raft(id).shutdown().await.unwrap();
    }
}

impl Router {
    fn raft(&self, id: u64) -> Raft<LedgerRaft> {
        self.nodes.lock().unwrap().get(&id).cloned().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_of_1_2_3_and_5_each_elect_exactly_one_leader() {
    for size in [1, 2, 3, 5] {
        let group = Group::start(size).await;
        let elected = group.wait_leader(Duration::from_secs(15)).await;
        assert!(elected.is_some(), "no single leader in a group of {size}");
        eprintln!("group of {size}: leader {:?}", elected);
        for id in group.live() {
            group.router.raft(id).shutdown().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leader_dies_the_survivors_elect_a_new_one() {
    for size in [3, 5] {
        let group = Group::start(size).await;
        let (old, _) = group.wait_leader(Duration::from_secs(15)).await.unwrap();
        group.kill(old).await;
        let (new, took) = group
            .wait_leader(Duration::from_secs(15))
            .await
            .expect("no new leader");
        assert_ne!(new, old);
        eprintln!("group of {size}: new leader {new} {took:?} after the old one died");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_node_group_that_loses_one_has_no_raft_leader() {
    let group = Group::start(2).await;
    let (leader, _) = group.wait_leader(Duration::from_secs(15)).await.unwrap();
    group.kill(leader).await;
    let survivor = group.live()[0];
    // Long enough for several election timeouts; no quorum means no leader.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let metrics = group.router.raft(survivor).metrics().borrow().clone();
        assert!(
            !metrics.state.is_leader(),
            "a lone node of two must not lead"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_ledger_entry_reaches_every_node_and_a_repeat_changes_nothing() {
    let group = Group::start(3).await;
    let (leader, _) = group.wait_leader(Duration::from_secs(15)).await.unwrap();
    let open = LedgerCommand::Open(Incident::new("down/n9/1", IncidentKind::HostDown, "n9", 1));
    let raft = group.router.raft(leader);
    raft.ensure_linearizable().await.unwrap();
    assert_eq!(
        raft.client_write(open.clone()).await.unwrap().data,
        Applied::Changed
    );
    assert_eq!(
        raft.client_write(open).await.unwrap().data,
        Applied::AlreadyRecorded
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if group
            .readers
            .values()
            .all(|r| r.ledger().incident("down/n9/1").is_some())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the incident did not reach every node");
}
