//! Lifeguard in the core (Dadgar et al. 2017, what memberlist implements), on top of foca:
//!
//! - local health awareness ([`crate::local_health`]): the core reads its own pings and the
//!   acks that answer them, counts foca's failed probes, and stretches foca's probe timers by
//!   the health multiplier;
//! - dynamic suspicion ([`crate::suspicion`]): a failed probe of ours is published as a
//!   [`SuspicionReport`]; every node times every suspicion it hears of, shorter the more
//!   members confirmed it, and declares the member down itself when the time runs out;
//! - telling the suspect at once (the buddy system): the prober sends the suspect a datagram
//!   carrying the suspicion and its report right away, so that it refutes before the gossip
//!   even reaches it. A node that reads a report naming itself refutes (if foca did not
//!   already) and tells the reporter directly, so that the node that settles an unconfirmed
//!   suspicion (its raiser, see [`crate::suspicion`]) is sure to hear the refutation.
//!
//! The timers that settle suspicions are in `suspicion_timers.rs`.
//!

use std::time::Duration;

use bytes::BufMut;
use foca::{Codec, Header, Member, Message, PostcardCodec, State};

use super::MembershipCore;
use crate::broadcast::{BroadcastItem, Topic};
use crate::local_health::LocalHealth;
use crate::member_id::MemberId;
use crate::peek::Peeked;
use crate::suspicion::{
    ReportedSuspect, SuspicionReport, SuspicionTimeouts, Suspicions, MAX_REPORTED,
};

/// What the core keeps for Lifeguard.
#[derive(Debug)]
pub(super) struct Lifeguard {
    pub(super) health: LocalHealth,
    pub(super) suspicions: Suspicions,
    /// What we suspect ourselves, the most recent first: the content of our report.
    pub(super) own: Vec<ReportedSuspect>,
    /// Version of our last report (strictly increasing).
    report_version: u64,
    /// Probe number of our last ping, until it is acked.
    pub(super) probe_in_flight: Option<u8>,
    /// The deadline a `SuspicionDeadline` timer is armed for.
    pub(super) deadline_armed_ms: Option<u64>,
    /// Our SWIM incarnation as far as we know it (foca does not say): the highest our own
    /// datagrams carried, or what a refutation of ours raised it to.
    own_incarnation: u16,
}

impl Lifeguard {
    /// The state of the node called `own_name`.
    pub(super) fn new(own_name: &str) -> Self {
        Self {
            health: LocalHealth::default(),
            suspicions: Suspicions::new(own_name),
            own: Vec::new(),
            report_version: 0,
            probe_in_flight: None,
            deadline_armed_ms: None,
            own_incarnation: 0,
        }
    }
}

impl MembershipCore {
    /// The local health score (0 = healthy, see [`crate::local_health`]).
    pub fn local_health(&self) -> u32 {
        self.lifeguard.health.score()
    }

    /// Confirmations beyond the first report of the suspicion of `name`, if this node tracks
    /// one.
    pub fn suspicion_confirmations(&self, name: &str) -> Option<u32> {
        self.lifeguard.suspicions.confirmations(name)
    }

    pub(super) fn suspicion_timeouts(&self) -> SuspicionTimeouts {
        self.tunables.suspicion_timeouts(self.sized_for)
    }

    /// A datagram for us, before foca reads it: an ack of our probe improves our health.
    pub(super) fn observe_incoming(&mut self, peeked: &Peeked<'_>) {
        let acked = match &peeked.message {
            Message::Ack(number)
            | Message::ForwardedAck {
                probe_number: number,
                ..
            } => Some(*number),
            _ => None,
        };
        if acked.is_some() && acked == self.lifeguard.probe_in_flight {
            self.lifeguard.probe_in_flight = None;
            self.lifeguard.health.probe_acked();
        }
    }

    /// A datagram foca sends: it carries our incarnation; a ping starts a probe of ours.
    pub(super) fn observe_outgoing(&mut self, peeked: &Peeked<'_>) {
        let lifeguard = &mut self.lifeguard;
        lifeguard.own_incarnation = lifeguard.own_incarnation.max(peeked.src_incarnation);
        if let Message::Ping(number) = peeked.message {
            lifeguard.probe_in_flight = Some(number);
            self.counters.probes_sent += 1;
        }
    }

    /// Stretches foca's probe timers by the local health multiplier.
    pub(super) fn probe_delay(&self, timer: &super::SwimTimer, after: Duration) -> Duration {
        match timer {
            foca::Timer::ProbeRandomMember(_) | foca::Timer::SendIndirectProbe { .. } => {
                self.lifeguard.health.stretch(after)
            }
            _ => after,
        }
    }

