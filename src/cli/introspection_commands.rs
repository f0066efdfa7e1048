//! `events`, `monitor`, and `members`/`info`/`events` asked `--via` a member's cluster port
//! from outside the cluster (see [`crate::introspection`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use rover_membership::runtime::unix_ms;

use super::commands::{write_line, write_text};
use super::table::render;
use super::Format;
use crate::api::client::ApiClient;
use crate::introspection::remote::{self, IntrospectQuery};
use crate::introspection::{ClusterEvent, EventFilter, EventOp};

/// `--via HOST:PORT --key-file FILE`: ask a member over its cluster port instead of the local
/// API.
#[derive(Debug, Clone, Args)]
pub struct ViaArgs {
    /// Ask this member's cluster port (gossip address) from outside the cluster.
    #[arg(long, value_name = "HOST:PORT", requires = "key_file")]
    pub via: Option<String>,
    /// The cluster key (one base64 line from `keygen`), for `--via`.
    #[arg(long, value_name = "FILE", requires = "via")]
    pub key_file: Option<PathBuf>,
}

impl ViaArgs {
    /// The member and key to ask, if `--via` was given.
    fn target(&self) -> Result<Option<(SocketAddr, PathBuf)>> {
        let (Some(via), Some(key_file)) = (&self.via, &self.key_file) else {
            return Ok(None);
        };
        let addr = crate::config::parse_seed(via).map_err(|e| anyhow!("--via {via:?}: {e}"))?;
        Ok(Some((addr, key_file.clone())))
    }

    /// Asks `query` over the cluster port if `--via` was given: the answer decoded.
    pub async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        query: IntrospectQuery,
    ) -> Result<Option<T>> {
        let Some((addr, key_file)) = self.target()? else {
            return Ok(None);
        };
        let json = remote::ask(addr, &key_file, query).await?;
        let value = serde_json::from_str(&json)
            .with_context(|| format!("{addr} sent an unreadable answer"))?;
        Ok(Some(value))
    }
}

/// Parses an `--op` value.
pub fn parse_op(text: &str) -> Result<EventOp, String> {
    text.parse::<EventOp>().map_err(|e| e.to_string())
}

/// The query string of a filter for `/v1/events` and `/v1/monitor`.
fn query_string(filter: &EventFilter) -> String {
    let mut parts = Vec::new();
    if let Some(since) = filter.since_ms {
        parts.push(format!("since_ms={since}"));
    }
    if !filter.ops.is_empty() {
        let ops: Vec<&str> = filter.ops.iter().map(|o| o.as_str()).collect();
        parts.push(format!("ops={}", ops.join(",")));
    }
    if let Some(node) = &filter.node {
        parts.push(format!("node={}", encode(node)));
    }
    parts.join("&")
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `events`.
pub async fn events(
    client: &ApiClient,
    format: Format,
    since: Option<Duration>,
    ops: &[EventOp],
    node: Option<&str>,
    via: &ViaArgs,
) -> Result<()> {
    let filter = EventFilter {
        since_ms: since
            .map(|d| unix_ms().saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
        ops: ops.to_vec(),
        node: node.map(str::to_owned),
    };
    let events: Vec<ClusterEvent> = match via.ask(IntrospectQuery::Events(filter.clone())).await? {
        Some(events) => events,
        None => {
            client
                .get(&format!("/v1/events?{}", query_string(&filter)))
                .await?
        }
    };
    match format {
        Format::Json => write_line(&serde_json::to_string_pretty(&events)?),
        Format::Text | Format::Dot => write_text(&events_table(&events)),
    }
    Ok(())
}

/// Unix ms as an RFC 3339 time with milliseconds (UTC).
pub(super) fn time_of(at_ms: u64) -> String {
    // The last millisecond of year 9999: RFC 3339 has four-digit years.
    const LAST_MS: u64 = 253_402_300_799_999;
    let at: SystemTime = UNIX_EPOCH + Duration::from_millis(at_ms.min(LAST_MS));
    humantime::format_rfc3339_millis(at).to_string()
}

/// The events as a table, oldest first.
pub fn events_table(events: &[ClusterEvent]) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                time_of(e.at_ms),
                e.op.to_string(),
                e.node.clone(),
                e.members.to_string(),
                cluster_of(e),
                e.detail.clone(),
            ]
        })
        .collect();
    render(
        &["SEQ", "TIME", "OP", "NODE", "MEMBERS", "CLUSTER", "DETAIL"],
        &rows,
    )
}

fn cluster_of(event: &ClusterEvent) -> String {
    let short = |c: &str| c.chars().take(8).collect::<String>();
    match &event.old_cluster {
        Some(old) => format!("{} (was {})", short(&event.cluster), short(old)),
        None if event.cluster.is_empty() => "-".into(),
        None => short(&event.cluster),
    }
}

/// `monitor`: prints new events (and log lines) until Ctrl-C or the agent stops.
pub async fn monitor(
    client: &ApiClient,
    format: Format,
    ops: &[EventOp],
    log_level: Option<&str>,
) -> Result<()> {
    if let Some(level) = log_level {
        crate::introspection::log_stream::parse_level(level)?;
    }
    let mut path = format!(
        "/v1/monitor?{}",
        query_string(&EventFilter {
            ops: ops.to_vec(),
            ..EventFilter::default()
        })
    );
    if let Some(level) = log_level {
        path.push_str(&format!("&log_level={level}"));
    }
    let mut response = client.stream(&path).await?;
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| anyhow!("the monitor stream broke: {e}"))?;
        let Some(chunk) = chunk else {
            return Err(anyhow!("the agent ended the monitor stream (it stopped?)"));
        };
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            print_monitor_line(format, &line[..line.len() - 1]);
        }
        if pending.len() > 1 << 20 {
            return Err(anyhow!("the agent sent a monitor line over 1 MiB"));
        }
    }
}

fn print_monitor_line(format: Format, line: &[u8]) {
    use crate::api::MonitorLine;
    if format == Format::Json {
        write_line(&String::from_utf8_lossy(line));
        return;
    }
    match serde_json::from_slice::<MonitorLine>(line) {
        Ok(MonitorLine::Started { node }) => {
            write_line(&format!("monitoring {node} (Ctrl-C to stop)"));
        }
        Ok(MonitorLine::Event(e)) => write_line(&format!(
            "{} {} {} members={} cluster={} {}",
            time_of(e.at_ms),
            e.op,
            e.node,
            e.members,
            cluster_of(&e),
            e.detail
        )),
        Ok(MonitorLine::Log(l)) => write_line(&format!(
            "{} LOG {} {}: {}",
            time_of(l.at_ms),
            l.level,
            l.target,
            l.message
        )),
        Ok(MonitorLine::Dropped { events, log_lines }) => write_line(&format!(
            "(this reader was too slow: {events} events and {log_lines} log lines dropped)"
        )),
        Err(_) => write_line(&format!(
            "(unreadable line: {})",
            String::from_utf8_lossy(line)
        )),
    }
}
