//! The `[[notify.*]]` channel tables as a config file holds them (every key optional, values
//! unchecked) and their validation, one kind at a time, into the typed channel settings of
//! [`super::notify`]. Errors name the entry and key: `notify.email[1] ("ops").to`.

use std::collections::BTreeMap;
use std::time::Duration;

use lettre::message::Mailbox;
use reqwest::Url;
use serde::Deserialize;

use super::notify::{
    CaFile, EmailConfig, ExecConfig, PushoverConfig, PushoverHigh, Secret, SmtpAuth, SmtpTls,
    WebhookConfig, WebhookFormat, DEFAULT_EXEC_TIMEOUT, DEFAULT_HTTP_SMTP_TIMEOUT,
    DEFAULT_PUSHOVER_URL, PUSHOVER_MAX_EXPIRE, PUSHOVER_MIN_RETRY,
};
use super::settings::DurationBounds;
use super::{ConfigError, Source};
use crate::notify::SEND_BUDGET;

/// The channel tables of a config file's `[notify]` section, as written (values unchecked).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifyChannelsFile {
    /// `[[notify.email]]`
    pub email: Vec<EmailEntry>,
    /// `[[notify.pushover]]`
    pub pushover: Vec<PushoverEntry>,
    /// `[[notify.webhook]]`
    pub webhook: Vec<WebhookEntry>,
    /// `[[notify.exec]]`
    pub exec: Vec<ExecEntry>,
}

/// One `[[notify.email]]` table as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct EmailEntry {
    pub name: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
    pub timeout: Option<String>,
    pub ca_file: Option<String>,
}

/// One `[[notify.pushover]]` table as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct PushoverEntry {
    pub name: Option<String>,
    pub token: Option<String>,
    pub user: Option<String>,
    pub api_url: Option<String>,
    pub device: Option<String>,
    pub sound: Option<String>,
    pub emergency_retry: Option<String>,
    pub emergency_expire: Option<String>,
    pub priority_high: Option<i64>,
}

/// One `[[notify.webhook]]` table as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct WebhookEntry {
    pub name: Option<String>,
    pub url: Option<String>,
    pub format: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub timeout: Option<String>,
    pub ca_file: Option<String>,
}

/// One `[[notify.exec]]` table as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ExecEntry {
    pub name: Option<String>,
    pub command: Option<Vec<String>>,
    pub timeout: Option<String>,
}

