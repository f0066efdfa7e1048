//! The `[notify]` settings: how long the leader folds events into one message, how often an
//! open incident is repeated, and the channels messages go to (`[[notify.email]]`,
//! `[[notify.pushover]]`, `[[notify.webhook]]`, `[[notify.exec]]`, and the console).
//!
//! Every channel has a name, the same on every node with the same config, because the ledger
//! records notifications by channel name: the `name` key if given, else the kind (`email`,
//! `pushover`, `webhook`, `exec`) for the first of that kind and `kind-N` for the N-th
//! (`email-2`, `email-3`...), counted within the kind. The console is `console`. Errors name the
//! entry and key, e.g. `notify.email[1] ("ops").to = "nobody" (from rover.toml): ...`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use lettre::message::Mailbox;
use reqwest::Url;

use super::channel_tables::{self, Entry, NotifyChannelsFile};
use super::settings::{NOTIFY_CONSOLE, NOTIFY_GROUP_WAIT, NOTIFY_REPEAT_INTERVAL};
use super::values::Values;
use super::{ConfigError, Layer, Source};

/// Default `group_wait`.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(5);
/// Default `repeat_interval`.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
/// Default `timeout` of email and webhook channels.
pub const DEFAULT_HTTP_SMTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `timeout` of exec channels.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// Default Pushover API address.
pub const DEFAULT_PUSHOVER_URL: &str = "https://api.pushover.net";
/// Pushover refuses an emergency `retry` shorter than this.
pub const PUSHOVER_MIN_RETRY: Duration = Duration::from_secs(30);
/// Pushover refuses an emergency `expire` longer than this.
pub const PUSHOVER_MAX_EXPIRE: Duration = Duration::from_secs(3 * 3600);

/// The validated `[notify]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    /// How long the leader waits to fold related events into one message.
    pub group_wait: Duration,
    /// How often a still-open incident is notified again; `None` (`"0s"`): never.
    pub repeat_interval: Option<Duration>,
    /// The channels, console first (if on), then emails, Pushovers, webhooks and execs, each
    /// kind in file order.
    pub channels: Vec<ChannelConfig>,
}

impl Default for NotifyConfig {
    /// 5 s, 4 h, and the console alone.
    fn default() -> Self {
        Self {
            group_wait: DEFAULT_GROUP_WAIT,
            repeat_interval: Some(DEFAULT_REPEAT_INTERVAL),
            channels: vec![ChannelConfig {
                name: "console".into(),
                kind: ChannelKind::Console,
            }],
        }
    }
}

impl NotifyConfig {
    /// The channel names, in the order of [`NotifyConfig::channels`].
    pub fn names(&self) -> Vec<String> {
        self.channels.iter().map(|c| c.name.clone()).collect()
    }
}

/// One configured channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelConfig {
    /// Its name (see the module docs).
    pub name: String,
    /// What it is and its settings.
    pub kind: ChannelKind,
}

/// The kinds of channel and their settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelKind {
    /// Standard output and the log.
    Console,
    /// SMTP.
    Email(EmailConfig),
    /// Pushover's message API.
    Pushover(PushoverConfig),
    /// An HTTP POST (JSON, or ntfy's publish API).
    Webhook(WebhookConfig),
    /// A program run without a shell.
    Exec(ExecConfig),
}

impl ChannelKind {
    /// `console`, `email`, `pushover`, `webhook` or `exec`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ChannelKind::Console => "console",
            ChannelKind::Email(_) => "email",
            ChannelKind::Pushover(_) => "pushover",
            ChannelKind::Webhook(_) => "webhook",
            ChannelKind::Exec(_) => "exec",
        }
    }
}

/// A password or token: shown as `***` by `Debug`, so configs can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (`none`): only for a relay on a trusted network.
    None,
    /// Plain connection upgraded with STARTTLS, which the server must offer (`starttls`).
    StartTls,
    /// TLS from the first byte (`tls`, "SMTPS").
    Tls,
}

impl SmtpTls {
    /// The usual port: 25, 587 or 465.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        }
    }
}

