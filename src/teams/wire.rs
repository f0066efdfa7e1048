//! The frames a border link carries, one sealed message each, postcard-encoded.
//!
//! postcard is not self-describing: the field order of a struct and the variant order of an
//! enum are the wire format. Append new variants only together with a [`PROTOCOL`] bump, and
//! never reorder. [`decode`] refuses anything larger than [`MAX_FRAME_BYTES`] before parsing
//! it, then checks what it parsed (names, paths, lists); each refusal is a [`FrameError`]
//! with a stable [`FrameError::reason`] for the per-reason drop counters.

use std::fmt;
use std::str::FromStr;

use rover_storage::{Alert, AlertKey};
use serde::{Deserialize, Serialize};

use super::hop::{is_valid_name, Hop, MAX_NAME_LEN};
use crate::alerts::table::MAX_SUMMARY_BYTES;
use crate::control_chars;

/// The link protocol version this build speaks (sent in [`LinkFrame::Hello`]).
pub const PROTOCOL: u8 = 1;

/// The largest frame [`decode`] reads. The largest valid frames (an alert with a full path,
/// an ad with [`MAX_AD_LINKS`] links of the longest names) stay under it.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;

/// The most hops an alert's path may hold.
pub const MAX_PATH_HOPS: usize = 16;

/// The most links one link-state ad may list.
pub const MAX_AD_LINKS: usize = 64;

/// How a link is used, as each end configures it and says in its hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkMode {
    /// Private: only the two teams' own alerts cross it, nothing is passed on to a third team.
    #[default]
    Direct,
    /// The link also carries other teams' alerts along the routes of the link state.
    Transit,
}

impl LinkMode {
    /// The mode a link runs in when we ask for `self` and the peer for `theirs`: transit only
    /// if both ask for it.
    pub fn agreed(self, theirs: LinkMode) -> LinkMode {
        match (self, theirs) {
            (LinkMode::Transit, LinkMode::Transit) => LinkMode::Transit,
            _ => LinkMode::Direct,
        }
    }
}

impl fmt::Display for LinkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkMode::Direct => "direct",
            LinkMode::Transit => "transit",
        })
    }
}

/// A text that names no [`LinkMode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("link mode {0:?}: use direct or transit")]
pub struct UnknownLinkMode(pub String);

impl FromStr for LinkMode {
    type Err = UnknownLinkMode;

    fn from_str(text: &str) -> Result<LinkMode, UnknownLinkMode> {
        match text {
            "direct" => Ok(LinkMode::Direct),
            "transit" => Ok(LinkMode::Transit),
            other => Err(UnknownLinkMode(other.to_owned())),
        }
    }
}

/// One message on a border link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkFrame {
    /// The first frame each end sends: who it is and how it wants the link used.
    Hello {
        /// The sender's [`PROTOCOL`].
        protocol: u8,
        /// The sender's team.
        team: String,
        /// The sender's host name.
        host: String,
        /// The mode the sender is configured with (see [`LinkMode::agreed`]).
        mode: LinkMode,
    },
    /// Keeps an idle link alive.
    Heartbeat,
    /// Adds or updates one alert; its path ends with the sending border.
    UpdateAlert(Alert),
    /// The alert, up to this version, is gone at its origin.
    RemoveAlert {
        /// The alert.
        key: AlertKey,
        /// The version it was removed at.
        version: u64,
    },
    /// Everything this link carried of (or through) `team` is gone: the sender lost it.
    RemoveTeamAlerts {
        /// The team lost.
        team: String,
    },
    /// A full sync begins: what follows until [`LinkFrame::SyncEnd`] is all the link carries.
    SyncStart,
    /// The full sync is over.
    SyncEnd {
        /// How many alerts it sent.
        count: u32,
    },
    /// A border's transit links, flooded to every border.
    LinkState(LinkStateAd),
}

/// What one border says about its transit links (see `routes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStateAd {
    /// The border, as a hop `team/host`.
    pub border: String,
    /// Raised by the border for each new ad (a timestamp, so a restart outranks the old ads).
    pub seq: u64,
    /// The peer teams of its transit links that are up, sorted, each once.
    pub links: Vec<String>,
}

impl LinkStateAd {
    /// The ad of `border` at `seq` listing `links` (sorted and deduplicated here).
    pub fn new(border: &Hop, seq: u64, links: impl IntoIterator<Item = String>) -> LinkStateAd {
        let mut links: Vec<String> = links.into_iter().collect();
        links.sort();
        links.dedup();
        LinkStateAd {
            border: border.to_string(),
            seq,
            links,
        }
    }
}

