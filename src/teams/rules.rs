//! The forwarding rules of border links (seed 000) and the checks on what a link may carry.
//!
//! | Source      | Destinations           |
//! |-------------|------------------------|
//! | self        | my team, other teams   |
//! | my team     | other teams            |
//! | other teams | my team                |
//!
//! On a [`LinkMode::Direct`] link that is all: only my team's alerts go out, and only the
//! peer team's own alerts come in (nothing is passed to a third team: the privacy rule). On a
//! [`LinkMode::Transit`] link other teams' alerts also travel, along the routes of the link
//! state ([`Routes::next_teams`]) and never back to a team already on their path.
//!
//! The sending border appends its own hop to the path ([`stamped`]), so a path is the list of
//! borders the alert left a team by, origin team first.

use rover_storage::Alert;

use super::hop::{team_of, Hop};
use super::routes::Routes;
use super::wire::{LinkMode, MAX_PATH_HOPS};

/// Why an alert received on a link was refused. Nothing of it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unjustified {
    /// It claims my own team as origin: only my team's gossip speaks for it.
    #[error("alert of our own team from another team")]
    OwnTeam,
    /// On a direct link: not the peer team's own alert (the privacy rule).
    #[error("direct link: not the peer team's own alert")]
    NotPeerTeam,
    /// No path: it did not say which border sent it.
    #[error("alert without a path")]
    NoPath,
    /// More hops than [`MAX_PATH_HOPS`].
    #[error("path too long")]
    PathTooLong,
    /// A path entry that is not `team/host`.
    #[error("path entry is not team/host")]
    BadHop,
    /// The last hop (the sender) is not of the peer team, or on a direct link some hop is not.
    #[error("path does not end at the peer team")]
    NotFromPeer,
    /// The first hop is not of the alert's team.
    #[error("path does not start at the alert's team")]
    WrongOrigin,
    /// My team is on the path already: the alert went round a loop.
    #[error("path passes through our team")]
    Loop,
    /// A team appears twice with other teams in between.
    #[error("path passes through a team twice")]
    RepeatedTeam,
}

impl Unjustified {
    /// Every [`Unjustified::reason`], to set up counters.
    pub const REASONS: [&'static str; 9] = [
        "own_team",
        "not_peer_team",
        "no_path",
        "path_too_long",
        "bad_hop",
        "not_from_peer",
        "wrong_origin",
        "loop",
        "repeated_team",
    ];

    /// A short stable name of the refusal, for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Unjustified::OwnTeam => "own_team",
            Unjustified::NotPeerTeam => "not_peer_team",
            Unjustified::NoPath => "no_path",
            Unjustified::PathTooLong => "path_too_long",
            Unjustified::BadHop => "bad_hop",
            Unjustified::NotFromPeer => "not_from_peer",
            Unjustified::WrongOrigin => "wrong_origin",
            Unjustified::Loop => "loop",
            Unjustified::RepeatedTeam => "repeated_team",
        }
    }
}

/// Whether `alert`, received on the link to `link_peer_team` running in `mode`, is one that
/// link may carry to us (`my_team`).
///
/// Direct: the peer team's own alert, every hop of the peer team. Transit: the path starts at
/// the alert's team, ends at the peer team, does not pass through my team and holds no team
/// twice apart. Both: not my own team's alert, at most [`MAX_PATH_HOPS`] hops of `team/host`.
pub fn justify(
    my_team: &str,
    link_peer_team: &str,
    mode: LinkMode,
    alert: &Alert,
) -> Result<(), Unjustified> {
    if alert.team == my_team {
        return Err(Unjustified::OwnTeam);
    }
    if mode == LinkMode::Direct && alert.team != link_peer_team {
        return Err(Unjustified::NotPeerTeam);
    }
    let teams = path_teams(&alert.path)?;
    match mode {
        LinkMode::Direct if teams.iter().any(|team| *team != link_peer_team) => {
            Err(Unjustified::NotFromPeer)
        }
        LinkMode::Direct => Ok(()),
        LinkMode::Transit => justify_transit(my_team, link_peer_team, alert, &teams),
    }
}

