use std::os::unix::fs::FileExt;

use super::*;
use crate::conformance::{alert, member};
use crate::record::Record;
use crate::Alert;

const NOW: u64 = 1_700_000_000_000;
const EPOCH: u64 = 0x1234_5678_9abc_def0;

/// A checked database at `<temp>/db` holding 50 alerts, 3 members and 200 Raft entries of
/// 3 KB, each flushed on its own (so live data fills sled's file, not just preallocated
/// space), then checkpointed and closed.
fn filled() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (storage, report) = Storage::open_checked(&path, NOW, EPOCH).unwrap();
    assert_eq!(report.state, OpenState::Created);
    for i in 0..50 {
        storage
            .alerts()
            .put(&alert("ops", &format!("h{i}"), "disk", i))
            .unwrap();
        storage.flush().unwrap();
    }
    for i in 0..3 {
        storage.members().put(&member(&format!("n{i}"), 1)).unwrap();
    }
    for i in 0..200u64 {
        storage.raft().put_entries(&[(i, vec![7u8; 3000])]).unwrap();
        storage.flush().unwrap();
    }
    storage.raft().put_meta("vote", b"term 3").unwrap();
    let mark = storage.checkpoint(NOW + 1).unwrap();
    assert_eq!((mark.alerts, mark.members, mark.raft_entries), (50, 3, 200));
    release(storage);
    (dir, path)
}

/// Opens `path` checked, with another epoch for a new database.
fn reopen(path: &Path) -> (Storage, OpenReport) {
    Storage::open_checked(path, NOW + 60_000, EPOCH + 1).unwrap()
}

/// Asserts that the report says the database was replaced for a damage `expected` says is
/// right, moved to `db.corrupt-<time>` if `moved`, and that what is open now is empty with the
/// new epoch.
fn assert_replaced(
    path: &Path,
    storage: &Storage,
    report: &OpenReport,
    moved: bool,
    expected: impl Fn(&Damage) -> bool,
) {
    let OpenState::Replaced {
        damage,
        moved_to,
        lost,
        ..
    } = &report.state
    else {
        panic!("not replaced: {report:?}");
    };
    assert!(expected(damage), "{damage:?}");
    assert_eq!(report.epoch, EPOCH + 1);
    let lost = lost.unwrap();
    assert_eq!((lost.alerts, lost.members, lost.raft_entries), (50, 3, 200));
    assert!(lost.raft_state);
    if moved {
        let moved_to = moved_to.as_ref().unwrap();
        assert_eq!(
            moved_to.file_name().unwrap(),
            "db.corrupt-20231114T221420Z",
            "{moved_to:?}"
        );
        assert!(moved_to.join("db").exists() || moved_to.join("conf").exists());
    } else {
        assert_eq!(moved_to, &None);
    }
    assert_eq!(storage.alerts().len().unwrap(), 0);
    assert_eq!(storage.raft().last_entry().unwrap(), None);
    assert!(path.exists());
}

/// Asserts that damage sled opened is either reported (as [`assert_replaced`] says) or hit
/// only space sled did not use: every record is still there. Never a silent partial open.
fn assert_replaced_or_intact(path: &Path) {
    let (storage, report) = reopen(path);
    if report.replaced() {
        assert_replaced(path, &storage, &report, true, |_| true);
        return;
    }
    assert_eq!(report.state, OpenState::Verified);
    assert_eq!(storage.alerts().len().unwrap(), 50);
    assert_eq!(storage.raft().entries(0, u64::MAX).unwrap().len(), 200);
    assert_eq!(
        storage.raft().get_meta("vote").unwrap(),
        Some(b"term 3".to_vec())
    );
}

fn sled_file(path: &Path) -> PathBuf {
    path.join("db")
}

#[test]
fn an_intact_database_is_verified_and_keeps_its_epoch_and_records() {
    let (_dir, path) = filled();
    let (storage, report) = reopen(&path);
    assert_eq!(report.state, OpenState::Verified);
    assert_eq!(report.epoch, EPOCH);
    assert_eq!(storage.alerts().len().unwrap(), 50);
    assert_eq!(storage.raft().last_entry().unwrap().unwrap().0, 199);
}

#[test]
fn a_database_whose_first_512_bytes_are_zeroed_is_moved_aside_unless_they_were_unused() {
    let (_dir, path) = filled();
    let file = fs::OpenOptions::new()
        .write(true)
        .open(sled_file(&path))
        .unwrap();
    file.write_all_at(&[0u8; 512], 0).unwrap();
    drop(file);
    assert_replaced_or_intact(&path);
}

#[test]
fn a_database_with_50_flipped_bytes_is_moved_aside_unless_they_were_unused() {
    let (_dir, path) = filled();
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(sled_file(&path))
        .unwrap();
    let len = file.metadata().unwrap().len();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..50 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let offset = seed % len;
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, offset).unwrap();
        file.write_all_at(&[!byte[0]], offset).unwrap();
    }
    drop(file);
    assert_replaced_or_intact(&path);
}

#[test]
fn a_database_truncated_to_nothing_is_moved_aside_as_emptied() {
    let (_dir, path) = filled();
    fs::OpenOptions::new()
        .write(true)
        .open(sled_file(&path))
        .unwrap()
        .set_len(0)
        .unwrap();
    let (storage, report) = reopen(&path);
    assert_replaced(&path, &storage, &report, true, |d| {
        matches!(d, Damage::Emptied | Damage::Unopenable(_))
    });
}