pub(super) fn email(entry: &Entry<'_>, raw: &EmailEntry) -> Result<EmailConfig, ConfigError> {
    let smtp_host = entry.required("smtp_host", raw.smtp_host.as_deref())?;
    let tls = match raw.tls.as_deref() {
        None | Some("starttls") => SmtpTls::StartTls,
        Some("none") => SmtpTls::None,
        Some("tls") => SmtpTls::Tls,
        Some(other) => {
            return Err(entry.invalid("tls", Some(other.into()), "expected none, starttls or tls"))
        }
    };
    let smtp_port = match raw.smtp_port {
        Some(0) => return Err(entry.invalid("smtp_port", Some("0".into()), "must not be 0")),
        Some(port) => port,
        None => tls.default_port(),
    };
    let auth = match (&raw.username, &raw.password) {
        (None, None) => None,
        (Some(username), Some(password)) if !username.is_empty() => Some(SmtpAuth {
            username: username.clone(),
            password: Secret::new(password.clone()),
        }),
        (Some(_), Some(_)) => {
            return Err(entry.invalid("username", Some(String::new()), "must not be empty"))
        }
        (Some(_), None) => {
            return Err(entry.invalid("password", None, "missing: username needs a password"))
        }
        (None, Some(_)) => {
            return Err(entry.invalid("username", None, "missing: password needs a username"))
        }
    };
    let from = entry.mailbox("from", entry.required("from", raw.from.as_deref())?)?;
    let to = match &raw.to {
        None => return Err(entry.invalid("to", None, "missing: give at least one address")),
        Some(to) if to.is_empty() => {
            return Err(entry.invalid("to", Some("[]".into()), "give at least one address"))
        }
        Some(to) => to
            .iter()
            .map(|address| entry.mailbox("to", address))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let ca = entry.ca_file(raw.ca_file.as_deref())?;
    if ca.is_some() && tls == SmtpTls::None {
        return Err(entry.invalid(
            "ca_file",
            raw.ca_file.clone(),
            "needs tls = \"starttls\" or \"tls\" (with tls = \"none\" no certificate is checked)",
        ));
    }
    Ok(EmailConfig {
        smtp_host: smtp_host.to_owned(),
        smtp_port,
        tls,
        auth,
        from,
        to,
        timeout: entry.timeout(raw.timeout.as_deref(), DEFAULT_HTTP_SMTP_TIMEOUT)?,
        ca,
    })
}

pub(super) fn pushover(
    entry: &Entry<'_>,
    raw: &PushoverEntry,
) -> Result<PushoverConfig, ConfigError> {
    let key = |name: &'static str, value: Option<&str>| -> Result<Secret, ConfigError> {
        let value = entry.required(name, value)?;
        if value.chars().all(|c| c.is_ascii_alphanumeric()) {
            Ok(Secret::new(value))
        } else {
            Err(entry.invalid(
                name,
                None,
                "Pushover tokens and user keys are letters and digits only",
            ))
        }
    };
    let token = key("token", raw.token.as_deref())?;
    let user = key("user", raw.user.as_deref())?;
    let api_url = entry.url(
        "api_url",
        raw.api_url.as_deref().unwrap_or(DEFAULT_PUSHOVER_URL),
    )?;
    let optional_text = |name: &'static str, value: &Option<String>| match value.as_deref() {
        Some("") => Err(entry.invalid(name, Some(String::new()), "must not be empty")),
        other => Ok(other.map(str::to_owned)),
    };
    // Pushover refuses a retry under 30 s and an expiry over 3 h.
    let pushover_bounds = DurationBounds {
        min: PUSHOVER_MIN_RETRY,
        max: PUSHOVER_MAX_EXPIRE,
        zero: None,
    };
    let emergency_retry = entry
        .duration(
            "emergency_retry",
            raw.emergency_retry.as_deref(),
            pushover_bounds,
        )?
        .unwrap_or(Duration::from_secs(60));
    let emergency_expire = entry
        .duration(
            "emergency_expire",
            raw.emergency_expire.as_deref(),
            pushover_bounds,
        )?
        .unwrap_or(Duration::from_secs(3600));
    let priority_high = match raw.priority_high {
        None | Some(1) => PushoverHigh::High,
        Some(2) => PushoverHigh::Emergency,
        Some(other) => {
            return Err(entry.invalid(
                "priority_high",
                Some(other.to_string()),
                "expected 1 (high) or 2 (emergency)",
            ))
        }
    };
    Ok(PushoverConfig {
        token,
        user,
        api_url,
        device: optional_text("device", &raw.device)?,
        sound: optional_text("sound", &raw.sound)?,
        emergency_retry,
        emergency_expire,
        priority_high,
    })
}

pub(super) fn webhook(entry: &Entry<'_>, raw: &WebhookEntry) -> Result<WebhookConfig, ConfigError> {
    let url = entry.url("url", entry.required("url", raw.url.as_deref())?)?;
    let format = match raw.format.as_deref() {
        None | Some("json") => WebhookFormat::Json,
        Some("ntfy") => WebhookFormat::Ntfy,
        Some(other) => {
            return Err(entry.invalid("format", Some(other.into()), "expected json or ntfy"))
        }
    };
    let mut headers = Vec::new();
    for (name, value) in raw.headers.iter().flatten() {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(entry.invalid(
                "headers",
                Some(name.clone()),
                "not a valid HTTP header name",
            ));
        }
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            return Err(entry.invalid(
                "headers",
                Some(name.clone()),
                "its value is not a valid HTTP header value (visible ASCII only)",
            ));
        }
        headers.push((name.clone(), Secret::new(value.clone())));
    }
    let ca = entry.ca_file(raw.ca_file.as_deref())?;
    if ca.is_some() && url.scheme() != "https" {
        return Err(entry.invalid(
            "ca_file",
            raw.ca_file.clone(),
            "needs an https:// url (over http:// no certificate is checked)",
        ));
    }
    Ok(WebhookConfig {
        url,
        format,
        headers,
        timeout: entry.timeout(raw.timeout.as_deref(), DEFAULT_HTTP_SMTP_TIMEOUT)?,
        ca,
    })
}

pub(super) fn exec(entry: &Entry<'_>, raw: &ExecEntry) -> Result<ExecConfig, ConfigError> {
    let command = match &raw.command {
        None => return Err(entry.invalid("command", None, "missing: [\"program\", \"arg\"...]")),
        Some(command) if command.first().is_none_or(|program| program.is_empty()) => {
            return Err(entry.invalid(
                "command",
                Some(format!("{command:?}")),
                "needs a program first: [\"program\", \"arg\"...]",
            ))
        }
        Some(command) => command.clone(),
    };
    Ok(ExecConfig {
        command,
        timeout: entry.timeout(raw.timeout.as_deref(), DEFAULT_EXEC_TIMEOUT)?,
    })
}

