//! Tests of the cluster stream protocol: what arrives, and every kind of replay that must not.

use super::*;
use tokio::io::{duplex, DuplexStream};

fn key(byte: u8) -> ClusterKey {
    ClusterKey::from_bytes([byte; 32])
}

fn ring(byte: u8) -> Keyring {
    Keyring::new(key(byte))
}

async fn pair(
    client: &Keyring,
    server: &Keyring,
) -> (
    Result<SealedStream<DuplexStream>, StreamError>,
    Result<SealedStream<DuplexStream>, StreamError>,
) {
    let (a, b) = duplex(1 << 20);
    tokio::join!(connect(a, client), accept(b, server))
}

/// A connection whose client-to-server bytes the test forwards frame by frame.
struct Tapped {
    client: SealedStream<DuplexStream>,
    server: SealedStream<DuplexStream>,
    from_client: DuplexStream,
    to_server: DuplexStream,
    /// Everything the client sent, as it sent it.
    recorded: Vec<u8>,
}

async fn read_raw_frame(from: &mut DuplexStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    from.read_exact(&mut len).await.unwrap();
    let mut frame = vec![0u8; usize::from(u16::from_be_bytes(len))];
    from.read_exact(&mut frame).await.unwrap();
    let mut whole = len.to_vec();
    whole.extend_from_slice(&frame);
    whole
}

async fn tapped(keyring: &Keyring) -> Tapped {
    let (client_end, mut from_client) = duplex(1 << 20);
    let (mut to_server, server_end) = duplex(1 << 20);
    let keyring_c = keyring.clone();
    let keyring_s = keyring.clone();
    let client = tokio::spawn(async move { connect(client_end, &keyring_c).await });
    // Preamble, first message, and (after the answer) the confirmation pass unchanged.
    let mut recorded = vec![0u8; PREAMBLE_LEN];
    from_client.read_exact(&mut recorded).await.unwrap();
    to_server.write_all(&recorded).await.unwrap();
    let first = read_raw_frame(&mut from_client).await;
    to_server.write_all(&first).await.unwrap();
    recorded.extend_from_slice(&first);
    let server = tokio::spawn(async move { accept(server_end, &keyring_s).await });
    // The answer travels back on the same duplex pairs.
    let answer = read_raw_frame(&mut to_server).await;
    from_client.write_all(&answer).await.unwrap();
    let confirm = read_raw_frame(&mut from_client).await;
    to_server.write_all(&confirm).await.unwrap();
    recorded.extend_from_slice(&confirm);
    Tapped {
        client: client.await.unwrap().unwrap(),
        server: server.await.unwrap().unwrap(),
        from_client,
        to_server,
        recorded,
    }
}

impl Tapped {
    /// The client sends `message`; returns its raw frame, not yet forwarded.
    async fn client_sends(&mut self, message: &[u8]) -> Vec<u8> {
        self.client.send(message).await.unwrap();
        let frame = read_raw_frame(&mut self.from_client).await;
        self.recorded.extend_from_slice(&frame);
        frame
    }

    async fn forward(&mut self, frame: &[u8]) {
        self.to_server.write_all(frame).await.unwrap();
    }
}

#[tokio::test]
async fn messages_round_trip_in_order_whatever_their_size() {
    let (client, server) = pair(&ring(1), &ring(1)).await;
    let (mut client, mut server) = (client.unwrap(), server.unwrap());
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    client.send(b"one").await.unwrap();
    client.send(&big).await.unwrap();
    client.send(b"two").await.unwrap();
    assert_eq!(server.receive().await.unwrap().unwrap(), b"one");
    assert_eq!(server.receive().await.unwrap().unwrap(), big);
    assert_eq!(server.receive().await.unwrap().unwrap(), b"two");
    server.send(b"answer").await.unwrap();
    assert_eq!(client.receive().await.unwrap().unwrap(), b"answer");
    drop(client);
    assert!(server.receive().await.unwrap().is_none());
}

#[tokio::test]
async fn a_frame_played_twice_in_the_same_connection_is_refused() {
    let mut tap = tapped(&ring(1)).await;
    let frame = tap.client_sends(b"heartbeat").await;
    tap.forward(&frame).await;
    tap.forward(&frame).await;
    assert_eq!(tap.server.receive().await.unwrap().unwrap(), b"heartbeat");
    assert!(matches!(
        tap.server.receive().await,
        Err(StreamError::Refused)
    ));
}

#[tokio::test]
async fn frames_delivered_out_of_order_are_refused() {
    let mut tap = tapped(&ring(1)).await;
    let one = tap.client_sends(b"one").await;
    let two = tap.client_sends(b"two").await;
    tap.forward(&two).await;
    tap.forward(&one).await;
    assert!(matches!(
        tap.server.receive().await,
        Err(StreamError::Refused)
    ));
}

