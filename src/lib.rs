//! # rover-agent
//!
//! The agent binary's library: glue between the membership, storage and election crates, the
//! local API and the command line. `main.rs` only calls [`cli::main`]; tests start
//! [`daemon::Daemon::run`] in-process or run the built binary.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod alerts;
pub mod api;
pub mod checks;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod data_dir;
pub mod incidents;
pub mod leadership;
pub mod node_key;
pub mod notify;
pub mod peer;
pub mod status;
