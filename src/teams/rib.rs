//! The RIB of a border agent (seed 000): every alert it received from other teams over its
//! links, keyed by the alert's origin ([`AlertKey`]), each with the links it arrived by and
//! the path on each. A pure state machine: every operation says what changed, the caller
//! spreads or forwards accordingly.
//!
//! The same change of an alert arriving over a second link only adds a path: it is neither
//! inserted again nor forwarded (loop suppression). Versions are compared per link only: each
//! team that passes an alert on numbers it in its own table, so copies that came by different
//! teams carry unrelated versions. Across links, a change is told by the origin's
//! `last_change_ms` (every raise, clear and change there sets it anew). An alert lives as long as one link still
//! carries it: losing a link, a team behind a link or a full sync removes that link's paths,
//! and the alerts left without any path are reported gone.

use std::collections::{BTreeMap, BTreeSet};

use rover_storage::{Alert, AlertKey};

use super::hop::team_of;

/// The default [`Rib::new`] limit of alerts per link.
pub const DEFAULT_MAX_PER_LINK: usize = 10_000;

/// What [`Rib::update`] or [`Rib::remove`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RibChange {
    /// An alert we did not hold: to be spread and forwarded.
    New,
    /// A newer version of an alert we held: to be spread and forwarded.
    Replaced,
    /// The version we hold, by one more link: only the path was kept (not to be forwarded).
    PathAdded,
    /// Older than what we hold, or the same again from the same link: nothing to do.
    Stale,
    /// Not held from that link: nothing changed.
    NotCarried,
    /// The alert had no other path left and is gone: to be removed from the team.
    Removed,
    /// The link's path is gone, other links still carry the alert.
    PathRemoved,
    /// Not stored; nothing changed.
    Refused(RibRefusal),
}

/// Why [`Rib::update`] did not store an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RibRefusal {
    /// The link already carries as many alerts as allowed.
    #[error("the link carries the most alerts allowed")]
    TableFull,
}

impl RibRefusal {
    /// A short stable name of the refusal, for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            RibRefusal::TableFull => "table_full",
        }
    }
}

/// One alert and the links it arrived by.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RibEntry {
    /// The highest version seen, as it arrived, with the path of a link that still carries
    /// it (the one it arrived by while that link carries it).
    alert: Alert,
    /// Peer team of each link that carries it -> the path the alert had on it.
    paths: BTreeMap<String, Vec<String>>,
    /// Peer team of each link that carries it -> the version it had on it last.
    versions: BTreeMap<String, u64>,
}

/// The RIB. See the module docs. Links are named by the caller: by their peer team, or by the
/// peer border's hop when one border holds several links to the same team.
#[derive(Debug, Clone)]
pub struct Rib {
    entries: BTreeMap<AlertKey, RibEntry>,
    /// What each link carries (the keys whose `paths` name it).
    by_link: BTreeMap<String, BTreeSet<AlertKey>>,
    /// For each link in a full sync: the keys it sent since the sync started.
    syncing: BTreeMap<String, BTreeSet<AlertKey>>,
    max_per_link: usize,
}

impl Default for Rib {
    fn default() -> Self {
        Rib::new(DEFAULT_MAX_PER_LINK)
    }
}

impl Rib {
    /// An empty RIB taking at most `max_per_link` alerts from each link.
    pub fn new(max_per_link: usize) -> Rib {
        Rib {
            entries: BTreeMap::new(),
            by_link: BTreeMap::new(),
            syncing: BTreeMap::new(),
            max_per_link,
        }
    }

