//! Who the client is: its address (taken from `x-forwarded-for` only when
//! the connection comes from a trusted proxy), and the key that throttles
//! and audit limits count it under.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
};

use tonic::metadata::MetadataMap;

/// Bits of an IPv6 address that name one client: a /64 is what a single
/// customer line or host is given, and it can rotate through the rest.
const IPV6_CLIENT_PREFIX: u8 = 64;

/// A network, `10.0.0.0/8` or `2001:db8::/32`; a bare address is its own
/// network (/32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True when `addr` lies in this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(addr)) => {
                mask_v4(addr, self.prefix) == mask_v4(network, self.prefix)
            }
            (IpAddr::V6(network), IpAddr::V6(addr)) => {
                mask_v6(addr, self.prefix) == mask_v6(network, self.prefix)
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR network"))?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask_v4(addr: Ipv4Addr, prefix: u8) -> u32 {
    let bits = u32::from(addr);
    match prefix {
        0 => 0,
        p if p >= 32 => bits,
        p => bits & (u32::MAX << (32 - p)),
    }
}

fn mask_v6(addr: Ipv6Addr, prefix: u8) -> u128 {
    let bits = u128::from(addr);
    match prefix {
        0 => 0,
        p if p >= 128 => bits,
        p => bits & (u128::MAX << (128 - p)),
    }
}

/// The proxies whose `x-forwarded-for` is believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Trusts the given networks (none: the header is always ignored).
    pub fn new(networks: Vec<Cidr>) -> Self {
        Self(networks)
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(addr))
    }

    /// The client's address: the TCP peer, unless the peer is a trusted
    /// proxy, in which case the right-most `x-forwarded-for` address that is
    /// not itself a trusted proxy (each proxy appends the address it saw, so
    /// everything left of that is the client's own, unverifiable, claim).
    pub fn client_addr(&self, peer: Option<IpAddr>, metadata: &MetadataMap) -> Option<IpAddr> {
        let peer = peer.map(|peer| peer.to_canonical())?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut hops = Vec::new();
        for value in metadata.get_all("x-forwarded-for") {
            let Ok(text) = value.to_str() else {
                return Some(peer);
            };
            hops.extend(text.split(',').map(str::to_owned));
        }
        Some(self.forwarded_client(&hops).unwrap_or(peer))
    }

    /// The client named by a trusted proxy's hops, or `None` when there are
    /// none or one that must be read is malformed.
    fn forwarded_client(&self, hops: &[String]) -> Option<IpAddr> {
        let mut leftmost = None;
        for hop in hops.iter().rev() {
            let addr = parse_hop(hop)?;
            if !self.trusts(addr) {
                return Some(addr);
            }
            leftmost = Some(addr);
        }
        // Every hop is a trusted proxy: the first of them is the client.
        leftmost
    }
}

/// One `x-forwarded-for` entry: an address, possibly with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
        .map(|addr| addr.to_canonical())
}

/// What throttles and audit limits count a client under: an IPv4 address,
/// or the /64 network of an IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl From<IpAddr> for ClientKey {
    fn from(addr: IpAddr) -> Self {
        match addr.to_canonical() {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => Self(IpAddr::V6(Ipv6Addr::from(mask_v6(v6, IPV6_CLIENT_PREFIX)))),
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/{IPV6_CLIENT_PREFIX}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn key(text: &str) -> ClientKey {
        ClientKey::from(ip(text))
    }

    fn forwarded(values: &[&str]) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        for value in values {
            metadata.append("x-forwarded-for", MetadataValue::try_from(*value).unwrap());
        }
        metadata
    }

    fn proxies(networks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(networks.iter().map(|n| n.parse().unwrap()).collect())
    }

    #[test]
    fn ipv6_clients_are_keyed_on_their_64() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn ipv4_clients_are_keyed_on_the_address_and_mapped_ones_as_ipv4() {
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_eq!(key("::ffff:192.0.2.1").to_string(), "192.0.2.1");
    }

    #[test]
    fn cidrs_parse_and_match() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.200.3.4")));
        assert!(net.contains(ip("::ffff:10.0.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(host.to_string(), "127.0.0.1/32");
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        for bad in ["", "10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_untrusted_peer_cannot_claim_another_address() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let header = forwarded(&["203.0.113.9"]);
        assert_eq!(
            trusted.client_addr(Some(ip("198.51.100.7")), &header),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            TrustedProxies::default().client_addr(Some(ip("10.0.0.1")), &header),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_right_most_untrusted_hop() {
        let trusted = proxies(&["10.0.0.0/8", "127.0.0.1/32"]);
        let peer = Some(ip("127.0.0.1"));
        // The client claimed 1.1.1.1; the outer proxy saw 203.0.113.9.
        let header = forwarded(&["1.1.1.1, 203.0.113.9, 10.0.0.2"]);
        assert_eq!(trusted.client_addr(peer, &header), Some(ip("203.0.113.9")));
        // Repeated headers are one list, in order.
        let header = forwarded(&["1.1.1.1", "203.0.113.9:4711, 10.0.0.2"]);
        assert_eq!(trusted.client_addr(peer, &header), Some(ip("203.0.113.9")));
        let header = forwarded(&["[2001:db8::5]:443"]);
        assert_eq!(trusted.client_addr(peer, &header), Some(ip("2001:db8::5")));
        // Only trusted hops: the first of them.
        let header = forwarded(&["10.0.0.7, 10.0.0.2"]);
        assert_eq!(trusted.client_addr(peer, &header), Some(ip("10.0.0.7")));
    }

    #[test]
    fn a_missing_or_malformed_header_means_the_peer() {
        let trusted = proxies(&["127.0.0.1"]);
        let peer = Some(ip("127.0.0.1"));
        assert_eq!(trusted.client_addr(peer, &MetadataMap::new()), peer);
        for bad in ["", "not an address", "203.0.113.9, garbage"] {
            assert_eq!(
                trusted.client_addr(peer, &forwarded(&[bad])),
                peer,
                "{bad:?}"
            );
        }
        // Garbage left of the answer is never read.
        let header = forwarded(&["garbage, 203.0.113.9"]);
        assert_eq!(trusted.client_addr(peer, &header), Some(ip("203.0.113.9")));
        assert_eq!(trusted.client_addr(None, &header), None);
    }
}
