//! The LLDPDU (IEEE 802.1AB) after the Ethernet header: a list of TLVs, each a 7-bit type and
//! a 9-bit length. Validated as the standard asks: Chassis ID, Port ID and TTL first and once,
//! an End TLV at the end; every chassis and port id subtype (1 to 7) is understood; System
//! Name, Port Description and Management Address are read; reserved TLV types are skipped and
//! counted; organisation-specific ones are skipped.

use super::frame::{
    id_text, ip_from, mac_text, printable, Dropped, Heard, IdKind, Identifier, Protocol,
    MAX_ADDRESSES,
};

const END: u8 = 0;
const CHASSIS_ID: u8 = 1;
const PORT_ID: u8 = 2;
const TTL: u8 = 3;
const PORT_DESCRIPTION: u8 = 4;
const SYSTEM_NAME: u8 = 5;
const MANAGEMENT_ADDRESS: u8 = 8;
const ORGANIZATION_SPECIFIC: u8 = 127;

/// One TLV: its type and body.
struct Tlv<'a> {
    kind: u8,
    body: &'a [u8],
}

/// Splits the next TLV off `rest`.
fn next_tlv<'a>(rest: &mut &'a [u8]) -> Result<Tlv<'a>, Dropped> {
    let header = rest.get(..2).ok_or(Dropped::Truncated)?;
    let kind = header[0] >> 1;
    let length = usize::from(header[0] & 1) << 8 | usize::from(header[1]);
    let body = rest.get(2..2 + length).ok_or(Dropped::Truncated)?;
    *rest = &rest[2 + length..];
    Ok(Tlv { kind, body })
}

/// Parses an LLDPDU sent from `source_mac`.
pub fn parse(lldpdu: &[u8], source_mac: [u8; 6]) -> Result<Heard, Dropped> {
    let mut rest = lldpdu;
    let chassis = expect(&mut rest, CHASSIS_ID).and_then(chassis_id)?;
    let port = expect(&mut rest, PORT_ID).and_then(port_id)?;
    let ttl = expect(&mut rest, TTL)?;
    let ttl_s = match ttl {
        [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
        _ => return Err(Dropped::BadLength),
    };
    let mut heard = Heard {
        protocol: Protocol::Lldp,
        source_mac,
        chassis,
        port,
        ttl_s,
        system_name: None,
        port_description: None,
        platform: None,
        addresses: Vec::new(),
        skipped_tlvs: 0,
    };
    loop {
        let tlv = next_tlv(&mut rest)?;
        match tlv.kind {
            END if tlv.body.is_empty() => return Ok(heard),
            END => return Err(Dropped::BadLength),
            CHASSIS_ID | PORT_ID | TTL => return Err(Dropped::MissingMandatory),
            PORT_DESCRIPTION if heard.port_description.is_none() => {
                heard.port_description = printable(tlv.body);
            }
            SYSTEM_NAME if heard.system_name.is_none() => {
                heard.system_name = printable(tlv.body);
            }
            MANAGEMENT_ADDRESS => match management_address(tlv.body) {
                Ok(Some(address)) => {
                    if heard.addresses.len() < MAX_ADDRESSES && !heard.addresses.contains(&address)
                    {
                        heard.addresses.push(address);
                    }
                }
                Ok(None) => {}
                Err(_) => heard.skipped_tlvs = heard.skipped_tlvs.saturating_add(1),
            },
            // System description (6), capabilities (7), repeated optional TLVs and
            // organisation-specific ones carry nothing the map uses.
            PORT_DESCRIPTION | SYSTEM_NAME | 6 | 7 | ORGANIZATION_SPECIFIC => {}
            _reserved => heard.skipped_tlvs = heard.skipped_tlvs.saturating_add(1),
        }
    }
}

/// The next TLV, which must be of type `kind`.
fn expect<'a>(rest: &mut &'a [u8], kind: u8) -> Result<&'a [u8], Dropped> {
    let tlv = next_tlv(rest)?;
    if tlv.kind != kind {
        return Err(Dropped::MissingMandatory);
    }
    Ok(tlv.body)
}

