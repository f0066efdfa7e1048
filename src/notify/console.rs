//! The console channel: the message as one block on standard output, and in the log.

use std::io::Write;

use super::{Delivery, Message, NotifyError};

/// The block printed for `message`: a header line, the title, the body, a blank line.
pub(crate) fn render(message: &Message) -> String {
    let mut block = format!(
        "== rover-agent notification ({}) ==\n{}\n",
        message.priority.as_str(),
        message.title
    );
    if !message.body.trim().is_empty() {
        block.push_str(message.body.trim_end());
        block.push('\n');
    }
    block.push('\n');
    block
}

/// Prints `message` to stdout in one write and logs it at info.
pub(crate) fn send(message: &Message) -> Result<Delivery, NotifyError> {
    tracing::info!(
        title = %message.title,
        priority = message.priority.as_str(),
        body = %message.body,
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
        };
        assert_eq!(
            render(&message),
            "== rover-agent notification (high) ==\nn3 is down\nn3 stopped talking at 12:00:01\n\n"
        );
    }
}
