//! Switch incidents and cut-off sides: pure decisions with exact tests, which the incident
//! engine applies to its ledger.
//!
//! - [`plan_folds`]: when every host a switch carries (at least 2; a host already announced
//!   down or gone is no longer carried) went down within `group_wait` of each other (each
//!   declared down at most `group_wait` after the one before), and a host elsewhere is still
//!   alive to see it, the host-down incidents fold into one `switch/<switch id>/<n>` incident:
//!   one message instead of one DOWN per host. While some of a switch's hosts are down and the
//!   others only suspect, the downs are held (until `group_wait` after the last one) so that
//!   they can still fold.
//! - [`switch_over`]: a switch incident ends when its hosts are back: all of them, or some
//!   and `group_wait` has passed since the first came back.
//! - [`loss_explanation`]: a fallback leader that lost more than half of the members at once
//!   is most likely cut off itself; this names the switch or subnet it lost.
//! - [`cut_off_hold`]: while such a leader is still losing the rest (Lifeguard slows the
//!   probes of a node that hears no acks, so a cut-off node declares the others down one by
//!   one over tens of seconds), its downs wait, up to [`CUT_OFF_WAIT_MS`], so that one CUT OFF
//!   message names them all.

use std::collections::{BTreeMap, BTreeSet};

use super::map::{SwitchHosts, TopologyMap};

/// Prefix of every switch incident id.
pub const SWITCH_INCIDENT_PREFIX: &str = "switch/";

/// One host-down incident as the fold decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownIncident {
    /// Its id.
    pub id: String,
    /// The host.
    pub host: String,
    /// The host's generation that stopped.
    pub generation: u64,
    /// When it was opened (unix ms).
    pub opened_at_ms: u64,
    /// Whether its opening message is out (or folded already): it can no longer fold.
    pub announced: bool,
    /// Whether it is still open (not resolved).
    pub open: bool,
}

/// How the leader sees one member now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Alive.
    Alive,
    /// Suspected: it may be going down.
    Suspect,
    /// Declared down.
    Failed,
    /// Left on purpose, or not known.
    Gone,
}

/// One switch incident to open, and the host incidents it folds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchFold {
    /// The incident id: `switch/<switch id>/<highest generation of its hosts>`, the same on
    /// every leader that sees the same deaths.
    pub incident: String,
    /// The switch's id (chassis id).
    pub switch_id: String,
    /// What the switch is called.
    pub label: String,
    /// Its hosts, by name.
    pub hosts: Vec<String>,
    /// Their incidents, in host order.
    pub host_incidents: Vec<String>,
    /// When the first of them was opened: the switch incident is as old as its first host.
    pub opened_at_ms: u64,
}

/// What the engine should do this tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoldPlan {
    /// Switch incidents to open (with their host incidents folded in).
    pub folds: Vec<SwitchFold>,
    /// Host incidents whose opening must wait: their switch may still fold.
    pub hold: BTreeSet<String>,
}

/// What the fold decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct FoldView<'a> {
    /// Every member the leader knows (itself included) and how it sees each.
    pub members: &'a [(String, Seen)],
    /// Each switch with the hosts behind it (from the map).
    pub switches: &'a [SwitchHosts],
    /// The host-down incidents of the ledger.
    pub down: &'a [DownIncident],
    /// Now (unix ms).
    pub now_ms: u64,
    /// The grouping delay.
    pub group_wait_ms: u64,
}

