use super::ring::EventRing;
use super::*;

fn event(op: EventOp, node: &str, at_ms: u64) -> ClusterEvent {
    ClusterEvent {
        seq: 0,
        op,
        node: node.into(),
        at_ms,
        cluster: "c1".into(),
        old_cluster: None,
        members: 3,
        detail: String::new(),
    }
}

#[test]
fn a_full_ring_keeps_the_newest_events_in_order_and_counts_what_it_pushed_out() {
    let mut ring = EventRing::new(3);
    for i in 0..5 {
        ring.push(event(EventOp::Join, &format!("n{i}"), i));
    }
    let kept: Vec<(u64, String)> = ring
        .query(&EventFilter::default())
        .into_iter()
        .map(|e| (e.seq, e.node))
        .collect();
    assert_eq!(
        kept,
        vec![(3, "n2".into()), (4, "n3".into()), (5, "n4".into())]
    );
    let counts = ring.counts();
    assert_eq!(counts.held, 3);
    assert_eq!(counts.evicted, 2);
    assert_eq!(counts.by_op.get("Join"), Some(&5));
}

#[test]
fn restored_events_keep_their_numbers_and_new_ones_count_on_from_the_newest() {
    let mut ring = EventRing::new(10);
    let mut old = event(EventOp::Reboot, "a", 1);
    old.seq = 41;
    ring.restore([old]);
    let seq = ring.push(event(EventOp::Join, "b", 2)).seq;
    assert_eq!(seq, 42);
    assert_eq!(ring.counts().by_op.get("Reboot"), None);
    assert_eq!(ring.len(), 2);
}

#[test]
fn filters_combine_time_ops_and_node() {
    let mut ring = EventRing::new(10);
    ring.push(event(EventOp::Join, "a", 10));
    ring.push(event(EventOp::Down, "a", 20));
    ring.push(event(EventOp::Down, "b", 30));
    ring.push(event(EventOp::LeaderChange, "b", 40));
    let ops = |filter: EventFilter| -> Vec<(EventOp, String)> {
        ring.query(&filter)
            .into_iter()
            .map(|e| (e.op, e.node))
            .collect()
    };
    assert_eq!(
        ops(EventFilter {
            ops: vec![EventOp::Down],
            ..EventFilter::default()
        }),
        vec![(EventOp::Down, "a".into()), (EventOp::Down, "b".into())]
    );
    assert_eq!(
        ops(EventFilter {
            since_ms: Some(25),
            node: Some("b".into()),
            ops: vec![EventOp::Down, EventOp::LeaderChange],
        }),
        vec![
            (EventOp::Down, "b".into()),
            (EventOp::LeaderChange, "b".into())
        ]
    );
    assert!(ops(EventFilter {
        node: Some("c".into()),
        ..EventFilter::default()
    })
    .is_empty());
}

#[test]
fn op_names_parse_whatever_their_case_and_unknown_ones_are_refused() {
    assert_eq!("down".parse::<EventOp>(), Ok(EventOp::Down));
    assert_eq!("LeaderChange".parse::<EventOp>(), Ok(EventOp::LeaderChange));
    for op in EventOp::ALL {
        assert_eq!(op.as_str().parse::<EventOp>(), Ok(op));
    }
    assert!("Explode".parse::<EventOp>().is_err());
}

