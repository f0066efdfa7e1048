//! Starting the beacon in the background (seed 002: "when the beacon starts, it forks"): the
//! foreground runs this same binary again with `--foreground`, in a process group of its own
//! with no terminal input, and reads its standard output. The background process binds, then
//! prints `addr=IP:PORT`; the foreground prints that line and exits 0, only then, so
//! `addr=$(rover-agent beacon --key-file k)` is usable at once. If the background process
//! fails first, the foreground says why (its standard error) and exits 1.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rover_membership::Keyring;

use super::server::Beacon;

/// How long the foreground waits for the background process to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The line the background process prints once it listens.
pub fn announcement(addr: SocketAddr) -> String {
    format!("addr={addr}")
}

/// Runs `rover-agent beacon <args> --foreground` in the background and returns the
/// address it announced.
pub fn fork(args: &[OsString]) -> Result<SocketAddr> {
    let exe = std::env::current_exe().context("cannot find this program to start the beacon")?;
    let mut child = Command::new(exe)
        .arg("beacon")
        .args(args)
        .arg("--foreground")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .context("cannot start the beacon process")?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no pipe from the beacon process"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(read);
    });
    let line = match rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => return Err(e).context("reading from the beacon process"),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the beacon process did not listen within {START_TIMEOUT:?}");
        }
    };
    if let Some(addr) = line.trim().strip_prefix("addr=") {
        return addr
            .parse()
            .with_context(|| format!("the beacon process announced {addr:?}"));
    }
    // It ended (or said something else): report its own words.
    let status = child.wait().ok();
    let mut why = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut why);
    }
    let why = why.trim().trim_start_matches("error: ");
    bail!(
        "the beacon did not start ({}): {}",
        status.map_or_else(|| "no status".into(), |s| s.to_string()),
        if why.is_empty() { line.trim() } else { why }
    )
}

/// The beacon itself, in this process: reads the key, binds `bind`, prints
/// [`announcement`] on standard output, and serves until `beacon stop`.
pub fn run_foreground(key_file: &Path, bind: SocketAddr, out: Option<PathBuf>) -> Result<()> {
    let key = crate::data_dir::read_key_file(key_file)?;
    if let Some(out) = &out {
        check_writable(out)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let bound = listener.local_addr()?;
        let told = crate::config::default_advertise(bound);
        let beacon = Beacon::new(Keyring::new(key), told, out);
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", announcement(told))?;
        stdout.flush()?;
        drop(stdout);
        beacon.serve(listener).await;
        Ok(())
    })
}

/// `--out` must be a file the beacon can write, found out now rather than at `stop`.
fn check_writable(out: &Path) -> Result<()> {
    let dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!("--out {}: no directory {}", out.display(), dir.display());
    }
    if out.is_dir() {
        bail!("--out {} is a directory", out.display());
    }
    Ok(())
}
