//! What a request says about its client, in forms that are safe to count, log and store: the
//! client address (from `X-Forwarded-For` only when the TCP peer is a trusted proxy), the
//! matched route template (never the raw path, which is the client's own text), and the
//! method (a standard one, or `other`).

use std::net::IpAddr;
use std::str::FromStr;

use actix_web::http::Method;
use actix_web::{HttpRequest, web};

/// One network, `addr/prefix` (a bare address is a network of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a network could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an address or a network (a.b.c.d/n, x:y::z/n)")]
pub struct BadCidr(String);

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadCidr(s.chars().take(64).collect());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> (u128, u8) {
            match ip.to_canonical() {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let ((net, width), (ip, ip_width)) = (bits(self.addr), bits(ip));
        if width != ip_width {
            return false;
        }
        let shift = u32::from(width - self.prefix.min(width));
        net.checked_shr(shift).unwrap_or(0) == ip.checked_shr(shift).unwrap_or(0)
    }
}

/// `TRUSTED_PROXIES`: the proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client of a connection from `peer` that forwarded `forwarded_for` (the
    /// `X-Forwarded-For` header's lines, in order): the peer itself unless it is trusted; then,
    /// walking the trail from the right (each proxy appends the address it saw), the first hop
    /// that is not a trusted proxy, or the farthest one if all are trusted.
    ///
    /// Only the right end of the trail is the proxies' own writing: everything to its left is
    /// the client's text, so a walk from the left would let a client name itself. A hop that
    /// does not parse cannot be trusted either, and no address can be made of it: the client is
    /// then the nearest trusted proxy, the one that handed it over (the proxy's own address
    /// counted, never a name the client chose).
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut nearest = peer;
        let lines = forwarded_for.iter().filter(|line| !line.trim().is_empty());
        for hop in lines.rev().flat_map(|line| line.rsplit(',')) {
            match hop_address(hop.trim()) {
                Some(ip) if self.trusts(ip) => nearest = ip,
                Some(ip) => return ip,
                None => return nearest,
            }
        }
        nearest
    }
}

/// One hop of `X-Forwarded-For`: an address, with or without a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`, `[2001:db8::1]`).
fn hop_address(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse::<std::net::Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })
}

/// The request's client address.
pub fn ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let Some(trusted) = req.app_data::<web::Data<TrustedProxies>>() else {
        return Some(peer);
    };
    // A line that is not text is one hop that does not parse.
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .map(|v| v.to_str().unwrap_or("?"))
        .collect();
    Some(trusted.client(peer, &forwarded))
}

/// The route template the request matches (`/videos/{video_hash}/cancel`), or `unmatched`;
/// before routing too (a middleware's view), from the path as the router decodes it.
pub fn route(req: &HttpRequest) -> String {
    req.match_pattern()
        .or_else(|| req.resource_map().match_pattern(req.match_info().as_str()))
        .unwrap_or_else(|| "unmatched".to_owned())
}

/// The method's name when it is a standard one; `other` for an extension method (the
/// client's own text).
pub fn method(method: &Method) -> &'static str {
    static KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::PATCH,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|m| *m == method)
        .map_or("other", Method::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies(list.iter().map(|c| c.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_contain_their_addresses_only() {
        let table = [
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.168.1.7", "192.168.1.7", true),
            ("192.168.1.7", "192.168.1.8", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("2001:db8::/32", "2001:db8:1::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("10.0.0.0/8", "::ffff:10.0.0.1", true),
            ("10.0.0.0/8", "2001:db8::1", false),
        ];
        for (net, addr, inside) in table {
            let net: Cidr = net.parse().unwrap();
            assert_eq!(net.contains(ip(addr)), inside, "{net:?} {addr}");
        }
        for bad in ["", "10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_peer() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.1"), &["1.2.3.4"]), ip("10.0.0.1"));

        let lb = proxies(&["10.0.0.0/8"]);
        // The client said it was 6.6.6.6; the proxy appended what it saw.
        let header = ["6.6.6.6, 203.0.113.7"];
        assert_eq!(lb.client(ip("10.0.0.1"), &header), ip("203.0.113.7"));
        // Two trusted hops: the nearest untrusted address is the client.
        let header = ["203.0.113.7, 10.0.0.2"];
        assert_eq!(lb.client(ip("10.0.0.1"), &header), ip("203.0.113.7"));
        // All trusted: the farthest.
        let header = ["10.0.0.9, 10.0.0.2"];
        assert_eq!(lb.client(ip("10.0.0.1"), &header), ip("10.0.0.9"));
        // An untrusted peer's header is ignored.
        assert_eq!(
            lb.client(ip("198.51.100.1"), &["1.2.3.4"]),
            ip("198.51.100.1")
        );
        // No header, or an empty one: the peer.
        assert_eq!(lb.client(ip("10.0.0.1"), &[]), ip("10.0.0.1"));
        assert_eq!(lb.client(ip("10.0.0.1"), &[" "]), ip("10.0.0.1"));
    }

    #[test]
    fn the_trail_is_read_from_the_right_whatever_the_client_wrote_to_its_left() {
        let lb = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        let table: [(&[&str], &str); 10] = [
            // Garbage or addresses on the left are the client's own text.
            (&["junk, 203.0.113.7"], "203.0.113.7"),
            (&["1.1.1.1, junk, 2.2.2.2, 203.0.113.7"], "203.0.113.7"),
            // Ports are the proxy's business, not part of the address.
            (&["6.6.6.6, 203.0.113.7:5678"], "203.0.113.7"),
            (&["6.6.6.6, [2001:db8::1]:443"], "2001:db8::1"),
            (&["6.6.6.6, [2001:db8::1]"], "2001:db8::1"),
            (&["6.6.6.6, 2001:db8::1"], "2001:db8::1"),
            // Every line counts, in order: the last line's last hop is the nearest.
            (&["6.6.6.6", "203.0.113.7"], "203.0.113.7"),
            (
                &["6.6.6.6, 7.7.7.7", "203.0.113.7, 10.0.0.2"],
                "203.0.113.7",
            ),
            // A hop that does not parse, right of any untrusted one: the nearest trusted proxy.
            (&["203.0.113.7, junk"], "10.0.0.1"),
            (&["203.0.113.7, junk, 10.0.0.2"], "10.0.0.2"),
        ];
        for (header, client) in table {
            assert_eq!(lb.client(peer, header), ip(client), "{header:?}");
        }
    }

    #[test]
    fn only_standard_methods_keep_their_name() {
        assert_eq!(method(&Method::POST), "POST");
        assert_eq!(
            method(&Method::from_bytes(b"X-ATTACKER-TEXT").unwrap()),
            "other"
        );
    }
}
