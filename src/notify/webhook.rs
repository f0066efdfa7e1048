//! The webhook channel: an HTTP POST per message, either our JSON
//! (`{"title", "body", "priority", "details"}`) or ntfy's publish API (the body as text, with
//! `Title`, `Priority` and `Tags` headers).
//!
//! 2xx is delivered (for ntfy, the reference is the `id` of its JSON answer); 429 waits for
//! `Retry-After` (else a minute) and 5xx or a lost connection retries 5 s, 10 s... later, both
//! within the send budget; any other 4xx is refused at once.
//!
//! A message about incidents carries an `Idempotency-Key` header ([`identity`]), the same when
//! another leader sends it again.

use std::time::Duration;

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use super::http::{self, HttpAnswer};
use super::retry::{self, Attempt, RetryPolicy};
use super::{identity, Delivery, Message, NotifyError, Priority};
use crate::config::notify::{WebhookConfig, WebhookFormat};

/// The header naming what a message is about ([`identity::idempotency_key`]): equal for a
/// resend of the same messages after a leader died, so a receiver can drop the second.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// One webhook channel.
#[derive(Debug, Clone)]
pub(crate) struct WebhookNotifier {
    config: WebhookConfig,
    headers: HeaderMap,
    http: reqwest::Client,
}

impl WebhookNotifier {
    /// A channel posting through `http`; fails if a configured header is not valid HTTP.
    pub(crate) fn new(config: WebhookConfig, http: reqwest::Client) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| anyhow::anyhow!("webhook header {name}: invalid value"))?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_bytes(name.as_bytes())?, value);
        }
        Ok(Self {
            config,
            headers,
            http,
        })
    }

    /// Posts `message`, retrying 429, 5xx and connection failures within the send budget.
    pub(crate) async fn send(&self, message: &Message) -> Result<Delivery, NotifyError> {
        let (headers, body) = match self.config.format {
            WebhookFormat::Json => json_request(message),
            WebhookFormat::Ntfy => ntfy_request(message),
        };
        let mut headers = headers;
        if let Some(key) = identity::idempotency_key(&message.about) {
            // 32 hex digits: always a valid header value.
            if let Ok(value) = HeaderValue::from_str(&key) {
                headers.insert(IDEMPOTENCY_KEY, value);
            }
        }
        retry::deliver(
            RetryPolicy::within_budget(),
            self.config.timeout,
            |timeout| self.attempt(&headers, &body, timeout),
        )
        .await
    }

    async fn attempt(&self, headers: &HeaderMap, body: &[u8], timeout: Duration) -> Attempt {
        let request = self
            .http
            .post(self.config.url.clone())
            .headers(headers.clone())
            .headers(self.headers.clone())
            .body(body.to_vec())
            .timeout(timeout);
        match http::send(request).await {
            Ok(answer) => classify(self.config.format, &answer),
            Err(failed) => failed,
        }
    }
}

/// Headers and body of the JSON format.
pub(crate) fn json_request(message: &Message) -> (HeaderMap, Vec<u8>) {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // A Message always serializes (strings, an enum and a JSON value).
    let body = serde_json::to_vec(message).unwrap_or_default();
    (headers, body)
}

