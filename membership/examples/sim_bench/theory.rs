//! What SWIM predicts for a cluster of N nodes, derived from the foca configuration the nodes
//! actually run with (`Tunables::foca_config`), in probe periods.
//!
//! - Detection. Every node probes one member per period (foca walks its member list in a
//!   shuffled round-robin), so a given member is probed by the N−1 others at a rate of
//!   λ = −(N−1)·ln(1 − 1/(N−1)) ≈ 1 probe per period. Probe phases are not synchronised and the
//!   kill happens at a random instant, so the wait for the first probe is exponential with mean
//!   1/λ ≈ 1 period and median ln 2/λ ≈ 0.69 period (the benchmark reports medians, so both
//!   are given). foca turns a failed probe into a suspicion at the prober's next tick, one
//!   period after the probe started. Then the suspicion, then the "down" spreads.
//! - Suspicion (Lifeguard, `rover_membership::suspicion`): the N − 2 other survivors each probe
//!   the victim at about 1/(N − 1) per period, so confirmations come at λc = (N − 2)/(N − 1)
//!   per period, the k-th after about k/λc periods (plus a gossip round for its report to
//!   arrive); the timeout reaches its minimum then, so the suspicion lasts about
//!   max(min, k/λc + 1 round). Plain SWIM waits a fixed timeout: memberlist's minimum
//!   (4 log10 N periods on lan), printed as `swim_bound` beside it.
//! - Eager gossip: a node that learns of a join or death gossips to `num_indirect_probes`
//!   members within `EAGER_GOSSIP_DELAY`: a wave of log_fe(N) hops of that delay plus the link
//!   delay reaches all but e^−fe of the nodes; those learn at the next periodic round.
//!   (The SWIM paper's 1/(1 − (1 − 1/(N−1))^(N−1)) ≈ 1.58 periods counts whole synchronous
//!   periods, the one ending in detection included, from a failure at a period's start; from a
//!   random instant it is ≈ 2.08, against 2.0 here.)
//! - Dissemination. An update spreads like an epidemic in gossip rounds of
//!   `periodic_gossip.frequency`: in each round a node holding it sends it to
//!   `periodic_gossip.num_members` random members, and also piggybacks it on its probe traffic
//!   (one ping and, on average, one ack per period). Fanout per round f = num_members +
//!   2 / rounds_per_period. Rounds ≈ log_f(N) (the figure asked for). Gossip ticks of
//!   different nodes are not synchronised, so a node starts passing an update on a fraction of
//!   a round after learning it: the spread is closer to continuous-time push gossip, where
//!   each holder sends β = f · rounds_per_period copies per period and all N know after about
//!   2 ln(N)/β periods (ln(N)/β to reach most nodes, as long again for the last ones to be
//!   hit). Both are printed. (Each node sends an update only `max_transmissions` times, about
//!   one period's worth, which hardly slows it: every node is still sent ~max_transmissions
//!   copies, so all but e^-max_transmissions of nodes are reached.)
//! - Idle traffic. One ping and one ack per node per period; periodic gossip sends nothing
//!   while a node has no update to spread; one Announce and its Feed reply every
//!   `periodic_announce.frequency`; no announce to down members while none is down.

use std::time::Duration;

use foca::{Codec, Header, Message, PostcardCodec};
use rover_membership::core::EAGER_GOSSIP_DELAY;
use rover_membership::envelope::ENVELOPE_OVERHEAD;
use rover_membership::{NodeIdentity, Tunables};
use serde_json::{json, Value};

/// Bytes foca adds after a header that carries piggybacked updates: the u16 update count.
const UPDATE_COUNT_LEN: usize = 2;

/// Which average of a predicted distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Average {
    /// The middle value, to compare with the medians the benchmark reports.
    Median,
    /// The expected value, the figure SWIM's analysis gives.
    Mean,
}

/// The predicted figures for one cluster size. Times are in probe periods.
#[derive(Debug, Clone)]
pub struct Theory {
    /// Probe period of the profile.
    pub probe_period: Duration,
    /// Periodic gossip rounds per probe period.
    pub gossip_rounds_per_period: f64,
    /// Members an update holder sends to per gossip round (periodic gossip + piggybacking).
    pub gossip_fanout: f64,
    /// How many times each node sends each update it learnt.
    pub max_transmissions: u8,
    /// Plain SWIM's fixed suspicion timeout (memberlist's minimum) in periods.
    pub swim_suspicion_periods: f64,
    /// Lifeguard's suspicion timeout once confirmed, in periods.
    pub suspicion_min_periods: f64,
    /// Lifeguard's suspicion timeout with no confirmation (foca's `suspect_to_down_after`).
    pub suspicion_max_periods: f64,
    /// Confirmations that bring the timeout to its minimum.
    pub expected_confirmations: u32,
    /// Confirmations per period after a death: the other survivors' probes of the victim.
    pub confirmation_rate: f64,
    /// Members an eager gossip goes to.
    pub eager_fanout: f64,
    /// One hop of the eager wave: `EAGER_GOSSIP_DELAY` + the simulated link delay.
    pub eager_hop_periods: f64,
    /// Expected wait from a kill to the first probe of the victim (1/λ).
    pub first_probe_periods: f64,
    /// Median wait from a kill to the first probe of the victim (ln 2/λ).
    pub first_probe_median_periods: f64,
    /// The SWIM paper's expected number of periods until first detection.
    pub swim_paper_detection_periods: f64,
    /// Periods for an update to reach N nodes: log_f(N) rounds.
    pub dissemination_periods: f64,
    /// Periods for an update to reach N nodes by continuous-time push: 2 ln(N) / β.
    pub async_push_periods: f64,
    /// Sealed size of a ping or ack that carries no update.
    pub probe_datagram_bytes: usize,
    /// Sealed size of an Announce.
    pub announce_bytes: usize,
    /// Sealed size of a Feed (it is filled with members up to the packet size limit).
    pub feed_bytes: usize,
    /// Announce + Feed exchanges each node starts per period.
    pub announces_per_period: f64,
    /// Cluster size.
    pub nodes: usize,
}

