//! The messages an exec channel saved, one JSON file each, in a directory all of a lab's
//! namespaces share (tests/partition_notify.rs, tests/stacked_faults.rs): who sent each, how,
//! and which (incident id, phase) pairs it covers.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::netns::NsLab;

/// One saved message: who sent it, and (incident id, phase) of each incident it covers.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The file it was saved in.
    pub file: String,
    /// The sending node.
    pub by: String,
    /// Its mode (raft or fallback).
    pub mode: String,
    /// (incident id, phase) of each incident it covers.
    pub items: Vec<(String, String)>,
}

/// Every saved message, in file order.
pub fn sent_messages(dir: &Path) -> Vec<Sent> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|f| f.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
        .iter()
        .filter_map(|f| {
            let message: Value = serde_json::from_str(&std::fs::read_to_string(f).ok()?).ok()?;
            let details = &message["details"];
            Some(Sent {
                file: f.file_name()?.to_string_lossy().into_owned(),
                by: details["sent_by"]["node"].as_str()?.to_owned(),
                mode: details["sent_by"]["mode"].as_str()?.to_owned(),
                items: details["incidents"]
                    .as_array()?
                    .iter()
                    .filter_map(|i| {
                        Some((
                            i["id"].as_str()?.to_owned(),
                            i["phase"].as_str()?.to_owned(),
                        ))
                    })
                    .collect(),
            })
        })
        .collect()
}

/// Where the exec channel saves messages.
pub fn messages_dir(lab: &NsLab) -> PathBuf {
    lab.dir.path().join("messages")
}

/// Fails with the messages saved so far and the agents' logs.
pub fn fail(lab: &NsLab, message: &str) -> ! {
    lab.fail(&format!(
        "{message}\nmessages: {:#?}",
        sent_messages(&messages_dir(lab))
    ))
}