/// The team of each hop of a non-empty path of at most [`MAX_PATH_HOPS`] `team/host` hops.
fn path_teams(path: &[String]) -> Result<Vec<&str>, Unjustified> {
    if path.is_empty() {
        return Err(Unjustified::NoPath);
    }
    if path.len() > MAX_PATH_HOPS {
        return Err(Unjustified::PathTooLong);
    }
    path.iter()
        .map(|hop| {
            hop.parse::<Hop>().map_err(|_| Unjustified::BadHop)?;
            team_of(hop).ok_or(Unjustified::BadHop)
        })
        .collect()
}

fn justify_transit(
    my_team: &str,
    link_peer_team: &str,
    alert: &Alert,
    teams: &[&str],
) -> Result<(), Unjustified> {
    if teams.last() != Some(&link_peer_team) {
        return Err(Unjustified::NotFromPeer);
    }
    if teams.first() != Some(&alert.team.as_str()) {
        return Err(Unjustified::WrongOrigin);
    }
    if teams.contains(&my_team) {
        return Err(Unjustified::Loop);
    }
    if repeats_a_team(teams) {
        return Err(Unjustified::RepeatedTeam);
    }
    Ok(())
}

/// Whether some team appears twice in `teams` with another team in between.
fn repeats_a_team(teams: &[&str]) -> bool {
    let mut runs: Vec<&str> = teams.to_vec();
    runs.dedup();
    let mut seen = std::collections::BTreeSet::new();
    !runs.iter().all(|team| seen.insert(*team))
}

/// Whether we (`my_team`) send `alert` on the link to `link_peer_team` running in `mode`.
///
/// Never an alert back to its team or to a team on its path, never one whose path is full.
/// My team's alerts (my own included) go on every link. Other teams' alerts go only on
/// transit links, and only to the teams that follow mine on the alert's routes; without
/// routes (no link state yet) a transit link carries only what a direct one does, since only
/// the link state tells whether the link the alert came in by allows transit.
pub fn may_send(
    my_team: &str,
    link_peer_team: &str,
    mode: LinkMode,
    alert: &Alert,
    routes: Option<&Routes>,
) -> bool {
    if alert.team == link_peer_team
        || alert.path.len() >= MAX_PATH_HOPS
        || alert
            .path
            .iter()
            .any(|hop| team_of(hop) == Some(link_peer_team))
    {
        return false;
    }
    if alert.team == my_team {
        return true;
    }
    match (mode, routes) {
        (LinkMode::Transit, Some(routes)) => {
            !alert.path.is_empty()
                && routes
                    .next_teams(my_team, &alert.team)
                    .contains(link_peer_team)
        }
        _ => false,
    }
}

/// `alert` as we (`me`, a border) send it on a link: our hop appended to its path.
pub fn stamped(alert: &Alert, me: &Hop) -> Alert {
    let mut sent = alert.clone();
    sent.path.push(me.to_string());
    sent
}

#[cfg(test)]
mod tests {
    use rover_storage::{AlertState, Severity};

    use super::*;
    use crate::teams::routes::LinkStateDb;
    use crate::teams::wire::LinkStateAd;

    fn alert(team: &str, path: &[&str]) -> Alert {
        Alert {
            team: team.into(),
            host: "h1".into(),
            name: "disk".into(),
            severity: Severity::Critical,
            summary: "full".into(),
            first_seen_ms: 1,
            last_change_ms: 1,
            version: 1,
            state: AlertState::Firing,
            path: path.iter().map(|hop| hop.to_string()).collect(),
        }
    }

