//! One received Ethernet frame, classified: an LLDP frame (EtherType 0x88cc to the nearest-bridge
//! group 01:80:c2:00:00:0e) or a CDP frame (802.3 + LLC/SNAP, OUI 00:00:0c, protocol 0x2000, to
//! 01:00:0c:cc:cc:cc), parsed into what a neighbour said ([`Heard`]); anything else is a
//! [`Dropped`] reason that the listener counts. Pure code: no allocation beyond the result, no
//! panic on any input (see the fuzz-style tests in [`super::parse_tests`]).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The LLDP nearest-bridge group address: only the directly attached switch sends to it.
pub const LLDP_MULTICAST: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];
/// Cisco's multicast address for CDP (and VTP, DTP, PAgP: told apart by the SNAP protocol id).
pub const CDP_MULTICAST: [u8; 6] = [0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcc];
/// The LLDP EtherType.
pub const LLDP_ETHERTYPE: u16 = 0x88cc;
/// An 802.1Q VLAN tag's EtherType (a tag the kernel did not strip is skipped).
const VLAN_ETHERTYPE: u16 = 0x8100;

/// Text fields keep at most this many characters (LLDP allows 255 bytes).
pub const MAX_TEXT_CHARS: usize = 128;
/// At most this many management addresses are kept from one frame.
pub const MAX_ADDRESSES: usize = 4;

/// Which discovery protocol a neighbour spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// IEEE 802.1AB.
    Lldp,
    /// Cisco Discovery Protocol (version 1 or 2).
    Cdp,
}

impl Protocol {
    /// `lldp` or `cdp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Lldp => "lldp",
            Protocol::Cdp => "cdp",
        }
    }
}

/// What kind of identifier a chassis or port id is (the LLDP subtypes, and CDP's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IdKind {
    /// LLDP chassis subtype 1 (entPhysicalAlias of a chassis).
    ChassisComponent,
    /// LLDP chassis subtype 2 / port subtype 1 (ifAlias).
    InterfaceAlias,
    /// LLDP chassis subtype 3 / port subtype 2 (entPhysicalAlias of a port).
    PortComponent,
    /// LLDP chassis subtype 4 / port subtype 3: a MAC address.
    MacAddress,
    /// LLDP chassis subtype 5 / port subtype 4: a network address.
    NetworkAddress,
    /// LLDP chassis subtype 6 / port subtype 5 (ifName).
    InterfaceName,
    /// LLDP port subtype 6 (agent circuit id, RFC 3046).
    AgentCircuitId,
    /// LLDP chassis or port subtype 7: locally assigned.
    Local,
    /// CDP's Device ID (usually the switch's host name).
    CdpDeviceId,
    /// CDP's Port ID (the switch's interface name).
    CdpPortId,
}

impl IdKind {
    /// Whether the id is a name people use (shown as is) rather than an address.
    pub fn is_name(self) -> bool {
        !matches!(self, IdKind::MacAddress | IdKind::NetworkAddress)
    }
}

/// A chassis or port identifier, rendered as text: a MAC as `aa:bb:cc:dd:ee:ff`, an address
/// as an IP address, a name with control characters replaced (hex when nothing printable is
/// left).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Identifier {
    /// Which subtype it was.
    pub kind: IdKind,
    /// The rendered value.
    pub text: String,
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What one neighbour (a switch port) told us in one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    /// LLDP or CDP.
    pub protocol: Protocol,
    /// The frame's source MAC (the switch port's).
    pub source_mac: [u8; 6],
    /// The switch (LLDP chassis id, CDP device id).
    pub chassis: Identifier,
    /// Its port we are plugged into.
    pub port: Identifier,
    /// How long this information stays valid, in seconds; 0 means "forget me now".
    pub ttl_s: u16,
    /// LLDP system name (CDP: the device id again).
    pub system_name: Option<String>,
    /// LLDP port description.
    pub port_description: Option<String>,
    /// CDP platform (for example `cisco WS-C2960-24TT-L`).
    pub platform: Option<String>,
    /// LLDP management addresses, CDP addresses (IPv4 and IPv6 only, at most
    /// [`MAX_ADDRESSES`]).
    pub addresses: Vec<IpAddr>,
    /// Optional TLVs skipped inside an otherwise valid frame: reserved types, or a management
    /// address TLV with inconsistent lengths.
    pub skipped_tlvs: u16,
}

