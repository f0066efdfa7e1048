//! The map every agent builds from the gossiped table: a petgraph graph subnet -> switch ->
//! host (and subnet -> host for an interface that hears no switch). [`TopologyMap::view`] is
//! its serializable form (nodes and edges) that the API serves and `topology` prints;
//! [`TopologyMap::switches`] lists each switch with the hosts it carries, for the incident
//! engine's switch folding.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::{Deserialize, Serialize};

use super::record::{HostTopology, ListenerState, Subnet, SwitchPort};
use super::table::TopologyTable;

/// A node of the map.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Subnet(Subnet),
    Switch(SwitchPort),
    Host {
        name: String,
        listener: ListenerState,
    },
}

/// An edge of the map: a subnet carried by a switch, or a host's interface (on a switch port,
/// or straight on a subnet when it hears no switch).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Edge {
    Carries,
    Interface {
        interface: String,
        port: Option<String>,
        subnets: Vec<Subnet>,
    },
}

/// One switch and the hosts it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchHosts {
    /// The switch's id (chassis id text): stable, used in incident ids.
    pub id: String,
    /// What it is called (system name, else id).
    pub label: String,
    /// The hosts heard behind it, by name.
    pub hosts: BTreeSet<String>,
}

/// The map. See the module docs.
#[derive(Debug, Default)]
pub struct TopologyMap {
    graph: DiGraph<Node, Edge>,
    subnets: BTreeMap<Subnet, NodeIndex>,
    switches: BTreeMap<String, NodeIndex>,
    hosts: BTreeMap<String, NodeIndex>,
}

impl TopologyMap {
    /// Builds the map from every record of `table`.
    pub fn build(table: &TopologyTable) -> Self {
        let mut map = Self::default();
        for record in table.records() {
            map.add(record);
        }
        map
    }

    fn add(&mut self, record: &HostTopology) {
        let host = self.graph.add_node(Node::Host {
            name: record.host.clone(),
            listener: record.listener.clone(),
        });
        self.hosts.insert(record.host.clone(), host);
        for link in &record.links {
            let subnets: Vec<NodeIndex> = link.subnets.iter().map(|s| self.subnet(*s)).collect();
            let edge = Edge::Interface {
                interface: link.interface.clone(),
                port: link.switch.as_ref().map(|s| s.port_label().to_owned()),
                subnets: link.subnets.clone(),
            };
            match &link.switch {
                Some(port) => {
                    let switch = self.switch(port);
                    for subnet in subnets {
                        if self.graph.find_edge(subnet, switch).is_none() {
                            self.graph.add_edge(subnet, switch, Edge::Carries);
                        }
                    }
                    self.graph.add_edge(switch, host, edge);
                }
                None => {
                    for subnet in subnets {
                        self.graph.add_edge(subnet, host, edge.clone());
                    }
                }
            }
        }
    }

    fn subnet(&mut self, subnet: Subnet) -> NodeIndex {
        *self
            .subnets
            .entry(subnet)
            .or_insert_with(|| self.graph.add_node(Node::Subnet(subnet)))
    }

    fn switch(&mut self, port: &SwitchPort) -> NodeIndex {
        let graph = &mut self.graph;
        *self
            .switches
            .entry(port.chassis.text.clone())
            .or_insert_with(|| graph.add_node(Node::Switch(port.clone())))
    }

    /// Every switch with the hosts heard behind it, by id.
    pub fn switches(&self) -> Vec<SwitchHosts> {
        self.switches
            .iter()
            .map(|(id, &index)| {
                let label = match &self.graph[index] {
                    Node::Switch(port) => port.switch_label().to_owned(),
                    _ => id.clone(),
                };
                let hosts = self
                    .graph
                    .neighbors_directed(index, Direction::Outgoing)
                    .filter_map(|n| match &self.graph[n] {
                        Node::Host { name, .. } => Some(name.clone()),
                        _ => None,
                    })
                    .collect();
                SwitchHosts {
                    id: id.clone(),
                    label,
                    hosts,
                }
            })
            .collect()
    }

