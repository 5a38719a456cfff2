//! The client's address behind reverse proxies. Proxies append the address they received a
//! request from to `X-Forwarded-For`, so everything left of the last proxy's entry is whatever
//! the client sent. The client is therefore the right-most address that is not one of Tenantry's
//! own proxies ([`TrustedProxies`], `TENANTRY_TRUSTED_PROXIES`), never simply the first entry.
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` entries are believed: addresses and networks
/// (`TENANTRY_TRUSTED_PROXIES`; loopback only by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl Default for TrustedProxies {
    fn default() -> Self {
        TrustedProxies::loopback()
    }
}

impl TrustedProxies {
    /// Loopback only (`127.0.0.0/8`, `::1`): a proxy on the same host.
    pub fn loopback() -> Self {
        TrustedProxies(vec![
            IpNet::from(ipnet::Ipv4Net::new_assert(std::net::Ipv4Addr::LOCALHOST, 8)),
            IpNet::from(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)),
        ])
    }

    /// A comma-separated list of IP addresses and CIDR networks (`10.0.0.0/8, 192.0.2.7, ::1`).
    /// Errors name the entry that is neither.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => entry.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                    format!(
                        "{entry:?} is neither an IP address nor a CIDR network (like 10.0.0.0/8)"
                    )
                })?,
            };
            nets.push(net);
        }
        if nets.is_empty() {
            return Err(
                "lists no address: give IP addresses or CIDR networks, comma-separated".into(),
            );
        }
        Ok(TrustedProxies(nets))
    }

    /// Whether `ip` is one of the proxies (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// One `X-Forwarded-For` entry as an address (a port some proxies add is dropped).
fn entry_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client's address from the `X-Forwarded-For` header values (in the order received) and the
/// connection's peer: a peer that is not a trusted proxy is the client itself (its header is its
/// own word); otherwise the entries are read from the right, skipping trusted proxies, and the
/// first other address is the client. When every entry is a trusted proxy the left-most is taken;
/// an unreadable entry stops the walk (nothing left of it was written by a trusted proxy), and the
/// last trusted hop read (or the peer) is taken. `None`: nothing known.
pub fn client_address<'a>(
    forwarded: impl IntoIterator<Item = &'a str>,
    peer: Option<IpAddr>,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = peer.map(|p| p.to_canonical());
    if let Some(p) = peer.filter(|p| !trusted.contains(*p)) {
        return Some(p);
    }
    let entries: Vec<&str> = forwarded
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let mut hop = peer;
    for entry in entries.iter().rev() {
        match entry_address(entry) {
            Some(ip) if trusted.contains(ip) => hop = Some(ip),
            Some(ip) => return Some(ip),
            None => break,
        }
    }
    hop
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn tens() -> TrustedProxies {
        TrustedProxies::parse("10.0.0.0/8").unwrap()
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let proxy = Some(ip("10.0.0.1"));
        // The proxy 10.0.0.5 is skipped; 1.2.3.4 is the client.
        assert_eq!(
            client_address(["1.2.3.4, 10.0.0.5"], proxy, &tens()),
            Some(ip("1.2.3.4"))
        );
        // A client-supplied left-most entry never wins over the address the proxy appended.
        assert_eq!(
            client_address(["6.6.6.6, 1.2.3.4"], proxy, &tens()),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(
            client_address(["6.6.6.6, 1.2.3.4, 10.0.0.5"], proxy, &tens()),
            Some(ip("1.2.3.4"))
        );
        // Nor a spoofed "proxy" entry, nor garbage, left of it.
        assert_eq!(
            client_address(["10.9.9.9, nonsense, 1.2.3.4"], proxy, &tens()),
            Some(ip("1.2.3.4"))
        );
        // Several header lines read as one list, in order.
        assert_eq!(
            client_address(["6.6.6.6", "1.2.3.4", "10.0.0.5"], proxy, &tens()),
            Some(ip("1.2.3.4"))
        );
        // Ports and IPv6 entries.
        assert_eq!(
            client_address(["6.6.6.6, 1.2.3.4:5678"], proxy, &tens()),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(
            client_address(["6.6.6.6, [2001:db8::1]:443"], proxy, &tens()),
            Some(ip("2001:db8::1"))
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(
            client_address(["1.2.3.4"], Some(ip("203.0.113.9")), &tens()),
            Some(ip("203.0.113.9"))
        );
        // Default: loopback proxies only.
        let local = TrustedProxies::default();
        assert_eq!(
            client_address(["1.2.3.4"], Some(ip("10.0.0.1")), &local),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            client_address(["6.6.6.6, 1.2.3.4"], Some(ip("127.0.0.1")), &local),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(
            client_address(["1.2.3.4"], Some(ip("::ffff:127.0.0.1")), &local),
            Some(ip("1.2.3.4"))
        );
    }

    #[test]
    fn without_an_untrusted_entry_the_nearest_known_hop_is_taken() {
        let proxy = Some(ip("10.0.0.1"));
        assert_eq!(client_address([], proxy, &tens()), proxy);
        assert_eq!(
            client_address(["10.0.0.7, 10.0.0.5"], proxy, &tens()),
            Some(ip("10.0.0.7"))
        );
        // An unreadable right-most entry: the proxy that wrote it.
        assert_eq!(
            client_address(["1.2.3.4, junk, 10.0.0.5"], proxy, &tens()),
            Some(ip("10.0.0.5"))
        );
        assert_eq!(client_address(["junk"], None, &tens()), None);
    }

    #[test]
    fn parsing_takes_addresses_and_networks_and_names_a_bad_entry() {
        let t = TrustedProxies::parse(" 10.0.0.0/8 , 192.0.2.7,2001:db8::/32 ").unwrap();
        assert!(t.contains(ip("10.200.0.1")));
        assert!(t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        assert!(t.contains(ip("2001:db8::42")));
        assert!(!t.contains(ip("127.0.0.1")));
        let e = TrustedProxies::parse("10.0.0.0/8, 10.0.0.300").unwrap_err();
        assert!(e.contains("\"10.0.0.300\""), "{e}");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse(" , ").is_err());
    }
}
