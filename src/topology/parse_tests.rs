//! Tests of the LLDP and CDP parsers: real frames captured from Debian's lldpd (in
//! `tests/fixtures/lldpd/`), every truncation of them, seeded random mutations and random
//! frames. Nothing may panic; nothing broken may be taken.

use std::net::IpAddr;

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

use super::frame::{parse_frame, Dropped, Heard, IdKind, Protocol, CDP_MULTICAST, LLDP_MULTICAST};

/// A fixture's frame: the hex lines after the `#` comments.
fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/lldpd/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let hex: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.trim().chars())
        .collect();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

const FIXTURES: [&str; 6] = [
    "lldp-sw-a-ifname-port.hex",
    "lldp-sw-b-mac-port.hex",
    "lldp-sw-b-shutdown.hex",
    "lldp-local-chassis.hex",
    "cdp-v2-sw-a.hex",
    "cdp-v1-sw-b.hex",
];

fn heard(name: &str) -> Heard {
    parse_frame(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

#[test]
fn lldpd_frames_give_the_switch_port_ttl_name_and_management_addresses() {
    let a = heard("lldp-sw-a-ifname-port.hex");
    assert_eq!(a.protocol, Protocol::Lldp);
    assert_eq!(a.chassis.kind, IdKind::MacAddress);
    assert_eq!(a.chassis.text, "02:00:00:00:0a:01");
    assert_eq!(a.port.kind, IdKind::InterfaceName);
    assert_eq!(a.port.text, "p1");
    assert_eq!(a.ttl_s, 4);
    assert_eq!(a.system_name.as_deref(), Some("sw-a"));
    assert_eq!(a.port_description.as_deref(), Some("p1"));
    let expected: Vec<IpAddr> = vec![
        "10.250.1.254".parse().unwrap(),
        "fd00:250::fe".parse().unwrap(),
    ];
    assert_eq!(a.addresses, expected);
    assert_eq!(a.skipped_tlvs, 0);

    let b = heard("lldp-sw-b-mac-port.hex");
    assert_eq!(b.port.kind, IdKind::MacAddress);
    assert_eq!(b.port.text, "96:b3:9a:15:d9:b6");
    assert_eq!(b.port_description.as_deref(), Some("p1"));
    assert_eq!(b.system_name.as_deref(), Some("sw-b"));

    let local = heard("lldp-local-chassis.hex");
    assert_eq!(local.chassis.kind, IdKind::Local);
    assert_eq!(local.chassis.text, "sw-a-chassis");
}

#[test]
fn the_shutdown_frame_lldpd_sends_when_it_stops_has_ttl_zero() {
    let gone = heard("lldp-sw-b-shutdown.hex");
    assert_eq!(gone.ttl_s, 0);
    assert_eq!(gone.chassis.text, "02:00:00:00:0a:01");
}

#[test]
fn lldpd_cdp_frames_of_both_versions_give_device_port_platform_and_addresses() {
    let v2 = heard("cdp-v2-sw-a.hex");
    assert_eq!(v2.protocol, Protocol::Cdp);
    assert_eq!(v2.chassis.kind, IdKind::CdpDeviceId);
    assert_eq!(v2.chassis.text, "sw-a");
    assert_eq!(v2.system_name.as_deref(), Some("sw-a"));
    assert_eq!(v2.port.text, "p1");
    assert_eq!(v2.platform.as_deref(), Some("Linux"));
    assert_eq!(v2.ttl_s, 4);
    assert_eq!(
        v2.addresses,
        vec!["10.250.1.254".parse::<IpAddr>().unwrap()],
        "the same address twice is kept once"
    );
    let v1 = heard("cdp-v1-sw-b.hex");
    assert_eq!(v1.chassis.text, "sw-b");
    assert_eq!(v1.port.text, "p1");
}

#[test]
fn every_truncation_of_a_real_frame_is_dropped_as_truncated() {
    for name in FIXTURES {
        let frame = fixture(name);
        for len in 0..frame.len() {
            let result = parse_frame(&frame[..len]);
            assert_eq!(
                result,
                Err(Dropped::Truncated),
                "{name} cut to {len} of {} bytes",
                frame.len()
            );
        }
    }
}

#[test]
fn a_cdp_frame_with_one_flipped_bit_fails_its_checksum_or_its_structure() {
    let frame = fixture("cdp-v2-sw-a.hex");
    // Past the 802.3 length and SNAP header: inside the CDP packet.
    for byte in 22..frame.len() {
        for bit in 0..8 {
            let mut broken = frame.clone();
            broken[byte] ^= 1 << bit;
            assert!(
                parse_frame(&broken).is_err(),
                "byte {byte} bit {bit} flipped was taken"
            );
        }
    }
}

#[test]
fn broken_lldp_structure_is_dropped_with_its_reason() {
    let frame = fixture("lldp-sw-a-ifname-port.hex");
    let mut unknown_subtype = frame.clone();
    unknown_subtype[16] = 9; // chassis id subtype
    assert_eq!(parse_frame(&unknown_subtype), Err(Dropped::UnknownType));
    let mut no_chassis_first = frame.clone();
    no_chassis_first[14] = 0x04 << 1; // the first TLV claims to be a port id
    assert_eq!(
        parse_frame(&no_chassis_first),
        Err(Dropped::MissingMandatory)
    );
    let mut short_mac = frame.clone();
    short_mac[15] = 6; // chassis id of subtype MAC with 5 bytes
    assert!(parse_frame(&short_mac).is_err());
    let mut end_with_body = frame.clone();
    let last = end_with_body.len() - 1;
    end_with_body[last] = 1;
    assert_eq!(parse_frame(&end_with_body), Err(Dropped::Truncated));
    let mut not_to_the_bridge = frame.clone();
    not_to_the_bridge[5] = 0x03;
    assert_eq!(parse_frame(&not_to_the_bridge), Err(Dropped::NotDiscovery));
}

#[test]
fn a_vlan_tagged_lldp_frame_is_read_past_its_tag() {
    let frame = fixture("lldp-sw-a-ifname-port.hex");
    let mut tagged = frame[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    tagged.extend_from_slice(&frame[12..]);
    assert_eq!(parse_frame(&tagged).unwrap(), parse_frame(&frame).unwrap());
}

#[test]
fn other_cisco_protocols_on_the_cdp_address_are_told_apart() {
    let mut vtp = fixture("cdp-v2-sw-a.hex");
    vtp[21] = 0x03; // SNAP protocol 0x2003: VTP
    assert_eq!(parse_frame(&vtp), Err(Dropped::OtherProtocol));
}

/// A frame to `destination` with `ethertype` and `len` random body bytes.
fn random_frame(rng: &mut StdRng, destination: [u8; 6], ethertype: [u8; 2], len: usize) -> Vec<u8> {
    let mut frame = destination.to_vec();
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
    frame.extend_from_slice(&ethertype);
    let mut body = vec![0u8; len];
    rng.fill_bytes(&mut body);
    frame.extend_from_slice(&body);
    frame
}

#[test]
fn random_lldp_and_cdp_frames_never_panic_and_are_never_taken() {
    let mut rng = StdRng::seed_from_u64(0x11d9);
    for round in 0..20_000 {
        let len = rng.random_range(0..1600);
        let lldp = random_frame(&mut rng, LLDP_MULTICAST, [0x88, 0xcc], len);
        assert!(parse_frame(&lldp).is_err(), "round {round}: {lldp:02x?}");
        let length = u16::try_from(len + 8).unwrap_or(1500).min(1500);
        let mut cdp = random_frame(&mut rng, CDP_MULTICAST, length.to_be_bytes(), 0);
        cdp.extend_from_slice(&[0xaa, 0xaa, 0x03, 0x00, 0x00, 0x0c, 0x20, 0x00]);
        let mut body = vec![0u8; len];
        rng.fill_bytes(&mut body);
        cdp.extend_from_slice(&body);
        assert!(parse_frame(&cdp).is_err(), "round {round}: {cdp:02x?}");
    }
}

#[test]
fn randomly_mutated_real_frames_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x0cdb);
    let frames: Vec<Vec<u8>> = FIXTURES.iter().map(|f| fixture(f)).collect();
    let mut taken = 0usize;
    for _ in 0..50_000 {
        let mut frame = frames[rng.random_range(0..frames.len())].clone();
        for _ in 0..rng.random_range(1..6) {
            let at = rng.random_range(14..frame.len());
            match rng.random_range(0..4) {
                0 => frame[at] = rng.random(),
                1 => frame[at] ^= 1 << rng.random_range(0..8),
                2 => frame.truncate(at),
                _ => {
                    let extra = rng.random_range(1..40);
                    let mut junk = vec![0u8; extra];
                    rng.fill_bytes(&mut junk);
                    frame.splice(at..at, junk);
                }
            }
            if frame.len() <= 14 {
                break;
            }
        }
        if let Ok(heard) = parse_frame(&frame) {
            taken += 1;
            // Whatever is taken is bounded and printable.
            assert!(heard.chassis.text.chars().count() <= 128);
            assert!(heard.port.text.chars().all(|c| !c.is_control()));
            assert!(heard.addresses.len() <= 4);
        }
    }
    // A mutation in a text field leaves a valid frame: some are taken, most are not.
    assert!(taken < 50_000 / 2, "{taken} of 50000 mutated frames taken");
}

#[test]
fn text_a_switch_sends_loses_its_control_and_bidi_characters_and_is_bounded() {
    use super::frame::{id_text, printable};
    assert_eq!(
        printable("sw\u{202e}-a\u{1b}[2J\n".as_bytes()).as_deref(),
        Some("sw-a[2J")
    );
    assert_eq!(printable(b"\x00\x01 \x7f"), None);
    assert_eq!(id_text(&[0x00, 0x01]), "0001");
    assert_eq!(printable(&[b'x'; 300]).unwrap().len(), 128);
}
