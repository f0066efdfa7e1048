//! Link state and routes between teams: every border floods a [`LinkStateAd`] listing the
//! peer teams of its transit links that are up; from all ads every agent builds the same
//! team graph and picks one shortest path per (origin team, destination team), so that each
//! alert travels one path and reaches each team once.
//!
//! The graph has an edge X-Y when some border of X lists Y and some border of Y lists X (both
//! ends run the link in transit mode and see it up). All edges cost 1; among paths of equal
//! length the one whose sequence of team names is lexicographically lowest wins, so the
//! choice does not depend on the order the ads arrived in. The chosen paths from one origin
//! form a tree (a prefix of a chosen path is the chosen path to that prefix's end).

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graph::{NodeIndex, UnGraph};

use super::hop::{team_of, Hop};
use super::wire::LinkStateAd;

/// The newest ad of every border, keyed by the border's hop `team/host`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStateDb {
    ads: BTreeMap<String, LinkStateAd>,
}

impl LinkStateDb {
    /// Keeps `ad` if its seq is higher than the one held for its border (or none is held);
    /// then, and only then, it is to be flooded on. An ad seen before (same seq) or older is
    /// refused, which is where flooding stops. An ad whose border is not a hop is refused.
    pub fn accept(&mut self, ad: LinkStateAd) -> bool {
        if ad.border.parse::<Hop>().is_err() {
            return false;
        }
        match self.ads.get(&ad.border) {
            Some(held) if held.seq >= ad.seq => false,
            _ => {
                self.ads.insert(ad.border.clone(), ad);
                true
            }
        }
    }

    /// Forgets the ad of `border` (gone for good); whether one was held.
    pub fn withdraw(&mut self, border: &str) -> bool {
        self.ads.remove(border).is_some()
    }

    /// The ad held for `border`.
    pub fn get(&self, border: &str) -> Option<&LinkStateAd> {
        self.ads.get(border)
    }

    /// Every ad held, sorted by border.
    pub fn ads(&self) -> impl Iterator<Item = &LinkStateAd> {
        self.ads.values()
    }

    /// The edges of the team graph, each as a sorted pair of team names.
    pub fn team_edges(&self) -> BTreeSet<(String, String)> {
        let mut listed: BTreeSet<(&str, &str)> = BTreeSet::new();
        for ad in self.ads.values() {
            let Some(team) = team_of(&ad.border) else {
                continue;
            };
            for peer in ad.links.iter().filter(|peer| *peer != team) {
                listed.insert((team, peer.as_str()));
            }
        }
        listed
            .iter()
            .filter(|(x, y)| x < y && listed.contains(&(*y, *x)))
            .map(|(x, y)| (x.to_string(), y.to_string()))
            .collect()
    }
}

/// The chosen paths between all teams of the graph. Equal for equal databases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// (origin, destination) -> the teams in between and at both ends, origin first.
    paths: BTreeMap<(String, String), Vec<String>>,
    /// (origin, team) -> the teams `team` passes the origin's alerts on to.
    next: BTreeMap<(String, String), BTreeSet<String>>,
}

impl Routes {
    /// The routes of `db`'s team graph.
    pub fn compute(db: &LinkStateDb) -> Routes {
        let mut graph: UnGraph<String, ()> = UnGraph::new_undirected();
        let mut index: BTreeMap<String, NodeIndex> = BTreeMap::new();
        let edges = db.team_edges();
        let teams: BTreeSet<&String> = edges.iter().flat_map(|(x, y)| [x, y]).collect();
        for team in teams {
            index.insert(team.clone(), graph.add_node(team.clone()));
        }
        for (x, y) in &edges {
            graph.add_edge(index[x], index[y], ());
        }
        // Hop counts to each destination (the graph is undirected: from it, too).
        let distances: BTreeMap<NodeIndex, BTreeMap<NodeIndex, u32>> = index
            .values()
            .map(|&dest| {
                let hops = petgraph::algo::dijkstra(&graph, dest, None, |_| 1u32);
                (dest, hops.into_iter().collect())
            })
            .collect();
        let mut routes = Routes::default();
        for &origin in index.values() {
            for (&dest, to_dest) in &distances {
                if origin == dest {
                    continue;
                }
                if let Some(path) = lowest_shortest_path(&graph, origin, to_dest) {
                    routes.add(path);
                }
            }
        }
        routes
    }

