//! What `GET /v1/topology` answers ([`TopologyReport`]) and how `topology` prints it: a text
//! tree (subnets, their switches, their hosts with port names, "no switch heard yet" for the
//! rest), Graphviz dot, or the JSON as is. Pure, with exact tests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::map::{EdgeView, MapView, NodeKind, NodeView};
use super::record::ListenerState;

/// The answer of `GET /v1/topology`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyReport {
    /// The agent answering.
    pub node: String,
    /// Its own listener.
    pub listener: ListenerReport,
    /// The map as this agent holds it.
    pub map: MapView,
    /// Members with no topology record yet.
    pub without_record: Vec<String>,
}

/// This agent's listener: state, interfaces, counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerReport {
    /// Listening, off (and why) or disabled.
    pub state: ListenerState,
    /// When off: how to turn it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    /// The interfaces it listens on.
    pub interfaces: Vec<String>,
    /// What it received.
    pub counters: ListenerCounters,
    /// Every neighbour its interfaces hear now, with times (unix ms).
    #[serde(default)]
    pub neighbours: Vec<NeighbourView>,
}

/// One neighbour heard by this agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighbourView {
    /// The interface that hears it.
    pub interface: String,
    /// `lldp` or `cdp`.
    pub protocol: String,
    /// `sw-a port p1`.
    pub switch_port: String,
    /// Its chassis id.
    pub chassis: String,
    /// The TTL of its last frame (s).
    pub ttl_s: u16,
    /// When it was first heard.
    pub first_heard_ms: u64,
    /// When it was last heard.
    pub last_heard_ms: u64,
    /// When it expires unless heard again.
    pub expires_ms: u64,
}

/// Counters of the listener and of topology records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerCounters {
    /// Frames the kernel filter let through (LLDP and CDP addresses).
    pub frames: u64,
    /// Frames parsed and taken.
    pub taken: u64,
    /// Frames dropped, by reason (`truncated`, `bad_length`, ...).
    pub dropped: BTreeMap<String, u64>,
    /// Frames dropped because more than the rate limit arrived on one interface.
    pub rate_limited: u64,
    /// Frames dropped because the owner task's queue was full.
    pub queue_full: u64,
    /// Records from peers refused (undecodable, out of bounds, table full).
    pub records_refused: u64,
}

impl ListenerCounters {
    /// Every dropped frame.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum::<u64>() + self.rate_limited + self.queue_full
    }
}

/// The text tree. See the module docs.
pub fn text(report: &TopologyReport) -> String {
    let map = &report.map;
    let node = |id: &str| map.nodes.iter().find(|n| n.id == id);
    let host_rows = |edges: Vec<(&EdgeView, &NodeView)>| -> Vec<String> {
        let width = edges.iter().map(|(_, h)| h.label.len()).max().unwrap_or(0);
        edges
            .into_iter()
            .map(|(edge, host)| {
                let mut row = format!("    {:<width$}", host.label);
                if let Some(port) = &edge.port {
                    let _ = write!(row, "  port {port}");
                }
                if let Some(interface) = &edge.interface {
                    let _ = write!(row, "  ({interface})");
                }
                if let Some(state) = host
                    .listener
                    .as_ref()
                    .filter(|l| **l != ListenerState::Listening)
                {
                    let _ = write!(row, "  {}", state.describe());
                }
                row
            })
            .collect()
    };
    let mut out = String::new();
    let subnets: Vec<&NodeView> = map
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Subnet)
        .collect();
    for subnet in &subnets {
        let _ = writeln!(out, "{}", subnet.label);
        let switches: Vec<&NodeView> = map
            .edges
            .iter()
            .filter(|e| e.from == subnet.id)
            .filter_map(|e| node(&e.to))
            .filter(|n| n.kind == NodeKind::Switch)
            .collect();
        for switch in switches {
            let _ = writeln!(out, "  {}", switch_title(switch));
            let hosts = map
                .edges
                .iter()
                .filter(|e| e.from == switch.id && e.subnets.contains(&subnet.label))
                .filter_map(|e| Some((e, node(&e.to)?)))
                .collect();
            for row in host_rows(hosts) {
                let _ = writeln!(out, "{row}");
            }
        }
        let unswitched: Vec<(&EdgeView, &NodeView)> = map
            .edges
            .iter()
            .filter(|e| e.from == subnet.id)
            .filter_map(|e| Some((e, node(&e.to)?)))
            .filter(|(_, n)| n.kind == NodeKind::Host)
            .collect();
        if !unswitched.is_empty() {
            let _ = writeln!(out, "  no switch heard yet");
            for row in host_rows(unswitched) {
                let _ = writeln!(out, "{row}");
            }
        }
    }
    // Switch ports of interfaces without an address, and hosts with no interface at all.
    let no_subnet: Vec<(&EdgeView, &NodeView)> = map
        .edges
        .iter()
        .filter(|e| e.port.is_some() && e.subnets.is_empty())
        .filter_map(|e| Some((e, node(&e.to)?)))
        .collect();
    let placed: BTreeSet<&str> = map.edges.iter().map(|e| e.to.as_str()).collect();
    let nowhere: Vec<&NodeView> = map
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Host && !placed.contains(n.id.as_str()))
        .collect();
    if !no_subnet.is_empty() || !nowhere.is_empty() {
        let _ = writeln!(out, "(no subnet)");
        let mut by_switch: BTreeMap<&str, Vec<(&EdgeView, &NodeView)>> = BTreeMap::new();
        for (edge, host) in no_subnet {
            by_switch
                .entry(edge.from.as_str())
                .or_default()
                .push((edge, host));
        }
        for (switch, hosts) in by_switch {
            let title = node(switch).map_or_else(|| switch.to_owned(), switch_title);
            let _ = writeln!(out, "  {title}");
            for row in host_rows(hosts) {
                let _ = writeln!(out, "{row}");
            }
        }
        for host in nowhere {
            let state = host
                .listener
                .as_ref()
                .map(ListenerState::describe)
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {}  no interface with an address or a neighbour; {state}",
                host.label
            );
        }
    }
    if subnets.is_empty() && placed.is_empty() && map.nodes.is_empty() {
        let _ = writeln!(out, "no topology known yet");
    }
    if !report.without_record.is_empty() {
        let _ = writeln!(
            out,
            "no topology record yet: {}",
            report.without_record.join(", ")
        );
    }
    let _ = writeln!(out, "{}", listener_line(report));
    out
}