/// Decides the folds. See the module docs.
pub fn plan_folds(view: &FoldView<'_>) -> FoldPlan {
    let seen: BTreeMap<&str, Seen> = view
        .members
        .iter()
        .map(|(name, seen)| (name.as_str(), *seen))
        .collect();
    let seen_as = |name: &str| seen.get(name).copied().unwrap_or(Seen::Gone);
    let pending: BTreeMap<&str, &DownIncident> = view
        .down
        .iter()
        .filter(|d| d.open && !d.announced)
        .map(|d| (d.host.as_str(), d))
        .collect();
    let mut plan = FoldPlan::default();
    let mut folded: BTreeSet<&str> = BTreeSet::new();
    // A host already announced down, or gone, is no longer carried by its switch.
    let known_down: BTreeSet<&str> = view
        .down
        .iter()
        .filter(|d| d.open && d.announced)
        .map(|d| d.host.as_str())
        .collect();
    for switch in view.switches {
        let carried: Vec<&str> = switch
            .hosts
            .iter()
            .map(String::as_str)
            .filter(|h| !known_down.contains(h) && seen_as(h) != Seen::Gone)
            .collect();
        if carried.len() < 2 {
            continue;
        }
        let downs: Vec<&DownIncident> = carried
            .iter()
            .filter_map(|h| pending.get(h).copied())
            .collect();
        if downs.is_empty() || downs.iter().any(|d| folded.contains(d.host.as_str())) {
            continue;
        }
        let someone_elsewhere_alive = view
            .members
            .iter()
            .any(|(name, s)| *s == Seen::Alive && !switch.hosts.contains(name));
        let mut times: Vec<u64> = downs.iter().map(|d| d.opened_at_ms).collect();
        times.sort_unstable();
        let first = times.first().copied().unwrap_or(view.now_ms);
        let last = times.last().copied().unwrap_or(view.now_ms);
        let together = times
            .windows(2)
            .all(|w| w[1].saturating_sub(w[0]) <= view.group_wait_ms);
        if !someone_elsewhere_alive || !together {
            continue;
        }
        if downs.len() == carried.len() {
            let generation = downs.iter().map(|d| d.generation).max().unwrap_or(0);
            folded.extend(downs.iter().map(|d| d.host.as_str()));
            plan.folds.push(SwitchFold {
                incident: format!("{SWITCH_INCIDENT_PREFIX}{}/{generation}", switch.id),
                switch_id: switch.id.clone(),
                label: switch.label.clone(),
                hosts: downs.iter().map(|d| d.host.clone()).collect(),
                host_incidents: downs.iter().map(|d| d.id.clone()).collect(),
                opened_at_ms: first,
            });
            continue;
        }
        // Some are down and every other one is suspect: its death may still come.
        let rest_going = carried
            .iter()
            .filter(|h| !pending.contains_key(*h))
            .all(|h| matches!(seen_as(h), Seen::Suspect | Seen::Failed));
        // Its death may still come, within group_wait of the last one.
        let still_waiting = view.now_ms.saturating_sub(last) < view.group_wait_ms;
        if rest_going && still_waiting {
            plan.hold.extend(downs.iter().map(|d| d.id.clone()));
        }
    }
    plan
}

/// Whether a fallback leader's message is about being cut off: it names more than half of
/// the `members` as gone (`plain` hosts down and `folded` ones behind dead switches), and not
/// only whole switches away from it (some plain host-down among them).
pub fn is_cut_off(plain: usize, folded: usize, members: usize) -> bool {
    plain > 0 && (plain + folded) * 2 > members
}

/// How long a fallback leader that lost more than half of the members holds its downs while
/// other members are not declared down yet, from the first of those downs. An isolated node
/// of 5 (lan profile) was seen declaring the last of the four others down 19 s after the
/// first.
pub const CUT_OFF_WAIT_MS: u64 = 30_000;