    /// Every alert held, sorted by key.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.entries.values().map(|entry| &entry.alert)
    }

    /// One alert.
    pub fn get(&self, key: &AlertKey) -> Option<&Alert> {
        self.entries.get(key).map(|entry| &entry.alert)
    }

    /// The links that carry an alert (by peer team, sorted) and its path on each.
    pub fn paths(&self, key: &AlertKey) -> impl Iterator<Item = (&str, &[String])> {
        self.entries
            .get(key)
            .into_iter()
            .flat_map(|entry| entry.paths.iter())
            .map(|(link, path)| (link.as_str(), path.as_slice()))
    }

    /// The alerts `link` carries.
    pub fn carried_by(&self, link: &str) -> Vec<AlertKey> {
        self.by_link
            .get(link)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many alerts `link` carries.
    pub fn count_from(&self, link: &str) -> usize {
        self.by_link.get(link).map_or(0, BTreeSet::len)
    }

    /// Number of alerts held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no alert is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes `alert` as received on `link` (checked by `rules::justify` first).
    pub fn update(&mut self, link: &str, alert: Alert) -> RibChange {
        let key = alert.key();
        let carried = self.carries(link, &key);
        let entry = self.entries.get(&key);
        let link_version = entry.and_then(|entry| entry.versions.get(link).copied());
        let older_change = entry.is_some_and(|e| alert.last_change_ms < e.alert.last_change_ms);
        let stale = match link_version {
            Some(held) => alert.version < held || (alert.version == held && older_change),
            // A copy of an older change by a new link adds no path.
            None => older_change,
        };
        if stale {
            if let Some(sent) = self.syncing.get_mut(link).filter(|_| carried) {
                sent.insert(key);
            }
            return RibChange::Stale;
        }
        if !carried && self.count_from(link) >= self.max_per_link {
            return RibChange::Refused(RibRefusal::TableFull);
        }
        if let Some(sent) = self.syncing.get_mut(link) {
            sent.insert(key.clone());
        }
        let change = match self.entries.get_mut(&key) {
            None => {
                let paths = BTreeMap::from([(link.to_owned(), alert.path.clone())]);
                let versions = BTreeMap::from([(link.to_owned(), alert.version)]);
                self.entries.insert(
                    key.clone(),
                    RibEntry {
                        alert,
                        paths,
                        versions,
                    },
                );
                RibChange::New
            }
            Some(entry) => {
                let before = entry.paths.insert(link.to_owned(), alert.path.clone());
                entry.versions.insert(link.to_owned(), alert.version);
                let only_link = entry.paths.len() == 1;
                if alert.last_change_ms > entry.alert.last_change_ms
                    || (only_link && !same_change(&alert, &entry.alert))
                {
                    entry.alert = alert;
                    RibChange::Replaced
                } else {
                    // The same change: the alert keeps showing a path that carries it.
                    if before.as_ref() == Some(&entry.alert.path) {
                        entry.alert.path = alert.path;
                    }
                    if carried {
                        RibChange::Stale
                    } else {
                        RibChange::PathAdded
                    }
                }
            }
        };
        self.by_link.entry(link.to_owned()).or_default().insert(key);
        change
    }

    /// A removal received on `link`: the alert is gone at its origin up to `version`. A removal
    /// older than the version we hold is [`RibChange::Stale`] (the alert changed since).
    pub fn remove(&mut self, link: &str, key: &AlertKey, version: u64) -> RibChange {
        let Some(entry) = self.entries.get(key) else {
            return RibChange::NotCarried;
        };
        if !entry.paths.contains_key(link) {
            return RibChange::NotCarried;
        }
        if entry.versions.get(link).is_some_and(|held| version < *held) {
            return RibChange::Stale;
        }
        if self.drop_path(link, key).is_some() {
            RibChange::Removed
        } else {
            RibChange::PathRemoved
        }
    }

    /// The link is lost: its paths go; returns the alerts left without any path, now gone
    /// (to be removed from the team and, by RemoveAlert at their version, from the links they
    /// were forwarded on).
    pub fn remove_link(&mut self, link: &str) -> Vec<Alert> {
        self.syncing.remove(link);
        let keys: Vec<AlertKey> = self
            .by_link
            .get(link)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default();
        self.drop_paths(link, keys)
    }

    /// RemoveTeamAlerts received on `link`: the link no longer carries `team`'s alerts nor
    /// those whose path on it passed through `team`. Returns the alerts now gone.
    pub fn remove_team(&mut self, link: &str, team: &str) -> Vec<Alert> {
        let Some(carried) = self.by_link.get(link) else {
            return Vec::new();
        };
        let keys: Vec<AlertKey> = carried
            .iter()
            .filter(|key| {
                key.team == team
                    || self.entries.get(*key).is_some_and(|entry| {
                        entry
                            .paths
                            .get(link)
                            .is_some_and(|path| path.iter().any(|hop| team_of(hop) == Some(team)))
                    })
            })
            .cloned()
            .collect();
        self.drop_paths(link, keys)
    }

    /// A full sync begins on `link` (SyncStart received).
    pub fn sync_started(&mut self, link: &str) {
        self.syncing.insert(link.to_owned(), BTreeSet::new());
    }

    /// The full sync on `link` is over (SyncEnd received): what the link carried before and
    /// did not send during the sync is no longer carried by it. Returns the alerts now gone.
    /// Without a [`Rib::sync_started`] first, changes nothing.
    pub fn sync_finished(&mut self, link: &str) -> Vec<Alert> {
        let Some(sent) = self.syncing.remove(link) else {
            return Vec::new();
        };
        let unsent: Vec<AlertKey> = self
            .by_link
            .get(link)
            .map(|keys| keys.difference(&sent).cloned().collect())
            .unwrap_or_default();
        self.drop_paths(link, unsent)
    }

    fn carries(&self, link: &str, key: &AlertKey) -> bool {
        self.by_link
            .get(link)
            .is_some_and(|keys| keys.contains(key))
    }

    /// Drops `link`'s path of each of `keys`; returns the alerts left without a path (removed).
    fn drop_paths(&mut self, link: &str, keys: Vec<AlertKey>) -> Vec<Alert> {
        keys.into_iter()
            .filter_map(|key| self.drop_path(link, &key))
            .collect()
    }

    /// Drops `link`'s path of `key`; the alert if it had no other path and is gone.
    fn drop_path(&mut self, link: &str, key: &AlertKey) -> Option<Alert> {
        if let Some(keys) = self.by_link.get_mut(link) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_link.remove(link);
            }
        }
        let entry = self.entries.get_mut(key)?;
        entry.versions.remove(link);
        let dropped = entry.paths.remove(link);
        match entry.paths.values().next() {
            None => self.entries.remove(key).map(|entry| entry.alert),
            Some(other) => {
                // The alert shows a path that still carries it.
                if dropped.as_ref() == Some(&entry.alert.path) {
                    entry.alert.path = other.clone();
                }
                None
            }
        }
    }
}

