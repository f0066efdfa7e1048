//! `ca_file` on the email and webhook channels: a relay or ntfy server with an in-house CA.
//! The test makes a throw-away CA and a server certificate for 127.0.0.1 with `openssl`, then
//! runs a real SMTP server (aiosmtpd) with STARTTLS and with implicit TLS, and a local HTTPS
//! server: with the CA's file the message arrives; without it, the channel refuses with a TLS
//! error. A bad `ca_file` is a config error naming the key.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::smtp::{SinkTls, SmtpSink, SmtpSinkOptions};
use common::wait_for;
use rover_agent::config::{self, Layer};
use rover_agent::notify::{Message, Notifiers, NotifyError, Priority};

/// A CA and a certificate it signed for 127.0.0.1, in `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl cannot run ({e}): run scripts/test.sh"));
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

fn make_pki(dir: &Path) -> Pki {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca_args = vec!["req", "-x509"];
    ca_args.extend(ec);
    ca_args.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=rover test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(dir, &ca_args);
    let mut csr_args = vec!["req"];
    csr_args.extend(ec);
    csr_args.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr_args);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// Notifiers for a `[notify]` config given as TOML; or the config error.
fn notifiers(toml: &str) -> Result<Notifiers, String> {
    let layer = Layer::from_toml(toml, Path::new("tls-test.toml")).map_err(|e| e.to_string())?;
    let config = config::resolve(
        Some((layer, PathBuf::from("tls-test.toml"))),
        Layer::default(),
        Layer::default(),
        PathBuf::from("/tmp/rover-tls-test"),
        "testhost".into(),
    )
    .map_err(|e| e.to_string())?;
    Ok(Notifiers::from_config(&config.notify).unwrap())
}

fn message() -> Message {
    Message {
        title: "n3 is down".into(),
        body: "since 12:00".into(),
        priority: Priority::High,
        details: serde_json::json!({}),
        about: Vec::new(),
    }
}

fn email(port: u16, tls: &str, ca: Option<&Path>) -> String {
    let ca = ca.map_or(String::new(), |p| {
        format!("ca_file = \"{}\"\n", p.display())
    });
    format!(
        "[[notify.email]]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\ntls = \"{tls}\"\n\
         from = \"rover@example.org\"\nto = [\"ops@example.org\"]\n{ca}"
    )
}

async fn expect_tls_refusal(notifiers: &Notifiers, channel: &str) {
    match notifiers.send(channel, &message()).await {
        Err(NotifyError::Refused(why)) => assert!(
            why.contains("TLS") || why.to_lowercase().contains("certificate"),
            "{why}"
        ),
        other => panic!("expected a TLS refusal on {channel}, got {other:?}"),
    }
}

#[tokio::test]
async fn email_over_starttls_and_implicit_tls_trusts_the_ca_of_its_ca_file_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    for (tls, implicit) in [("starttls", false), ("tls", true)] {
        let sink = SmtpSink::start_with(SmtpSinkOptions {
            tls: Some(SinkTls {
                cert: pki.cert.clone(),
                key: pki.key.clone(),
                implicit,
            }),
            ..SmtpSinkOptions::default()
        });
        let trusting = notifiers(&email(sink.port(), tls, Some(&pki.ca))).unwrap();
        trusting.send("email", &message()).await.unwrap();
        let mails = sink.wait_for_count(1, Duration::from_secs(10));
        assert_eq!(mails.len(), 1, "{tls}");
        assert!(mails[0].subject.contains("n3 is down"), "{:?}", mails[0]);

        let without = notifiers(&email(sink.port(), tls, None)).unwrap();
        expect_tls_refusal(&without, "email").await;
        assert_eq!(
            sink.messages().len(),
            1,
            "{tls}: nothing sent without the CA"
        );
    }
}

/// The local HTTPS server of tests/fixtures/https_sink.py, killed by its PID on drop.
struct HttpsSink {
    child: Child,
    port: u16,
    record: PathBuf,
}

impl HttpsSink {
    fn start(dir: &Path, pki: &Pki) -> HttpsSink {
        let record = dir.join("posts.jsonl");
        let mut child = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/https_sink.py"
            ))
            .arg(&record)
            .arg(&pki.cert)
            .arg(&pki.key)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no port: {line:?}"));
        HttpsSink {
            child,
            port,
            record,
        }
    }

    fn posts(&self) -> usize {
        std::fs::read_to_string(&self.record).map_or(0, |text| text.lines().count())
    }
}

impl Drop for HttpsSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_https_webhook_trusts_the_ca_of_its_ca_file_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let sink = HttpsSink::start(dir.path(), &pki);
    let hook = |ca: &str| {
        format!(
            "[[notify.webhook]]\nurl = \"https://127.0.0.1:{}/hook\"\n{ca}",
            sink.port
        )
    };
    let trusting = notifiers(&hook(&format!("ca_file = \"{}\"\n", pki.ca.display()))).unwrap();
    trusting.send("webhook", &message()).await.unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || sink.posts() == 1).is_some(),
        "the post did not arrive"
    );
    let without = notifiers(&hook("")).unwrap();
    expect_tls_refusal(&without, "webhook").await;
    assert_eq!(sink.posts(), 1, "nothing posted without the CA");
}

#[test]
fn a_bad_ca_file_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let pki = make_pki(dir.path());
    for (toml, expect) in [
        (email(25, "starttls", Some(&missing)), "cannot read"),
        (email(25, "starttls", Some(&not_pem)), "no PEM certificate"),
        (email(25, "none", Some(&pki.ca)), "needs tls"),
        (
            format!(
                "[[notify.webhook]]\nurl = \"http://127.0.0.1:1/\"\nca_file = \"{}\"\n",
                pki.ca.display()
            ),
            "needs an https:// url",
        ),
    ] {
        let err = notifiers(&toml)
            .err()
            .unwrap_or_else(|| panic!("accepted: {toml}"));
        assert!(err.contains("ca_file") && err.contains(expect), "{err}");
    }
}