/// Headers and body of ntfy's publish API.
pub(crate) fn ntfy_request(message: &Message) -> (HeaderMap, Vec<u8>) {
    let (priority, tag) = match message.priority {
        Priority::Low => ("2", "white_check_mark"),
        Priority::Normal => ("3", "warning"),
        Priority::High => ("5", "rotating_light"),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert("Title", header_text(&message.title));
    headers.insert("Priority", HeaderValue::from_static(priority));
    headers.insert("Tags", HeaderValue::from_static(tag));
    let body = if message.body.trim().is_empty() {
        message.title.clone()
    } else {
        message.body.clone()
    };
    (headers, body.into_bytes())
}

/// `text` on one line as a header value: as is when it is printable ASCII, else RFC 2047
/// encoded (`=?UTF-8?B?...?=`), which ntfy decodes.
fn header_text(text: &str) -> HeaderValue {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        if let Ok(value) = HeaderValue::from_str(&line) {
            return value;
        }
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(line.as_bytes());
    HeaderValue::from_str(&format!("=?UTF-8?B?{encoded}?="))
        .unwrap_or_else(|_| HeaderValue::from_static("rover-agent"))
}

/// What a webhook's answer means.
pub(crate) fn classify(format: WebhookFormat, answer: &HttpAnswer) -> Attempt {
    if let Some(retry) = answer.retryable("the webhook") {
        return retry;
    }
    match answer.status {
        200..=299 => {
            let reference = match format {
                WebhookFormat::Json => None,
                WebhookFormat::Ntfy => serde_json::from_str::<serde_json::Value>(&answer.body)
                    .ok()
                    .and_then(|v| v.get("id")?.as_str().map(str::to_owned)),
            };
            Attempt::Delivered(Delivery { reference })
        }
        status => {
            let excerpt = answer.body_excerpt();
            Attempt::Refused(if excerpt.is_empty() {
                format!("the webhook answered HTTP {status}")
            } else {
                format!("the webhook answered HTTP {status}: {excerpt}")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(title: &str, priority: Priority) -> Message {
        Message {
            title: title.into(),
            body: "details here".into(),
            priority,
            details: serde_json::json!({"incidents": [{"id": "host-down/n3/1"}]}),
            about: Vec::new(),
        }
    }

    #[test]
    fn the_json_body_has_title_body_priority_and_details() {
        let (headers, body) = json_request(&message("n3 is down", Priority::High));
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "title": "n3 is down",
                "body": "details here",
                "priority": "high",
                "details": {"incidents": [{"id": "host-down/n3/1"}]}
            })
        );
    }

    #[test]
    fn ntfy_gets_the_body_as_text_and_title_priority_tags_as_headers() {
        let (headers, body) = ntfy_request(&message("n3 is down", Priority::High));
        assert_eq!(body, b"details here");
        assert_eq!(headers["Title"], "n3 is down");
        assert_eq!(headers["Priority"], "5");
        assert_eq!(headers["Tags"], "rotating_light");
        let (headers, _) = ntfy_request(&message("n3 is back", Priority::Low));
        assert_eq!(headers["Priority"], "2");
        let (headers, _) = ntfy_request(&message("disk", Priority::Normal));
        assert_eq!(headers["Priority"], "3");
    }

    #[test]
    fn a_title_beyond_ascii_is_encoded_for_the_header() {
        let (headers, _) = ntfy_request(&message("n3 → down", Priority::High));
        let value = headers["Title"].to_str().unwrap();
        assert_eq!(value, "=?UTF-8?B?bjMg4oaSIGRvd24=?=");
        let (headers, _) = ntfy_request(&message("two\nlines", Priority::High));
        assert_eq!(headers["Title"], "two lines");
    }

    #[test]
    fn answers_map_to_delivered_refused_or_retry() {
        assert_eq!(
            classify(
                WebhookFormat::Ntfy,
                &HttpAnswer::of(200, r#"{"id":"hwQ2YpKdmg"}"#)
            ),
            Attempt::Delivered(Delivery {
                reference: Some("hwQ2YpKdmg".into())
            })
        );
        assert_eq!(
            classify(WebhookFormat::Json, &HttpAnswer::of(204, "")),
            Attempt::Delivered(Delivery { reference: None })
        );
        assert_eq!(
            classify(WebhookFormat::Json, &HttpAnswer::of(403, "forbidden")),
            Attempt::Refused("the webhook answered HTTP 403: forbidden".into())
        );
        assert!(matches!(
            classify(WebhookFormat::Json, &HttpAnswer::of(502, "")),
            Attempt::Failed { .. }
        ));
    }
}
