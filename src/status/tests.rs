//! Tests of the status sampler's sending rule and wire form.

use super::*;

fn sample(at_ms: u64) -> StatusSample {
    StatusSample {
        host: "web-1".into(),
        team: "ops".into(),
        at_ms,
        load: [0.42, 0.30, 0.25],
        mem_used_pct: 41.3,
        disks: vec![DiskUsage {
            mount: "/".into(),
            used_pct: 63.2,
        }],
        uptime_s: 86_400,
        worst_check: CheckLevel::Ok,
    }
}

#[test]
fn the_first_sample_is_always_sent() {
    assert!(worth_sending(None, &sample(0), 60_000));
}

#[test]
fn an_unchanged_sample_waits_for_full_every() {
    let sent = sample(0);
    let mut next = sample(5_000);
    next.uptime_s += 5;
    next.load[0] += 0.4;
    next.mem_used_pct += 1.0;
    assert!(!worth_sending(Some(&sent), &next, 60_000));
    next.at_ms = 60_000;
    assert!(worth_sending(Some(&sent), &next, 60_000));
}

#[test]
fn a_change_beyond_a_threshold_is_sent_at_once() {
    let sent = sample(0);
    let changes: [fn(&mut StatusSample); 6] = [
        |s| s.load[0] += 0.6,
        |s| s.mem_used_pct += 2.5,
        |s| s.disks[0].used_pct += 1.1,
        |s| s.disks.clear(),
        |s| s.worst_check = CheckLevel::Critical,
        |s| s.uptime_s = 10,
    ];
    for change in changes {
        let mut next = sample(5_000);
        change(&mut next);
        assert!(worth_sending(Some(&sent), &next, 60_000), "{next:?}");
    }
}

#[test]
fn a_high_load_needs_a_fifth_of_its_value_to_count_as_changed() {
    let mut sent = sample(0);
    sent.load = [8.0, 8.0, 8.0];
    let mut next = sample(5_000);
    next.load = [9.5, 8.0, 8.0];
    assert!(!changed_beyond_threshold(&sent, &next));
    next.load = [9.7, 8.0, 8.0];
    assert!(changed_beyond_threshold(&sent, &next));
}

#[test]
fn a_compact_sample_comes_back_as_the_sample_within_its_resolution() {
    let original = sample(1_700_000_000_123);
    let item = status_item(&original);
    let back = decode_sample(&item).expect("decodes");
    assert_eq!(back.host, original.host);
    assert_eq!(back.at_ms, original.at_ms);
    assert_eq!(back.team, original.team);
    assert_eq!(back.uptime_s, original.uptime_s);
    assert_eq!(back.worst_check, original.worst_check);
    for (a, b) in back.load.iter().zip(original.load.iter()) {
        assert!((a - b).abs() < 0.006, "{a} vs {b}");
    }
    assert!((back.mem_used_pct - original.mem_used_pct).abs() < 0.06);
    assert!((back.disks[0].used_pct - original.disks[0].used_pct).abs() < 0.06);
    let full = postcard::to_stdvec(&original).expect("encodes");
    assert!(
        item.payload.len() + 14 < full.len(),
        "compact {} bytes, full {}",
        item.payload.len(),
        full.len()
    );
}

#[test]
fn an_undecodable_status_payload_is_dropped() {
    let mut item = status_item(&sample(0));
    item.payload = vec![0xff; 3];
    assert_eq!(decode_sample(&item), None);
}
