//! A CDP packet (version 1 or 2) inside its 802.3 LLC/SNAP header: version, TTL, checksum,
//! then TLVs of a 16-bit type and a 16-bit length that counts the 4-byte header. Device ID
//! and Port ID are required; Addresses and Platform are read; the checksum is checked (with
//! Cisco's odd-length quirk).

use std::net::IpAddr;

use super::frame::{
    id_text, ip_from, printable, Dropped, Heard, IdKind, Identifier, Protocol, MAX_ADDRESSES,
};

/// LLC (DSAP, SSAP, control) and SNAP (Cisco's OUI, protocol 0x2000) before a CDP packet.
const CDP_SNAP: [u8; 8] = [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x0c, 0x20, 0x00];
/// LLC and Cisco's OUI: other Cisco protocols share them (and the address).
const CISCO_SNAP_PREFIX: [u8; 6] = [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x0c];

const DEVICE_ID: u16 = 0x0001;
const ADDRESSES: u16 = 0x0002;
const PORT_ID: u16 = 0x0003;
const PLATFORM: u16 = 0x0006;

/// NLPID protocol type with protocol 0xcc: IPv4.
const NLPID_IPV4: &[u8] = &[0xcc];
/// 802.2 protocol type with the IPv6 EtherType in SNAP.
const SNAP_IPV6: &[u8] = &[0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00, 0x86, 0xdd];

/// Parses the 802.3 payload (LLC/SNAP and CDP) of a frame to the CDP address.
pub fn parse(payload: &[u8], source_mac: [u8; 6]) -> Result<Heard, Dropped> {
    let snap = payload.get(..8).ok_or(Dropped::Truncated)?;
    if snap != CDP_SNAP {
        return Err(if snap.starts_with(&CISCO_SNAP_PREFIX) {
            Dropped::OtherProtocol
        } else {
            Dropped::NotDiscovery
        });
    }
    let packet = &payload[8..];
    let header = packet.get(..4).ok_or(Dropped::Truncated)?;
    if !matches!(header[0], 1 | 2) {
        return Err(Dropped::UnknownType);
    }
    let ttl_s = u16::from(header[1]);
    if !checksum_matches(packet) {
        return Err(Dropped::BadChecksum);
    }
    let mut device: Option<Identifier> = None;
    let mut port: Option<Identifier> = None;
    let mut platform = None;
    let mut addresses = Vec::new();
    let mut skipped_tlvs = 0u16;
    let mut rest = &packet[4..];
    while !rest.is_empty() {
        let head = rest.get(..4).ok_or(Dropped::Truncated)?;
        let kind = u16::from_be_bytes([head[0], head[1]]);
        let length = usize::from(u16::from_be_bytes([head[2], head[3]]));
        if length < 4 {
            return Err(Dropped::BadLength);
        }
        let body = rest.get(4..length).ok_or(Dropped::Truncated)?;
        rest = &rest[length..];
        match kind {
            DEVICE_ID | PORT_ID if body.is_empty() => return Err(Dropped::BadLength),
            DEVICE_ID | PORT_ID => {
                let (slot, kind) = if kind == DEVICE_ID {
                    (&mut device, IdKind::CdpDeviceId)
                } else {
                    (&mut port, IdKind::CdpPortId)
                };
                if slot.is_some() {
                    return Err(Dropped::MissingMandatory);
                }
                *slot = Some(Identifier {
                    kind,
                    text: id_text(body),
                });
            }
            ADDRESSES => match address_list(body) {
                Some(list) => {
                    for address in list {
                        if addresses.len() < MAX_ADDRESSES && !addresses.contains(&address) {
                            addresses.push(address);
                        }
                    }
                }
                None => skipped_tlvs = skipped_tlvs.saturating_add(1),
            },
            PLATFORM if platform.is_none() => platform = printable(body),
            _ => {}
        }
    }
    let (Some(chassis), Some(port)) = (device, port) else {
        return Err(Dropped::MissingMandatory);
    };
    Ok(Heard {
        protocol: Protocol::Cdp,
        source_mac,
        system_name: Some(chassis.text.clone()),
        chassis,
        port,
        ttl_s,
        port_description: None,
        platform,
        addresses,
        skipped_tlvs,
    })
}

/// The IPv4 and IPv6 addresses of an Addresses TLV body (a 32-bit count, then per address a
/// protocol type, protocol length, protocol, 16-bit address length and address); `None` if
/// the lengths do not add up.
fn address_list(body: &[u8]) -> Option<Vec<IpAddr>> {
    let count = u32::from_be_bytes(body.get(..4)?.try_into().ok()?);
    let mut rest = &body[4..];
    let mut found = Vec::new();
    for _ in 0..count {
        let protocol_length = usize::from(*rest.get(1)?);
        let protocol = rest.get(2..2 + protocol_length)?;
        rest = &rest[2 + protocol_length..];
        let address_length = usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?));
        let address = rest.get(2..2 + address_length)?;
        rest = &rest[2 + address_length..];
        let known = (protocol == NLPID_IPV4 && address.len() == 4)
            || (protocol == SNAP_IPV6 && address.len() == 16);
        if known && found.len() < MAX_ADDRESSES {
            found.extend(ip_from(address));
        }
    }
    Some(found)
}

/// Whether the packet's checksum field is the ones' complement sum over the packet. An odd
/// last byte is added as the high byte (RFC 1071) or, as Cisco does, as the low byte (plain or
/// sign-extended, as Wireshark reads it); any of the three is accepted.
fn checksum_matches(packet: &[u8]) -> bool {
    let stated = u16::from_be_bytes([packet[2], packet[3]]);
    let words = packet.len() / 2;
    let mut sum: u32 = 0;
    for i in 0..words {
        let word = if i == 1 {
            0 // the checksum field itself counts as zero
        } else {
            u16::from_be_bytes([packet[2 * i], packet[2 * i + 1]])
        };
        sum += u32::from(word);
    }
    let fold = |mut sum: u32| {
        while sum > 0xffff {
            sum = (sum >> 16) + (sum & 0xffff);
        }
        !(sum as u16)
    };
    match packet.get(2 * words) {
        None => fold(sum) == stated,
        Some(&last) => {
            let last = u32::from(last);
            let sign_extended = if last & 0x80 != 0 {
                0xff00 | last
            } else {
                last
            };
            [last << 8, last, sign_extended]
                .iter()
                .any(|odd| fold(sum + odd) == stated)
        }
    }
}