/// SMTP login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpAuth {
    /// User name.
    pub username: String,
    /// Password.
    pub password: Secret,
}

/// `[[notify.email]]`: one email to every `to` address per message.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    /// SMTP server name or address.
    pub smtp_host: String,
    /// SMTP port (default by `tls`: 25, 587, 465).
    pub smtp_port: u16,
    /// How the connection is secured (default STARTTLS).
    pub tls: SmtpTls,
    /// Login, if the server needs one.
    pub auth: Option<SmtpAuth>,
    /// Sender.
    pub from: Mailbox,
    /// Recipients (at least one).
    pub to: Vec<Mailbox>,
    /// Bound on each attempt, from connecting to the server's answer to the message
    /// (default 10 s).
    pub timeout: Duration,
    /// Root certificates trusted besides the built-in ones (`ca_file`), for a relay with an
    /// in-house CA.
    pub ca: Option<CaFile>,
}

/// A `ca_file`: PEM root certificates a channel trusts besides the built-in ones, read and
/// checked when the config is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFile {
    /// The file, as resolved (relative paths from the config file's directory).
    pub path: std::path::PathBuf,
    /// Its certificates, DER-encoded, in file order (at least one).
    pub certificates: Vec<Vec<u8>>,
}

/// What a [`crate::notify::Priority::High`] message is on Pushover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushoverHigh {
    /// Priority 1: bypasses the user's quiet hours.
    High,
    /// Priority 2: repeated every `emergency_retry` until acknowledged or `emergency_expire`.
    Emergency,
}

/// `[[notify.pushover]]`: Pushover's message API.
#[derive(Debug, Clone, PartialEq)]
pub struct PushoverConfig {
    /// The application's API token.
    pub token: Secret,
    /// The user (or group) key.
    pub user: Secret,
    /// API address; messages go to `{api_url}/1/messages.json` (default
    /// `https://api.pushover.net`).
    pub api_url: Url,
    /// Send to this device (or comma-separated devices) only.
    pub device: Option<String>,
    /// One of Pushover's sound names.
    pub sound: Option<String>,
    /// Emergency messages repeat this often (at least 30 s).
    pub emergency_retry: Duration,
    /// Emergency messages stop repeating after this (at most 3 h).
    pub emergency_expire: Duration,
    /// What a High message maps to.
    pub priority_high: PushoverHigh,
}

/// The body a webhook sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// `{"title", "body", "priority", "details"}` as `application/json`.
    Json,
    /// ntfy's publish API: the body as text, `Title`, `Priority` and `Tags` headers.
    Ntfy,
}

/// `[[notify.webhook]]`: an HTTP POST per message.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// Where to POST (`http` or `https`).
    pub url: Url,
    /// What to send.
    pub format: WebhookFormat,
    /// Extra request headers (e.g. `Authorization`), names as given.
    pub headers: Vec<(String, Secret)>,
    /// Bound on each request (default 10 s).
    pub timeout: Duration,
    /// Root certificates trusted besides the built-in ones (`ca_file`; `https` URLs only).
    pub ca: Option<CaFile>,
}

/// `[[notify.exec]]`: a program run per message, without a shell.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecConfig {
    /// Program, then arguments.
    pub command: Vec<String>,
    /// Killed (with its process group) after this long (default 30 s).
    pub timeout: Duration,
}

/// Resolves the `[notify]` settings and channel tables of `layers` (lowest first).
pub(super) fn resolve(
    layers: &[(&Layer, Source)],
    values: &Values<'_>,
) -> Result<NotifyConfig, ConfigError> {
    let group_wait = values
        .duration(&NOTIFY_GROUP_WAIT)?
        .and_then(|d| d.value)
        .unwrap_or(Duration::ZERO);
    let repeat_interval = values
        .duration(&NOTIFY_REPEAT_INTERVAL)?
        .and_then(|d| d.value);
    let console = values.switch(&NOTIFY_CONSOLE)?;
    let channels = match layers
        .iter()
        .rev()
        .find_map(|(layer, source)| layer.notify.as_ref().map(|file| (file, source)))
    {
        Some((file, source)) => channels(file, console, source)?,
        None if console == Some(false) => Vec::new(),
        None => NotifyConfig::default().channels,
    };
    Ok(NotifyConfig {
        group_wait,
        repeat_interval,
        channels,
    })
}