    fn reason(my_team: &str, peer: &str, mode: LinkMode, alert: &Alert) -> &'static str {
        justify(my_team, peer, mode, alert)
            .err()
            .map_or("ok", |e| e.reason())
    }

    #[test]
    fn a_direct_link_takes_only_the_peer_teams_own_alerts_sent_by_its_borders() {
        use LinkMode::Direct;
        assert_eq!(reason("A", "B", Direct, &alert("B", &["B/gw"])), "ok");
        assert_eq!(
            reason("A", "B", Direct, &alert("B", &["B/gw", "B/gw2"])),
            "ok"
        );
        assert_eq!(
            reason("A", "B", Direct, &alert("C", &["C/gw", "B/gw"])),
            "not_peer_team"
        );
        assert_eq!(
            reason("A", "B", Direct, &alert("B", &["C/gw", "B/gw"])),
            "not_from_peer"
        );
        assert_eq!(reason("A", "B", Direct, &alert("B", &[])), "no_path");
        assert_eq!(
            reason("A", "B", Direct, &alert("A", &["A/gw", "B/gw"])),
            "own_team"
        );
    }

    #[test]
    fn a_transit_link_takes_alerts_whose_path_runs_from_their_team_to_the_peer() {
        use LinkMode::Transit;
        let ok = |a: &Alert| reason("A", "B", Transit, a);
        assert_eq!(ok(&alert("B", &["B/gw"])), "ok");
        assert_eq!(ok(&alert("D", &["D/gw", "C/gw", "B/gw"])), "ok");
        assert_eq!(ok(&alert("D", &["D/gw", "C/gw", "C/gw2", "B/gw"])), "ok");
        assert_eq!(ok(&alert("D", &["D/gw", "C/gw"])), "not_from_peer");
        assert_eq!(ok(&alert("D", &["C/gw", "B/gw"])), "wrong_origin");
        assert_eq!(ok(&alert("D", &["D/gw", "A/gw", "B/gw"])), "loop");
        assert_eq!(
            ok(&alert("D", &["D/gw", "C/gw", "D/gw2", "B/gw"])),
            "repeated_team"
        );
        assert_eq!(ok(&alert("A", &["A/gw", "B/gw"])), "own_team");
        assert_eq!(ok(&alert("D", &[])), "no_path");
        assert_eq!(ok(&alert("D", &["D/gw", "nohop", "B/gw"])), "bad_hop");
        let mut long = vec!["D/gw"; MAX_PATH_HOPS];
        long.push("B/gw");
        assert_eq!(ok(&alert("D", &long)), "path_too_long");
    }

    #[test]
    fn every_refusal_reason_is_listed_once() {
        let mut reasons = Unjustified::REASONS.to_vec();
        reasons.sort();
        reasons.dedup();
        assert_eq!(reasons.len(), Unjustified::REASONS.len());
    }

    #[test]
    fn my_teams_alerts_go_on_every_link_and_others_never_on_a_direct_one() {
        let routes = chain_routes();
        for mode in [LinkMode::Direct, LinkMode::Transit] {
            assert!(may_send("B", "A", mode, &alert("B", &[]), Some(&routes)));
            assert!(may_send("B", "A", mode, &alert("B", &[]), None));
        }
        let from_c = alert("C", &["C/gw"]);
        assert!(!may_send(
            "B",
            "A",
            LinkMode::Direct,
            &from_c,
            Some(&routes)
        ));
        assert!(!may_send("B", "A", LinkMode::Transit, &from_c, None));
        assert!(may_send(
            "B",
            "A",
            LinkMode::Transit,
            &from_c,
            Some(&routes)
        ));
    }

    #[test]
    fn an_alert_never_goes_back_to_its_team_or_a_team_on_its_path() {
        let routes = chain_routes();
        let from_c = alert("C", &["C/gw"]);
        assert!(!may_send(
            "B",
            "C",
            LinkMode::Transit,
            &from_c,
            Some(&routes)
        ));
        let via_a = alert("C", &["C/gw", "A/gw"]);
        assert!(!may_send(
            "B",
            "A",
            LinkMode::Transit,
            &via_a,
            Some(&routes)
        ));
        let full = alert("C", &["C/gw"; MAX_PATH_HOPS]);
        assert!(!may_send("B", "A", LinkMode::Transit, &full, Some(&routes)));
    }

    #[test]
    fn stamping_appends_the_sending_border_to_the_path() {
        let me = Hop::new("B", "gw").unwrap();
        let sent = stamped(&alert("C", &["C/gw"]), &me);
        assert_eq!(sent.path, ["C/gw", "B/gw"]);
        assert_eq!(stamped(&alert("B", &[]), &me).path, ["B/gw"]);
    }

    /// A-B-C, both links transit.
    fn chain_routes() -> Routes {
        let mut db = LinkStateDb::default();
        for (border, links) in [
            ("A/gw", &["B"][..]),
            ("B/gw", &["A", "C"]),
            ("C/gw", &["B"]),
        ] {
            let links = links.iter().map(|team| team.to_string());
            db.accept(LinkStateAd::new(&border.parse().unwrap(), 1, links));
        }
        Routes::compute(&db)
    }
}
