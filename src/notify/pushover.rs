//! The Pushover channel: `POST {api_url}/1/messages.json`, form-encoded, as Pushover's API
//! documents it.
//!
//! The form ([`form`]) and the meaning of an answer ([`classify`]) are pure functions. Pushover's
//! rules: a 4xx other than 429 means the request is wrong (bad token, bad user, too long) and
//! must not be repeated; a 429 means the application's message limit is reached (honour
//! `Retry-After`, else wait at least a minute); a 5xx or a lost connection may be retried, no
//! sooner than 5 s later.

use std::time::Duration;

use serde::Deserialize;

use super::http::{self, HttpAnswer};
use super::retry::{self, Attempt, RetryPolicy};
use super::{identity, Delivery, Message, NotifyError, Priority};
use crate::config::notify::{PushoverConfig, PushoverHigh};

/// Pushover's limit on `title`, in characters.
pub const TITLE_MAX_CHARS: usize = 250;
/// Pushover's limit on `message`, in characters.
pub const MESSAGE_MAX_CHARS: usize = 1024;
/// Bound on one request.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// One Pushover channel.
#[derive(Debug, Clone)]
pub(crate) struct PushoverNotifier {
    config: PushoverConfig,
    endpoint: String,
    http: reqwest::Client,
}

impl PushoverNotifier {
    /// A channel posting through `http`.
    pub(crate) fn new(config: PushoverConfig, http: reqwest::Client) -> Self {
        let endpoint = format!(
            "{}/1/messages.json",
            config.api_url.as_str().trim_end_matches('/')
        );
        Self {
            config,
            endpoint,
            http,
        }
    }

