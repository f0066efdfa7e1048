//! The email channel: one plain-text email per message (subject = title, body = body) to every
//! `to` address, over SMTP with lettre.
//!
//! Each attempt builds its own transport and so its own connection: notifications are rare, and
//! lettre's connection pool spawns tasks when built and when dropped, which must not outlive (or
//! precede) the runtime. A permanent (5xx) reply, a TLS failure or a server without the
//! STARTTLS it must offer is refused at once; a transient (4xx) reply, a lost connection or a
//! timeout is retried, at most 3 attempts, 5 s then 10 s apart. The channel's `timeout` bounds
//! each whole attempt, from connecting to the server's answer to the message.
//!
//! The `Message-ID` (at the sender address's domain) and the `In-Reply-To`/`References` of a
//! message about incidents come from [`identity`]: a resend is the same email, and an
//! incident's later messages thread under its opening one.

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::response::Response;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::retry::{self, Attempt, RetryPolicy};
use super::{identity, Delivery, Message, NotifyError};
use crate::config::notify::{EmailConfig, SmtpTls};

/// Attempts per message.
const ATTEMPTS: u32 = 3;

/// One email channel.
#[derive(Debug, Clone)]
pub(crate) struct EmailNotifier {
    config: EmailConfig,
    tls: Tls,
}

impl EmailNotifier {
    /// A channel for `config`; fails if its TLS settings cannot be set up.
    pub(crate) fn new(config: EmailConfig) -> anyhow::Result<Self> {
        crate::install_tls_provider();
        let parameters = || {
            let mut builder = TlsParameters::builder(config.smtp_host.clone());
            for der in config.ca.iter().flat_map(|ca| &ca.certificates) {
                builder = builder.add_root_certificate(Certificate::from_der(der.clone())?);
            }
            builder.build()
        };
        let tls = match config.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls => Tls::Required(parameters()?),
            SmtpTls::Tls => Tls::Wrapper(parameters()?),
        };
        Ok(Self { config, tls })
    }

    /// Sends `message` as one email to every recipient.
    pub(crate) async fn send(&self, message: &Message) -> Result<Delivery, NotifyError> {
        let email = self.email(message)?;
        // lettre bounds only the connect; the driver bounds the whole attempt.
        retry::deliver(RetryPolicy::at_most(ATTEMPTS), self.config.timeout, |_| {
            self.attempt(&email)
        })
        .await
    }

    /// The email for `message`.
    fn email(&self, message: &Message) -> Result<lettre::Message, NotifyError> {
        let mut builder = lettre::Message::builder()
            .from(self.config.from.clone())
            .subject(message.title.clone())
            .header(ContentType::TEXT_PLAIN);
        let domain = self.config.from.email.domain();
        let own = identity::message_id(&message.about, domain);
        let roots = identity::thread_roots(&message.about, domain, own.as_deref());
        if !roots.is_empty() {
            builder = builder
                .in_reply_to(roots.join(" "))
                .references(roots.join(" "));
        }
        // None: lettre makes a fresh one (a message about no incident).
        builder = builder.message_id(own);
        for to in &self.config.to {
            builder = builder.to(to.clone());
        }
        builder
            .body(message.body.clone())
            .map_err(|e| NotifyError::Refused(format!("cannot build the email: {e}")))
    }

    async fn attempt(&self, email: &lettre::Message) -> Attempt {
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.config.smtp_host)
                .port(self.config.smtp_port)
                .tls(self.tls.clone())
                .timeout(Some(self.config.timeout));
        if let Some(auth) = &self.config.auth {
            builder = builder.credentials(Credentials::new(
                auth.username.clone(),
                auth.password.expose().to_owned(),
            ));
        }
        let transport = builder.build();
        match transport.send(email.clone()).await {
            Ok(response) => Attempt::Delivered(Delivery {
                reference: reference(&response),
            }),
            Err(error) => classify(&self.config, &error),
        }
    }
}

/// The text of the server's reply to DATA (e.g. `2.0.0 Ok: queued as 4C2F1`), if any.
fn reference(response: &Response) -> Option<String> {
    let text = response
        .message()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!text.is_empty()).then_some(text)
}

/// What an SMTP error means for a retry.
fn classify(config: &EmailConfig, error: &lettre::transport::smtp::Error) -> Attempt {
    let server = format!("{}:{}", config.smtp_host, config.smtp_port);
    let text = error_chain(error);
    if error.is_permanent() {
        return Attempt::Refused(format!("SMTP server {server} refused the email: {text}"));
    }
    if error.is_tls() || is_tls_failure(error) {
        return Attempt::Refused(format!("TLS with {server} failed: {text}"));
    }
    if text.contains("STARTTLS is not supported") {
        return Attempt::Refused(format!(
            "SMTP server {server} does not offer STARTTLS, which tls = \"starttls\" requires \
             (use tls = \"tls\" for implicit TLS, or \"none\" for a trusted local relay)"
        ));
    }
    if error.is_client() {
        return Attempt::Refused(format!("SMTP with {server}: {text}"));
    }
    Attempt::failed(format!("SMTP with {server}: {text}"))
}

/// Whether a cause of `error` is a TLS failure (a certificate the server's name or our roots
/// do not vouch for, a failed handshake): lettre reports those as connection errors, but
/// trying again cannot help.
fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        let tls = e.downcast_ref::<rustls::Error>().is_some()
            || e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
        if tls {
            return true;
        }
        cause = e.source();
    }
    false
}

/// An error and its causes on one line (lettre's own text already holds its first cause).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}