/// Subtype and id of a Chassis ID or Port ID body (1 + 1..=255 bytes).
fn split_id(body: &[u8]) -> Result<(u8, &[u8]), Dropped> {
    match body {
        [subtype, id @ ..] if (1..=255).contains(&id.len()) => Ok((*subtype, id)),
        _ => Err(Dropped::BadLength),
    }
}

fn chassis_id(body: &[u8]) -> Result<Identifier, Dropped> {
    let (subtype, id) = split_id(body)?;
    let kind = match subtype {
        1 => IdKind::ChassisComponent,
        2 => IdKind::InterfaceAlias,
        3 => IdKind::PortComponent,
        4 => IdKind::MacAddress,
        5 => IdKind::NetworkAddress,
        6 => IdKind::InterfaceName,
        7 => IdKind::Local,
        _ => return Err(Dropped::UnknownType),
    };
    identifier(kind, id)
}

fn port_id(body: &[u8]) -> Result<Identifier, Dropped> {
    let (subtype, id) = split_id(body)?;
    let kind = match subtype {
        1 => IdKind::InterfaceAlias,
        2 => IdKind::PortComponent,
        3 => IdKind::MacAddress,
        4 => IdKind::NetworkAddress,
        5 => IdKind::InterfaceName,
        6 => IdKind::AgentCircuitId,
        7 => IdKind::Local,
        _ => return Err(Dropped::UnknownType),
    };
    identifier(kind, id)
}

fn identifier(kind: IdKind, id: &[u8]) -> Result<Identifier, Dropped> {
    let text = match kind {
        IdKind::MacAddress if id.len() == 6 => mac_text(id),
        IdKind::MacAddress => return Err(Dropped::BadLength),
        IdKind::NetworkAddress => network_address(id)?,
        _ => id_text(id),
    };
    Ok(Identifier { kind, text })
}

/// An id of subtype "network address": an IANA address family byte, then the address.
fn network_address(id: &[u8]) -> Result<String, Dropped> {
    match id {
        [family @ (1 | 2), address @ ..] => iana_address(*family, address)
            .map(|ip| ip.to_string())
            .ok_or(Dropped::BadLength),
        [family, address @ ..] if !address.is_empty() => Ok(format!(
            "family {family} {}",
            address
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )),
        _ => Err(Dropped::BadLength),
    }
}

/// A Management Address body: address string length (subtype + address, 2..=32), subtype,
/// address, interface numbering subtype, interface number (4), OID length, OID. `None` for
/// an address family other than IPv4 and IPv6.
fn management_address(body: &[u8]) -> Result<Option<std::net::IpAddr>, Dropped> {
    let (&string_length, rest) = body.split_first().ok_or(Dropped::BadLength)?;
    let string_length = usize::from(string_length);
    if !(2..=32).contains(&string_length) {
        return Err(Dropped::BadLength);
    }
    let address_string = rest.get(..string_length).ok_or(Dropped::BadLength)?;
    let rest = &rest[string_length..];
    // Interface numbering subtype (1), interface number (4), OID string length (1), OID.
    let oid_length = usize::from(*rest.get(5).ok_or(Dropped::BadLength)?);
    if rest.len() != 6 + oid_length {
        return Err(Dropped::BadLength);
    }
    match address_string {
        [family @ (1 | 2), address @ ..] => iana_address(*family, address)
            .map(Some)
            .ok_or(Dropped::BadLength),
        _ => Ok(None),
    }
}

/// An address of IANA family 1 (IPv4, 4 bytes) or 2 (IPv6, 16 bytes).
fn iana_address(family: u8, address: &[u8]) -> Option<std::net::IpAddr> {
    match (family, address.len()) {
        (1, 4) | (2, 16) => ip_from(address),
        _ => None,
    }
}
