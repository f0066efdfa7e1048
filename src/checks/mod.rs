//! Checks: built-in (load, memory, disk, process, TCP, HTTP) and external Nagios plugins, run on
//! their intervals, debounced into state transitions that the daemon turns into alerts.
//!
//! The flow, top-down: [`config::parse`] validates the `[[check]]` entries into
//! [`CheckConfig`]s; [`runner::spawn`] starts one task per check, which runs it
//! ([`external::run`] or a [`builtin`] check) within its timeout, feeds the outcome to its
//! [`Debouncer`] (a pure state machine) and sends a [`CheckEvent`] after every run, carrying the
//! [`Transition`] when the debounced state changed. [`builtin`] also serves the status sampler's
//! readings (load, memory, disk, uptime).

pub mod builtin;
pub mod config;
pub mod debounce;
pub mod external;
pub mod outcome;
pub mod run_counts;
pub mod runner;

pub use config::{CheckConfig, CheckConfigError, CheckKind, SeverityOverride};
pub use debounce::{Debouncer, Transition};
pub use outcome::{CheckOutcome, CheckState};
pub use runner::{spawn, CheckEvent};