/// Whether two copies say the same change of an alert (all but the version and the path).
fn same_change(a: &Alert, b: &Alert) -> bool {
    a.last_change_ms == b.last_change_ms
        && a.first_seen_ms == b.first_seen_ms
        && a.state == b.state
        && a.severity == b.severity
        && a.summary == b.summary
}

#[cfg(test)]
mod tests {
    use rover_storage::{AlertState, Severity};

    use super::*;

    fn alert(team: &str, name: &str, version: u64, path: &[&str]) -> Alert {
        Alert {
            team: team.into(),
            host: "h1".into(),
            name: name.into(),
            severity: Severity::Warning,
            summary: "load 9".into(),
            first_seen_ms: 1,
            last_change_ms: version,
            version,
            state: AlertState::Firing,
            path: path.iter().map(|hop| hop.to_string()).collect(),
        }
    }

    fn keys(rib: &Rib) -> Vec<String> {
        rib.alerts().map(|a| a.key().to_string()).collect()
    }

    #[test]
    fn a_new_alert_is_held_with_its_path_and_a_newer_version_replaces_it() {
        let mut rib = Rib::default();
        let v1 = alert("a", "load", 1, &["a/gw"]);
        assert_eq!(rib.update("a", v1.clone()), RibChange::New);
        assert_eq!(rib.get(&v1.key()), Some(&v1));
        let v2 = alert("a", "load", 2, &["a/gw"]);
        assert_eq!(rib.update("a", v2.clone()), RibChange::Replaced);
        assert_eq!(rib.get(&v1.key()), Some(&v2));
        assert_eq!(rib.update("a", v1.clone()), RibChange::Stale);
        assert_eq!(rib.update("a", v2), RibChange::Stale);
        assert_eq!(
            rib.paths(&v1.key()).collect::<Vec<_>>(),
            vec![("a", &["a/gw".to_string()][..])]
        );
        assert_eq!((rib.len(), rib.count_from("a")), (1, 1));
    }

    #[test]
    fn the_same_origin_and_version_by_another_link_only_adds_a_path() {
        let mut rib = Rib::default();
        let via_b = alert("a", "load", 1, &["a/gw", "b/gw"]);
        let via_c = alert("a", "load", 1, &["a/gw", "c/gw"]);
        assert_eq!(rib.update("b", via_b.clone()), RibChange::New);
        assert_eq!(rib.update("c", via_c), RibChange::PathAdded);
        assert_eq!(rib.get(&via_b.key()), Some(&via_b), "the first stays");
        let links: Vec<&str> = rib.paths(&via_b.key()).map(|(link, _)| link).collect();
        assert_eq!(links, ["b", "c"]);
        assert_eq!(rib.len(), 1);
        let older = alert("a", "load", 0, &["a/gw", "d/gw"]);
        assert_eq!(rib.update("d", older), RibChange::Stale);
        assert_eq!(rib.count_from("d"), 0, "a stale copy adds no path");
    }

