//! HTTP plumbing the Pushover and webhook channels share: one client, reading an answer
//! (status, `Retry-After`, a capped body), and what a status means for a retry.

use std::time::Duration;

use reqwest::header::RETRY_AFTER;

use super::retry::Attempt;

/// Bytes of an answer's body kept (for references and error messages); the rest is dropped.
const BODY_CAP: usize = 64 * 1024;
/// How long to wait after a 429 that does not say (Pushover asks for no less).
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// At most this many characters of a body go into an error message.
const BODY_IN_ERRORS: usize = 200;

/// The HTTP client every channel shares (no proxy from the environment, no cookies).
pub(crate) fn client() -> anyhow::Result<reqwest::Client> {
    client_trusting(None)
}

/// A client like [`client`] that also trusts the roots of `ca` (a channel's `ca_file`).
pub(crate) fn client_trusting(
    ca: Option<&crate::config::notify::CaFile>,
) -> anyhow::Result<reqwest::Client> {
    crate::install_tls_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("rover-agent/", env!("CARGO_PKG_VERSION")))
        .no_proxy();
    for der in ca.iter().flat_map(|ca| &ca.certificates) {
        builder = builder.add_root_certificate(reqwest::Certificate::from_der(der)?);
    }
    Ok(builder.build()?)
}

/// What a server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// `Retry-After`, when given in seconds.
    pub retry_after: Option<Duration>,
    /// The body (at most [`BODY_CAP`] bytes, lossy UTF-8).
    pub body: String,
}

impl HttpAnswer {
    /// The start of the body, on one line, for error messages.
    pub(crate) fn body_excerpt(&self) -> String {
        let line: String = self.body.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.chars().count() <= BODY_IN_ERRORS {
            return line;
        }
        let mut cut: String = line.chars().take(BODY_IN_ERRORS).collect();
        cut.push('…');
        cut
    }

    /// The retry a 429 or a 5xx calls for; `None` for any other status. `who` names the
    /// provider in the reason.
    pub(crate) fn retryable(&self, who: &str) -> Option<Attempt> {
        let reason = |what: &str| {
            let excerpt = self.body_excerpt();
            if excerpt.is_empty() {
                format!("{who} answered HTTP {} ({what})", self.status)
            } else {
                format!("{who} answered HTTP {} ({what}): {excerpt}", self.status)
            }
        };
        match self.status {
            429 => Some(Attempt::Failed {
                reason: reason("too many requests"),
                wait_at_least: Some(self.retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
            }),
            500..=599 => Some(Attempt::Failed {
                reason: reason("server error"),
                wait_at_least: self.retry_after,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
impl HttpAnswer {
    /// An answer without `Retry-After`.
    pub(crate) fn of(status: u16, body: &str) -> Self {
        Self {
            status,
            retry_after: None,
            body: body.into(),
        }
    }
}

/// Sends `request` and reads the answer. A request that fails to connect or times out is a
/// retryable [`Attempt::Failed`]; one whose TLS handshake fails (a bad certificate, a server
/// that does not speak TLS) is [`Attempt::Refused`], as trying again cannot help.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Result<HttpAnswer, Attempt> {
    let mut response = request.send().await.map_err(|e| {
        if is_tls_failure(&e) {
            Attempt::Refused(format!("TLS failed: {}", describe(&e)))
        } else {
            Attempt::failed(describe(&e))
        }
    })?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = BODY_CAP.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            // The status is the answer: a 2xx means the message was taken, even when the body
            // then breaks off (a server that closes without a TLS close_notify or a length).
            // Sending again would deliver it twice; what was read of the body is kept.
            Err(e) => {
                if status < 300 {
                    tracing::debug!(status, error = %describe(&e), "the answer's body broke off after a success status");
                }
                break;
            }
        }
    }
    Ok(HttpAnswer {
        status,
        retry_after,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Whether a rustls error is among the causes of `error`. An io error is looked into (its
/// `source` skips the error it wraps), and hyper wraps rustls's in two of them.
fn is_tls_failure(error: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.is::<rustls::Error>() {
            return true;
        }
        cause = match current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(wrapped) => Some(wrapped),
            None => current.source(),
        };
    }
    false
}

/// A reqwest error with its causes, e.g. `cannot connect to http://127.0.0.1:9/...: ...`.
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut text = match error.url() {
        Some(url) => format!("{what} ({url})"),
        None => what.to_owned(),
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, retry_after: Option<u64>, body: &str) -> HttpAnswer {
        HttpAnswer {
            retry_after: retry_after.map(Duration::from_secs),
            ..HttpAnswer::of(status, body)
        }
    }

    #[test]
    fn a_429_waits_for_retry_after_or_a_minute() {
        assert_eq!(
            answer(429, Some(7), "").retryable("x"),
            Some(Attempt::Failed {
                reason: "x answered HTTP 429 (too many requests)".into(),
                wait_at_least: Some(Duration::from_secs(7)),
            })
        );
        let Some(Attempt::Failed { wait_at_least, .. }) = answer(429, None, "").retryable("x")
        else {
            panic!("a 429 is retryable");
        };
        assert_eq!(wait_at_least, Some(DEFAULT_RETRY_AFTER));
    }

    #[test]
    fn server_errors_retry_and_client_errors_do_not() {
        assert!(matches!(
            answer(503, None, "busy").retryable("x"),
            Some(Attempt::Failed { reason, wait_at_least: None }) if reason.ends_with(": busy")
        ));
        assert_eq!(answer(400, None, "").retryable("x"), None);
        assert_eq!(answer(200, None, "").retryable("x"), None);
    }

    #[test]
    fn a_long_body_is_cut_for_errors() {
        let long = "word ".repeat(100);
        let excerpt = answer(500, None, &long).body_excerpt();
        assert_eq!(excerpt.chars().count(), BODY_IN_ERRORS + 1);
        assert!(excerpt.ends_with('…'));
    }
}
