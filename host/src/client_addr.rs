//! Who a request to `serve`'s listener comes from: the connection's peer, or, when the peer is
//! one of the config's `trusted_proxies:`, the address the proxies put in `X-Forwarded-For`.
//!
//! The header is read from its right end, as nginx's `real_ip_recursive on` does: each proxy
//! appends the address it was connected from, so the rightmost entry was written by the proxy
//! that connected to us, and everything left of the first address that is not a trusted proxy
//! was written by the client and proves nothing. The client is that first untrusted address
//! (or the leftmost one when every entry is a trusted proxy). An entry that is not an address
//! ends the walk at the proxy that wrote it. Without `trusted_proxies:` the header is ignored,
//! so a client cannot pick its own address.
//!
//! The address decides the token budgets ([`crate::throttle`]), the console's loopback-only
//! mode ([`crate::console`]) and what the log lines name.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// `trusted_proxies:`: the addresses and ranges whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// `entries` as written (`127.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`); the error names the
    /// entry that is neither an address nor a range.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let e = e.as_ref().trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| {
                        format!(
                            "trusted_proxies[{i}]: `{e}` is not an IP address or a CIDR range \
                             (e.g. 127.0.0.1, 10.0.0.0/8, ::1)"
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request that came over a connection from `peer` with `headers`.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> ClientAddr {
        if !self.trusts(peer.ip()) {
            return ClientAddr::direct(peer);
        }
        let mut client = peer.ip();
        // Every X-Forwarded-For header, in order, as one list (RFC 9110 §5.3).
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.to_str().unwrap_or_default().split(','))
            .collect();
        for entry in entries.iter().rev() {
            let Some(ip) = parse_entry(entry) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        ClientAddr { ip: client, peer }
    }
}

/// Whether `headers` say a proxy forwarded the request: `X-Forwarded-For`, `Forwarded` or
/// `X-Real-IP`, which nginx setups, Caddy and Traefik add.
pub fn forwarded(headers: &HeaderMap) -> bool {
    ["x-forwarded-for", "forwarded", "x-real-ip"]
        .iter()
        .any(|name| headers.contains_key(*name))
}

/// One `X-Forwarded-For` entry: `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443` or
/// `203.0.113.7:443` (some proxies add the port).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    e.parse::<IpAddr>()
        .ok()
        .or_else(|| e.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// A request's client, in each request's extensions (the listener puts it there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The client's address.
    pub ip: IpAddr,
    /// The connection's other end: the client itself, or the trusted proxy that forwarded
    /// the request.
    pub peer: SocketAddr,
}

impl ClientAddr {
    /// A client connected directly.
    pub fn direct(peer: SocketAddr) -> ClientAddr {
        ClientAddr {
            ip: peer.ip(),
            peer,
        }
    }
}

/// `203.0.113.7:50412`, or `203.0.113.7 (via 127.0.0.1:50412)` when a proxy forwarded it.
impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ip == self.peer.ip() {
            write!(f, "{}", self.peer)
        } else {
            write!(f, "{} (via {})", self.ip, self.peer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_of_the_proxies_headers_says_a_request_was_forwarded() {
        assert!(!forwarded(&HeaderMap::new()));
        for name in ["X-Forwarded-For", "forwarded", "X-Real-IP"] {
            let mut h = HeaderMap::new();
            h.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                "203.0.113.7".parse().unwrap(),
            );
            assert!(forwarded(&h), "{name}");
        }
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(!forwarded(&h), "the scheme alone names no client");
    }

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn client(trusted: &[&str], peer: &str, xff: &[&str]) -> String {
        TrustedProxies::parse(trusted)
            .unwrap()
            .client(peer.parse().unwrap(), &headers(xff))
            .to_string()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        assert_eq!(
            client(&[], "127.0.0.1:5000", &["203.0.113.7"]),
            "127.0.0.1:5000"
        );
        // Nor is it believed from a peer that is not one of them.
        assert_eq!(
            client(&["10.0.0.0/8"], "192.0.2.1:5000", &["203.0.113.7"]),
            "192.0.2.1:5000"
        );
    }

    #[test]
    fn the_first_untrusted_address_from_the_right_is_the_client() {
        let t = ["127.0.0.1", "10.0.0.0/8"];
        assert_eq!(
            client(&t, "127.0.0.1:5000", &["203.0.113.7"]),
            "203.0.113.7 (via 127.0.0.1:5000)"
        );
        // What the client wrote itself, left of the address the proxy saw, proves nothing.
        assert_eq!(
            client(
                &t,
                "127.0.0.1:5000",
                &["198.51.100.1, 203.0.113.7, 10.1.2.3"]
            ),
            "203.0.113.7 (via 127.0.0.1:5000)"
        );
        // Several headers are one list.
        assert_eq!(
            client(
                &t,
                "127.0.0.1:5000",
                &["198.51.100.1", "203.0.113.7", "10.1.2.3"]
            ),
            "203.0.113.7 (via 127.0.0.1:5000)"
        );
        // Only trusted proxies: the leftmost.
        assert_eq!(
            client(&t, "127.0.0.1:5000", &["10.9.9.9, 10.1.2.3"]),
            "10.9.9.9 (via 127.0.0.1:5000)"
        );
        // No header: the proxy itself.
        assert_eq!(client(&t, "127.0.0.1:5000", &[]), "127.0.0.1:5000");
    }

    #[test]
    fn ports_brackets_and_ipv6_are_understood_and_garbage_ends_the_walk() {
        let t = ["::1", "127.0.0.1"];
        for (peer, xff, want) in [
            (
                "[::1]:5000",
                "[2001:db8::7]:443",
                "2001:db8::7 (via [::1]:5000)",
            ),
            (
                "127.0.0.1:5000",
                "203.0.113.7:8443",
                "203.0.113.7 (via 127.0.0.1:5000)",
            ),
            // An IPv4 client seen by a dual-stack socket matches an IPv4 range.
            (
                "[::ffff:127.0.0.1]:5000",
                "203.0.113.7",
                "203.0.113.7 (via [::ffff:127.0.0.1]:5000)",
            ),
            // Garbage from the proxy ends the walk at the proxy; left of the client, nothing.
            ("127.0.0.1:5000", "203.0.113.7, unknown", "127.0.0.1:5000"),
            (
                "127.0.0.1:5000",
                "unknown, 203.0.113.7",
                "203.0.113.7 (via 127.0.0.1:5000)",
            ),
        ] {
            assert_eq!(client(&t, peer, &[xff]), want, "{peer} {xff}");
        }
    }

    #[test]
    fn a_bad_entry_is_named() {
        assert_eq!(
            TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/33"]).unwrap_err(),
            "trusted_proxies[1]: `10.0.0.0/33` is not an IP address or a CIDR range \
             (e.g. 127.0.0.1, 10.0.0.0/8, ::1)"
        );
        assert!(TrustedProxies::parse(&["proxy.example.com"]).is_err());
        assert!(TrustedProxies::parse(&["10.1.2.3/8"])
            .unwrap()
            .trusts("10.200.0.1".parse().unwrap()));
    }
}
