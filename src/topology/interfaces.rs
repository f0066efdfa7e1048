//! Which interfaces to listen on, and each one's subnets: every interface that is up, not
//! loopback, has a MAC and is not a well-known virtual one (containers, VMs, tunnels), or
//! exactly those named in `[topology] interfaces`. At most [`MAX_LISTENED`].

use pnet_datalink::NetworkInterface;

use super::record::{Subnet, MAX_SUBNETS};

/// At most this many interfaces are listened on.
pub const MAX_LISTENED: usize = 32;

/// Name prefixes of virtual interfaces skipped unless named in the config: container and VM
/// plumbing has no switch behind it.
const VIRTUAL_PREFIXES: &[&str] = &[
    "veth",
    "docker",
    "br-",
    "virbr",
    "vnet",
    "cali",
    "flannel",
    "cni",
    "lxc",
    "tap",
    "tun",
    "wg",
    "kube",
    "vxlan",
    "genev",
    "podman",
    "tailscale",
    "zt",
];

/// One interface chosen for listening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalInterface {
    /// Its name.
    pub name: String,
    /// Its MAC.
    pub mac: [u8; 6],
    /// Its subnets (IPv4 and IPv6; IPv6 link-local ones left out), sorted.
    pub subnets: Vec<Subnet>,
    /// What pnet needs to open it.
    pub pnet: NetworkInterface,
}

/// Chooses among `all` (from [`pnet_datalink::interfaces`]): see the module docs. `wanted`
/// names the interfaces of `[topology] interfaces` (empty: choose by the rules).
pub fn choose(all: Vec<NetworkInterface>, wanted: &[String]) -> Vec<LocalInterface> {
    let mut chosen: Vec<LocalInterface> = all
        .into_iter()
        .filter(|i| i.is_up() && !i.is_loopback())
        .filter(|i| {
            if wanted.is_empty() {
                !VIRTUAL_PREFIXES.iter().any(|p| i.name.starts_with(p))
            } else {
                wanted.contains(&i.name)
            }
        })
        .filter_map(|i| {
            let mac = i.mac?.octets();
            if mac == [0; 6] {
                return None;
            }
            let mut subnets: Vec<Subnet> = i
                .ips
                .iter()
                .filter(|ip| !is_link_local(ip.ip()))
                .filter_map(|ip| Subnet::of(ip.ip(), ip.prefix()))
                .collect();
            subnets.sort();
            subnets.dedup();
            subnets.truncate(MAX_SUBNETS);
            Some(LocalInterface {
                name: i.name.clone(),
                mac,
                subnets,
                pnet: i,
            })
        })
        .collect();
    chosen.sort_by(|a, b| a.name.cmp(&b.name));
    chosen.truncate(MAX_LISTENED);
    chosen
}

/// The interfaces of `[topology] interfaces` that cannot be listened on, each with why
/// (`nosuch0: no such interface`, `lo: a loopback interface`, `eth1: down`), so that a typo
/// or a down link is said, not silently left out.
pub fn unusable(all: &[NetworkInterface], wanted: &[String]) -> Vec<String> {
    wanted
        .iter()
        .filter_map(|name| {
            let why = match all.iter().find(|i| &i.name == name) {
                None => "no such interface",
                Some(i) if i.is_loopback() => "a loopback interface",
                Some(i) if !i.is_up() => "down",
                Some(i) if i.mac.is_none_or(|m| m.octets() == [0; 6]) => "no MAC address",
                Some(_) => return None,
            };
            Some(format!("{name}: {why}"))
        })
        .collect()
}

/// IPv6 fe80::/10 (every interface has one; it says nothing about the network).
fn is_link_local(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
        std::net::IpAddr::V4(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet_datalink::MacAddr;

    fn interface(name: &str, up: bool, ips: &[&str]) -> NetworkInterface {
        NetworkInterface {
            name: name.into(),
            description: String::new(),
            index: 2,
            mac: Some(MacAddr::new(2, 0, 0, 0, 0, 1)),
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            flags: if up { 1 } else { 0 }, // IFF_UP
        }
    }

    #[test]
    fn up_physical_interfaces_are_chosen_with_their_subnets_and_virtual_ones_skipped() {
        let all = vec![
            interface(
                "eth0",
                true,
                &["10.213.5.7/24", "fe80::1/64", "fd00:5::7/64"],
            ),
            interface("eth1", false, &["10.9.0.1/24"]),
            interface("veth1a2b", true, &["172.17.0.1/16"]),
            interface("docker0", true, &["172.17.0.1/16"]),
        ];
        let chosen = choose(all, &[]);
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].name, "eth0");
        let subnets: Vec<String> = chosen[0].subnets.iter().map(ToString::to_string).collect();
        assert_eq!(subnets, vec!["10.213.5.0/24", "fd00:5::/64"]);
    }

    #[test]
    fn configured_interfaces_that_cannot_be_used_are_named_with_why() {
        let all = vec![
            interface("eth0", true, &["10.0.0.5/24"]),
            interface("eth1", false, &[]),
        ];
        let wanted: Vec<String> = ["eth0", "eth1", "nosuch0"].map(String::from).to_vec();
        assert_eq!(
            unusable(&all, &wanted),
            ["eth1: down", "nosuch0: no such interface"]
        );
        assert!(unusable(&all, &[]).is_empty());
    }

    #[test]
    fn configured_interfaces_are_taken_as_named_even_virtual_ones() {
        let all = vec![
            interface("eth0", true, &[]),
            interface("veth7", true, &["10.1.0.2/30"]),
        ];
        let chosen = choose(all, &["veth7".into()]);
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].name, "veth7");
    }
}
