//! One interface's raw socket for discovery frames, read through a pnet datalink channel.
//!
//! The socket is made here so that the kernel does the sorting: a classic BPF filter passes
//! only frames received (not sent) by this host that carry the LLDP EtherType or go to the
//! CDP address, so gossip and Raft traffic never reach user space. Instead of making the
//! interface promiscuous (pnet's default), the socket joins the two multicast groups, which
//! is all a NIC with a multicast filter needs. Opening needs CAP_NET_RAW; without it the
//! error is [`OpenError::NoCapability`].

use std::io;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::time::Duration;

use pnet_datalink::{Channel, DataLinkReceiver, NetworkInterface};
use socket2::{Domain, Protocol, SockFilter, Socket, Type};

use super::frame::{CDP_MULTICAST, LLDP_ETHERTYPE, LLDP_MULTICAST};

/// A blocked read returns after this long, so that a listener thread sees its stop flag.
pub const READ_TIMEOUT: Duration = Duration::from_millis(500);
/// Frames longer than this are cut (and then dropped as truncated): LLDPDUs fit in 1500.
const READ_BUFFER: usize = 9216;

/// What a host without CAP_NET_RAW publishes as the reason it does not listen.
pub const NO_CAP_NET_RAW: &str = "no CAP_NET_RAW (raw sockets need it)";
/// How to give it, for this agent's log and `topology`.
pub const CAP_NET_RAW_REMEDY: &str = "run the agent as root, give its systemd unit \
    AmbientCapabilities=CAP_NET_RAW, or `setcap cap_net_raw+ep` on the binary";

/// Why a socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The process lacks CAP_NET_RAW. Nothing was opened.
    #[error("{NO_CAP_NET_RAW}")]
    NoCapability,
    /// Any other failure (the interface went away, ...). Nothing was opened.
    #[error("cannot listen on {interface}: {source}")]
    Other {
        /// The interface.
        interface: String,
        /// Why.
        source: io::Error,
    },
}

/// Opens a filtered, non-promiscuous receive channel on `interface`.
pub fn open(interface: &NetworkInterface) -> Result<Box<dyn DataLinkReceiver>, OpenError> {
    let other = |source: io::Error| match source.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => OpenError::NoCapability,
        _ => OpenError::Other {
            interface: interface.name.clone(),
            source,
        },
    };
    // Protocol 0: nothing is received until pnet binds it to the interface, so no frame of
    // another interface slips in before the bind.
    let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0))).map_err(other)?;
    socket.attach_filter(&discovery_filter()).map_err(other)?;
    let index = i32::try_from(interface.index).map_err(|_| {
        other(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface index out of range",
        ))
    })?;
    for group in [LLDP_MULTICAST, CDP_MULTICAST] {
        join_multicast(&socket, index, group).map_err(other)?;
    }
    let config = pnet_datalink::Config {
        read_timeout: Some(READ_TIMEOUT),
        read_buffer_size: READ_BUFFER,
        write_buffer_size: 64,
        promiscuous: false,
        socket_fd: Some(socket.into_raw_fd()),
        ..pnet_datalink::Config::default()
    };
    match pnet_datalink::channel(interface, config) {
        Ok(Channel::Ethernet(_sender, receiver)) => Ok(receiver),
        Ok(_) => Err(other(io::Error::other("pnet gave a non-Ethernet channel"))),
        Err(e) => Err(other(e)),
    }
}

/// The classic BPF program: drop what this host sent; pass EtherType 0x88cc and anything to
/// the CDP address (the parser tells LLDP's destination and CDP's SNAP header apart).
fn discovery_filter() -> Vec<SockFilter> {
    const LD_W_ABS: u16 = 0x20; // A = 32 bits at k
    const LD_H_ABS: u16 = 0x28; // A = 16 bits at k
    const JEQ_K: u16 = 0x15; // if A == k
    const RET_K: u16 = 0x06;
    const SKF_AD_PKTTYPE: u32 = 0xffff_f000 + 4; // ancillary: the packet's type
    const PACKET_OUTGOING: u32 = 4;
    let [d0, d1, d2, d3, d4, d5] = CDP_MULTICAST;
    vec![
        /* 0 */ SockFilter::new(LD_W_ABS, 0, 0, SKF_AD_PKTTYPE),
        /* 1 */ SockFilter::new(JEQ_K, 7, 0, PACKET_OUTGOING), // -> 9 drop
        /* 2 */ SockFilter::new(LD_H_ABS, 0, 0, 12),
        /* 3 */ SockFilter::new(JEQ_K, 4, 0, u32::from(LLDP_ETHERTYPE)), // -> 8 pass
        /* 4 */ SockFilter::new(LD_W_ABS, 0, 0, 0),
        /* 5 */
        SockFilter::new(JEQ_K, 0, 3, u32::from_be_bytes([d0, d1, d2, d3])), // else 9
        /* 6 */ SockFilter::new(LD_H_ABS, 0, 0, 4),
        /* 7 */
        SockFilter::new(JEQ_K, 0, 1, u32::from(u16::from_be_bytes([d4, d5]))), // else 9
        /* 8 */ SockFilter::new(RET_K, 0, 0, 0xffff),
        /* 9 */ SockFilter::new(RET_K, 0, 0, 0),
    ]
}

/// Joins the link-layer multicast group `group` on interface `index`
/// (`PACKET_ADD_MEMBERSHIP`, `PACKET_MR_MULTICAST`), as lldpd and systemd-networkd do.
#[allow(unsafe_code)]
fn join_multicast(socket: &Socket, index: i32, group: [u8; 6]) -> io::Result<()> {
    let mut address = [0u8; 8];
    address[..6].copy_from_slice(&group);
    let request = libc::packet_mreq {
        mr_ifindex: index,
        mr_type: libc::PACKET_MR_MULTICAST as libc::c_ushort,
        mr_alen: 6,
        mr_address: address,
    };
    let length = libc::socklen_t::try_from(std::mem::size_of::<libc::packet_mreq>())
        .map_err(|_| io::Error::other("packet_mreq size"))?;
    // SAFETY: the descriptor is open (owned by `socket` for the whole call), `request` is a
    // fully initialised packet_mreq that outlives the call, and `length` is its exact size;
    // the kernel only reads it.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            std::ptr::addr_of!(request).cast(),
            length,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
