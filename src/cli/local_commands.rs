//! Commands that need no running agent (`keygen`, `ui token`), and the words of `reload`'s
//! answer.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rover_membership::ClusterKey;

use super::Format;
use crate::config;

/// `keygen`: a new cluster key, as one base64 line (or JSON).
pub fn keygen(format: Format) -> String {
    let key = ClusterKey::generate(&mut rand::rng());
    match format {
        Format::Text | Format::Dot => key.to_base64(),
        Format::Json => serde_json::json!({ "key": key.to_base64() }).to_string(),
    }
}

/// `ui token`: the viewer token of the data dir (`--data-dir`, else `ROVER_DATA_DIR`, else
/// the default), created on first use.
pub fn viewer_token(data_dir: Option<&Path>, format: Format) -> Result<String> {
    let root = data_dir
        .map(Path::to_owned)
        .or_else(|| std::env::var_os("ROVER_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(config::default_data_dir);
    let token = crate::data_dir::DataDir::open(&root)
        .and_then(|dir| dir.load_or_create_viewer_token())
        .with_context(|| format!("the viewer token in {}", root.display()))?;
    Ok(match format {
        Format::Text | Format::Dot => token,
        Format::Json => serde_json::json!({ "token": token }).to_string(),
    })
}

/// `reload`'s answer in words: one line per change applied, one per key needing a restart.
pub fn reload_text(report: &crate::api::ReloadReport) -> String {
    let mut text = String::new();
    if report.applied.is_empty() && report.needs_restart.is_empty() {
        text.push_str("config reloaded: nothing changed\n");
    }
    for change in &report.applied {
        text.push_str(&format!("applied: {change}\n"));
    }
    for key in &report.needs_restart {
        text.push_str(&format!("needs a restart: {key}\n"));
    }
    text
}
