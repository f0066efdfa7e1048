//! The console channel: the message as one block on standard output, and in the log.

use std::io::Write;

use super::{Delivery, Message, NotifyError};
use crate::control_chars;

/// The block printed for `message`: a header line, the title, the body, a blank line. Control
/// characters are shown escaped (the body keeps its line feeds), never sent to the terminal.
pub(crate) fn render(message: &Message) -> String {
    let mut block = format!(
        "== rover-agent notification ({}) ==\n{}\n",
        message.priority.as_str(),
        control_chars::escape(&message.title)
    );
    if !message.body.trim().is_empty() {
        block.push_str(&control_chars::escape_keeping_lines(
            message.body.trim_end(),
        ));
        block.push('\n');
    }
    block.push('\n');
    block
}

/// Prints `message` to stdout in one write and logs it at info.
pub(crate) fn send(message: &Message) -> Result<Delivery, NotifyError> {
    tracing::info!(
        title = %control_chars::escape(&message.title),
        priority = message.priority.as_str(),
        body = %control_chars::escape(&message.body),
        "notification"
    );
    let block = render(message);
    let mut out = std::io::stdout().lock();
    out.write_all(block.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| NotifyError::GaveUp(format!("cannot write to standard output: {e}")))?;
    Ok(Delivery { reference: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Priority;

    #[test]
    fn the_block_holds_priority_title_and_body() {
        let message = Message {
            title: "n3 is down".into(),
            body: "n3 stopped talking at 12:00:01\n".into(),
            priority: Priority::High,
            details: serde_json::Value::Null,
            about: Vec::new(),
        };
        assert_eq!(
            render(&message),
            "== rover-agent notification (high) ==\nn3 is down\nn3 stopped talking at 12:00:01\n\n"
        );
    }

    #[test]
    fn control_characters_are_escaped_and_the_body_keeps_its_lines() {
        let message = Message {
            title: "rover: FIRING x\r\u{1b}[2K".into(),
            body: "line one\rforged\nline two\u{7}".into(),
            priority: Priority::Normal,
            about: Vec::new(),
            details: serde_json::Value::Null,
        };
        assert_eq!(
            render(&message),
            "== rover-agent notification (normal) ==\nrover: FIRING x\\u{d}\\u{1b}[2K\n\
             line one\\u{d}forged\nline two\\u{7}\n\n"
        );
    }
}
