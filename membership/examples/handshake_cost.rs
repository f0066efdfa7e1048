//! What the cluster port's handshake costs: connection setup time over loopback TCP with and
//! without the Noise handshake (median and 99th percentile of sequential connections), and the
//! bytes each side sends for it. One JSON line per figure.
//!
//! `cargo run --release -p rover-membership --example handshake_cost [-- CONNECTIONS]`

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rover_membership::sealed_stream::{accept, connect};
use rover_membership::{ClusterKey, Keyring};
use tokio::net::{TcpListener, TcpStream};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{{\"figure\":\"{what}\",\"connections\":{},\"median_us\":{:.0},\"p99_us\":{:.0}}}",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let connections: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let keyring = Keyring::new(ClusterKey::from_bytes([7; 32]));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_ring = keyring.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let ring = server_ring.clone();
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                if stream.peek(&mut first).await.is_ok() && first[0] == b'R' {
                    if let Ok(mut sealed) = accept(stream, &ring).await {
                        let bytes = sealed.handshake_bytes_out();
                        let _ = sealed.send(&bytes.to_be_bytes()).await;
                    }
                }
            });
        }
    });
    let mut plain = Vec::new();
    for _ in 0..connections {
        let started = Instant::now();
        let stream = TcpStream::connect(addr).await.unwrap();
        plain.push(started.elapsed());
        drop(stream);
    }
    let mut sealed = Vec::new();
    let (mut client_bytes, mut server_bytes) = (0, 0);
    for _ in 0..connections {
        let started = Instant::now();
        let stream = TcpStream::connect(addr).await.unwrap();
        let _ = stream.set_nodelay(true);
        let mut conn = connect(stream, &keyring).await.unwrap();
        // The responder is done once it has read our confirmation and answers.
        let answer = conn.receive().await.unwrap().unwrap();
        sealed.push(started.elapsed());
        client_bytes = conn.handshake_bytes_out();
        server_bytes = usize::from_be_bytes(answer.try_into().unwrap());
    }
    report("tcp_connect", plain);
    report("tcp_connect_and_noise_handshake_and_first_answer", sealed);
    println!(
        "{{\"figure\":\"handshake_bytes\",\"initiator\":{client_bytes},\"responder\":{server_bytes},\"round_trips\":1}}"
    );
}