/// One channel entry being validated: its name and label for errors.
pub(super) struct Entry<'a> {
    /// `notify.email[1] ("ops")`
    pub(super) table: String,
    pub(super) name: String,
    source: &'a Source,
}

impl<'a> Entry<'a> {
    pub(super) fn new(
        kind: &'static str,
        index: usize,
        name: Option<&str>,
        source: &'a Source,
    ) -> Result<Self, ConfigError> {
        let table = match name {
            Some(name) => format!("notify.{kind}[{index}] ({name:?})"),
            None => format!("notify.{kind}[{index}]"),
        };
        let name = match name {
            Some(name) => name.to_owned(),
            None if index == 0 => kind.to_owned(),
            None => format!("{kind}-{}", index + 1),
        };
        let entry = Self {
            table,
            name,
            source,
        };
        let valid = !entry.name.is_empty()
            && entry.name.len() <= 64
            && entry
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid {
            return Err(entry.invalid(
                "name",
                Some(entry.name.clone()),
                "must be 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        Ok(entry)
    }

    pub(super) fn invalid(
        &self,
        key: &'static str,
        value: Option<String>,
        problem: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Channel {
            key: format!("{}.{key}", self.table),
            value,
            origin: self.source.clone(),
            problem: problem.into(),
        }
    }

    fn required<'v>(
        &self,
        key: &'static str,
        value: Option<&'v str>,
    ) -> Result<&'v str, ConfigError> {
        match value {
            None => Err(self.invalid(key, None, "missing")),
            Some(v) if v.trim().is_empty() => {
                Err(self.invalid(key, Some(v.to_owned()), "must not be empty"))
            }
            Some(v) => Ok(v),
        }
    }

    fn duration(
        &self,
        key: &'static str,
        value: Option<&str>,
        bounds: DurationBounds,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(value) = value else {
            return Ok(None);
        };
        if let Err(e) = humantime::parse_duration(value.trim()) {
            return Err(self.invalid(key, Some(value.into()), format!("{e} (e.g. 10s, 1m)")));
        }
        match super::bounded_duration(value, bounds) {
            Ok(d) => Ok(d),
            Err(problem) => Err(self.invalid(key, Some(value.into()), problem)),
        }
    }

    /// A per-attempt timeout: from 100 ms to the whole send budget.
    fn timeout(&self, value: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
        let bounds = DurationBounds {
            min: Duration::from_millis(100),
            max: SEND_BUDGET,
            zero: None,
        };
        Ok(self.duration("timeout", value, bounds)?.unwrap_or(default))
    }

    /// Reads and checks a `ca_file`: a readable file of PEM certificates, at least one. A
    /// relative path is taken from the config file's directory.
    fn ca_file(&self, value: Option<&str>) -> Result<Option<CaFile>, ConfigError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;

        let Some(value) = value else {
            return Ok(None);
        };
        let invalid = |problem: String| self.invalid("ca_file", Some(value.to_owned()), problem);
        if value.trim().is_empty() {
            return Err(invalid("must not be empty".into()));
        }
        let mut path = std::path::PathBuf::from(value);
        if path.is_relative() {
            if let Source::File(file) = self.source {
                if let Some(dir) = file.parent() {
                    path = dir.join(path);
                }
            }
        }
        let pem = std::fs::read(&path)
            .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .map(|c| c.map(|der| der.as_ref().to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("{} is not valid PEM: {e}", path.display())))?;
        if certificates.is_empty() {
            return Err(invalid(format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            )));
        }
        Ok(Some(CaFile { path, certificates }))
    }

    fn url(&self, key: &'static str, value: &str) -> Result<Url, ConfigError> {
        let url = Url::parse(value.trim())
            .map_err(|e| self.invalid(key, Some(value.into()), format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(self.invalid(
                key,
                Some(value.into()),
                "expected an http:// or https:// URL with a host",
            ));
        }
        Ok(url)
    }

    fn mailbox(&self, key: &'static str, value: &str) -> Result<Mailbox, ConfigError> {
        value.trim().parse::<Mailbox>().map_err(|e| {
            self.invalid(
                key,
                Some(value.into()),
                format!(
                    "not an email address ({e}); e.g. ops@example.org or \"Ops <ops@example.org>\""
                ),
            )
        })
    }
}