/// Why a received frame was dropped. Nothing of a refused frame is used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Longer than [`MAX_FRAME_BYTES`]; not parsed.
    #[error("frame of {0} bytes exceeds {MAX_FRAME_BYTES}")]
    Oversized(usize),
    /// Not a [`LinkFrame`].
    #[error("undecodable frame")]
    Undecodable,
    /// A frame followed by more bytes.
    #[error("{0} bytes after the frame")]
    TrailingBytes(usize),
    /// A team, host or alert name that is not 1 to 128 of `A-Z a-z 0-9 - _ .`.
    #[error("invalid {0} name")]
    BadName(&'static str),
    /// A summary longer than the alert table keeps, or holding control characters.
    #[error("invalid summary")]
    BadSummary,
    /// A path of more than [`MAX_PATH_HOPS`] hops.
    #[error("path of {0} hops exceeds {MAX_PATH_HOPS}")]
    PathTooLong(usize),
    /// A path entry that is not a hop `team/host`.
    #[error("path entry is not team/host")]
    BadPath,
    /// An ad whose border is not a hop `team/host`.
    #[error("link-state border is not team/host")]
    BadBorder,
    /// An ad of more than [`MAX_AD_LINKS`] links.
    #[error("link-state ad of {0} links exceeds {MAX_AD_LINKS}")]
    TooManyLinks(usize),
    /// An ad whose links are not valid team names, sorted, each once.
    #[error("link-state links are not sorted unique team names")]
    BadLinks,
}

impl FrameError {
    /// Every [`FrameError::reason`], to set up counters.
    pub const REASONS: [&'static str; 10] = [
        "oversized",
        "undecodable",
        "trailing_bytes",
        "bad_name",
        "bad_summary",
        "path_too_long",
        "bad_path",
        "bad_border",
        "too_many_links",
        "bad_links",
    ];

    /// A short stable name of the refusal, for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::Oversized(_) => "oversized",
            FrameError::Undecodable => "undecodable",
            FrameError::TrailingBytes(_) => "trailing_bytes",
            FrameError::BadName(_) => "bad_name",
            FrameError::BadSummary => "bad_summary",
            FrameError::PathTooLong(_) => "path_too_long",
            FrameError::BadPath => "bad_path",
            FrameError::BadBorder => "bad_border",
            FrameError::TooManyLinks(_) => "too_many_links",
            FrameError::BadLinks => "bad_links",
        }
    }
}

/// The bytes of `frame`.
pub fn encode(frame: &LinkFrame) -> Vec<u8> {
    // Serializing into a Vec cannot fail for these types (no maps, no unsized sequences).
    postcard::to_stdvec(frame).unwrap_or_default()
}

/// The frame in `bytes`, checked (see [`check_frame`]).
pub fn decode(bytes: &[u8]) -> Result<LinkFrame, FrameError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(FrameError::Oversized(bytes.len()));
    }
    let (frame, rest) =
        postcard::take_from_bytes::<LinkFrame>(bytes).map_err(|_| FrameError::Undecodable)?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes(rest.len()));
    }
    check_frame(&frame)?;
    Ok(frame)
}

/// Checks what a decoded frame holds: valid names, an alert's summary and path, an ad's
/// border and links. Whether the frame may come from this link is `rules`'s question.
pub fn check_frame(frame: &LinkFrame) -> Result<(), FrameError> {
    match frame {
        LinkFrame::Hello { team, host, .. } => {
            check_name(team, "team")?;
            check_name(host, "host")
        }
        LinkFrame::Heartbeat | LinkFrame::SyncStart | LinkFrame::SyncEnd { .. } => Ok(()),
        LinkFrame::UpdateAlert(alert) => check_alert(alert),
        LinkFrame::RemoveAlert { key, .. } => check_key(key),
        LinkFrame::RemoveTeamAlerts { team } => check_name(team, "team"),
        LinkFrame::LinkState(ad) => check_ad(ad),
    }
}

/// Checks an alert as received: its key, summary and path.
pub fn check_alert(alert: &Alert) -> Result<(), FrameError> {
    check_name(&alert.team, "team")?;
    check_name(&alert.host, "host")?;
    check_alert_name(&alert.name)?;
    if alert.summary.len() > MAX_SUMMARY_BYTES || control_chars::has_control(&alert.summary) {
        return Err(FrameError::BadSummary);
    }
    if alert.path.len() > MAX_PATH_HOPS {
        return Err(FrameError::PathTooLong(alert.path.len()));
    }
    if alert.path.iter().any(|hop| hop.parse::<Hop>().is_err()) {
        return Err(FrameError::BadPath);
    }
    Ok(())
}

