//! Which of the PBX's addresses each phone is told. A PBX listening on every interface
//! (`0.0.0.0` or `[::]`) must never name that wildcard in a Via, Contact, URI or SDP: each
//! phone gets the address of the interface it reaches — the local end of the route toward
//! it, so a PBX with two office subnets names, to each phone, its own side. Behind the
//! office's NAT router ("Private with Public" in the OfficeServ manual), a phone outside
//! the private networks gets the public address the router forwards instead.
//!
//! [`choose`] is the decision, pure; the route lookup is the SIP transport's
//! [`route_toward`].

use sip::transport::route_toward;
use std::net::{IpAddr, SocketAddr};

/// What the PBX names to one phone: its SIP address (Via, Contact, URIs) and the address of
/// the relay ports it announces in SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advertised {
    pub sip: SocketAddr,
    pub media: IpAddr,
}

/// The settings that decide [`Advertised`], read once per decision.
#[derive(Debug, Clone, Default)]
pub struct Addressing {
    /// `nat.public_address`, if set.
    pub public: Option<IpAddr>,
    /// `nat.relay_public_address`, else `public`.
    pub relay_public: Option<IpAddr>,
    /// `media.private_networks`.
    pub private_networks: String,
}

impl Addressing {
    pub fn from_db(db: &stations::Db) -> Self {
        let ip = |k: &str| db.setting(k).ok().and_then(|v| v.parse::<IpAddr>().ok());
        let public = ip("nat.public_address");
        Addressing {
            public,
            relay_public: ip("nat.relay_public_address").or(public),
            private_networks: db.setting("media.private_networks").unwrap_or_default(),
        }
    }

    /// Is `ip` in `media.private_networks` (where phones may talk directly)?
    pub fn in_private_networks(&self, ip: IpAddr) -> bool {
        matches!(canonical(ip), IpAddr::V4(v4) if stations::settings::whitelisted(&self.private_networks, v4))
    }

    /// Is `ip` one of the office's own (the private networks, loopback, IPv6 unique-local
    /// or link-local)? Such phones are never given the public address.
    pub fn is_private(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(v4) => v4.is_loopback() || self.in_private_networks(ip),
            IpAddr::V6(v6) => {
                v6.is_loopback()
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        }
    }

    /// What the PBX, listening at `bound`, names to the phone at `peer`.
    pub fn toward(&self, bound: SocketAddr, peer: IpAddr) -> Advertised {
        let private = self.is_private(peer);
        let sip = choose(bound.ip(), peer, self.public, private, route_toward);
        let media = choose(bound.ip(), peer, self.relay_public, private, route_toward);
        Advertised {
            sip: SocketAddr::new(sip, bound.port()),
            media,
        }
    }
}

/// The address to name to a phone at `peer`: the public one when the phone is outside the
/// private networks and one is set (of the phone's family); else the address the PBX is
/// bound to, unless that is a wildcard, in which case the local end of `route` toward the
/// phone (the loopback address, or the unspecified one, only when there is no route at all).
pub fn choose(
    bound: IpAddr,
    peer: IpAddr,
    public: Option<IpAddr>,
    private: bool,
    route: impl Fn(IpAddr) -> Option<IpAddr>,
) -> IpAddr {
    let peer = canonical(peer);
    if let Some(p) = public
        && !private
        && p.is_ipv4() == peer.is_ipv4()
    {
        return p;
    }
    if !bound.is_unspecified() {
        return bound;
    }
    route(peer).map(canonical).unwrap_or(match peer {
        IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    })
}

/// An IPv4 address seen through a dual-stack socket (`::ffff:a.b.c.d`) as plain IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// `ip` as the host part of a SIP URI: IPv6 in brackets.
pub fn uri_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A host with two office subnets: the route's local end is the interface's address.
    fn two_interfaces(peer: IpAddr) -> Option<IpAddr> {
        match peer.to_string().as_str() {
            p if p.starts_with("192.168.77.") => Some(ip("192.168.77.1")),
            p if p.starts_with("192.168.88.") => Some(ip("192.168.88.1")),
            _ => Some(ip("192.168.77.1")), // the default route
        }
    }

    #[test]
    fn a_wildcard_listener_names_the_interface_each_phone_reaches() {
        let any = ip("0.0.0.0");
        let a = choose(any, ip("192.168.77.11"), None, true, two_interfaces);
        let b = choose(any, ip("192.168.88.11"), None, true, two_interfaces);
        assert_eq!(a, ip("192.168.77.1"));
        assert_eq!(b, ip("192.168.88.1"));
        // A phone seen through a dual-stack socket is the same phone.
        let mapped = choose(
            ip("::"),
            ip("::ffff:192.168.88.11"),
            None,
            true,
            two_interfaces,
        );
        assert_eq!(mapped, ip("192.168.88.1"));
    }

    #[test]
    fn never_the_unspecified_address() {
        for (bound, peer) in [("0.0.0.0", "192.168.1.5"), ("::", "fd00::5")] {
            let got = choose(ip(bound), ip(peer), None, true, |_| None);
            assert!(!got.is_unspecified(), "{bound} → {peer}: {got}");
        }
    }

    #[test]
    fn a_specific_bind_is_named_as_it_is() {
        let got = choose(ip("10.1.1.1"), ip("10.1.1.9"), None, true, |_| {
            panic!("no lookup needed")
        });
        assert_eq!(got, ip("10.1.1.1"));
    }

    #[test]
    fn private_with_public() {
        let public = Some(ip("203.0.113.1"));
        let any = ip("0.0.0.0");
        let outside = choose(any, ip("198.51.100.7"), public, false, two_interfaces);
        let inside = choose(any, ip("192.168.77.11"), public, true, two_interfaces);
        assert_eq!(outside, ip("203.0.113.1"));
        assert_eq!(inside, ip("192.168.77.1"));
        // An IPv4 public address is never given to an IPv6 phone.
        let v6 = choose(ip("::"), ip("2001:db8::7"), public, false, |_| {
            Some(ip("2001:db8::1"))
        });
        assert_eq!(v6, ip("2001:db8::1"));
    }

    #[test]
    fn what_counts_as_private() {
        let a = Addressing {
            private_networks: "192.168.0.0/16".into(),
            ..Default::default()
        };
        assert!(a.is_private(ip("192.168.88.3")));
        assert!(a.is_private(ip("127.0.0.1")));
        assert!(a.is_private(ip("::ffff:192.168.1.1")));
        assert!(a.is_private(ip("fd00:77::11")));
        assert!(a.is_private(ip("fe80::1")));
        assert!(!a.is_private(ip("10.0.5.11")));
        assert!(!a.is_private(ip("2001:db8::1")));
    }

    #[test]
    fn the_route_lookup_finds_loopback_for_loopback() {
        assert_eq!(route_toward(ip("127.0.0.1")), Some(ip("127.0.0.1")));
    }

    #[test]
    fn uri_hosts() {
        assert_eq!(uri_host(ip("192.168.1.1")), "192.168.1.1");
        assert_eq!(uri_host(ip("fd00::1")), "[fd00::1]");
    }
}
