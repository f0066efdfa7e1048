//! # rover-agent
//!
//! The agent binary's library: glue between the membership, storage and election crates, the
//! local API and the command line. `main.rs` only calls [`cli::main`]; tests start
//! [`daemon::Daemon::run`] in-process or run the built binary.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod alerts;
pub mod api;
pub mod beacon;
pub mod checks;
pub mod cli;
pub mod config;
pub mod control_chars;
pub mod daemon;
pub mod data_dir;
pub mod grid;
pub mod history_remote;
pub mod history_replicas;
pub mod incidents;
pub mod introspection;
pub mod invite;
pub mod keys;
pub mod leadership;
pub mod node_key;
pub mod notify;
pub mod peer;
pub mod status;
pub mod teams;
pub mod topology;

/// Makes ring rustls's process-wide crypto provider, once; reqwest (built without a provider of
/// its own) panics building a client otherwise. Safe to call many times.
pub fn install_tls_provider() {
    // An error means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