fn check_key(key: &AlertKey) -> Result<(), FrameError> {
    check_name(&key.team, "team")?;
    check_name(&key.host, "host")?;
    check_alert_name(&key.name)
}

/// Checks a link-state advertisement (also when it comes by gossip inside the team).
pub fn check_ad(ad: &LinkStateAd) -> Result<(), FrameError> {
    if ad.border.parse::<Hop>().is_err() {
        return Err(FrameError::BadBorder);
    }
    if ad.links.len() > MAX_AD_LINKS {
        return Err(FrameError::TooManyLinks(ad.links.len()));
    }
    let sorted_unique = ad.links.windows(2).all(|pair| pair[0] < pair[1]);
    if !sorted_unique || !ad.links.iter().all(|team| is_valid_name(team)) {
        return Err(FrameError::BadLinks);
    }
    Ok(())
}

/// An alert name is a name, or names joined by `/` (the ROVER alert `team-link/<team>`).
fn check_alert_name(name: &str) -> Result<(), FrameError> {
    if name.len() <= MAX_NAME_LEN && name.split('/').all(is_valid_name) {
        Ok(())
    } else {
        Err(FrameError::BadName("alert"))
    }
}

fn check_name(name: &str, what: &'static str) -> Result<(), FrameError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(FrameError::BadName(what))
    }
}

#[cfg(test)]
mod tests {
    use rover_storage::{AlertState, Severity};

    use super::*;

    fn alert(path: &[&str]) -> Alert {
        Alert {
            team: "far".into(),
            host: "h1".into(),
            name: "disk".into(),
            severity: Severity::Critical,
            summary: "91% used".into(),
            first_seen_ms: 10,
            last_change_ms: 20,
            version: 3,
            state: AlertState::Firing,
            path: path.iter().map(|hop| hop.to_string()).collect(),
        }
    }

    fn every_kind_of_frame() -> Vec<LinkFrame> {
        vec![
            LinkFrame::Hello {
                protocol: PROTOCOL,
                team: "home".into(),
                host: "gw1".into(),
                mode: LinkMode::Transit,
            },
            LinkFrame::Heartbeat,
            LinkFrame::UpdateAlert(alert(&["far/gw", "mid/gw"])),
            LinkFrame::RemoveAlert {
                key: alert(&[]).key(),
                version: 4,
            },
            LinkFrame::RemoveTeamAlerts { team: "far".into() },
            LinkFrame::SyncStart,
            LinkFrame::SyncEnd { count: 7 },
            LinkFrame::LinkState(LinkStateAd::new(
                &Hop::new("home", "gw1").unwrap(),
                99,
                ["mid".to_string(), "far".to_string(), "mid".to_string()],
            )),
        ]
    }

    #[test]
    fn every_frame_decodes_to_what_was_encoded() {
        for frame in every_kind_of_frame() {
            assert_eq!(decode(&encode(&frame)), Ok(frame));
        }
    }

    #[test]
    fn a_link_mode_prints_and_parses_and_transit_needs_both_ends() {
        for mode in [LinkMode::Direct, LinkMode::Transit] {
            assert_eq!(mode.to_string().parse::<LinkMode>(), Ok(mode));
        }
        assert!("Transit".parse::<LinkMode>().is_err());
        assert_eq!(LinkMode::default(), LinkMode::Direct);
        assert_eq!(
            LinkMode::Transit.agreed(LinkMode::Transit),
            LinkMode::Transit
        );
        assert_eq!(LinkMode::Transit.agreed(LinkMode::Direct), LinkMode::Direct);
        assert_eq!(LinkMode::Direct.agreed(LinkMode::Transit), LinkMode::Direct);
    }