fn channels(
    file: &NotifyChannelsFile,
    console: Option<bool>,
    source: &Source,
) -> Result<Vec<ChannelConfig>, ConfigError> {
    let others = file.email.len() + file.pushover.len() + file.webhook.len() + file.exec.len();
    let mut channels = Vec::with_capacity(others + 1);
    if console.unwrap_or(others == 0) {
        channels.push(ChannelConfig {
            name: "console".into(),
            kind: ChannelKind::Console,
        });
    }
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let mut add = |entry: Entry<'_>, kind: ChannelKind| -> Result<(), ConfigError> {
        if entry.name == "console" {
            return Err(entry.invalid(
                "name",
                Some("console".into()),
                "is reserved for the console; pick another name",
            ));
        }
        if let Some(first) = labels.insert(entry.name.clone(), entry.table.clone()) {
            return Err(entry.invalid(
                "name",
                Some(entry.name.clone()),
                format!("duplicate channel name: {first} has it too"),
            ));
        }
        channels.push(ChannelConfig {
            name: entry.name,
            kind,
        });
        Ok(())
    };
    for (index, raw) in file.email.iter().enumerate() {
        let entry = Entry::new("email", index, raw.name.as_deref(), source)?;
        let kind = ChannelKind::Email(channel_tables::email(&entry, raw)?);
        add(entry, kind)?;
    }
    for (index, raw) in file.pushover.iter().enumerate() {
        let entry = Entry::new("pushover", index, raw.name.as_deref(), source)?;
        let kind = ChannelKind::Pushover(channel_tables::pushover(&entry, raw)?);
        add(entry, kind)?;
    }
    for (index, raw) in file.webhook.iter().enumerate() {
        let entry = Entry::new("webhook", index, raw.name.as_deref(), source)?;
        let kind = ChannelKind::Webhook(channel_tables::webhook(&entry, raw)?);
        add(entry, kind)?;
    }
    for (index, raw) in file.exec.iter().enumerate() {
        let entry = Entry::new("exec", index, raw.name.as_deref(), source)?;
        let kind = ChannelKind::Exec(channel_tables::exec(&entry, raw)?);
        add(entry, kind)?;
    }
    Ok(channels)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn from_toml(text: &str) -> Result<NotifyConfig, ConfigError> {
        from_toml_and_env(text, &[])
    }

    fn from_toml_and_env(text: &str, env: &[(&str, &str)]) -> Result<NotifyConfig, ConfigError> {
        let file = Layer::from_toml(text, Path::new("rover.toml")).unwrap();
        let env = Layer::from_env(|name| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        });
        resolve(
            &[
                (&file, Source::File("rover.toml".into())),
                (&env, Source::Env("")),
            ],
            &Values::new(&[
                (&file, Source::File("rover.toml".into())),
                (&env, Source::Env("")),
            ]),
        )
    }

    fn error(text: &str) -> String {
        from_toml(text).unwrap_err().to_string()
    }

    const EMAIL: &str = "[[notify.email]]\nsmtp_host = \"127.0.0.1\"\nfrom = \"rover@example.org\"\nto = [\"ops@example.org\"]\n";
    const PUSHOVER: &str = "[[notify.pushover]]\ntoken = \"azGDORePK8gMaC0QOYAMyEEuzJnyUi\"\nuser = \"uQiRzpo4DXghDmr9QzzfQu27cmVRsG\"\n";

    #[test]
    fn without_a_notify_section_only_the_console_is_on() {
        let config = from_toml("").unwrap();
        assert_eq!(config, NotifyConfig::default());
        assert_eq!(config.group_wait, Duration::from_secs(5));
        assert_eq!(config.repeat_interval, Some(Duration::from_secs(4 * 3600)));
        assert_eq!(config.names(), ["console"]);
    }

    #[test]
    fn the_console_goes_off_when_another_channel_is_configured_unless_set_true() {
        assert_eq!(from_toml(EMAIL).unwrap().names(), ["email"]);
        let both = format!("[notify]\nconsole = true\n{EMAIL}");
        assert_eq!(from_toml(&both).unwrap().names(), ["console", "email"]);
        let none = from_toml("[notify]\nconsole = false\n").unwrap();
        assert!(none.channels.is_empty());
    }

    #[test]
    fn group_wait_and_repeat_interval_come_from_the_file_or_the_environment() {
        let config =
            from_toml("[notify]\ngroup_wait = \"2s\"\nrepeat_interval = \"30m\"\n").unwrap();
        assert_eq!(config.group_wait, Duration::from_secs(2));
        assert_eq!(config.repeat_interval, Some(Duration::from_secs(1800)));
        let config = from_toml_and_env(
            "[notify]\ngroup_wait = \"2s\"\n",
            &[("ROVER_GROUP_WAIT", "9s"), ("ROVER_REPEAT_INTERVAL", "0s")],
        )
        .unwrap();
        assert_eq!(config.group_wait, Duration::from_secs(9));
        assert_eq!(config.repeat_interval, None, "0s means never");
        let err = from_toml_and_env("", &[("ROVER_GROUP_WAIT", "soon")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("notify.group_wait")
                && err.contains("soon")
                && err.contains("ROVER_GROUP_WAIT"),
            "{err}"
        );
    }

    #[test]
    fn an_email_channel_gets_starttls_on_587_and_a_ten_second_timeout_by_default() {
        let config = from_toml(EMAIL).unwrap();
        let ChannelKind::Email(email) = &config.channels[0].kind else {
            panic!("expected email: {config:?}");
        };
        assert_eq!(email.tls, SmtpTls::StartTls);
        assert_eq!(email.smtp_port, 587);
        assert_eq!(email.timeout, Duration::from_secs(10));
        assert_eq!(email.auth, None);
        assert_eq!(email.from.email.to_string(), "rover@example.org");
        assert_eq!(email.to.len(), 1);
    }

    #[test]
    fn the_smtp_port_follows_tls_unless_given() {
        let port = |extra: &str| {
            let config = from_toml(&format!("{EMAIL}{extra}")).unwrap();
            match &config.channels[0].kind {
                ChannelKind::Email(email) => email.smtp_port,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(port("tls = \"none\"\n"), 25);
        assert_eq!(port("tls = \"tls\"\n"), 465);
        assert_eq!(port("tls = \"tls\"\nsmtp_port = 2465\n"), 2465);
    }

    #[test]
    fn email_errors_name_the_entry_and_key() {
        let err = error("[[notify.email]]\nfrom = \"a@b.org\"\nto = [\"c@d.org\"]\n");
        assert!(
            err.contains("notify.email[0].smtp_host") && err.contains("missing"),
            "{err}"
        );
        let err = error(&format!("{EMAIL}[[notify.email]]\nname = \"ops\"\nsmtp_host = \"h\"\nfrom = \"a@b.org\"\nto = [\"not an address\"]\n"));
        assert!(
            err.contains("notify.email[1] (\"ops\").to")
                && err.contains("not an address")
                && err.contains("rover.toml"),
            "{err}"
        );
        let err = error("[[notify.email]]\nsmtp_host = \"h\"\nfrom = \"a@b.org\"\nto = []\n");
        assert!(
            err.contains("notify.email[0].to") && err.contains("at least one"),
            "{err}"
        );
        let err = error(&format!("{EMAIL}username = \"u\"\n"));
        assert!(
            err.contains("notify.email[0].password") && err.contains("missing"),
            "{err}"
        );
        let err = error(&format!("{EMAIL}password = \"p\"\n"));
        assert!(err.contains("notify.email[0].username"), "{err}");
        let err = error(&format!("{EMAIL}tls = \"ssl\"\n"));
        assert!(
            err.contains("notify.email[0].tls") && err.contains("starttls"),
            "{err}"
        );
        let err = error(&format!("{EMAIL}timeout = \"5 parsecs\"\n"));
        assert!(err.contains("notify.email[0].timeout"), "{err}");
    }

    #[test]
    fn email_auth_needs_both_username_and_password() {
        let config = from_toml(&format!(
            "{EMAIL}username = \"u\"\npassword = \"hunter2\"\n"
        ))
        .unwrap();
        let ChannelKind::Email(email) = &config.channels[0].kind else {
            panic!();
        };
        let auth = email.auth.as_ref().unwrap();
        assert_eq!(auth.username, "u");
        assert_eq!(auth.password.expose(), "hunter2");
        assert!(
            !format!("{config:?}").contains("hunter2"),
            "secrets stay out of Debug"
        );
    }

    #[test]
    fn a_pushover_channel_has_pushovers_defaults() {
        let config = from_toml(PUSHOVER).unwrap();
        let ChannelKind::Pushover(pushover) = &config.channels[0].kind else {
            panic!("{config:?}");
        };
        assert_eq!(pushover.api_url.as_str(), "https://api.pushover.net/");
        assert_eq!(pushover.priority_high, PushoverHigh::High);
        assert_eq!(pushover.emergency_retry, Duration::from_secs(60));
        assert_eq!(pushover.emergency_expire, Duration::from_secs(3600));
        assert_eq!(
            (pushover.device.clone(), pushover.sound.clone()),
            (None, None)
        );
        let config = from_toml(&format!(
            "{PUSHOVER}priority_high = 2\nemergency_retry = \"30s\"\nemergency_expire = \"3h\"\ndevice = \"phone\"\nsound = \"siren\"\napi_url = \"http://127.0.0.1:8080\"\n"
        ))
        .unwrap();
        let ChannelKind::Pushover(pushover) = &config.channels[0].kind else {
            panic!();
        };
        assert_eq!(pushover.priority_high, PushoverHigh::Emergency);
        assert_eq!(pushover.emergency_expire, Duration::from_secs(3 * 3600));
        assert_eq!(pushover.device.as_deref(), Some("phone"));
    }

    #[test]
    fn pushover_limits_are_checked_when_the_config_is_read() {
        let err = error(&format!("{PUSHOVER}emergency_retry = \"10s\"\n"));
        assert!(
            err.contains("notify.pushover[0].emergency_retry") && err.contains("30s"),
            "{err}"
        );
        let err = error(&format!("{PUSHOVER}emergency_expire = \"4h\"\n"));
        assert!(
            err.contains("notify.pushover[0].emergency_expire") && err.contains("3h"),
            "{err}"
        );
        let err = error(&format!("{PUSHOVER}priority_high = 3\n"));
        assert!(err.contains("notify.pushover[0].priority_high"), "{err}");
        let err = error("[[notify.pushover]]\ntoken = \"abc\"\n");
        assert!(
            err.contains("notify.pushover[0].user") && err.contains("missing"),
            "{err}"
        );
        let err = error("[[notify.pushover]]\ntoken = \"a b\"\nuser = \"u\"\n");
        assert!(
            err.contains("notify.pushover[0].token") && !err.contains("a b"),
            "{err}"
        );
        let err = error(&format!("{PUSHOVER}api_url = \"ftp://example.org\"\n"));
        assert!(
            err.contains("notify.pushover[0].api_url") && err.contains("http"),
            "{err}"
        );
    }

    #[test]
    fn a_webhook_channel_takes_a_format_headers_and_a_timeout() {
        let config = from_toml(
            "[[notify.webhook]]\nurl = \"http://127.0.0.1:8080/hook\"\nformat = \"ntfy\"\nheaders = { Authorization = \"Bearer tk\" }\ntimeout = \"3s\"\n",
        )
        .unwrap();
        let ChannelKind::Webhook(webhook) = &config.channels[0].kind else {
            panic!("{config:?}");
        };
        assert_eq!(webhook.format, WebhookFormat::Ntfy);
        assert_eq!(
            webhook.headers,
            [("Authorization".to_owned(), Secret::new("Bearer tk"))]
        );
        assert_eq!(webhook.timeout, Duration::from_secs(3));
        let defaults = from_toml("[[notify.webhook]]\nurl = \"https://example.org/h\"\n").unwrap();
        let ChannelKind::Webhook(webhook) = &defaults.channels[0].kind else {
            panic!();
        };
        assert_eq!(webhook.format, WebhookFormat::Json);
        assert_eq!(webhook.timeout, Duration::from_secs(10));
    }

    #[test]
    fn webhook_errors_name_the_key() {
        let err = error("[[notify.webhook]]\nurl = \"not a url\"\n");
        assert!(
            err.contains("notify.webhook[0].url") && err.contains("not a url"),
            "{err}"
        );
        let err = error("[[notify.webhook]]\nurl = \"http://h/\"\nformat = \"xml\"\n");
        assert!(err.contains("notify.webhook[0].format"), "{err}");
        let err =
            error("[[notify.webhook]]\nurl = \"http://h/\"\nheaders = { \"Bad Name\" = \"x\" }\n");
        assert!(
            err.contains("notify.webhook[0].headers") && err.contains("Bad Name"),
            "{err}"
        );
        let err = error("[[notify.webhook]]\nurl = \"http://h/\"\ntimeout = \"5m\"\n");
        assert!(
            err.contains("notify.webhook[0].timeout") && err.contains("at most 90s"),
            "{err}"
        );
        let err = error("[[notify.webhook]]\nurl = \"http://h/\"\ntimeout = \"1ms\"\n");
        assert!(
            err.contains("notify.webhook[0].timeout") && err.contains("at least 100ms"),
            "{err}"
        );
    }

    #[test]
    fn an_exec_channel_needs_a_program_and_waits_thirty_seconds_by_default() {
        let config = from_toml("[[notify.exec]]\ncommand = [\"/bin/true\", \"x\"]\n").unwrap();
        let ChannelKind::Exec(exec) = &config.channels[0].kind else {
            panic!("{config:?}");
        };
        assert_eq!(exec.command, ["/bin/true", "x"]);
        assert_eq!(exec.timeout, Duration::from_secs(30));
        let err = error("[[notify.exec]]\ncommand = []\n");
        assert!(err.contains("notify.exec[0].command"), "{err}");
        let err = error("[[notify.exec]]\ntimeout = \"1s\"\n");
        assert!(
            err.contains("notify.exec[0].command") && err.contains("missing"),
            "{err}"
        );
    }

    #[test]
    fn unnamed_channels_are_named_by_kind_and_position_within_the_kind() {
        let text = format!(
            "{EMAIL}{EMAIL}name = \"ops\"\n{EMAIL}{PUSHOVER}[[notify.webhook]]\nurl = \"http://h/\"\n[[notify.exec]]\ncommand = [\"x\"]\n[[notify.exec]]\ncommand = [\"y\"]\n"
        );
        assert_eq!(
            from_toml(&text).unwrap().names(),
            ["email", "ops", "email-3", "pushover", "webhook", "exec", "exec-2"]
        );
    }

    #[test]
    fn duplicate_or_reserved_names_are_refused() {
        let err = error(&format!("{EMAIL}{PUSHOVER}name = \"email\"\n"));
        assert!(
            err.contains("notify.pushover[0] (\"email\").name")
                && err.contains("duplicate")
                && err.contains("notify.email[0]"),
            "{err}"
        );
        let err = error(&format!("{EMAIL}{EMAIL}{EMAIL}name = \"email-2\"\n"));
        assert!(err.contains("duplicate"), "{err}");
        let err = error(&format!("{EMAIL}name = \"console\"\n"));
        assert!(err.contains("reserved"), "{err}");
        let err = error(&format!("{EMAIL}name = \"has space\"\n"));
        assert!(
            err.contains("notify.email[0] (\"has space\").name"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors_naming_the_key() {
        let err = Layer::from_toml(
            &format!("{PUSHOVER}tokn = \"x\"\n"),
            Path::new("rover.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tokn") && err.contains("rover.toml"), "{err}");
        let err = Layer::from_toml(
            "[[notify.email]]\nto = \"ops@example.org\"\n",
            Path::new("rover.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("to"), "{err}");
        let err = Layer::from_toml("[notify]\nconsle = true\n", Path::new("rover.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("consle"), "{err}");
    }
}