    #[test]
    fn copies_by_two_teams_carry_unrelated_versions_and_the_same_change_is_one_alert() {
        let mut rib = Rib::default();
        // By a: team a numbered it in its own table (a relay's version, from its clock).
        let mut via_a = alert("d", "disk", 1_796_000_000_000, &["d/gw", "a/gw"]);
        via_a.last_change_ms = 100;
        // By d, its own team: the origin's version.
        let mut via_d = alert("d", "disk", 3, &["d/gw"]);
        via_d.last_change_ms = 100;
        assert_eq!(rib.update("a", via_a), RibChange::New);
        assert_eq!(rib.update("d", via_d.clone()), RibChange::PathAdded);
        assert!(rib.remove_link("a").is_empty(), "d still carries it");
        assert_eq!(rib.get(&via_d.key()).unwrap().path, ["d/gw"]);
        // The next change comes by d with the origin's next version: taken.
        let mut next = alert("d", "disk", 4, &["d/gw"]);
        next.last_change_ms = 200;
        assert_eq!(rib.update("d", next), RibChange::Replaced);
    }

    #[test]
    fn an_alert_shows_the_path_of_a_link_that_still_carries_it() {
        let mut rib = Rib::default();
        let a = alert("a", "load", 1, &[]).key();
        rib.update("b", alert("a", "load", 1, &["a/gw", "b/gw"]));
        rib.update("c", alert("a", "load", 1, &["a/gw", "c/gw"]));
        rib.update("b", alert("a", "load", 1, &["a/gw", "b/gw2"]));
        assert_eq!(rib.get(&a).unwrap().path, ["a/gw", "b/gw2"]);
        rib.remove_link("b");
        assert_eq!(rib.get(&a).unwrap().path, ["a/gw", "c/gw"]);
    }

    #[test]
    fn a_removal_goes_when_no_other_link_carries_the_alert() {
        let mut rib = Rib::default();
        let a = alert("a", "load", 3, &["a/gw"]);
        rib.update("b", a.clone());
        rib.update("c", a.clone());
        assert_eq!(rib.remove("d", &a.key(), 3), RibChange::NotCarried);
        assert_eq!(rib.remove("b", &a.key(), 2), RibChange::Stale);
        assert_eq!(rib.remove("b", &a.key(), 3), RibChange::PathRemoved);
        assert_eq!(rib.remove("b", &a.key(), 3), RibChange::NotCarried);
        assert_eq!(rib.remove("c", &a.key(), 4), RibChange::Removed);
        assert!(rib.is_empty());
        assert_eq!((rib.count_from("b"), rib.count_from("c")), (0, 0));
    }

    #[test]
    fn a_lost_link_removes_every_alert_only_reachable_through_it() {
        let mut rib = Rib::default();
        rib.update("b", alert("a", "only-b", 1, &["a/gw", "b/gw"]));
        rib.update("b", alert("a", "both", 1, &["a/gw", "b/gw"]));
        rib.update("c", alert("a", "both", 1, &["a/gw", "c/gw"]));
        rib.update("c", alert("c", "only-c", 1, &["c/gw"]));
        let gone = rib.remove_link("b");
        assert_eq!(gone, vec![alert("a", "only-b", 1, &["a/gw", "b/gw"])]);
        assert_eq!(keys(&rib), ["a/h1/both", "c/h1/only-c"]);
        let both = alert("a", "both", 1, &[]).key();
        assert_eq!(rib.paths(&both).count(), 1);
        assert!(rib.remove_link("b").is_empty());
    }

    #[test]
    fn remove_team_alerts_drops_the_team_and_what_came_through_it_on_that_link() {
        let mut rib = Rib::default();
        rib.update("b", alert("c", "load", 1, &["c/gw", "b/gw"]));
        rib.update("b", alert("d", "load", 1, &["d/gw", "c/gw", "b/gw"]));
        rib.update("b", alert("e", "load", 1, &["e/gw", "b/gw"]));
        rib.update("b", alert("b", "load", 1, &["b/gw"]));
        rib.update("x", alert("c", "load", 1, &["c/gw", "x/gw"]));
        let gone = rib.remove_team("b", "c");
        assert_eq!(gone, vec![alert("d", "load", 1, &["d/gw", "c/gw", "b/gw"])]);
        assert_eq!(keys(&rib), ["b/h1/load", "c/h1/load", "e/h1/load"]);
        assert_eq!(rib.count_from("b"), 2);
        assert!(rib.remove_team("nobody", "c").is_empty());
    }