#[tokio::test]
async fn a_frame_from_another_connection_is_refused() {
    let mut first = tapped(&ring(1)).await;
    let mut second = tapped(&ring(1)).await;
    let foreign = first.client_sends(b"from the first").await;
    let _own = second.client_sends(b"from the second").await;
    second.forward(&foreign).await;
    assert!(matches!(
        second.server.receive().await,
        Err(StreamError::Refused)
    ));
}

#[tokio::test]
async fn a_recorded_connection_replayed_later_is_refused_at_the_handshake() {
    let mut tap = tapped(&ring(1)).await;
    let frame = tap.client_sends(b"AppendEntries").await;
    tap.forward(&frame).await;
    assert!(tap.server.receive().await.unwrap().is_some());
    // Whenever it is replayed (the protocol has no clock: a minute or two minutes later is the
    // same), the responder's fresh ephemeral key makes the recorded confirmation fail.
    let (mut attacker, server_end) = duplex(1 << 20);
    attacker.write_all(&tap.recorded).await.unwrap();
    let refused = accept(server_end, &ring(1)).await;
    assert!(
        matches!(refused, Err(StreamError::Handshake(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_peer_without_our_key_is_refused_at_its_first_message() {
    let (client, server) = pair(&ring(1), &ring(2)).await;
    assert!(matches!(server, Err(StreamError::UnknownKey)));
    assert!(client.is_err());
    // Naming our key id but keyed with another key fails the handshake itself.
    let (mut attacker, server_end) = duplex(1 << 16);
    let prologue = preamble(&key(2));
    let mut forged = noise(&key(3), &prologue, true).unwrap();
    let mut message = [0u8; MAX_HANDSHAKE_FRAME];
    let len = forged.write_message(&[], &mut message).unwrap();
    let mut bytes = prologue.to_vec();
    push_frame(&mut bytes, &message[..len]);
    attacker.write_all(&bytes).await.unwrap();
    assert!(matches!(
        accept(server_end, &ring(2)).await,
        Err(StreamError::Handshake(_))
    ));
}

#[tokio::test]
async fn nothing_larger_than_a_handshake_message_is_read_before_the_handshake() {
    let (mut attacker, server_end) = duplex(64);
    let mut bytes = preamble(&key(1)).to_vec();
    bytes.extend_from_slice(&u16::MAX.to_be_bytes());
    attacker.write_all(&bytes).await.unwrap();
    assert!(matches!(
        accept(server_end, &ring(1)).await,
        Err(StreamError::TooLong(65_535))
    ));
    // An old-style 16 MiB length prefix is not even our protocol.
    let (mut attacker, server_end) = duplex(64);
    attacker
        .write_all(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    assert!(matches!(
        accept(server_end, &ring(1)).await,
        Err(StreamError::NotOurProtocol)
    ));
}

#[tokio::test]
async fn another_protocol_version_is_named_as_such() {
    let (mut attacker, server_end) = duplex(64);
    let mut bytes = preamble(&key(1));
    bytes[3] = STREAM_VERSION + 1;
    attacker.write_all(&bytes).await.unwrap();
    assert!(matches!(
        accept(server_end, &ring(1)).await,
        Err(StreamError::Version(2))
    ));
}

#[tokio::test]
async fn every_key_of_the_keyring_opens_connections_during_a_rotation() {
    // The server already uses the new key; the client still seals with the old one.
    let mut rotated = ring(2);
    rotated.install(key(1));
    let (client, server) = pair(&ring(1), &rotated).await;
    assert!(client.is_ok() && server.is_ok());
    // And the other way round: a client on the new key, a server that only installed it.
    let mut installed = ring(1);
    installed.install(key(2));
    let (client, server) = pair(&ring(2), &installed).await;
    assert!(client.is_ok() && server.is_ok());
}

#[tokio::test]
async fn split_halves_send_and_receive_at_once_and_keep_the_counters_in_step() {
    let (client, server) = pair(&ring(3), &ring(3)).await;
    let (mut client, server) = (client.unwrap(), server.unwrap());
    assert_eq!(server.key_id(), key(3).id());
    let (mut reader, mut writer) = server.into_split();
    let echo = tokio::spawn(async move {
        while let Some(message) = reader.receive_at_most(1 << 16).await.unwrap() {
            writer.send(&message).await.unwrap();
        }
    });
    for size in [0, 1, 70_000 / 2, 65_000] {
        let message = vec![7u8; size];
        client.send(&message).await.unwrap();
        assert_eq!(client.receive().await.unwrap(), Some(message));
    }
    // More than the reader takes ends the connection before it is all read.
    client.send(&vec![1u8; (1 << 16) + 1]).await.unwrap();
    drop(client);
    assert!(echo.await.is_err(), "the reader took an over-long message");
}