#[tokio::test]
async fn the_owner_tells_a_join_from_a_reboot_and_a_rejoin_and_sees_leaders_change() {
    let dir = tempfile::tempdir().unwrap();
    let storage = rover_storage::Storage::open(dir.path()).unwrap();
    let (log, inbox) = owner::spawn();
    let (status_tx, status_rx) =
        tokio::sync::watch::channel(crate::leadership::LeaderStatus::default());
    let settings = owner::EventLogSettings {
        me: "a".into(),
        generation: 7,
        capacity: 100,
        beacon: None,
    };
    tokio::spawn(inbox.run(settings, storage.clone(), status_rx));
    let up = |name: &str, generation| Report::Up {
        name: name.into(),
        generation,
    };
    log.report(Report::Active);
    log.report(up("b", 1));
    log.report(up("c", 1));
    let lead = |leader: &str, term| crate::leadership::LeaderStatus {
        mode: crate::leadership::Mode::Raft,
        leader: Some(leader.into()),
        term,
        cluster_id: Some("g1".into()),
        ..Default::default()
    };
    // Reports and the watch are separate inputs: let the reports in first.
    while log.query(EventFilter::default()).await.unwrap().len() < 4 {
        tokio::task::yield_now().await;
    }
    status_tx.send_replace(lead("b", 1));
    while log.query(EventFilter::default()).await.unwrap().len() < 5 {
        tokio::task::yield_now().await;
    }
    log.report(Report::Down {
        name: "c".into(),
        generation: 1,
    });
    log.report(up("c", 2));
    log.report(up("c", 2));
    let wanted = [
        (EventOp::Reboot, "a"),
        (EventOp::Join, "a"),
        (EventOp::Join, "b"),
        (EventOp::Join, "c"),
        (EventOp::LeaderStart, "b"),
        (EventOp::Down, "c"),
        (EventOp::Reboot, "c"),
        (EventOp::Rejoin, "c"),
    ];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let seen = loop {
        let seen: Vec<(EventOp, String)> = log
            .query(EventFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.op, e.node))
            .collect();
        if seen.len() >= wanted.len() || tokio::time::Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let wanted: Vec<(EventOp, String)> = wanted.iter().map(|(o, n)| (*o, n.to_string())).collect();
    assert_eq!(seen, wanted);
    status_tx.send_replace(lead("c", 2));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let change = loop {
        let changes = log
            .query(EventFilter {
                ops: vec![EventOp::LeaderChange],
                ..EventFilter::default()
            })
            .await
            .unwrap();
        if let Some(change) = changes.into_iter().next() {
            break change;
        }
        assert!(tokio::time::Instant::now() < deadline, "no LeaderChange");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(change.node, "c");
    assert_eq!(change.cluster, "g1");
    assert_eq!(change.members, 3);
    assert!(
        change.detail.contains("b (raft) -> c (raft), term 2"),
        "{}",
        change.detail
    );
    // The same events are on disk.
    let stored = storage.event_log().newest(100).unwrap();
    assert_eq!(stored.len(), 9);
}

#[tokio::test]
async fn a_down_member_renamed_to_a_new_generation_is_a_reboot_and_a_rejoin() {
    let dir = tempfile::tempdir().unwrap();
    let storage = rover_storage::Storage::open(dir.path()).unwrap();
    let (log, inbox) = owner::spawn();
    let (_status_tx, status_rx) =
        tokio::sync::watch::channel(crate::leadership::LeaderStatus::default());
    let settings = owner::EventLogSettings {
        me: "a".into(),
        generation: 1,
        capacity: 100,
        beacon: None,
    };
    tokio::spawn(inbox.run(settings, storage, status_rx));
    log.report(Report::Up {
        name: "b".into(),
        generation: 1,
    });
    log.report(Report::Down {
        name: "b".into(),
        generation: 1,
    });
    log.report(Report::Renamed {
        name: "b".into(),
        generation: 2,
    });
    log.report(Report::Up {
        name: "b".into(),
        generation: 2,
    });
    let about_b = EventFilter {
        node: Some("b".into()),
        ..EventFilter::default()
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let ops = loop {
        let ops: Vec<EventOp> = log
            .query(about_b.clone())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.op)
            .collect();
        if ops.len() >= 4 || tokio::time::Instant::now() > deadline {
            break ops;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(
        ops,
        vec![
            EventOp::Join,
            EventOp::Down,
            EventOp::Reboot,
            EventOp::Rejoin
        ]
    );
}
