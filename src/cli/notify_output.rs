//! Output of `notify test`.

use super::table::render;
use crate::api::{NotifyTestResponse, TestOutcome};

/// One line per channel: name, result, and the provider's reference or the error.
pub fn notify_test_table(response: &NotifyTestResponse) -> String {
    if response.channels.is_empty() {
        return "no notification channel is configured (console = false and no [[notify.*]])\n"
            .into();
    }
    let rows: Vec<Vec<String>> = response
        .channels
        .iter()
        .map(|c| {
            let detail = match (&c.reference, &c.error) {
                (_, Some(error)) => error.clone(),
                (Some(reference), None) => reference.clone(),
                (None, None) => "-".into(),
            };
            vec![c.channel.clone(), c.outcome.as_str().to_owned(), detail]
        })
        .collect();
    render(&["CHANNEL", "RESULT", "REFERENCE / ERROR"], &rows)
}

/// How many channels did not deliver.
pub fn failures(response: &NotifyTestResponse) -> usize {
    response
        .channels
        .iter()
        .filter(|c| c.outcome != TestOutcome::Ok)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ChannelTestResult;

    #[test]
    fn each_channel_gets_a_line_with_its_reference_or_error() {
        let response = NotifyTestResponse {
            channels: vec![
                ChannelTestResult {
                    channel: "email".into(),
                    outcome: TestOutcome::Ok,
                    reference: Some("2.0.0 Ok: queued as 4C2F1".into()),
                    error: None,
                },
                ChannelTestResult {
                    channel: "pushover".into(),
                    outcome: TestOutcome::Refused,
                    reference: None,
                    error: Some("user identifier is invalid".into()),
                },
            ],
        };
        let text = notify_test_table(&response);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[1].starts_with("email")
                && lines[1].contains("ok")
                && lines[1].contains("queued as 4C2F1")
        );
        assert!(lines[2].starts_with("pushover") && lines[2].contains("refused"));
        assert_eq!(failures(&response), 1);
    }
}