/// `sw-a (lldp, chassis 02:00:00:00:0a:01)`.
fn switch_title(switch: &NodeView) -> String {
    let mut details = Vec::new();
    details.extend(switch.protocol.clone());
    if let Some(chassis) = switch.chassis.as_ref().filter(|c| **c != switch.label) {
        details.push(format!("chassis {chassis}"));
    }
    if let Some(management) = &switch.management {
        details.push(format!("management {management}"));
    }
    if let Some(platform) = &switch.platform {
        details.push(platform.clone());
    }
    if details.is_empty() {
        format!("switch {}", switch.label)
    } else {
        format!("switch {} ({})", switch.label, details.join(", "))
    }
}

/// The last line: this agent's listener and counters.
fn listener_line(report: &TopologyReport) -> String {
    let listener = &report.listener;
    let c = &listener.counters;
    let mut line = format!(
        "this agent ({}): {}",
        report.node,
        listener.state.describe()
    );
    if let Some(remedy) = &listener.remedy {
        let _ = write!(line, "; to listen: {remedy}");
    }
    if listener.state == ListenerState::Listening {
        let interfaces = if listener.interfaces.is_empty() {
            "no interface".to_owned()
        } else {
            listener.interfaces.join(", ")
        };
        let _ = write!(
            line,
            " on {interfaces}; {} frames, {} taken, {} dropped",
            c.frames,
            c.taken,
            c.dropped_total()
        );
        let reasons: Vec<String> = c
            .dropped
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(reason, n)| format!("{reason} {n}"))
            .chain((c.rate_limited > 0).then(|| format!("rate_limited {}", c.rate_limited)))
            .chain((c.queue_full > 0).then(|| format!("queue_full {}", c.queue_full)))
            .collect();
        if !reasons.is_empty() {
            let _ = write!(line, " ({})", reasons.join(", "));
        }
    }
    line
}

/// Graphviz dot: subnets as boxes, switches as diamonds, hosts as ellipses; a host's edge
/// says its port and interface, dashed when it hears no switch.
pub fn dot(report: &TopologyReport) -> String {
    let mut out = String::from("digraph topology {\n  rankdir=LR;\n");
    for node in &report.map.nodes {
        let shape = match node.kind {
            NodeKind::Subnet => "box",
            NodeKind::Switch => "diamond",
            NodeKind::Host => "ellipse",
        };
        let _ = writeln!(
            out,
            "  {} [label={}, shape={shape}];",
            quoted(&node.id),
            quoted(&node.label)
        );
    }
    for edge in &report.map.edges {
        let label = match (&edge.port, &edge.interface) {
            (Some(port), Some(interface)) => Some(format!("{port} ({interface})")),
            (None, Some(interface)) => Some(interface.clone()),
            (Some(port), None) => Some(port.clone()),
            (None, None) => None,
        };
        let mut attributes = Vec::new();
        attributes.extend(label.map(|l| format!("label={}", quoted(&l))));
        if edge.port.is_none() && edge.interface.is_some() {
            attributes.push("style=dashed".to_owned());
        }
        let attributes = if attributes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", attributes.join(", "))
        };
        let _ = writeln!(
            out,
            "  {} -> {}{attributes};",
            quoted(&edge.from),
            quoted(&edge.to)
        );
    }
    out.push_str("}\n");
    out
}

