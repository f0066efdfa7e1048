//! [`Notifiers`]: every configured channel by name, built once from [`NotifyConfig`].

use super::email::EmailNotifier;
use super::exec::ExecNotifier;
use super::pushover::PushoverNotifier;
use super::webhook::WebhookNotifier;
use super::{console, Delivery, Message, NotifyError, SEND_BUDGET};
use crate::config::notify::{ChannelKind, NotifyConfig};

/// The configured channels; cheap to share behind an `Arc` (sends take `&self`).
#[derive(Debug)]
pub struct Notifiers {
    channels: Vec<(String, Notifier)>,
    stats: std::sync::Arc<super::send_stats::SendStats>,
}

/// One channel's sender.
#[derive(Debug)]
enum Notifier {
    Console,
    Email(EmailNotifier),
    Pushover(PushoverNotifier),
    Webhook(WebhookNotifier),
    Exec(ExecNotifier),
}

impl Notifiers {
    /// Builds a sender per channel of `config` (one HTTP client shared by all). Fails only if
    /// TLS or the HTTP client cannot be set up.
    pub fn from_config(config: &NotifyConfig) -> anyhow::Result<Self> {
        let mut http = None;
        let mut channels = Vec::with_capacity(config.channels.len());
        for channel in &config.channels {
            let notifier = match &channel.kind {
                ChannelKind::Console => Notifier::Console,
                ChannelKind::Email(email) => Notifier::Email(EmailNotifier::new(email.clone())?),
                ChannelKind::Pushover(pushover) => {
                    Notifier::Pushover(PushoverNotifier::new(pushover.clone(), shared(&mut http)?))
                }
                ChannelKind::Webhook(webhook) => {
                    let client = match &webhook.ca {
                        // Its own roots: a client of its own.
                        Some(ca) => super::http::client_trusting(Some(ca))?,
                        None => shared(&mut http)?,
                    };
                    Notifier::Webhook(WebhookNotifier::new(webhook.clone(), client)?)
                }
                ChannelKind::Exec(exec) => Notifier::Exec(ExecNotifier::new(exec.clone())),
            };
            channels.push((channel.name.clone(), notifier));
        }
        Ok(Self {
            channels,
            stats: Default::default(),
        })
    }

    /// These channels, counting their sends with those of `old` (a reload keeps the counts of
    /// `/metrics` going).
    pub fn keeping_stats_of(mut self, old: &Notifiers) -> Self {
        self.stats = std::sync::Arc::clone(&old.stats);
        self
    }

    /// The channel names, console first (if on), then in config order.
    pub fn names(&self) -> Vec<String> {
        self.channels.iter().map(|(name, _)| name.clone()).collect()
    }

    /// Sends `message` through the channel named `channel`, retries included, within
    /// [`SEND_BUDGET`].
    pub async fn send(&self, channel: &str, message: &Message) -> Result<Delivery, NotifyError> {
        let Some((_, notifier)) = self.channels.iter().find(|(name, _)| name == channel) else {
            return Err(NotifyError::UnknownChannel(channel.to_owned()));
        };
        let sending = async {
            match notifier {
                Notifier::Console => console::send(message),
                Notifier::Email(email) => email.send(message).await,
                Notifier::Pushover(pushover) => pushover.send(message).await,
                Notifier::Webhook(webhook) => webhook.send(message).await,
                Notifier::Exec(exec) => exec.send(message).await,
            }
        };
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(SEND_BUDGET, sending)
            .await
            .unwrap_or_else(|_| {
                Err(NotifyError::GaveUp(format!(
                    "not delivered within the {}s send budget",
                    SEND_BUDGET.as_secs()
                )))
            });
        match &result {
            Ok(delivery) => tracing::info!(
                channel,
                reference = delivery.reference.as_deref().unwrap_or("-"),
                "notification delivered"
            ),
            Err(error) => tracing::warn!(channel, %error, "notification not delivered"),
        }
        self.stats
            .record(channel, result.is_ok(), started.elapsed());
        result
    }

    /// What the sends so far did, per channel (for `/metrics`).
    pub fn send_stats(
        &self,
    ) -> std::collections::BTreeMap<String, super::send_stats::ChannelSends> {
        self.stats.read()
    }
}

/// The HTTP client in `slot`, made on first use.
fn shared(slot: &mut Option<reqwest::Client>) -> anyhow::Result<reqwest::Client> {
    if let Some(client) = slot {
        return Ok(client.clone());
    }
    let client = super::http::client()?;
    *slot = Some(client.clone());
    Ok(client)
}
