//! A recording relay in front of one agent, as an attacker on the path would sit: it listens on
//! one port for UDP and TCP (the agent advertises that port), forwards everything to the
//! agent's real port, and keeps a copy of what the other agents sent, so a test can replay it.
//! Loopback only; every thread stops when the relay is dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Bytes kept per recorded TCP connection.
const KEEP_PER_STREAM: usize = 1 << 20;
/// Datagrams kept in all.
const KEEP_DATAGRAMS: usize = 10_000;

#[derive(Default)]
struct Recording {
    target: Mutex<Option<SocketAddr>>,
    datagrams: Mutex<Vec<Vec<u8>>>,
    streams: Mutex<Vec<Arc<Mutex<Vec<u8>>>>>,
    /// When set, the frame with this index (0-based, after the 8-byte preamble) of every new
    /// TCP connection is forwarded twice: a replay inside the same connection.
    duplicate_frame: Mutex<Option<usize>>,
    duplicated: AtomicUsize,
    stop: AtomicBool,
}

/// See the module docs.
pub struct Relay {
    /// The address the relay listens on (UDP and TCP), to be advertised by the agent.
    pub addr: SocketAddr,
    recording: Arc<Recording>,
}

impl Relay {
    /// A relay on a free 127.0.0.1 port; it forwards once [`Relay::forward_to`] is called.
    pub fn start() -> Self {
        let (udp, tcp) = (0..50)
            .find_map(|_| {
                let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
                let tcp = TcpListener::bind(udp.local_addr().ok()?).ok()?;
                Some((udp, tcp))
            })
            .expect("no port free for both UDP and TCP");
        let addr = udp.local_addr().unwrap();
        let recording = Arc::new(Recording::default());
        let r = recording.clone();
        thread::spawn(move || pump_datagrams(udp, &r));
        let r = recording.clone();
        thread::spawn(move || accept_streams(tcp, &r));
        Self { addr, recording }
    }

    /// Where to forward (the agent's real gossip and cluster port).
    pub fn forward_to(&self, target: SocketAddr) {
        *self.recording.target.lock().unwrap() = Some(target);
    }

    /// Duplicate frame number `index` of every TCP connection opened from now on.
    pub fn duplicate_frame(&self, index: Option<usize>) {
        *self.recording.duplicate_frame.lock().unwrap() = index;
    }

    /// How many frames were duplicated so far.
    pub fn duplicated(&self) -> usize {
        self.recording.duplicated.load(Ordering::Relaxed)
    }

    /// Copies of the datagrams forwarded so far.
    pub fn datagrams(&self) -> Vec<Vec<u8>> {
        self.recording.datagrams.lock().unwrap().clone()
    }

    /// What each TCP connection's client sent so far (one entry per connection).
    pub fn streams(&self) -> Vec<Vec<u8>> {
        let streams = self.recording.streams.lock().unwrap();
        streams.iter().map(|s| s.lock().unwrap().clone()).collect()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.recording.stop.store(true, Ordering::Relaxed);
    }
}

fn pump_datagrams(socket: UdpSocket, recording: &Recording) {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = vec![0u8; 65_536];
    while !recording.stop.load(Ordering::Relaxed) {
        let Ok((len, _from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some(target) = *recording.target.lock().unwrap() else {
            continue;
        };
        let _ = socket.send_to(&buf[..len], target);
        let mut kept = recording.datagrams.lock().unwrap();
        if kept.len() < KEEP_DATAGRAMS {
            kept.push(buf[..len].to_vec());
        }
    }
}

fn accept_streams(listener: TcpListener, recording: &Arc<Recording>) {
    listener.set_nonblocking(true).unwrap();
    while !recording.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                let target = *recording.target.lock().unwrap();
                let Some(target) = target else { continue };
                let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let kept = Arc::new(Mutex::new(Vec::new()));
                recording.streams.lock().unwrap().push(kept.clone());
                let duplicate = *recording.duplicate_frame.lock().unwrap();
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let r = recording.clone();
                thread::spawn(move || client_to_server(client, server, &kept, duplicate, &r));
                let r = recording.clone();
                thread::spawn(move || copy_until_stopped(s2, c2, &r));
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Forwards the client's bytes, keeping a copy; with `duplicate`, parses the cluster port's
/// framing (an 8-byte preamble, then `u16 length | bytes` frames) and sends that frame twice.
fn client_to_server(
    mut client: TcpStream,
    mut server: TcpStream,
    kept: &Mutex<Vec<u8>>,
    duplicate: Option<usize>,
    recording: &Recording,
) {
    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
    let mut pending: Vec<u8> = Vec::new();
    let mut preamble_done = false;
    let mut frame = 0usize;
    let mut buf = [0u8; 16_384];
    while !recording.stop.load(Ordering::Relaxed) {
        let n = match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if is_timeout(&e) => continue,
            Err(_) => break,
        };
        {
            let mut kept = kept.lock().unwrap();
            let room = KEEP_PER_STREAM.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        let Some(duplicate) = duplicate else {
            if server.write_all(&buf[..n]).is_err() {
                break;
            }
            continue;
        };
        pending.extend_from_slice(&buf[..n]);
        if !preamble_done && pending.len() >= 8 {
            let preamble: Vec<u8> = pending.drain(..8).collect();
            if server.write_all(&preamble).is_err() {
                break;
            }
            preamble_done = true;
        }
        while preamble_done && pending.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([pending[0], pending[1]]));
            if pending.len() < 2 + len {
                break;
            }
            let whole: Vec<u8> = pending.drain(..2 + len).collect();
            let copies = if frame == duplicate { 2 } else { 1 };
            if copies == 2 {
                recording.duplicated.fetch_add(1, Ordering::Relaxed);
            }
            for _ in 0..copies {
                if server.write_all(&whole).is_err() {
                    return;
                }
            }
            frame += 1;
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Write);
}

fn copy_until_stopped(mut from: TcpStream, mut to: TcpStream, recording: &Recording) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 16_384];
    while !recording.stop.load(Ordering::Relaxed) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if is_timeout(&e) => continue,
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Replays each recorded TCP stream on a new connection to `target`, one connection every
/// `every`, until `until`; returns how many connections were made. Answers are read and
/// thrown away.
pub fn replay_streams(
    streams: &[Vec<u8>],
    target: SocketAddr,
    every: Duration,
    until: Instant,
) -> usize {
    let mut made = 0;
    let mut next = streams.iter().filter(|s| !s.is_empty()).cycle();
    while Instant::now() < until {
        let Some(stream) = next.next() else { break };
        if let Ok(mut conn) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
            made += 1;
            let _ = conn.set_write_timeout(Some(Duration::from_millis(500)));
            let _ = conn.write_all(stream);
            let mut sink = conn.try_clone().unwrap();
            let _ = sink.set_read_timeout(Some(Duration::from_millis(50)));
            let _ = sink.read(&mut [0u8; 4096]);
        }
        thread::sleep(every);
    }
    made
}

/// The agent's real gossip port, from the "running" line of its log.
pub fn bound_gossip_port(log: &str) -> Option<SocketAddr> {
    log.lines()
        .find(|l| l.contains("running"))?
        .split_whitespace()
        .find_map(|field| field.strip_prefix("gossip="))?
        .parse()
        .ok()
}

/// Resident set size of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