/// A dot string literal (quotes and backslashes escaped, no control characters).
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text
        .chars()
        .filter(|c| !crate::control_chars::is_control(*c))
    {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::map::tests::lab_table;
    use crate::topology::map::TopologyMap;

    fn report() -> TopologyReport {
        let mut table = lab_table();
        let mut off = crate::topology::map::tests::host_on("h6", None, 2);
        off.listener = ListenerState::Off {
            reason: "no CAP_NET_RAW".into(),
        };
        table.apply(off);
        TopologyReport {
            node: "h1".into(),
            listener: ListenerReport {
                state: ListenerState::Listening,
                remedy: None,
                interfaces: vec!["eth0".into()],
                counters: ListenerCounters {
                    frames: 12,
                    taken: 10,
                    dropped: BTreeMap::from([("truncated".to_owned(), 2)]),
                    ..ListenerCounters::default()
                },
                neighbours: Vec::new(),
            },
            map: TopologyMap::build(&table).view(),
            without_record: vec!["h9".into()],
        }
    }

    #[test]
    fn text_is_a_tree_of_subnets_switches_and_hosts_with_their_ports() {
        assert_eq!(
            text(&report()),
            "10.0.1.0/24\n\
             \x20 switch sw-a (lldp, chassis 02:00:00:00:00:a)\n\
             \x20   h1  port p1  (eth0)\n\
             \x20   h2  port p2  (eth0)\n\
             \x20 switch sw-b (lldp, chassis 02:00:00:00:00:b)\n\
             \x20   h3  port p1  (eth0)\n\
             \x20 no switch heard yet\n\
             \x20   h4  (eth0)\n\
             10.0.2.0/24\n\
             \x20 switch sw-b (lldp, chassis 02:00:00:00:00:b)\n\
             \x20   h5  port p2  (eth0)\n\
             \x20 no switch heard yet\n\
             \x20   h6  (eth0)  LLDP listening is off: no CAP_NET_RAW\n\
             no topology record yet: h9\n\
             this agent (h1): listening for LLDP and CDP on eth0; 12 frames, 10 taken, 2 dropped (truncated 2)\n"
        );
    }

    #[test]
    fn dot_draws_subnets_switches_and_hosts_with_port_labels() {
        let dot = dot(&report());
        assert!(dot.starts_with("digraph topology {\n  rankdir=LR;\n"));
        assert!(dot.contains("  \"subnet:10.0.1.0/24\" [label=\"10.0.1.0/24\", shape=box];\n"));
        assert!(dot.contains("  \"switch:02:00:00:00:00:a\" [label=\"sw-a\", shape=diamond];\n"));
        assert!(dot.contains("  \"host:h1\" [label=\"h1\", shape=ellipse];\n"));
        assert!(
            dot.contains("  \"switch:02:00:00:00:00:a\" -> \"host:h2\" [label=\"p2 (eth0)\"];\n")
        );
        assert!(dot
            .contains("  \"subnet:10.0.1.0/24\" -> \"host:h4\" [label=\"eth0\", style=dashed];\n"));
        assert!(dot.contains("  \"subnet:10.0.1.0/24\" -> \"switch:02:00:00:00:00:a\";\n"));
        assert!(dot.ends_with("}\n"));
    }

    #[test]
    fn dot_escapes_what_a_switch_may_put_in_its_name() {
        assert_eq!(quoted("sw \"a\"\\\n"), "\"sw \\\"a\\\"\\\\\"");
    }

    #[test]
    fn an_agent_that_cannot_listen_says_so_on_its_last_line() {
        let mut r = report();
        r.listener.state = ListenerState::Off {
            reason: "no CAP_NET_RAW (raw sockets need it)".into(),
        };
        let text = text(&r);
        assert!(text.ends_with(
            "this agent (h1): LLDP listening is off: no CAP_NET_RAW (raw sockets need it)\n"
        ));
    }
}
