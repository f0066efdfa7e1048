//! Teams and border forwarding (seed 000, DESIGN section 4): the sans-IO cores of the links
//! between border agents of different teams.
//!
//! - [`hop`]: a path entry `team/host` and the rule for names.
//! - [`wire`]: the frames on a link, their encoding and checks, the link mode.
//! - [`rib`]: what a border received from other teams, keyed by origin, a path per link.
//! - [`rules`]: which alerts a link may carry, each way.
//! - [`routes`]: link state flooded between borders and the one shortest path per alert.

pub mod hop;
pub mod rib;
pub mod routes;
pub mod rules;
pub mod wire;

#[cfg(test)]
mod figure_tests;