/// The host-down (and switch) incidents a fallback leader `me` holds while it is being cut
/// off: the other members it sees down or suspect are more than half of the `members`, some
/// of them are not lost behind a whole switch (`behind_lost_switches`: a side that only lost
/// other switches is not cut off, its message names them at once), some are not declared
/// down yet (suspect, or listed alive but not heard from, `last_heard_ms`, since the first
/// down: a cut-off node probes slowly), and the first of its open,
/// unannounced downs was opened less than [`CUT_OFF_WAIT_MS`] ago. Empty otherwise (the
/// downs go out as usual: one CUT OFF message for all that fell meanwhile). Once every other
/// member is declared, they still wait until `group_wait` after the newest, so that the last
/// to fall goes out with the others.
pub fn cut_off_hold(
    members: &[(String, Seen)],
    last_heard_ms: &BTreeMap<String, u64>,
    behind_lost_switches: &BTreeSet<String>,
    down: &[DownIncident],
    me: &str,
    now_ms: u64,
    group_wait_ms: u64,
) -> BTreeSet<String> {
    let counted = members.iter().filter(|(_, s)| *s != Seen::Gone).count();
    let others = || members.iter().filter(|(n, _)| n != me);
    let lost: Vec<&String> = others()
        .filter(|(_, s)| matches!(s, Seen::Failed | Seen::Suspect))
        .map(|(n, _)| n)
        .collect();
    let some_plain = lost.iter().any(|n| !behind_lost_switches.contains(*n));
    let waiting: Vec<&DownIncident> = down.iter().filter(|d| d.open && !d.announced).collect();
    let (Some(first), Some(newest)) = (
        waiting.iter().map(|d| d.opened_at_ms).min(),
        waiting.iter().map(|d| d.opened_at_ms).max(),
    ) else {
        return BTreeSet::new();
    };
    // Still to settle: a suspect, or a member listed alive that has not been heard from (no
    // status sample) since the first down: on a side that really holds it, its samples keep
    // coming; to a cut-off node, nobody's do.
    let heard_since_first = |name: &String| last_heard_ms.get(name).is_some_and(|t| *t > first);
    let rest_pending =
        others().any(|(n, s)| *s == Seen::Suspect || (*s == Seen::Alive && !heard_since_first(n)));
    let settling = rest_pending || now_ms.saturating_sub(newest) < group_wait_ms;
    if lost.len() * 2 <= counted
        || !some_plain
        || !settling
        || now_ms.saturating_sub(first) >= CUT_OFF_WAIT_MS
    {
        return BTreeSet::new();
    }
    waiting.iter().map(|d| d.id.clone()).collect()
}

/// One host incident folded into a switch incident, for [`switch_over`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldedHost {
    /// When it was resolved (the host is back), if it is.
    pub resolved_at_ms: Option<u64>,
}

/// Whether a switch incident is over: every folded host is back, or some are and
/// `group_wait` has passed since the first came back (the rest stay down behind a switch
/// that works again).
pub fn switch_over(hosts: &[FoldedHost], now_ms: u64, group_wait_ms: u64) -> bool {
    let back: Vec<u64> = hosts.iter().filter_map(|h| h.resolved_at_ms).collect();
    if back.is_empty() {
        return false;
    }
    back.len() == hosts.len()
        || back
            .iter()
            .min()
            .is_some_and(|first| now_ms.saturating_sub(*first) >= group_wait_ms)
}

/// Why a fallback leader `me` lost `lost` (more than half of the members), from the map: one
/// line per switch or subnet they share with it or fill entirely. Empty when the map knows
/// nothing useful.
pub fn loss_explanation(me: &str, lost: &BTreeSet<String>, map: &TopologyMap) -> Vec<String> {
    let mut lines = Vec::new();
    let mut explained: BTreeSet<String> = BTreeSet::new();
    for switch in map.switches() {
        let behind: BTreeSet<String> = switch.hosts.intersection(lost).cloned().collect();
        if behind.is_empty() {
            continue;
        }
        let list = behind.iter().cloned().collect::<Vec<_>>().join(", ");
        if switch.hosts.contains(me) {
            lines.push(format!(
                "{me} still hears switch {} but reaches none of {list} behind it: most likely \
                 {me}'s own link or port is cut off, not {} hosts down",
                switch.label,
                behind.len()
            ));
        } else if behind.len() == switch.hosts.len() {
            lines.push(format!(
                "lost switch {} and every host behind it ({list})",
                switch.label
            ));
        } else {
            lines.push(format!("lost {list} behind switch {}", switch.label));
        }
        explained.extend(behind);
    }
    let rest: BTreeSet<String> = lost.difference(&explained).cloned().collect();
    if rest.is_empty() {
        return lines;
    }
    for subnet in map.subnets_of(me) {
        let peers: BTreeSet<String> = map
            .hosts_in(&subnet)
            .into_iter()
            .filter(|h| h != me)
            .collect();
        let gone: Vec<String> = peers.intersection(&rest).cloned().collect();
        if !gone.is_empty() && gone.len() == peers.len() {
            lines.push(format!(
                "{me} reaches no other host of its subnet {subnet} ({}): most likely {me} is cut off",
                gone.join(", ")
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests;
