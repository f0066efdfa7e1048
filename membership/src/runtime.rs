//! The tokio driver: one UDP socket, one ordered timer queue and one owner task that holds the
//! [`MembershipCore`] and is fed by an [`Input`] enum. Nothing else touches the core.
//!
//! While members are failed, the task announces to a few of them every second
//! ([`ANNOUNCE_FAILED_EVERY`]), so the two sides of a healed partition find each other within
//! seconds.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::broadcast::BroadcastItem;
use crate::core::{
    CoreSettings, CoreTimer, Counters, MemberEvent, MemberInfo, MemberStatus, MembershipCore,
    Output,
};
use crate::envelope::ENVELOPE_VERSION;
use crate::error::{
    BroadcastError, ForceLeaveError, OpenError, PacketError, RuntimeError, TagError,
};
use crate::identity::NodeIdentity;
use crate::keyring::Keyring;
use crate::tags::Tags;
use crate::timer_queue::TimerQueue;

/// Largest datagram we read; anything a UDP socket can deliver fits, and the envelope check
/// rejects oversized ones before parsing.
const RECV_BUFFER: usize = 65_536;

/// While members are failed, announce to some of them this often: after a partition heals,
/// the first announce that gets through makes the two sides' views merge (each side renews
/// the identities the other declared down), in a few seconds instead of foca's once a minute.
pub const ANNOUNCE_FAILED_EVERY: Duration = Duration::from_secs(1);
/// Members announced to per round (at random among the failed ones).
const ANNOUNCE_FAILED_AT_ONCE: usize = 3;
/// A member failed for longer than this is left to foca's own (slow) announces to down
/// members: a host gone for good costs nothing more.
pub const ANNOUNCE_FAILED_FOR: Duration = Duration::from_secs(600);

/// A request to the owner task.
#[derive(Debug)]
pub enum Input {
    /// Announce to these seeds (and remember them).
    Join(Vec<SocketAddr>),
    /// Leave gracefully; answered once the goodbye datagrams are sent.
    Leave(oneshot::Sender<()>),
    /// The member list, us included.
    Members(oneshot::Sender<Vec<MemberInfo>>),
    /// Identity, counters and seeds in one answer.
    Status(oneshot::Sender<RuntimeStatus>),
    /// Disseminate a custom broadcast.
    Broadcast(BroadcastItem, oneshot::Sender<Result<bool, BroadcastError>>),
    /// Replace the keyring.
    SetKeyring(Keyring),
    /// Replace our tags (re-announced at the next generation).
    SetTags(Tags, oneshot::Sender<Result<(), TagError>>),
    /// Mark a failed member left on every agent.
    ForceLeave(String, oneshot::Sender<Result<(), ForceLeaveError>>),
    /// Stop the task without leaving (the process is going away or tests end).
    Stop,
}

/// What [`Input::Status`] answers.
#[derive(Debug, Clone)]
pub struct RuntimeStatus {
    /// Our current identity.
    pub identity: NodeIdentity,
    /// Traffic and drop counters.
    pub counters: Counters,
    /// Seeds we re-announce to.
    pub seeds: Vec<SocketAddr>,
    /// The keyring in use.
    pub keyring: Keyring,
}

/// A cheap, cloneable handle to the owner task.
#[derive(Debug, Clone)]
pub struct MembershipHandle {
    inputs: mpsc::Sender<Input>,
    local_addr: SocketAddr,
}

impl MembershipHandle {
    /// The address the gossip socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    async fn send(&self, input: Input) -> Result<(), RuntimeError> {
        self.inputs
            .send(input)
            .await
            .map_err(|_| RuntimeError::Stopped)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Input,
    ) -> Result<T, RuntimeError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        rx.await.map_err(|_| RuntimeError::Stopped)
    }

    /// Announce to seeds.
    pub async fn join(&self, seeds: Vec<SocketAddr>) -> Result<(), RuntimeError> {
        self.send(Input::Join(seeds)).await
    }

    /// Leave gracefully.
    pub async fn leave(&self) -> Result<(), RuntimeError> {
        self.ask(Input::Leave).await
    }

    /// Current member list.
    pub async fn members(&self) -> Result<Vec<MemberInfo>, RuntimeError> {
        self.ask(Input::Members).await
    }

    /// Identity, counters, seeds, keyring.
    pub async fn status(&self) -> Result<RuntimeStatus, RuntimeError> {
        self.ask(Input::Status).await
    }

    /// Disseminate a custom broadcast.
    pub async fn broadcast(&self, item: BroadcastItem) -> Result<bool, RuntimeError> {
        let result = self.ask(|tx| Input::Broadcast(item, tx)).await?;
        Ok(result.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "broadcast not queued");
            false
        }))
    }

    /// Replace the keyring.
    pub async fn set_keyring(&self, keyring: Keyring) -> Result<(), RuntimeError> {
        self.send(Input::SetKeyring(keyring)).await
    }

    /// Replace this node's tags at run time (a config reload): the member is re-announced
    /// at the next generation so every agent sees the new tags.
    pub async fn set_tags(&self, tags: Tags) -> Result<Result<(), TagError>, RuntimeError> {
        self.ask(|tx| Input::SetTags(tags, tx)).await
    }

    /// Mark the failed member `name` left on every agent (see
    /// [`MembershipCore::handle_force_leave`]).
    pub async fn force_leave(
        &self,
        name: String,
    ) -> Result<Result<(), ForceLeaveError>, RuntimeError> {
        self.ask(|tx| Input::ForceLeave(name, tx)).await
    }

    /// Stop the owner task without leaving.
    pub async fn stop(&self) -> Result<(), RuntimeError> {
        self.send(Input::Stop).await
    }
}

