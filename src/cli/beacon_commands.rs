//! `beacon` (start one in the background and print `addr=IP:PORT`), `beacon dump` and
//! `beacon stop` (see [`crate::beacon`]). Dump and stop prove themselves with the cluster key,
//! like every connection to a sealed port.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use rover_membership::Keyring;

use super::commands::{write_line, write_text};
use super::introspection_commands::{events_table, time_of};
use super::Format;
use crate::beacon::{daemonize, Collected};
use crate::peer::{PeerConnection, PeerMessage, EXCHANGE_TIMEOUT};

/// `beacon`: flags to start one, or a subcommand to ask a running one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BeaconArgs {
    /// Ask a running beacon.
    #[command(subcommand)]
    pub action: Option<BeaconAction>,
    /// The cluster key (one base64 line from `keygen`): agents seal their events with it.
    #[arg(long, value_name = "FILE", env = "ROVER_KEY_FILE", required = true)]
    pub key_file: Option<PathBuf>,
    /// Where to listen (port 0: any free port; 0.0.0.0: every address, and the address
    /// printed is this host's first non-loopback IPv4).
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:0")]
    pub bind: SocketAddr,
    /// The file `beacon stop` writes everything collected to (JSON).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Do not fork: run the beacon in this process (it prints `addr=IP:PORT` once listening).
    #[arg(long)]
    pub foreground: bool,
}

/// What to ask a running beacon.
#[derive(Debug, Subcommand)]
pub enum BeaconAction {
    /// Print what the beacon collected, per node in time order.
    Dump(BeaconTarget),
    /// Make the beacon write everything to its `--out` file and exit.
    Stop(BeaconTarget),
}

/// Which beacon, and the key to ask it with.
#[derive(Debug, Clone, Args)]
pub struct BeaconTarget {
    /// The beacon's address, as `rover-agent beacon` printed it.
    #[arg(long, value_name = "IP:PORT", env = "ROVER_BEACON")]
    pub beacon: SocketAddr,
    /// The cluster key the beacon was started with.
    #[arg(long, value_name = "FILE", env = "ROVER_KEY_FILE")]
    pub key_file: PathBuf,
}

/// Runs `beacon ...`.
pub fn run(args: &BeaconArgs, format: Format) -> Result<()> {
    match &args.action {
        Some(BeaconAction::Dump(target)) => {
            let collected = runtime()?.block_on(dump(target))?;
            match format {
                Format::Json => write_line(&serde_json::to_string_pretty(&collected)?),
                Format::Text | Format::Dot => write_text(&dump_text(&collected)),
            }
            Ok(())
        }
        Some(BeaconAction::Stop(target)) => {
            let written = runtime()?.block_on(stop(target))?;
            match written {
                Some(file) => write_line(&format!("beacon stopped; wrote {file}")),
                None => write_line("beacon stopped (it had no --out file: nothing written)"),
            }
            Ok(())
        }
        None => start(args, format),
    }
}

fn start(args: &BeaconArgs, format: Format) -> Result<()> {
    let key_file = args
        .key_file
        .as_deref()
        .ok_or_else(|| anyhow!("--key-file is required"))?;
    if args.foreground {
        return daemonize::run_foreground(key_file, args.bind, args.out.clone());
    }
    // Fail here, in the foreground, on a key file the background would refuse.
    crate::data_dir::read_key_file(key_file)?;
    let mut forwarded: Vec<OsString> = vec![
        "--key-file".into(),
        key_file.into(),
        "--bind".into(),
        args.bind.to_string().into(),
    ];
    if let Some(out) = &args.out {
        forwarded.extend(["--out".into(), out.into()]);
    }
    let addr = daemonize::fork(&forwarded)?;
    match format {
        Format::Json => write_line(&serde_json::json!({ "addr": addr.to_string() }).to_string()),
        Format::Text | Format::Dot => write_line(&daemonize::announcement(addr)),
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn ask(target: &BeaconTarget, message: PeerMessage) -> Result<PeerMessage> {
    let key = crate::data_dir::read_key_file(&target.key_file)?;
    let addr = target.beacon;
    let unreachable = |key_file: &Path| {
        format!(
            "no beacon answers at {addr} (stopped? is {} its key?)",
            key_file.display()
        )
    };
    let mut connection = PeerConnection::connect(addr, Keyring::new(key))
        .await
        .with_context(|| unreachable(&target.key_file))?;
    connection
        .ask(&message, EXCHANGE_TIMEOUT)
        .await
        .with_context(|| unreachable(&target.key_file))
}

/// Everything the beacon at `target` collected.
pub async fn dump(target: &BeaconTarget) -> Result<Collected> {
    match ask(target, PeerMessage::BeaconDump).await? {
        PeerMessage::BeaconDumpAnswer(collected) => Ok(collected),
        _ => bail!("{} sent an unexpected answer", target.beacon),
    }
}

/// Stops the beacon at `target`; the file it wrote, if it has one.
pub async fn stop(target: &BeaconTarget) -> Result<Option<String>> {
    match ask(target, PeerMessage::BeaconStop).await? {
        PeerMessage::BeaconStopAnswer(Ok(written)) => Ok(written),
        PeerMessage::BeaconStopAnswer(Err(why)) => {
            bail!("the beacon could not write its --out file, so it keeps running: {why}")
        }
        _ => bail!("{} sent an unexpected answer", target.beacon),
    }
}

fn dump_text(collected: &Collected) -> String {
    let refused = &collected.refused;
    let mut out = format!(
        "beacon {} (pid {}), up since {}; {} nodes; refused: {} handshakes, {} frames, {} over \
         the limit, {} timed out\n",
        collected.listening,
        collected.pid,
        time_of(collected.started_ms),
        collected.nodes.len(),
        refused.handshakes,
        refused.frames,
        refused.over_limit,
        refused.timeouts
    );
    if collected.dropped_nodes > 0 {
        out.push_str(&format!(
            "batches dropped from nodes past the limit: {}\n",
            collected.dropped_nodes
        ));
    }
    for node in &collected.nodes {
        out.push_str(&format!(
            "\n{}: {} events in {} batches; dropped by the agent {}, by the beacon {}\n",
            node.node,
            node.events.len(),
            node.batches,
            node.dropped_by_agent,
            node.dropped_here
        ));
        let events: Vec<_> = node.events.iter().map(|a| a.event.clone()).collect();
        out.push_str(&events_table(&events));
    }
    out
}
