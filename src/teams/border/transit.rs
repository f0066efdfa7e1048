//! Transit links' link state: this border's advertisement (its transit links that are up),
//! flooding the advertisements it learns, and the routes they give.
//!
//! An advertisement learnt for the first time (a higher seq than held, [`LinkStateDb::accept`])
//! is sent on every other transit link and gossiped inside the team, so every border of every
//! team connected by transit links holds the same database; one already held stops there.
//! Our own is made again whenever our set of transit links that are up changes, and every
//! [`REFRESH_MS`] (a border that starts later learns it then). When the routes change, every
//! transit link gets a full sync, which moves each alert to its new path: the receivers drop
//! what the old path no longer sends.

use super::{Border, Phase};
use crate::teams::routes::{LinkStateDb, Routes};
use crate::teams::wire::{LinkFrame, LinkMode, LinkStateAd};
use rover_storage::Alert;

/// Our advertisement is made again this often even when nothing changed.
pub const REFRESH_MS: u64 = 30_000;

/// The link state as one border holds it.
#[derive(Debug, Default)]
pub struct LinkState {
    db: LinkStateDb,
    routes: Routes,
    own_seq: u64,
    own_links: Option<Vec<String>>,
    made_ms: u64,
    /// Advertisements to gossip inside the team, drained by the owner loop.
    pub to_gossip: Vec<LinkStateAd>,
}

impl LinkState {
    /// The routes in force.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }
}

impl Border {
    /// Makes our advertisement again if our transit links that are up changed, or it is due.
    pub(super) fn advertise(&mut self, table: &[Alert], now_ms: u64) {
        let links: Vec<String> = (0..self.links.len())
            .filter(|&i| self.links[i].phase == Phase::Up && self.mode(i) == LinkMode::Transit)
            .map(|i| self.links[i].config.team.clone())
            .collect();
        let state = &mut self.link_state;
        let changed = state.own_links.as_ref() != Some(&links);
        if !changed && now_ms.saturating_sub(state.made_ms) < REFRESH_MS {
            return;
        }
        if !changed && links.is_empty() && state.own_links.is_some() {
            // Nothing to say and it was said: no refresh for a border without transit links.
            state.made_ms = now_ms;
            return;
        }
        state.own_seq = now_ms.max(state.own_seq + 1);
        state.own_links = Some(links.clone());
        state.made_ms = now_ms;
        let Ok(border) = self.hop.parse() else { return };
        let ad = LinkStateAd::new(&border, state.own_seq, links);
        self.learn(ad, None, table);
    }

    /// An advertisement heard on link `from` (or by gossip inside the team: `None`).
    pub(super) fn learn(&mut self, ad: LinkStateAd, from: Option<usize>, table: &[Alert]) {
        if !self.link_state.db.accept(ad.clone()) {
            return;
        }
        for index in 0..self.links.len() {
            if Some(index) != from && self.transit_up(index) {
                self.push(index, &LinkFrame::LinkState(ad.clone()));
            }
        }
        self.link_state.to_gossip.push(ad);
        let routes = Routes::compute(&self.link_state.db);
        if routes != self.link_state.routes {
            tracing::info!("team routes changed");
            self.link_state.routes = routes;
            for index in 0..self.links.len() {
                if self.transit_up(index) {
                    self.full_sync(index, table);
                }
            }
        }
    }

    /// Sends every advertisement we hold on link `index` (when it comes up).
    pub(super) fn send_link_state(&mut self, index: usize) {
        if !self.transit_up(index) {
            return;
        }
        let ads: Vec<LinkStateAd> = self.link_state.db.ads().cloned().collect();
        for ad in ads {
            if !self.push(index, &LinkFrame::LinkState(ad)) {
                return;
            }
        }
    }

    fn transit_up(&self, index: usize) -> bool {
        self.links[index].conn.is_some() && self.mode(index) == LinkMode::Transit
    }
}