/// Binds the gossip socket and starts the owner task. Events go to `events` in order.
pub async fn spawn(
    settings: CoreSettings,
    bind: SocketAddr,
    events: mpsc::UnboundedSender<MemberEvent>,
) -> Result<(MembershipHandle, JoinHandle<()>), RuntimeError> {
    let socket = UdpSocket::bind(bind)
        .await
        .map_err(|source| RuntimeError::Bind { addr: bind, source })?;
    let local_addr = socket
        .local_addr()
        .map_err(|source| RuntimeError::Bind { addr: bind, source })?;
    let mut settings = settings;
    if settings.identity.addr.port() == 0 {
        // Bound to port 0: advertise the port the OS picked.
        settings.identity.addr.set_port(local_addr.port());
    }
    let (inputs, rx) = mpsc::channel(256);
    let task = OwnerTask {
        core: MembershipCore::new(settings),
        socket,
        timers: TimerQueue::default(),
        origin: Instant::now(),
        events,
        warned: std::collections::HashMap::new(),
        warned_version: std::collections::HashSet::new(),
        announce_at: None,
        announce_rng: rand::make_rng(),
    };
    let join = tokio::spawn(task.run(rx));
    Ok((MembershipHandle { inputs, local_addr }, join))
}

/// Wall-clock milliseconds since the Unix epoch: the time the core stamps status changes with.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct OwnerTask {
    core: MembershipCore,
    socket: UdpSocket,
    timers: TimerQueue<CoreTimer>,
    origin: Instant,
    events: mpsc::UnboundedSender<MemberEvent>,
    warned: std::collections::HashMap<SocketAddr, Instant>,
    warned_version: std::collections::HashSet<SocketAddr>,
    /// When to announce to failed members next (armed while any are failed).
    announce_at: Option<Instant>,
    announce_rng: rand::rngs::StdRng,
}