    /// foca armed a suspect-to-down timer: our probe of `id` failed. Count it against our
    /// health, time the suspicion, tell the cluster and the suspect.
    pub(super) fn on_own_probe_failed(&mut self, id: &MemberId, incarnation: u16) {
        self.lifeguard.health.probe_failed();
        self.counters.probes_failed += 1;
        let suspect = ReportedSuspect {
            name: id.name().to_owned(),
            generation: id.generation(),
            incarnation,
        };
        let own_name = self.foca.identity().name().to_owned();
        let timeouts = self.suspicion_timeouts();
        // Once k others confirmed, one more report changes no timer: do not spread it.
        let confirmed = self.lifeguard.suspicions.confirmations(&suspect.name)
            >= Some(timeouts.expected_confirmations);
        let news = self.record_suspicion(&suspect, &own_name, &timeouts);
        let report = if self.lifeguard.own.first() == Some(&suspect) || (confirmed && !news) {
            self.report_item(self.lifeguard.report_version)
        } else {
            let own = &mut self.lifeguard.own;
            own.retain(|s| s.name != suspect.name);
            own.insert(0, suspect);
            own.truncate(MAX_REPORTED);
            self.publish_report()
        };
        let suspicion = Member::new(id.clone(), incarnation, State::Suspect);
        self.send_direct(id, &[suspicion], Some(&report));
        self.arm_suspicion_deadline();
    }

    /// Our report of what we suspect, as it travels (keyed by our name).
    fn report_item(&self, version: u64) -> BroadcastItem {
        let report = SuspicionReport {
            suspects: self.lifeguard.own.clone(),
        };
        BroadcastItem {
            topic: Topic::Suspicion,
            key: self.foca.identity().name().to_owned(),
            version,
            payload: postcard::to_stdvec(&report).unwrap_or_default(),
        }
    }

    /// Queues a new version of our report for dissemination; returns it.
    fn publish_report(&mut self) -> BroadcastItem {
        let version = self.now_ms.max(self.lifeguard.report_version + 1);
        self.lifeguard.report_version = version;
        let item = self.report_item(version);
        if let Err(e) = self.foca.add_broadcast(&item.encode()) {
            tracing::debug!(error = %e, "suspicion report not queued");
        }
        // Our own item is news to the inbox too.
        while self.news.try_recv().is_ok() {}
        item
    }

    /// One datagram to `to` in foca's format, as foca would gossip it (our identity and
    /// incarnation in the header), carrying `updates` and, if given, a custom broadcast.
    pub(super) fn send_direct(
        &mut self,
        to: &MemberId,
        updates: &[Member<MemberId>],
        item: Option<&BroadcastItem>,
    ) {
        let header = Header {
            src: self.foca.identity().clone(),
            src_incarnation: self.lifeguard.own_incarnation,
            dst: to.clone(),
            message: Message::Gossip,
        };
        let mut plaintext = Vec::new();
        let mut encoded = PostcardCodec.encode_header(&header, &mut plaintext);
        plaintext.put_u16(u16::try_from(updates.len()).unwrap_or(0));
        for update in updates {
            encoded = encoded.and_then(|()| PostcardCodec.encode_member(update, &mut plaintext));
        }
        if let Err(e) = encoded {
            tracing::debug!(error = %e, to = %to.name(), "cannot encode a direct datagram");
            return;
        }
        if let Some(item) = item {
            let bytes = item.encode();
            if let Ok(len) = u16::try_from(bytes.len()) {
                plaintext.put_u16(len);
                plaintext.extend_from_slice(&bytes);
            }
        }
        self.send_sealed(to.socket_addr(), &plaintext);
    }

    /// A report from another member: confirm its suspicions here; one naming us means we are
    /// suspected, so refute.
    pub(super) fn on_report(&mut self, item: &BroadcastItem) {
        let Ok(report) = postcard::from_bytes::<SuspicionReport>(&item.payload) else {
            tracing::debug!(reporter = %item.key, "undecodable suspicion report dropped");
            return;
        };
        let me = self.foca.identity().clone();
        if item.key == me.name() {
            return;
        }
        let timeouts = self.suspicion_timeouts();
        for suspect in report.suspects.iter().take(MAX_REPORTED) {
            if suspect.name == me.name() {
                if suspect.generation == me.generation() {
                    self.refute(&me, suspect.incarnation, &item.key);
                }
                continue;
            }
            self.record_suspicion(suspect, &item.key, &timeouts);
        }
        self.arm_suspicion_deadline();
    }

    /// `reporter` suspects us at `incarnation`: unless foca refuted already, hand it the
    /// suspicion so that it does (raising our incarnation past it); then tell the reporter.
    fn refute(&mut self, me: &MemberId, incarnation: u16, reporter: &str) {
        self.lifeguard.health.suspected_us();
        if incarnation >= self.lifeguard.own_incarnation {
            let suspicion = Member::new(me.clone(), incarnation, State::Suspect);
            if let Err(e) =
                self.foca
                    .apply_many(std::iter::once(suspicion), true, &mut self.runtime)
            {
                tracing::debug!(error = %e, "refuting a suspicion failed");
            }
            self.lifeguard.own_incarnation = incarnation.saturating_add(1);
            self.report_refuted(me.name(), self.lifeguard.own_incarnation);
        }
        let reporter = self
            .member_named(reporter)
            .filter(|m| m.state() != State::Down)
            .map(|m| m.id().clone());
        if let Some(reporter) = reporter {
            self.send_direct(&reporter, &[], None);
        }
    }
}