    fn add(&mut self, path: Vec<String>) {
        let (Some(origin), Some(dest)) = (path.first(), path.last()) else {
            return;
        };
        for pair in path.windows(2) {
            self.next
                .entry((origin.clone(), pair[0].clone()))
                .or_default()
                .insert(pair[1].clone());
        }
        self.paths.insert((origin.clone(), dest.clone()), path);
    }

    /// The chosen path from `origin` to `dest`, both ends included; `None` if `dest` cannot be
    /// reached (or is `origin`).
    pub fn path(&self, origin: &str, dest: &str) -> Option<&[String]> {
        self.paths
            .get(&(origin.to_owned(), dest.to_owned()))
            .map(Vec::as_slice)
    }

    /// The neighbour teams `my_team` passes `origin_team`'s alerts on to: those that follow
    /// `my_team` on some chosen path from `origin_team`.
    pub fn next_teams(&self, my_team: &str, origin_team: &str) -> BTreeSet<String> {
        self.next
            .get(&(origin_team.to_owned(), my_team.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Whether `origin_team` has a route to `dest`.
    pub fn reaches(&self, origin_team: &str, dest: &str) -> bool {
        self.path(origin_team, dest).is_some()
    }
}

/// The lexicographically lowest of the shortest paths from `origin` to the destination whose
/// hop counts are `to_dest`; `None` if it is not reachable. Picking the lowest-named
/// neighbour one step closer at each step gives it, since all shortest paths are equally long.
fn lowest_shortest_path(
    graph: &UnGraph<String, ()>,
    origin: NodeIndex,
    to_dest: &BTreeMap<NodeIndex, u32>,
) -> Option<Vec<String>> {
    let mut left = *to_dest.get(&origin)?;
    let mut at = origin;
    let mut path = vec![graph[at].clone()];
    while left > 0 {
        at = graph
            .neighbors(at)
            .filter(|n| to_dest.get(n) == Some(&(left - 1)))
            .min_by(|a, b| graph[*a].cmp(&graph[*b]))?;
        path.push(graph[at].clone());
        left -= 1;
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ad(border: &str, seq: u64, links: &[&str]) -> LinkStateAd {
        LinkStateAd::new(
            &border.parse().unwrap(),
            seq,
            links.iter().map(|team| team.to_string()),
        )
    }

    /// Figure 5: links A-B, A-C, B-D, C-D, all transit, one border per team.
    fn diamond() -> LinkStateDb {
        let mut db = LinkStateDb::default();
        for ad in [
            ad("A/a", 1, &["B", "C"]),
            ad("B/b", 1, &["A", "D"]),
            ad("C/c", 1, &["A", "D"]),
            ad("D/d", 1, &["B", "C"]),
        ] {
            assert!(db.accept(ad));
        }
        db
    }

    fn set(teams: &[&str]) -> BTreeSet<String> {
        teams.iter().map(|team| team.to_string()).collect()
    }

    #[test]
    fn only_a_higher_seq_replaces_an_ad_so_flooding_stops_at_what_was_seen() {
        let mut db = LinkStateDb::default();
        assert!(db.accept(ad("A/a", 5, &["B"])));
        assert!(!db.accept(ad("A/a", 5, &["B"])), "seen: not flooded again");
        assert!(!db.accept(ad("A/a", 4, &["C"])));
        assert_eq!(db.get("A/a").unwrap().links, ["B"]);
        assert!(db.accept(ad("A/a", 6, &["C"])));
        assert!(
            db.accept(ad("A/a2", 1, &["C"])),
            "another border of the team"
        );
        assert!(!db.accept(LinkStateAd {
            border: "A".into(),
            seq: 9,
            links: vec![]
        }));
        assert!(db.withdraw("A/a"));
        assert!(!db.withdraw("A/a"));
        assert_eq!(db.ads().count(), 1);
    }

    #[test]
    fn a_team_edge_needs_both_ends_to_list_each_other() {
        let mut db = LinkStateDb::default();
        db.accept(ad("A/a", 1, &["A", "B", "C"]));
        db.accept(ad("B/b1", 1, &[]));
        db.accept(ad("B/b2", 1, &["A"]));
        db.accept(ad("C/c", 1, &["D"]));
        let edges: Vec<(String, String)> = db.team_edges().into_iter().collect();
        assert_eq!(edges, [("A".to_string(), "B".to_string())]);
        let routes = Routes::compute(&db);
        assert_eq!(routes.path("A", "B").unwrap(), ["A", "B"]);
        assert!(!routes.reaches("A", "C"));
        assert_eq!(routes.path("A", "A"), None);
    }

    #[test]
    fn in_the_diamond_a_reaches_d_via_b_the_lower_name() {
        let routes = Routes::compute(&diamond());
        assert_eq!(routes.path("A", "D").unwrap(), ["A", "B", "D"]);
        assert_eq!(routes.path("D", "A").unwrap(), ["D", "B", "A"]);
        assert_eq!(routes.path("B", "C").unwrap(), ["B", "A", "C"]);
        assert_eq!(routes.next_teams("A", "A"), set(&["B", "C"]));
        assert_eq!(routes.next_teams("B", "A"), set(&["D"]));
        assert_eq!(routes.next_teams("C", "A"), set(&[]));
        assert_eq!(routes.next_teams("D", "A"), set(&[]));
        assert_eq!(routes.next_teams("X", "A"), set(&[]));
    }

    #[test]
    fn cutting_b_d_sends_as_alerts_to_d_via_c() {
        let mut db = diamond();
        assert!(db.accept(ad("B/b", 2, &["A"])));
        assert!(db.accept(ad("D/d", 2, &["C"])));
        let routes = Routes::compute(&db);
        assert_eq!(routes.path("A", "D").unwrap(), ["A", "C", "D"]);
        assert_eq!(routes.next_teams("C", "A"), set(&["D"]));
        assert_eq!(routes.next_teams("B", "A"), set(&[]));
        assert_eq!(routes.path("B", "D").unwrap(), ["B", "A", "C", "D"]);
        assert_eq!(routes.next_teams("A", "B"), set(&["C"]));
    }

    #[test]
    fn one_end_of_a_link_going_down_is_enough_to_cut_it() {
        let mut db = diamond();
        db.accept(ad("D/d", 2, &["C"]));
        let routes = Routes::compute(&db);
        assert_eq!(routes.path("A", "D").unwrap(), ["A", "C", "D"]);
    }

    #[test]
    fn every_agent_with_the_same_ads_computes_the_same_routes() {
        let forward = diamond();
        let mut backward = LinkStateDb::default();
        let mut ads: Vec<LinkStateAd> = forward.ads().cloned().collect();
        ads.reverse();
        for ad in ads {
            backward.accept(ad);
        }
        assert_eq!(Routes::compute(&forward), Routes::compute(&backward));
    }

    #[test]
    fn each_teams_alerts_reach_every_other_team_once_on_a_ring() {
        let names = ["A", "B", "C", "D", "E", "F"];
        let mut db = LinkStateDb::default();
        for (i, team) in names.iter().enumerate() {
            let left = names[(i + names.len() - 1) % names.len()];
            let right = names[(i + 1) % names.len()];
            db.accept(ad(&format!("{team}/gw"), 1, &[left, right]));
        }
        let routes = Routes::compute(&db);
        for origin in names {
            let mut received: BTreeMap<String, usize> = BTreeMap::new();
            for team in names {
                for next in routes.next_teams(team, origin) {
                    *received.entry(next).or_default() += 1;
                }
            }
            let others: BTreeMap<String, usize> = names
                .iter()
                .filter(|team| **team != origin)
                .map(|team| (team.to_string(), 1))
                .collect();
            assert_eq!(received, others, "origin {origin}");
        }
        assert_eq!(routes.path("A", "D").unwrap(), ["A", "B", "C", "D"]);
    }
}