    #[test]
    fn the_largest_valid_frames_fit_the_frame_limit() {
        let name = "n".repeat(128);
        let hop = format!("{name}/{name}");
        let mut big = alert(&[]);
        big.team = name.clone();
        big.host = name.clone();
        big.name = name.clone();
        big.summary = "s".repeat(MAX_SUMMARY_BYTES);
        big.path = vec![hop.clone(); MAX_PATH_HOPS];
        (big.first_seen_ms, big.last_change_ms, big.version) = (u64::MAX, u64::MAX, u64::MAX);
        let ad = LinkStateAd {
            border: hop,
            seq: u64::MAX,
            links: (0..MAX_AD_LINKS)
                .map(|i| format!("{i:03}{}", &name[3..]))
                .collect(),
        };
        for frame in [LinkFrame::UpdateAlert(big), LinkFrame::LinkState(ad)] {
            let bytes = encode(&frame);
            assert!(bytes.len() <= MAX_FRAME_BYTES, "{} bytes", bytes.len());
            assert_eq!(decode(&bytes), Ok(frame));
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_before_it_is_parsed() {
        let err = decode(&vec![1; MAX_FRAME_BYTES + 1]).unwrap_err();
        assert_eq!(err, FrameError::Oversized(MAX_FRAME_BYTES + 1));
        assert_eq!(err.reason(), "oversized");
    }

    #[test]
    fn random_and_truncated_bytes_never_panic_and_give_a_known_reason() {
        // A small xorshift generator: the same bytes on every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..5_000 {
            let len = (next() % 300) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 && !bytes.is_empty() {
                bytes[0] %= 8; // a valid variant tag, so the fields get parsed
            }
            if let Err(err) = decode(&bytes) {
                assert!(FrameError::REASONS.contains(&err.reason()), "{err:?}");
            }
        }
        for frame in every_kind_of_frame() {
            let bytes = encode(&frame);
            for cut in 0..bytes.len() {
                let _ = decode(&bytes[..cut]);
            }
        }
    }

    #[test]
    fn a_frame_followed_by_more_bytes_is_refused() {
        let mut bytes = encode(&LinkFrame::Heartbeat);
        bytes.push(0);
        assert_eq!(
            decode(&bytes).map_err(|e| e.reason()),
            Err("trailing_bytes")
        );
    }

    fn reason_of(frame: LinkFrame) -> &'static str {
        decode(&encode(&frame)).unwrap_err().reason()
    }

    #[test]
    fn bad_names_are_refused_in_every_frame_that_carries_one() {
        let hello = LinkFrame::Hello {
            protocol: PROTOCOL,
            team: "home team".into(),
            host: "gw1".into(),
            mode: LinkMode::Direct,
        };
        assert_eq!(reason_of(hello), "bad_name");
        let mut bad_host = alert(&[]);
        bad_host.host = "h1\u{1b}[2J".into();
        assert_eq!(
            reason_of(LinkFrame::UpdateAlert(bad_host.clone())),
            "bad_name"
        );
        let mut empty_name = alert(&[]);
        empty_name.name.clear();
        assert_eq!(reason_of(LinkFrame::UpdateAlert(empty_name)), "bad_name");
        let key = AlertKey {
            host: bad_host.host,
            ..alert(&[]).key()
        };
        assert_eq!(
            reason_of(LinkFrame::RemoveAlert { key, version: 1 }),
            "bad_name"
        );
        let remove_team = LinkFrame::RemoveTeamAlerts {
            team: "x".repeat(129),
        };
        assert_eq!(reason_of(remove_team), "bad_name");
    }

    #[test]
    fn bad_summaries_and_paths_are_refused() {
        let mut long = alert(&[]);
        long.summary = "x".repeat(MAX_SUMMARY_BYTES + 1);
        assert_eq!(reason_of(LinkFrame::UpdateAlert(long)), "bad_summary");
        let mut forged = alert(&[]);
        forged.summary = "ok\rRESOLVED".into();
        assert_eq!(reason_of(LinkFrame::UpdateAlert(forged)), "bad_summary");
        let too_long = alert(&["far/gw"; MAX_PATH_HOPS + 1]);
        assert_eq!(reason_of(LinkFrame::UpdateAlert(too_long)), "path_too_long");
        for hop in ["far", "far/gw/x", "far/", "f r/gw"] {
            let bad = alert(&["far/gw", hop]);
            assert_eq!(reason_of(LinkFrame::UpdateAlert(bad)), "bad_path", "{hop}");
        }
    }

    #[test]
    fn bad_link_state_ads_are_refused() {
        let ad = |border: &str, links: Vec<String>| {
            LinkFrame::LinkState(LinkStateAd {
                border: border.into(),
                seq: 1,
                links,
            })
        };
        assert_eq!(reason_of(ad("home", vec![])), "bad_border");
        let many = (0..=MAX_AD_LINKS).map(|i| format!("t{i:03}")).collect();
        assert_eq!(reason_of(ad("home/gw", many)), "too_many_links");
        let unsorted = vec!["b".to_string(), "a".to_string()];
        assert_eq!(reason_of(ad("home/gw", unsorted)), "bad_links");
        let twice = vec!["a".to_string(), "a".to_string()];
        assert_eq!(reason_of(ad("home/gw", twice)), "bad_links");
        let bad_name = vec!["a b".to_string()];
        assert_eq!(reason_of(ad("home/gw", bad_name)), "bad_links");
    }

    #[test]
    fn every_reason_is_listed_once() {
        let mut reasons = FrameError::REASONS.to_vec();
        reasons.sort();
        reasons.dedup();
        assert_eq!(reasons.len(), FrameError::REASONS.len());
    }
}
