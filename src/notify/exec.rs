//! The exec channel: runs a program (no shell) per message, in its own process group.
//!
//! The program gets the message as JSON (`{"title", "body", "priority", "details"}`) on stdin
//! and as environment variables: `ROVER_TITLE`, `ROVER_BODY`, `ROVER_PRIORITY` (`low`, `normal`,
//! `high`), `ROVER_INCIDENTS` (the incident ids of `details.incidents`, comma-separated) and
//! `ROVER_IDEMPOTENCY_KEY` (the same for a resend of the same messages, see `identity`; empty
//! for a message about no incident).
//! Exit 0 is delivered (the reference is the first line of stdout, if any); another exit code is
//! refused, with the code and the first line of stderr; a program not found is refused; one
//! still running at the timeout is killed with its process group, reaped, and counts as a
//! failure after retries (none: a script is not retried, it may have half-run).

use std::io;
use std::process::{ExitStatus, Stdio};

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{Delivery, Message, NotifyError};
use crate::checks::external::{kill_group, read_capped, OUTPUT_CAP};
use crate::config::notify::ExecConfig;

/// One exec channel.
#[derive(Debug, Clone)]
pub(crate) struct ExecNotifier {
    config: ExecConfig,
}

impl ExecNotifier {
    /// A channel running `config.command`.
    pub(crate) fn new(config: ExecConfig) -> Self {
        Self { config }
    }

    /// Runs the program for `message` and maps how it ended.
    pub(crate) async fn send(&self, message: &Message) -> Result<Delivery, NotifyError> {
        let Some((program, args)) = self.config.command.split_first() else {
            return Err(NotifyError::Refused("empty command".into()));
        };
        let stdin = serde_json::to_vec(message).unwrap_or_default();
        let mut child = Command::new(program)
            .args(args)
            .envs(environment(message))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .map_err(|e| NotifyError::Refused(spawn_failure(program, &e)))?;
        let pid = child.id();
        let (input, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let write_stdin = async move {
            if let Some(mut input) = input {
                // A program that does not read its stdin may close it early: not an error.
                let _ = input.write_all(&stdin).await;
                let _ = input.shutdown().await;
            }
        };
        let timeout = self.config.timeout;
        let finished = tokio::time::timeout(timeout, async {
            let ((), stdout, stderr, status) = tokio::join!(
                write_stdin,
                read_capped(stdout, OUTPUT_CAP),
                read_capped(stderr, OUTPUT_CAP),
                child.wait()
            );
            (stdout, stderr, status)
        })
        .await;
        match finished {
            Ok((stdout, stderr, Ok(status))) => outcome(program, status, &stdout, &stderr),
            Ok((_, _, Err(e))) => Err(NotifyError::GaveUp(format!(
                "cannot wait for {program}: {e}"
            ))),
            Err(_elapsed) => {
                kill_group(pid);
                // Reaps the child; it is already dead unless it left its process group.
                if let Err(e) = child.kill().await {
                    tracing::debug!(program, error = %e, "killing a timed-out notifier failed");
                }
                Err(NotifyError::GaveUp(format!(
                    "{program} still ran after {}: killed",
                    humantime::format_duration(timeout)
                )))
            }
        }
    }
}

/// The `ROVER_*` variables for `message`.
pub(crate) fn environment(message: &Message) -> Vec<(&'static str, String)> {
    vec![
        ("ROVER_TITLE", message.title.clone()),
        ("ROVER_BODY", message.body.clone()),
        ("ROVER_PRIORITY", message.priority.as_str().to_owned()),
        ("ROVER_INCIDENTS", incident_ids(&message.details).join(",")),
        (
            "ROVER_IDEMPOTENCY_KEY",
            super::identity::idempotency_key(&message.about).unwrap_or_default(),
        ),
    ]
}

/// The `id` of each entry of `details.incidents` (strings as they are, numbers as digits).
pub(crate) fn incident_ids(details: &serde_json::Value) -> Vec<String> {
    details
        .get("incidents")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|incident| match incident.get("id")? {
            serde_json::Value::String(id) => Some(id.clone()),
            serde_json::Value::Number(id) => Some(id.to_string()),
            _ => None,
        })
        .collect()
}

fn spawn_failure(program: &str, error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => format!("program not found: {program}"),
        io::ErrorKind::PermissionDenied => {
            format!("program not executable: {program} (permission denied)")
        }
        _ => format!("cannot run {program}: {error}"),
    }
}

/// How a finished program's exit maps to a delivery.
fn outcome(
    program: &str,
    status: ExitStatus,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<Delivery, NotifyError> {
    let first_line = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .map(str::to_owned)
    };
    if status.success() {
        return Ok(Delivery {
            reference: first_line(stdout),
        });
    }
    let how = match status.code() {
        Some(code) => format!("exit code {code}"),
        None => format!("killed ({status})"),
    };
    Err(NotifyError::Refused(match first_line(stderr) {
        Some(line) => format!("{program} failed with {how}: {line}"),
        None => format!("{program} failed with {how}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Priority;

    #[test]
    fn incident_ids_come_from_details() {
        let details = serde_json::json!({
            "incidents": [{"id": "host-down/n3/1"}, {"id": 7}, {"no": "id"}],
            "other": 1
        });
        assert_eq!(incident_ids(&details), ["host-down/n3/1", "7"]);
        assert!(incident_ids(&serde_json::Value::Null).is_empty());
    }

    #[test]
    fn the_environment_names_title_body_priority_and_incidents() {
        let message = Message {
            title: "t".into(),
            body: "b".into(),
            priority: Priority::Low,
            details: serde_json::json!({"incidents": [{"id": "a"}, {"id": "b"}]}),
            about: Vec::new(),
        };
        assert_eq!(
            environment(&message),
            [
                ("ROVER_TITLE", "t".to_owned()),
                ("ROVER_BODY", "b".to_owned()),
                ("ROVER_PRIORITY", "low".to_owned()),
                ("ROVER_INCIDENTS", "a,b".to_owned()),
                ("ROVER_IDEMPOTENCY_KEY", String::new()),
            ]
        );
    }
}
