//! NAT Check (OfficeServ "SIP Extension Options"): a phone whose Contact names another
//! address than the one its REGISTER came from is behind NAT. Such a phone is reached at its
//! source address (rport/received) and gets keep-alives so its NAT keeps the pinhole open; a
//! phone that is not is reached at its Contact. Pure: it only reads bindings.

use sip::transaction::{Peer, TransportKind};
use stations::db::Registration;
use std::net::{IpAddr, SocketAddr};

/// What counts as "behind NAT".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatCheck {
    /// The Contact's address differs from the source address.
    Ip,
    /// The Contact's address or port differs from the source's.
    IpPort,
}

impl NatCheck {
    /// From the station's `nat_check` option (`ip` or `ip-port`).
    pub fn of(station: &stations::Station) -> Self {
        if station.nat_check == "ip-port" {
            NatCheck::IpPort
        } else {
            NatCheck::Ip
        }
    }
}

/// The `host:port` a Contact URI names, when the host is an IP address (port 5060 if none).
pub fn contact_addr(contact: &str) -> Option<SocketAddr> {
    let c = contact.trim().trim_start_matches('<');
    let rest = c.strip_prefix("sip:").or_else(|| c.strip_prefix("sips:"))?;
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let end = hostport.find([';', '?', '>']).unwrap_or(hostport.len());
    let hostport = &hostport[..end];
    if let Ok(a) = hostport.parse::<SocketAddr>() {
        return Some(a);
    }
    let host = hostport.trim_start_matches('[').trim_end_matches(']');
    host.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 5060))
}

/// Where the REGISTER came from, as stored (`udp:1.2.3.4:5060`).
pub fn source_peer(source: &str) -> Option<Peer> {
    let transport = TransportKind::from_via(source.split_once(':')?.0)?;
    Some(Peer::new(transport, stations::db::source_addr(source)?))
}

/// Is this binding's phone behind NAT?
pub fn behind_nat(reg: &Registration, check: NatCheck) -> bool {
    let (Some(source), Some(contact)) = (source_peer(&reg.source), contact_addr(&reg.contact))
    else {
        // A Contact with a host name cannot be compared: treat it as NATed, reach the source.
        return true;
    };
    match check {
        NatCheck::Ip => contact.ip() != source.addr.ip(),
        NatCheck::IpPort => contact != source.addr,
    }
}

/// Where requests for this binding go: its source when behind NAT or over a connection
/// (TCP reuses the phone's connection), else its Contact.
pub fn route(reg: &Registration, check: NatCheck) -> Option<Peer> {
    let source = source_peer(&reg.source)?;
    if source.transport.is_reliable() || behind_nat(reg, check) {
        return Some(source);
    }
    contact_addr(&reg.contact).map(|a| Peer::new(source.transport, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(contact: &str, source: &str) -> Registration {
        Registration {
            aor: "201".into(),
            contact: contact.into(),
            expires_at: 0,
            source: source.into(),
            transport: "UDP".into(),
            user_agent: String::new(),
            call_id: String::new(),
            cseq: 1,
            instance: String::new(),
        }
    }

    #[test]
    fn contact_addresses() {
        assert_eq!(
            contact_addr("sip:201@10.0.0.5:5062;transport=udp"),
            Some("10.0.0.5:5062".parse().unwrap())
        );
        assert_eq!(
            contact_addr("<sip:201@10.0.0.5>"),
            Some("10.0.0.5:5060".parse().unwrap())
        );
        assert_eq!(
            contact_addr("sip:201@[::1]:5070"),
            Some("[::1]:5070".parse().unwrap())
        );
        assert_eq!(contact_addr("sip:201@phone.example.com"), None);
        assert_eq!(contact_addr("tel:201"), None);
    }

    #[test]
    fn check_modes() {
        let same = reg("sip:201@127.0.0.1:5062", "udp:127.0.0.1:5062");
        let other_port = reg("sip:201@127.0.0.1:6000", "udp:127.0.0.1:5062");
        let other_ip = reg("sip:201@192.168.1.20:5060", "udp:203.0.113.9:40000");
        assert!(!behind_nat(&same, NatCheck::IpPort));
        assert!(behind_nat(&other_port, NatCheck::IpPort));
        assert!(!behind_nat(&other_port, NatCheck::Ip));
        assert!(behind_nat(&other_ip, NatCheck::Ip));
        assert_eq!(
            route(&other_port, NatCheck::Ip).unwrap().addr,
            "127.0.0.1:6000".parse().unwrap()
        );
        assert_eq!(
            route(&other_port, NatCheck::IpPort).unwrap().addr,
            "127.0.0.1:5062".parse().unwrap()
        );
        let tcp = reg(
            "sip:201@127.0.0.1:6000;transport=tcp",
            "tcp:127.0.0.1:41000",
        );
        assert_eq!(
            route(&tcp, NatCheck::Ip).unwrap().addr,
            "127.0.0.1:41000".parse().unwrap()
        );
    }
}
