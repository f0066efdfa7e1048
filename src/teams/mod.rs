//! Teams and border forwarding (seed 000, DESIGN section 4): the sans-IO cores of the links
//! between border agents of different teams.
//!
//! - [`hop`]: a path entry `team/host` and the rule for names.
//! - [`wire`]: the frames on a link, their encoding and checks, the link mode.
//! - [`rib`]: what a border received from other teams, keyed by origin, a path per link.
//! - [`rules`]: which alerts a link may carry, each way.
//! - [`routes`]: link state flooded between borders and the one shortest path per alert.
//!
//! How the owner task is expected to use them (see `figure_tests.rs`, which plays seed 000's
//! figures through them): a received frame goes through [`wire::decode`], an alert through
//! [`rules::justify`] and [`rib::Rib::update`]; a `New` or `Replaced` alert is spread in the
//! team and offered on every other link that [`rules::may_send`] allows, [`rules::stamped`]
//! with our hop. Alerts the RIB reports gone (lost link, RemoveTeamAlerts, end of a sync) are
//! removed from the team and sent as RemoveAlert at the version held on the links they were
//! offered on. When the routes change without a lost link, a full sync (SyncStart ... SyncEnd)
//! on each transit link moves every alert to its new path: the receivers drop what the old
//! path no longer sends.

pub mod hop;
pub mod rib;
pub mod routes;
pub mod rules;
pub mod wire;

#[cfg(test)]
mod figure_tests;