impl OwnerTask {
    async fn run(mut self, mut inputs: mpsc::Receiver<Input>) {
        let mut buf = vec![0u8; RECV_BUFFER];
        loop {
            let next_deadline = self.timers.next_deadline().map(|d| self.origin + d);
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => {
                        if let Err(e) = self.core.handle_packet(unix_ms(), &buf[..len]) {
                            self.report_drop(from, len, &e);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "recv failed"),
                },
                _ = sleep_until(next_deadline) => self.fire_due_timers(),
                _ = sleep_until(self.announce_at) => self.announce_to_failed(),
                input = inputs.recv() => match input {
                    Some(Input::Stop) | None => break,
                    Some(input) => self.handle_input(input).await,
                },
            }
            self.flush().await;
        }
    }

    /// Logs a dropped datagram: at debug level always; as a warning once per sender for an
    /// envelope version we do not speak, and at most once a minute per sender when it was sealed
    /// under a key we do not hold (a wrong cluster key is the usual reason a new agent stays
    /// alone) or sent outside the replay window (a clock off by more than the window).
    fn report_drop(&mut self, from: SocketAddr, len: usize, error: &PacketError) {
        tracing::debug!(%from, len, %error, "datagram dropped");
        match error {
            PacketError::Unsealed(OpenError::UnknownVersion(version))
                if self.warned_version.len() < 1024 && self.warned_version.insert(from) =>
            {
                let age = if *version > ENVELOPE_VERSION {
                    "newer"
                } else {
                    "older"
                };
                tracing::warn!(%from, version, ours = ENVELOPE_VERSION, "dropping datagrams of a {age} protocol version: run the same rover-agent version on every member");
            }
            PacketError::Unsealed(OpenError::UnknownKey) if self.due_warning(from) => {
                tracing::warn!(%from, "dropping datagrams sealed with a key we do not hold: is that agent using another cluster key?");
            }
            PacketError::Stale { skew_ms } if self.due_warning(from) => {
                tracing::warn!(%from, skew_ms, "dropping datagrams sent outside the replay window: is that host's clock (or ours) wrong? Clocks must agree within the window (NTP)");
            }
            _ => {}
        }
    }

    /// Whether a warning about `from` is due (at most one a minute per sender).
    fn due_warning(&mut self, from: SocketAddr) -> bool {
        let now = Instant::now();
        if self.warned.len() > 1024 {
            self.warned.clear();
        }
        let due = self
            .warned
            .get(&from)
            .is_none_or(|last| now.duration_since(*last) >= Duration::from_secs(60));
        if due {
            self.warned.insert(from, now);
        }
        due
    }

    /// Announces to a few members failed lately (see [`ANNOUNCE_FAILED_EVERY`]); armed again
    /// while any are. A name also listed alive (it rejoined with a new generation) is skipped.
    /// The addresses join the seeds re-announced to when alone.
    fn announce_to_failed(&mut self) {
        use rand::seq::SliceRandom;
        self.announce_at = None;
        let now = unix_ms();
        let recent = u64::try_from(ANNOUNCE_FAILED_FOR.as_millis()).unwrap_or(u64::MAX);
        let members = self.core.members();
        let alive: std::collections::HashSet<&str> = members
            .iter()
            .filter(|m| matches!(m.status, MemberStatus::Alive | MemberStatus::Suspect))
            .map(|m| m.name.as_str())
            .collect();
        let mut failed: Vec<SocketAddr> = members
            .iter()
            .filter(|m| m.status == MemberStatus::Failed && !alive.contains(m.name.as_str()))
            .filter(|m| m.since_ms.is_none_or(|t| now.saturating_sub(t) < recent))
            .map(|m| m.addr)
            .collect();
        if failed.is_empty() || self.core.has_left() {
            return;
        }
        failed.shuffle(&mut self.announce_rng);
        failed.truncate(ANNOUNCE_FAILED_AT_ONCE);
        self.core.handle_join(now, &failed);
        self.announce_at = Some(Instant::now() + ANNOUNCE_FAILED_EVERY);
    }

    fn fire_due_timers(&mut self) {
        let now = self.origin.elapsed();
        while let Some(timer) = self.timers.pop_due(now) {
            self.core.handle_timer(unix_ms(), timer);
        }
    }

    async fn handle_input(&mut self, input: Input) {
        match input {
            Input::Join(seeds) => self.core.handle_join(unix_ms(), &seeds),
            Input::Leave(reply) => {
                self.core.handle_leave(unix_ms());
                self.flush().await;
                let _ = reply.send(());
            }
            Input::Members(reply) => {
                let _ = reply.send(self.core.members());
            }
            Input::Status(reply) => {
                let _ = reply.send(RuntimeStatus {
                    identity: self.core.identity(),
                    counters: self.core.counters(),
                    seeds: self.core.seeds().copied().collect(),
                    keyring: self.core.keyring().clone(),
                });
            }
            Input::Broadcast(item, reply) => {
                let _ = reply.send(self.core.handle_broadcast(&item));
            }
            Input::SetKeyring(keyring) => self.core.set_keyring(keyring),
            Input::SetTags(tags, reply) => {
                let _ = reply.send(self.core.handle_set_tags(unix_ms(), tags));
            }
            Input::ForceLeave(name, reply) => {
                let _ = reply.send(self.core.handle_force_leave(unix_ms(), &name));
            }
            Input::Stop => {}
        }
    }

    async fn flush(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Send { to, packet } => {
                    if let Err(e) = self.socket.send_to(&packet, to).await {
                        tracing::debug!(%to, error = %e, "send failed");
                    }
                }
                Output::Schedule { after, timer } => {
                    let deadline = self.origin.elapsed() + after;
                    self.timers.push(deadline, timer);
                }
                Output::Event(event) => {
                    if matches!(event, MemberEvent::Failed(_)) && self.announce_at.is_none() {
                        self.announce_at = Some(Instant::now() + ANNOUNCE_FAILED_EVERY);
                    }
                    let _ = self.events.send(event);
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// How long a graceful leave waits for the goodbye to go out before the process may exit.
pub const LEAVE_GRACE: Duration = Duration::from_millis(200);