/// Why a frame was not taken. Each is counted by the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Dropped {
    /// Shorter than its headers or than a length field says.
    Truncated,
    /// A length field that cannot be right (a TLV shorter than its own header, an End TLV
    /// with a body, a MAC id that is not 6 bytes).
    BadLength,
    /// An unknown chassis or port id subtype, or an unknown CDP version.
    UnknownType,
    /// The mandatory TLVs are missing or out of order (LLDP: chassis id, port id, TTL first,
    /// and an End TLV; CDP: device id and port id), or one is repeated.
    MissingMandatory,
    /// The CDP checksum does not match.
    BadChecksum,
    /// Neither LLDP to the nearest-bridge address nor anything to the CDP address.
    NotDiscovery,
    /// Another Cisco protocol on the CDP address (VTP, DTP, PAgP, ...).
    OtherProtocol,
    /// Sent from one of this host's own interfaces.
    OwnFrame,
}

impl Dropped {
    /// Every reason, for counters.
    pub const ALL: [Dropped; 8] = [
        Dropped::Truncated,
        Dropped::BadLength,
        Dropped::UnknownType,
        Dropped::MissingMandatory,
        Dropped::BadChecksum,
        Dropped::NotDiscovery,
        Dropped::OtherProtocol,
        Dropped::OwnFrame,
    ];

    /// A short snake_case name (JSON, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::Truncated => "truncated",
            Dropped::BadLength => "bad_length",
            Dropped::UnknownType => "unknown_type",
            Dropped::MissingMandatory => "missing_mandatory",
            Dropped::BadChecksum => "bad_checksum",
            Dropped::NotDiscovery => "not_discovery",
            Dropped::OtherProtocol => "other_protocol",
            Dropped::OwnFrame => "own_frame",
        }
    }
}

/// Parses one frame as received from a raw socket (destination MAC first).
pub fn parse_frame(frame: &[u8]) -> Result<Heard, Dropped> {
    let header = frame.get(..14).ok_or(Dropped::Truncated)?;
    let destination = &header[..6];
    let mut source_mac = [0u8; 6];
    source_mac.copy_from_slice(&header[6..12]);
    let mut ethertype = u16::from_be_bytes([header[12], header[13]]);
    let mut body = &frame[14..];
    if ethertype == VLAN_ETHERTYPE {
        let tag = body.get(..4).ok_or(Dropped::Truncated)?;
        ethertype = u16::from_be_bytes([tag[2], tag[3]]);
        body = &body[4..];
    }
    if destination == LLDP_MULTICAST && ethertype == LLDP_ETHERTYPE {
        return super::lldp::parse(body, source_mac);
    }
    if destination == CDP_MULTICAST {
        // 802.3: the EtherType field is the payload length.
        if ethertype > 1500 {
            return Err(Dropped::OtherProtocol);
        }
        let payload = body
            .get(..usize::from(ethertype))
            .ok_or(Dropped::Truncated)?;
        return super::cdp::parse(payload, source_mac);
    }
    Err(Dropped::NotDiscovery)
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Text sent by a peer, made safe to store and print: invalid UTF-8 replaced, control
/// characters dropped (C0, C1, DEL, bidi controls: [`crate::control_chars`]), whitespace trimmed, at most [`MAX_TEXT_CHARS`] characters. `None` when
/// nothing printable is left.
pub fn printable(bytes: &[u8]) -> Option<String> {
    let text: String = String::from_utf8_lossy(bytes)
        .chars()
        .filter(|c| !crate::control_chars::is_control(*c))
        .take(MAX_TEXT_CHARS)
        .collect();
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// A name-like id as text, or its bytes in hex when nothing printable is in it.
pub fn id_text(bytes: &[u8]) -> String {
    printable(bytes).unwrap_or_else(|| {
        bytes
            .iter()
            .take(MAX_TEXT_CHARS / 2)
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address.
pub fn ip_from(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}