    /// Sends `message`, retrying what Pushover allows within the send budget.
    pub(crate) async fn send(&self, message: &Message) -> Result<Delivery, NotifyError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .ok();
        let fields = form(&self.config, message, now);
        retry::deliver(RetryPolicy::within_budget(), ATTEMPT_TIMEOUT, |timeout| {
            self.attempt(&fields, timeout)
        })
        .await
    }

    async fn attempt(&self, fields: &[(&'static str, String)], timeout: Duration) -> Attempt {
        let request = self.http.post(&self.endpoint).form(fields).timeout(timeout);
        match http::send(request).await {
            Ok(answer) => classify(&answer),
            Err(failed) => failed,
        }
    }
}

/// The form fields for `message`, in Pushover's names. `timestamp` (unix seconds) is when the
/// message was made, so a retried message still shows its time.
pub(crate) fn form(
    config: &PushoverConfig,
    message: &Message,
    timestamp: Option<u64>,
) -> Vec<(&'static str, String)> {
    let body = if message.body.trim().is_empty() {
        // Pushover refuses an empty message.
        &message.title
    } else {
        &message.body
    };
    let priority = match (message.priority, config.priority_high) {
        (Priority::Low, _) => -1,
        (Priority::Normal, _) => 0,
        (Priority::High, PushoverHigh::High) => 1,
        (Priority::High, PushoverHigh::Emergency) => 2,
    };
    let mut fields = vec![
        ("token", config.token.expose().to_owned()),
        ("user", config.user.expose().to_owned()),
        ("title", truncate_chars(&title(message), TITLE_MAX_CHARS)),
        ("message", truncate_chars(body, MESSAGE_MAX_CHARS)),
        ("priority", priority.to_string()),
    ];
    if priority == 2 {
        fields.push(("retry", config.emergency_retry.as_secs().to_string()));
        fields.push(("expire", config.emergency_expire.as_secs().to_string()));
    }
    if let Some(timestamp) = timestamp {
        fields.push(("timestamp", timestamp.to_string()));
    }
    if let Some(device) = &config.device {
        fields.push(("device", device.clone()));
    }
    if let Some(sound) = &config.sound {
        fields.push(("sound", sound.clone()));
    }
    fields
}

/// The title, followed by the incident ids in brackets for a message about incidents: Pushover
/// does not deduplicate, so a resend after a leader died shows which message it repeats.
fn title(message: &Message) -> String {
    let ids = identity::incident_ids(&message.about);
    if ids.is_empty() {
        message.title.clone()
    } else {
        format!("{} [{}]", message.title, ids.join(", "))
    }
}

/// `text` cut to at most `max` characters (never inside a character); a cut text ends in `…`.
pub(crate) fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().nth(max).is_none() {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Pushover's JSON answer.
#[derive(Debug, Deserialize)]
struct PushoverAnswer {
    status: Option<i64>,
    request: Option<String>,
    receipt: Option<String>,
    #[serde(default)]
    errors: Vec<String>,
}

/// What an answer from Pushover means.
pub(crate) fn classify(answer: &HttpAnswer) -> Attempt {
    if let Some(retry) = answer.retryable("Pushover") {
        return retry;
    }
    let parsed = serde_json::from_str::<PushoverAnswer>(&answer.body).ok();
    match (answer.status, parsed) {
        (200, Some(ok)) if ok.status == Some(1) => Attempt::Delivered(Delivery {
            reference: ok.receipt.or(ok.request),
        }),
        (status, Some(refusal)) if !refusal.errors.is_empty() || refusal.status == Some(0) => {
            let errors = if refusal.errors.is_empty() {
                "no reason given".to_owned()
            } else {
                refusal.errors.join("; ")
            };
            let request = refusal
                .request
                .map(|id| format!(" (request {id})"))
                .unwrap_or_default();
            Attempt::Refused(format!("Pushover: HTTP {status}: {errors}{request}"))
        }
        (status, _) => Attempt::Refused(format!(
            "HTTP {status} is not a Pushover answer: {}",
            answer.body_excerpt()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::notify::Secret;

    fn config(high: PushoverHigh) -> PushoverConfig {
        PushoverConfig {
            token: Secret::new("tok"),
            user: Secret::new("usr"),
            api_url: "https://api.pushover.net".parse().unwrap(),
            device: None,
            sound: Some("siren".into()),
            emergency_retry: Duration::from_secs(60),
            emergency_expire: Duration::from_secs(3600),
            priority_high: high,
        }
    }

    fn message(priority: Priority) -> Message {
        Message {
            title: "n3 is down".into(),
            body: "since 12:00".into(),
            priority,
            details: serde_json::Value::Null,
            about: Vec::new(),
        }
    }

    #[test]
    fn the_form_has_pushovers_fields() {
        let fields = form(
            &config(PushoverHigh::High),
            &message(Priority::High),
            Some(1700000000),
        );
        let expected: Vec<(&str, String)> = vec![
            ("token", "tok".into()),
            ("user", "usr".into()),
            ("title", "n3 is down".into()),
            ("message", "since 12:00".into()),
            ("priority", "1".into()),
            ("timestamp", "1700000000".into()),
            ("sound", "siren".into()),
        ];
        assert_eq!(fields, expected);
    }

    #[test]
    fn priorities_map_to_pushovers_scale_and_emergency_carries_retry_and_expire() {
        let priority = |c: &PushoverConfig, p| {
            form(c, &message(p), None)
                .into_iter()
                .filter(|(k, _)| ["priority", "retry", "expire"].contains(k))
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let high = config(PushoverHigh::High);
        let emergency = config(PushoverHigh::Emergency);
        assert_eq!(priority(&high, Priority::Low), "priority=-1");
        assert_eq!(priority(&high, Priority::Normal), "priority=0");
        assert_eq!(priority(&high, Priority::High), "priority=1");
        assert_eq!(priority(&emergency, Priority::Normal), "priority=0");
        assert_eq!(
            priority(&emergency, Priority::High),
            "priority=2 retry=60 expire=3600"
        );
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_chars("short", 250), "short");
        let long = "é".repeat(300);
        let cut = truncate_chars(&long, 250);
        assert_eq!(cut.chars().count(), 250);
        assert!(cut.ends_with("é…"));
    }

    #[test]
    fn success_gives_the_request_id_or_the_emergency_receipt() {
        assert_eq!(
            classify(&HttpAnswer::of(200, r#"{"status":1,"request":"abc"}"#)),
            Attempt::Delivered(Delivery {
                reference: Some("abc".into())
            })
        );
        assert_eq!(
            classify(&HttpAnswer::of(
                200,
                r#"{"status":1,"request":"abc","receipt":"rcpt"}"#
            )),
            Attempt::Delivered(Delivery {
                reference: Some("rcpt".into())
            })
        );
    }

    #[test]
    fn a_400_is_refused_with_pushovers_errors() {
        let body = r#"{"user":"invalid","errors":["user identifier is invalid"],"status":0,"request":"r1"}"#;
        assert_eq!(
            classify(&HttpAnswer::of(400, body)),
            Attempt::Refused("Pushover: HTTP 400: user identifier is invalid (request r1)".into())
        );
        assert!(matches!(
            classify(&HttpAnswer::of(404, "<html>not here</html>")),
            Attempt::Refused(why) if why.contains("not a Pushover answer")
        ));
    }

    #[test]
    fn server_errors_and_429_are_retried() {
        assert!(matches!(
            classify(&HttpAnswer::of(500, "")),
            Attempt::Failed { .. }
        ));
        assert!(matches!(
            classify(&HttpAnswer::of(429, "")),
            Attempt::Failed {
                wait_at_least: Some(_),
                ..
            }
        ));
    }
}