#[test]
fn a_database_truncated_to_half_is_moved_aside() {
    let (_dir, path) = filled();
    let file = fs::OpenOptions::new()
        .write(true)
        .open(sled_file(&path))
        .unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len / 2).unwrap();
    drop(file);
    let (storage, report) = reopen(&path);
    assert_replaced(&path, &storage, &report, true, |d| {
        matches!(
            d,
            Damage::RolledBack { .. } | Damage::Emptied | Damage::Unopenable(_)
        )
    });
}

#[test]
fn a_deleted_database_is_reported_missing_with_what_the_watermark_counted() {
    let (_dir, path) = filled();
    fs::remove_dir_all(&path).unwrap();
    let (storage, report) = reopen(&path);
    assert_replaced(&path, &storage, &report, false, |d| *d == Damage::Missing);
}

#[test]
fn a_record_that_fails_its_check_moves_the_database_aside() {
    let (_dir, path) = filled();
    {
        let storage = Storage::open(&path).unwrap();
        storage
            .raw_tree(trees::ALERTS)
            .insert("ops\0h1\0disk", &[<Alert as Record>::VERSION, 0xff])
            .unwrap();
        storage.flush().unwrap();
        release(storage);
    }
    let (storage, report) = reopen(&path);
    assert_replaced(
        &path,
        &storage,
        &report,
        true,
        |d| matches!(d, Damage::BadRecord(why) if why.contains("alerts")),
    );
    let OpenState::Replaced {
        readable_alerts, ..
    } = report.state
    else {
        unreachable!()
    };
    assert_eq!(readable_alerts, None, "the scan fails as a whole");
}

#[test]
fn an_undecodable_grid_control_record_moves_the_database_aside() {
    let (_dir, path) = filled();
    {
        let storage = Storage::open(&path).unwrap();
        storage
            .raw_tree(trees::GRID)
            .insert(
                [7u8; 40],
                &[crate::grid::signed::FORMAT_VERSION, 0xff, 0xff],
            )
            .unwrap();
        storage.flush().unwrap();
        release(storage);
    }
    let (storage, report) = reopen(&path);
    assert_replaced(
        &path,
        &storage,
        &report,
        true,
        |d| matches!(d, Damage::BadRecord(why) if why.contains("grid_control")),
    );
}

#[test]
fn a_record_of_a_newer_build_stops_the_open_and_moves_nothing() {
    let (_dir, path) = filled();
    {
        let storage = Storage::open(&path).unwrap();
        storage
            .raw_tree(trees::ALERTS)
            .insert("ops\0h1\0disk", &[<Alert as Record>::VERSION + 1, 0])
            .unwrap();
        storage.flush().unwrap();
        release(storage);
    }
    let err = Storage::open_checked(&path, NOW, EPOCH + 1).unwrap_err();
    assert!(
        matches!(err, StorageError::UnknownVersion { .. }),
        "{err:?}"
    );
    assert!(path.exists());
    assert!(!sibling(&path, "corrupt-20231114T221420Z").exists());
}

#[test]
fn a_database_from_before_watermarks_is_trusted_with_epoch_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let storage = Storage::open(&path).unwrap();
        storage.meta().put_u64("generation", 5).unwrap();
        storage.raft().put_meta("vote", b"v").unwrap();
        storage.flush().unwrap();
        release(storage);
    }
    let (storage, report) = reopen(&path);
    assert_eq!(report.state, OpenState::Unverified);
    assert_eq!(report.epoch, 0);
    release(storage);
    let (_storage, report) = reopen(&path);
    assert_eq!(report.state, OpenState::Verified);
    assert_eq!(report.epoch, 0);
}

#[test]
fn another_databases_directory_in_place_is_foreign() {
    let (dir, path) = filled();
    fs::remove_dir_all(&path).unwrap();
    let other = dir.path().join("other");
    release(create(&other, 99, NOW).unwrap());
    fs::rename(&other, &path).unwrap();
    let (_storage, report) = reopen(&path);
    assert!(
        matches!(
            report.state,
            OpenState::Replaced {
                damage: Damage::Foreign {
                    expected: EPOCH,
                    found: 99
                },
                ..
            }
        ),
        "{report:?}"
    );
}

#[test]
fn a_watermark_line_parses_back_and_garbage_does_not() {
    let mark = Watermark {
        epoch: EPOCH,
        seal: 7,
        at_ms: NOW,
        alerts: 3,
        members: 2,
        raft_entries: 10,
        raft_state: true,
    };
    assert_eq!(Watermark::parse(&mark.to_line()), Some(mark));
    assert_eq!(Watermark::parse("rover-db-watermark/1 epoch=zz"), None);
    assert_eq!(Watermark::parse(""), None);
    assert_eq!(Watermark::parse("rover-db-watermark/1 seal=1"), None);
}

#[test]
fn utc_stamps_name_the_second_in_utc() {
    assert_eq!(utc_stamp(0), "19700101T000000Z");
    assert_eq!(utc_stamp(NOW), "20231114T221320Z");
    assert_eq!(utc_stamp(951_782_400_000), "20000229T000000Z");
}
