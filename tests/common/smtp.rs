//! `SmtpSink`: a real SMTP server (Python's aiosmtpd, Debian package `python3-aiosmtpd`) run as
//! a child process on 127.0.0.1 with a port the OS picks, recording every message it receives.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

/// The handler script, beside this file's crate.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/smtp_sink.py");

/// One message the sink received.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReceivedMail {
    /// Envelope sender (MAIL FROM).
    pub from: String,
    /// Envelope recipients (RCPT TO).
    pub to: Vec<String>,
    /// The decoded Subject header.
    pub subject: String,
    /// The decoded text body, with `\n` line ends.
    pub body: String,
    /// The whole message as sent.
    pub raw: String,
    /// Whether the sink answered it with a 550.
    pub refused: bool,
}

/// How the sink answers.
#[derive(Debug, Clone, Default)]
pub struct SmtpSinkOptions {
    /// Answer every DATA with a permanent `550` (the message is still recorded).
    pub refuse: bool,
    /// Require AUTH (PLAIN or LOGIN, allowed without TLS) with this user and password.
    pub auth: Option<(String, String)>,
    /// Listen inside this network namespace, on this address, instead of on 127.0.0.1.
    pub listen_in: Option<(String, String)>,
    /// Offer TLS with this certificate and key (PEM files): STARTTLS, required before MAIL,
    /// or with `implicit` TLS from the first byte.
    pub tls: Option<SinkTls>,
    /// Listen on this port instead of one the OS picks (inside a namespace of its own, where
    /// nothing else listens).
    pub port: Option<u16>,
    /// Answer each DATA this late (the message is recorded at once, as by a server that has
    /// it queued but answers slowly).
    pub delay: Option<Duration>,
}

/// The sink's certificate and how it speaks TLS.
#[derive(Debug, Clone)]
pub struct SinkTls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// TLS from the first byte instead of STARTTLS.
    pub implicit: bool,
}

/// A running aiosmtpd; killed (by its PID) and reaped on drop.
pub struct SmtpSink {
    child: Child,
    port: u16,
    mailbox: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts a sink that accepts every message.
    pub fn start() -> SmtpSink {
        Self::start_with(SmtpSinkOptions::default())
    }

    /// Starts a sink answering as `options` say.
    pub fn start_with(options: SmtpSinkOptions) -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = dir.path().join("mailbox.jsonl");
        let mut command = match &options.listen_in {
            Some((ns, _)) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns, python()]);
                command
            }
            None => Command::new(python()),
        };
        command.arg(SCRIPT).arg(&mailbox);
        if let Some((_, host)) = &options.listen_in {
            command.arg("--host").arg(host);
        }
        if options.refuse {
            command.arg("--refuse");
        }
        if let Some(port) = options.port {
            command.arg("--port").arg(port.to_string());
        }
        if let Some(delay) = options.delay {
            command.arg("--delay").arg(delay.as_secs_f64().to_string());
        }
        if let Some(tls) = &options.tls {
            command.arg("--tls-cert").arg(&tls.cert);
            command.arg("--tls-key").arg(&tls.key);
            if tls.implicit {
                command.arg("--implicit-tls");
            }
        }
        if let Some((user, password)) = &options.auth {
            command.arg("--auth").arg(format!("{user}:{password}"));
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python()));
        let port = read_port(&mut child).unwrap_or_else(|why| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the SMTP sink did not start ({why}); it needs python3-aiosmtpd \
                 (scripts/test.sh installs it)"
            )
        });
        SmtpSink {
            child,
            port,
            mailbox,
            _dir: dir,
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        read_mailbox(&self.mailbox)
    }

    /// Waits until at least `n` messages have arrived; returns them all. Panics after
    /// `timeout`, showing what did arrive.
    pub fn wait_for_count(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let mut messages = Vec::new();
        let arrived = super::wait_for(timeout, || {
            messages = self.messages();
            messages.len() >= n
        });
        assert!(
            arrived.is_some(),
            "expected {n} messages within {timeout:?}, got {}: {messages:?}",
            messages.len()
        );
        messages
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's python3, which sees Debian's aiosmtpd, ahead of any other python3 in PATH.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// The first line of the sink's stdout: its port (within 20 s).
fn read_port(child: &mut Child) -> Result<u16, String> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(read.map(|_| line));
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .map_err(|_| "no port printed within 20 s".to_owned())?
        .map_err(|e| e.to_string())?;
    line.trim()
        .parse()
        .map_err(|_| format!("expected a port, got {line:?}"))
}

fn read_mailbox(path: &Path) -> Vec<ReceivedMail> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    // A line still being written has no newline yet: only complete lines count.
    text.split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
