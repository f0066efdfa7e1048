//! `POST /v1/notify/test`: a test message through every configured channel, at once, with
//! each channel's outcome.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;

use super::server::{authorize, unavailable, ApiResult, ApiState};
use super::{ChannelTestResult, NotifyTestResponse, TestOutcome};
use crate::notify::{Message, Notifiers, NotifyError, Priority};

pub(super) async fn test(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> ApiResult<NotifyTestResponse> {
    authorize(&state, &headers)?;
    let node = state
        .membership
        .status()
        .await
        .map_err(unavailable)?
        .identity
        .name;
    let mut sends = tokio::task::JoinSet::new();
    let current: Arc<Notifiers> = state.notifiers.borrow().clone();
    for (index, channel) in current.names().into_iter().enumerate() {
        let notifiers = Arc::clone(&current);
        let message = test_message(&node, &state.team, &channel);
        sends.spawn(async move {
            let result = notifiers.send(&channel, &message).await;
            (index, channel_result(channel, result))
        });
    }
    let mut channels = Vec::new();
    while let Some(joined) = sends.join_next().await {
        channels.push(joined.map_err(unavailable)?);
    }
    channels.sort_by_key(|(index, _)| *index);
    Ok(Json(NotifyTestResponse {
        channels: channels.into_iter().map(|(_, result)| result).collect(),
    }))
}

/// The message a test sends through `channel`.
fn test_message(node: &str, team: &str, channel: &str) -> Message {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    Message {
        title: format!("rover-agent test message from {node}"),
        body: format!(
            "This is a test message from rover-agent on {node} (team {team}), sent through \
             the channel \"{channel}\" by `rover-agent notify test` at {now}.\n\
             If you read this, the channel works."
        ),
        priority: Priority::Normal,
        details: serde_json::json!({
            "test": true,
            "node": node,
            "team": team,
            "channel": channel,
            "incidents": [],
        }),
        about: Vec::new(),
    }
}

fn channel_result(
    channel: String,
    result: Result<crate::notify::Delivery, NotifyError>,
) -> ChannelTestResult {
    let (outcome, reference, error) = match result {
        Ok(delivery) => (TestOutcome::Ok, delivery.reference, None),
        Err(NotifyError::Refused(why)) => (TestOutcome::Refused, None, Some(why)),
        Err(other) => (TestOutcome::Failed, None, Some(other.to_string())),
    };
    ChannelTestResult {
        channel,
        outcome,
        reference,
        error,
    }
}