impl Theory {
    /// The figures for updates spreading to `n` nodes, with datagram sizes computed for
    /// identities like `sample` (the sizes of names and addresses matter).
    pub fn new(n: usize, tunables: &Tunables, sample: &NodeIdentity) -> Self {
        let config = tunables.foca_config(n);
        let period = config.probe_period.as_secs_f64();
        let (rounds_per_period, gossip_members) = config
            .periodic_gossip
            .as_ref()
            .map(|p| {
                (
                    period / p.frequency.as_secs_f64(),
                    p.num_members.get() as f64,
                )
            })
            .unwrap_or((1.0, 0.0));
        // Piggybacking: the ping a node sends and the ack it sends back each period.
        let fanout = gossip_members + 2.0 / rounds_per_period;
        let nodes = n as f64;
        let others = (nodes - 1.0).max(1.0);
        let probe_rate = match -others * (1.0 - 1.0 / others).ln() {
            rate if rate.is_finite() && rate > 0.0 => rate,
            // Two nodes: the other one probes us every period.
            _ => 1.0,
        };
        let timeouts = tunables.suspicion_timeouts(n);
        // The simulation's links: 1 ms + up to 1 ms of jitter.
        let eager_hop = EAGER_GOSSIP_DELAY.as_secs_f64() + 0.0015;
        let announces_per_period = config
            .periodic_announce
            .as_ref()
            .map(|p| period / p.frequency.as_secs_f64() * p.num_members.get() as f64)
            .unwrap_or(0.0);
        Self {
            probe_period: config.probe_period,
            gossip_rounds_per_period: rounds_per_period,
            gossip_fanout: fanout,
            max_transmissions: config.max_transmissions.get(),
            swim_suspicion_periods: tunables.swim_suspicion_timeout(n).as_secs_f64() / period,
            suspicion_min_periods: timeouts.min.as_secs_f64() / period,
            suspicion_max_periods: timeouts.max.as_secs_f64() / period,
            expected_confirmations: timeouts.expected_confirmations,
            confirmation_rate: (nodes - 2.0).max(0.0) / others,
            eager_fanout: config.num_indirect_probes.get() as f64,
            eager_hop_periods: eager_hop / period,
            first_probe_periods: 1.0 / probe_rate,
            first_probe_median_periods: std::f64::consts::LN_2 / probe_rate,
            swim_paper_detection_periods: 1.0 / (1.0 - (1.0 - 1.0 / others).powf(others)),
            dissemination_periods: nodes.ln() / fanout.ln() / rounds_per_period,
            async_push_periods: 2.0 * nodes.ln() / (fanout * rounds_per_period),
            probe_datagram_bytes: sealed_header_len(sample, Message::Ping(0)) + UPDATE_COUNT_LEN,
            announce_bytes: sealed_header_len(sample, Message::Announce),
            feed_bytes: config.max_packet_size.get() + ENVELOPE_OVERHEAD,
            announces_per_period,
            nodes: n,
        }
    }

    /// Kill → first suspicion: the wait for a first probe, then one period. The median, or
    /// with `Average::Mean` the expected value.
    pub fn first_suspicion(&self, average: Average) -> f64 {
        let first_probe = match average {
            Average::Median => self.first_probe_median_periods,
            Average::Mean => self.first_probe_periods,
        };
        first_probe + 1.0
    }

    /// How long a confirmed death stays a suspicion (see the module docs).
    pub fn suspicion_periods(&self) -> f64 {
        let k = f64::from(self.expected_confirmations);
        if k == 0.0 || self.confirmation_rate <= 0.0 {
            return self.suspicion_min_periods;
        }
        let confirmed = k / self.confirmation_rate + 1.0 / self.gossip_rounds_per_period;
        confirmed
            .max(self.suspicion_min_periods)
            .min(self.suspicion_max_periods)
    }

    /// Kill → first node declaring it down.
    pub fn first_down(&self, average: Average) -> f64 {
        self.first_suspicion(average) + self.suspicion_periods()
    }