    /// The switches `host` hears (on any interface), by id.
    pub fn switches_of(&self, host: &str) -> Vec<SwitchHosts> {
        self.switches()
            .into_iter()
            .filter(|s| s.hosts.contains(host))
            .collect()
    }

    /// The subnets `host` has an address in.
    pub fn subnets_of(&self, host: &str) -> BTreeSet<Subnet> {
        let Some(&index) = self.hosts.get(host) else {
            return BTreeSet::new();
        };
        self.graph
            .edges_directed(index, Direction::Incoming)
            .flat_map(|e| match e.weight() {
                Edge::Interface { subnets, .. } => subnets.clone(),
                Edge::Carries => Vec::new(),
            })
            .collect()
    }

    /// The hosts with an address in `subnet`.
    pub fn hosts_in(&self, subnet: &Subnet) -> BTreeSet<String> {
        self.hosts
            .keys()
            .filter(|h| self.subnets_of(h).contains(subnet))
            .cloned()
            .collect()
    }

    /// The serializable form: nodes (subnets, switches, hosts, each sorted) and edges.
    pub fn view(&self) -> MapView {
        let id_of = |index: NodeIndex| match &self.graph[index] {
            Node::Subnet(s) => format!("subnet:{s}"),
            Node::Switch(p) => format!("switch:{}", p.chassis.text),
            Node::Host { name, .. } => format!("host:{name}"),
        };
        let order = self
            .subnets
            .values()
            .chain(self.switches.values())
            .chain(self.hosts.values());
        let nodes = order
            .map(|&index| match &self.graph[index] {
                Node::Subnet(s) => NodeView {
                    id: id_of(index),
                    kind: NodeKind::Subnet,
                    label: s.to_string(),
                    ..NodeView::default()
                },
                Node::Switch(p) => NodeView {
                    id: id_of(index),
                    kind: NodeKind::Switch,
                    label: p.switch_label().to_owned(),
                    chassis: Some(p.chassis.text.clone()),
                    chassis_kind: Some(format!("{:?}", p.chassis.kind)),
                    protocol: Some(p.protocol.as_str().to_owned()),
                    management: p.management.map(|m| m.to_string()),
                    platform: p.platform.clone(),
                    ..NodeView::default()
                },
                Node::Host { name, listener } => NodeView {
                    id: id_of(index),
                    kind: NodeKind::Host,
                    label: name.clone(),
                    listener: Some(listener.clone()),
                    ..NodeView::default()
                },
            })
            .collect();
        let mut edges: Vec<EdgeView> = self
            .graph
            .edge_references()
            .map(|e| {
                let (interface, port, subnets) = match e.weight() {
                    Edge::Carries => (None, None, Vec::new()),
                    Edge::Interface {
                        interface,
                        port,
                        subnets,
                    } => (
                        Some(interface.clone()),
                        port.clone(),
                        subnets.iter().map(Subnet::to_string).collect(),
                    ),
                };
                EdgeView {
                    from: id_of(e.source()),
                    to: id_of(e.target()),
                    interface,
                    port,
                    subnets,
                }
            })
            .collect();
        edges.sort_by(|a, b| (&a.from, &a.to, &a.interface).cmp(&(&b.from, &b.to, &b.interface)));
        MapView { nodes, edges }
    }
}

/// What a node is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A subnet.
    #[default]
    Subnet,
    /// A switch.
    Switch,
    /// A host.
    Host,
}

/// One node of [`MapView`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// `subnet:10.0.0.0/24`, `switch:<chassis id>` or `host:<name>`.
    pub id: String,
    /// What it is.
    pub kind: NodeKind,
    /// Its name for people.
    pub label: String,
    /// A switch's chassis id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chassis: Option<String>,
    /// Which subtype the chassis id is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chassis_kind: Option<String>,
    /// `lldp` or `cdp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// A switch's management address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management: Option<String>,
    /// A switch's platform (CDP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// A host's listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<ListenerState>,
}