    #[test]
    fn a_full_sync_replaces_what_the_link_carried() {
        let mut rib = Rib::default();
        rib.update("b", alert("b", "kept", 1, &["b/gw"]));
        rib.update("b", alert("b", "dropped", 1, &["b/gw"]));
        rib.update("b", alert("a", "also-via-c", 1, &["a/gw", "b/gw"]));
        rib.update("c", alert("a", "also-via-c", 1, &["a/gw", "c/gw"]));
        rib.sync_started("b");
        assert_eq!(
            rib.update("b", alert("b", "kept", 1, &["b/gw"])),
            RibChange::Stale
        );
        assert_eq!(
            rib.update("b", alert("b", "new", 1, &["b/gw"])),
            RibChange::New
        );
        assert_eq!(
            rib.sync_finished("b"),
            vec![alert("b", "dropped", 1, &["b/gw"])]
        );
        assert_eq!(keys(&rib), ["a/h1/also-via-c", "b/h1/kept", "b/h1/new"]);
        let via: Vec<&str> = rib
            .paths(&alert("a", "also-via-c", 1, &[]).key())
            .map(|(link, _)| link)
            .collect();
        assert_eq!(via, ["c"]);
        assert_eq!(rib.count_from("b"), 2);
        assert!(rib.sync_finished("b").is_empty(), "no sync open");
    }

    #[test]
    fn an_empty_full_sync_empties_the_link() {
        let mut rib = Rib::default();
        rib.update("b", alert("b", "x", 1, &["b/gw"]));
        rib.sync_started("b");
        assert_eq!(rib.sync_finished("b").len(), 1);
        assert!(rib.is_empty());
    }

    #[test]
    fn a_full_link_refuses_more_alerts_but_takes_updates_of_what_it_carries() {
        let mut rib = Rib::new(2);
        rib.update("b", alert("b", "x", 1, &["b/gw"]));
        rib.update("b", alert("b", "y", 1, &["b/gw"]));
        assert_eq!(
            rib.update("b", alert("b", "z", 1, &["b/gw"])),
            RibChange::Refused(RibRefusal::TableFull)
        );
        assert_eq!(RibRefusal::TableFull.reason(), "table_full");
        assert_eq!(
            rib.update("b", alert("b", "y", 2, &["b/gw"])),
            RibChange::Replaced
        );
        assert_eq!(
            rib.update("c", alert("c", "z", 1, &["c/gw"])),
            RibChange::New
        );
        assert_eq!(
            rib.update("b", alert("c", "z", 1, &["c/gw", "b/gw"])),
            RibChange::Refused(RibRefusal::TableFull),
            "another path counts against the link too"
        );
        assert_eq!(
            rib.update("b", alert("c", "z", 2, &["c/gw", "b/gw"])),
            RibChange::Refused(RibRefusal::TableFull)
        );
        assert_eq!(rib.get(&alert("c", "z", 1, &[]).key()).unwrap().version, 1);
        assert_eq!((rib.count_from("b"), rib.len()), (2, 3));
    }

    /// Every path an entry names is in `by_link`, and the other way round; no entry is
    /// without a path; the alert shows one of its paths; no link is over its limit.
    fn assert_consistent(rib: &Rib) {
        for (key, entry) in &rib.entries {
            assert!(!entry.paths.is_empty(), "{key}");
            assert!(entry.paths.values().any(|path| *path == entry.alert.path));
            for link in entry.paths.keys() {
                assert!(rib.by_link[link].contains(key), "{link} {key}");
            }
        }
        for (link, keys) in &rib.by_link {
            assert!(!keys.is_empty() && keys.len() <= rib.max_per_link);
            for key in keys {
                assert!(rib.entries[key].paths.contains_key(link), "{link} {key}");
            }
        }
    }

    #[test]
    fn random_operations_keep_the_links_and_the_entries_consistent() {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        let links = ["b", "c", "d"];
        let teams = ["b", "c", "d", "e"];
        let mut rib = Rib::new(6);
        for _ in 0..20_000 {
            let link = links[next(3) as usize];
            let team = teams[next(4) as usize];
            let name = ["x", "y", "z"][next(3) as usize];
            let version = next(4);
            match next(10) {
                0..=5 => {
                    let hop = format!("{link}/gw{}", next(2));
                    rib.update(
                        link,
                        alert(team, name, version, &[&format!("{team}/gw"), &hop]),
                    );
                }
                6 => {
                    rib.remove(link, &alert(team, name, 0, &[]).key(), version);
                }
                7 => {
                    rib.remove_team(link, team);
                }
                8 if next(4) == 0 => {
                    rib.remove_link(link);
                }
                8 => rib.sync_started(link),
                _ => {
                    rib.sync_finished(link);
                }
            }
            assert_consistent(&rib);
        }
    }
}