    /// Kill → every survivor knows it down.
    pub fn all_know_down(&self, average: Average) -> f64 {
        self.first_down(average) + self.eager_dissemination_periods()
    }

    /// Plain SWIM, kill → every survivor knows it down: first suspicion + the fixed timeout +
    /// log_f(N) periodic rounds.
    pub fn swim_all_know_down(&self, average: Average) -> f64 {
        self.first_suspicion(average) + self.swim_suspicion_periods + self.dissemination_periods
    }

    /// Plain SWIM, kill → first down.
    pub fn swim_first_down(&self, average: Average) -> f64 {
        self.first_suspicion(average) + self.swim_suspicion_periods
    }

    /// News spread by eager gossip (see the module docs).
    pub fn eager_dissemination_periods(&self) -> f64 {
        let nodes = self.nodes as f64;
        let wave = nodes.ln() / self.eager_fanout.ln() * self.eager_hop_periods;
        let missed = nodes * (-self.eager_fanout).exp();
        wave + if missed >= 1.0 {
            1.0 / self.gossip_rounds_per_period
        } else {
            0.0
        }
    }

    /// Join → every member knows the new node.
    pub fn all_know_join(&self) -> f64 {
        self.eager_dissemination_periods()
    }

    /// Datagrams each node sends per period when nothing happens.
    pub fn idle_datagrams(&self) -> f64 {
        2.0 + 2.0 * self.announces_per_period
    }

    /// Bytes each node sends per period when nothing happens (a Feed counted full).
    pub fn idle_bytes(&self) -> f64 {
        2.0 * self.probe_datagram_bytes as f64
            + self.announces_per_period * (self.announce_bytes + self.feed_bytes) as f64
    }

    /// Datagrams beyond idle each node sends to spread `updates` updates: it sends each one
    /// `max_transmissions` times, mostly in periodic gossip (an upper bound: some copies ride
    /// on pings and acks it sends anyway).
    pub fn extra_datagrams(&self, updates: u32) -> f64 {
        f64::from(updates) * f64::from(self.max_transmissions)
    }

    /// Every predicted figure, for a size that could not be measured.
    pub fn predictions(&self) -> Value {
        json!({
            "idle_datagrams_per_node_period": self.idle_datagrams(),
            "idle_bytes_per_node_period": self.idle_bytes(),
            "join_all_know_periods": self.all_know_join(),
            "join_all_know_async_push_periods": self.async_push_periods,
            "death_first_suspicion_periods_median": self.first_suspicion(Average::Median),
            "death_first_suspicion_periods_mean": self.first_suspicion(Average::Mean),
            "death_first_down_periods_median": self.first_down(Average::Median),
            "death_all_know_down_periods_median": self.all_know_down(Average::Median),
            "death_all_know_down_periods_mean": self.all_know_down(Average::Mean),
            "death_all_know_down_swim_bound_periods": self.swim_all_know_down(Average::Median),
            "join_extra_datagrams_per_node": self.extra_datagrams(1),
            "death_extra_datagrams_per_node": self.extra_datagrams(2),
            "derivation": self.derivation(),
        })
    }

    /// How the figures were derived, for the JSON lines.
    pub fn derivation(&self) -> Value {
        json!({
            "probe_period_s": self.probe_period.as_secs_f64(),
            "gossip_rounds_per_period": self.gossip_rounds_per_period,
            "gossip_fanout": self.gossip_fanout,
            "gossip_fanout_from": "periodic_gossip.num_members + (1 ping + 1 ack per period) / rounds per period",
            "max_transmissions": self.max_transmissions,
            "swim_suspicion_periods": self.swim_suspicion_periods,
            "suspicion_min_periods": self.suspicion_min_periods,
            "suspicion_max_periods": self.suspicion_max_periods,
            "expected_confirmations": self.expected_confirmations,
            "confirmation_rate_per_period": self.confirmation_rate,
            "suspicion_periods": self.suspicion_periods(),
            "eager_fanout": self.eager_fanout,
            "eager_hop_periods": self.eager_hop_periods,
            "eager_dissemination_periods": self.eager_dissemination_periods(),
            "first_probe_mean_periods": self.first_probe_periods,
            "first_probe_median_periods": self.first_probe_median_periods,
            "swim_paper_first_detection_periods": self.swim_paper_detection_periods,
            "dissemination_log_f_n_periods": self.dissemination_periods,
            "dissemination_async_push_periods": self.async_push_periods,
        })
    }
}

/// Sealed length of a header from `sample` to a member like it.
fn sealed_header_len(sample: &NodeIdentity, message: Message<NodeIdentity>) -> usize {
    let header = Header {
        src: sample.clone(),
        src_incarnation: 0,
        dst: sample.clone(),
        message,
    };
    let mut buf = Vec::new();
    // Encoding into a Vec cannot run out of room; a failure would only shrink the estimate.
    let _ = PostcardCodec.encode_header(&header, &mut buf);
    buf.len() + ENVELOPE_OVERHEAD
}