/// One edge of [`MapView`]: subnet -> switch (the switch carries it), switch -> host (the
/// host's interface on a port), subnet -> host (an interface that hears no switch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeView {
    /// Node id.
    pub from: String,
    /// Node id.
    pub to: String,
    /// The host's interface (edges to hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The switch port (switch -> host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// That interface's subnets (edges to hosts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<String>,
}

/// The map as nodes and edges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapView {
    /// Subnets, then switches, then hosts, each in name order.
    pub nodes: Vec<NodeView>,
    /// Sorted by endpoints.
    pub edges: Vec<EdgeView>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::topology::frame::{IdKind, Identifier, Protocol};
    use crate::topology::record::Link;

    /// A record of `host` on `switch` port `port` (or none) in `10.0.<net>.0/24`.
    pub(crate) fn host_on(host: &str, switch: Option<(&str, &str)>, net: u8) -> HostTopology {
        HostTopology {
            host: host.into(),
            version: 1,
            listener: ListenerState::Listening,
            links: vec![Link {
                interface: "eth0".into(),
                subnets: vec![Subnet::of(format!("10.0.{net}.9").parse().unwrap(), 24).unwrap()],
                switch: switch.map(|(name, port)| SwitchPort {
                    protocol: Protocol::Lldp,
                    chassis: Identifier {
                        kind: IdKind::MacAddress,
                        text: format!("02:00:00:00:00:{}", &name[name.len() - 1..]),
                    },
                    name: Some(name.into()),
                    port: Identifier {
                        kind: IdKind::InterfaceName,
                        text: port.into(),
                    },
                    port_description: None,
                    platform: None,
                    management: None,
                }),
            }],
        }
    }

    pub(crate) fn lab_table() -> TopologyTable {
        TopologyTable::from_records([
            host_on("h1", Some(("sw-a", "p1")), 1),
            host_on("h2", Some(("sw-a", "p2")), 1),
            host_on("h3", Some(("sw-b", "p1")), 1),
            host_on("h4", None, 1),
            host_on("h5", Some(("sw-b", "p2")), 2),
        ])
    }

    #[test]
    fn the_map_links_subnets_to_switches_to_hosts_and_unswitched_hosts_to_their_subnet() {
        let map = TopologyMap::build(&lab_table());
        let switches = map.switches();
        assert_eq!(switches.len(), 2);
        assert_eq!(switches[0].label, "sw-a");
        assert_eq!(
            switches[0].hosts.iter().collect::<Vec<_>>(),
            vec!["h1", "h2"]
        );
        assert_eq!(
            switches[1].hosts.iter().collect::<Vec<_>>(),
            vec!["h3", "h5"]
        );
        let view = map.view();
        let ids: Vec<&str> = view.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "subnet:10.0.1.0/24",
                "subnet:10.0.2.0/24",
                "switch:02:00:00:00:00:a",
                "switch:02:00:00:00:00:b",
                "host:h1",
                "host:h2",
                "host:h3",
                "host:h4",
                "host:h5",
            ]
        );
        let edge = |from: &str, to: &str| {
            view.edges
                .iter()
                .find(|e| e.from == from && e.to == to)
                .cloned()
        };
        assert!(edge("subnet:10.0.1.0/24", "switch:02:00:00:00:00:a").is_some());
        assert!(edge("subnet:10.0.2.0/24", "switch:02:00:00:00:00:b").is_some());
        assert!(edge("subnet:10.0.2.0/24", "switch:02:00:00:00:00:a").is_none());
        let h2 = edge("switch:02:00:00:00:00:a", "host:h2").unwrap();
        assert_eq!(h2.port.as_deref(), Some("p2"));
        assert_eq!(h2.interface.as_deref(), Some("eth0"));
        assert!(edge("subnet:10.0.1.0/24", "host:h4").is_some());
        assert_eq!(view.edges.len(), 3 + 5);
        assert_eq!(map.switches_of("h3")[0].label, "sw-b");
        assert_eq!(
            map.hosts_in(&Subnet::of("10.0.1.0".parse().unwrap(), 24).unwrap())
                .len(),
            4
        );
    }
}
