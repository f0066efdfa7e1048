//! Topology from LLDP and CDP: which switch (and port) each host hangs off, and the subnets
//! behind each switch (seed 001).

pub mod cdp;
pub mod folding;
pub mod frame;
pub mod lldp;
pub mod map;
pub mod neighbours;
pub mod record;
pub mod report;
pub mod table;

#[cfg(test)]
mod parse_tests;
