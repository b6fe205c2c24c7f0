//! Office-wide settings: one table of keys with their defaults (from the seed documents) and
//! validators. A setting never stored reads as its default.

use crate::error::StationError;

/// How a setting's value is checked.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Free text without control characters or quotes.
    Text,
    /// A file path (absolute, or relative to where the PBX runs), empty for none.
    Path,
    /// A host name, IPv4 address, or `auto` (the address the phone reached us on).
    Host,
    /// An IPv4 or IPv6 address, or empty for none.
    Ip,
    /// An integer in a range.
    Int(i64, i64),
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A dialled code: 1–6 of 0-9 * #.
    Code,
    /// Comma-separated IPv4 networks: CIDR, a single address, or the OfficeServ broadcast form.
    Networks,
}

/// (key, default, kind, description)
pub const SETTINGS: &[(&str, &str, Kind, &str)] = &[
    (
        "pbx.host",
        "auto",
        Kind::Host,
        "address phones register to; auto = the address they fetched their file from",
    ),
    (
        "pbx.port",
        "5060",
        Kind::Int(1, 65535),
        "SIP port of the PBX",
    ),
    (
        "pbx.transport",
        "udp",
        Kind::OneOf(&["udp", "tcp", "tls"]),
        "SIP transport phones use (a station with srtp=mandatory gets tls whatever this says)",
    ),
    (
        "pbx.tls_port",
        "5061",
        Kind::Int(1, 65535),
        "SIP over TLS port of the PBX, as phone profiles name it (serve --tls)",
    ),
    (
        "registration.expiry",
        "600",
        Kind::Int(60, 86400),
        "registration expiry in seconds (OfficeServ SIP Expire Time)",
    ),
    (
        "registration.nat_expiry",
        "60",
        Kind::Int(10, 3600),
        "registration expiry granted to a phone behind NAT, so its pinhole stays open (OfficeServ NAT Reg Expire Time)",
    ),
    (
        "sntp.server",
        "pool.ntp.org",
        Kind::Host,
        "time server for the phones",
    ),
    (
        "time.zone",
        "GMT",
        Kind::OneOf(ZONES_NAMES),
        "time zone (Cisco 3-letter code)",
    ),
    (
        "time.dst",
        "none",
        Kind::OneOf(&["none", "eu", "us"]),
        "daylight saving rule",
    ),
    (
        "dialplan.timeout",
        "5",
        Kind::Int(1, 30),
        "seconds before an incomplete number is dialled",
    ),
    (
        "numberplan.station_digits",
        "3",
        Kind::Int(2, 6),
        "digits of a station number",
    ),
    (
        "numberplan.trunk",
        "9",
        Kind::Code,
        "outside line access code",
    ),
    (
        "numberplan.forward_clear",
        "600",
        Kind::Code,
        "call forward: clear",
    ),
    (
        "numberplan.forward_all",
        "601",
        Kind::Code,
        "call forward: all calls (+ destination)",
    ),
    (
        "numberplan.forward_busy",
        "602",
        Kind::Code,
        "call forward: busy (+ destination)",
    ),
    (
        "numberplan.forward_noanswer",
        "603",
        Kind::Code,
        "call forward: no answer (+ destination)",
    ),
    (
        "numberplan.forward_busy_noanswer",
        "604",
        Kind::Code,
        "call forward: busy/no answer (+ destination)",
    ),
    (
        "numberplan.dnd",
        "40",
        Kind::Code,
        "do not disturb (+1 on, +0 off)",
    ),
    (
        "dial.country_code",
        "44",
        Kind::Code,
        "the office's country code: outside numbers go to trunks in E.164 (+<country><number>)",
    ),
    (
        "dial.national_prefix",
        "0",
        Kind::Code,
        "what a national number is dialled with (0 in most of Europe, 1 in North America)",
    ),
    (
        "dial.international_prefix",
        "00",
        Kind::Code,
        "what an international number is dialled with (00, 011 in North America)",
    ),
    (
        "dial.area_code",
        "",
        Kind::Text,
        "the office's area code, put before a number dialled without prefix (a local call); empty: local numbers are dialled with it",
    ),
    (
        "dial.emergency",
        "112,999",
        Kind::Text,
        "emergency numbers (comma-separated): always allowed, whatever the station's toll restriction, and sent as dialled",
    ),
    (
        "trunk.default_did",
        "",
        Kind::Text,
        "the station (an operator) an incoming call to a number no DID names rings; empty: 404",
    ),
    (
        "numberplan.park",
        "11",
        Kind::Code,
        "park the held call (+ station)",
    ),
    (
        "numberplan.retrieve",
        "12",
        Kind::Code,
        "retrieve a parked call (+ parking station)",
    ),
    ("numberplan.conference", "46", Kind::Code, "conference"),
    (
        "numberplan.pickup_my_group",
        "55",
        Kind::Code,
        "pick up a call ringing in my pickup group",
    ),
    (
        "numberplan.pickup_group",
        "56",
        Kind::Code,
        "pick up a call ringing in a group (+ group)",
    ),
    (
        "numberplan.pickup_directed",
        "57",
        Kind::Code,
        "pick up a call ringing at a station (+ station)",
    ),
    ("numberplan.voicemail", "50", Kind::Code, "voicemail access"),
    (
        "password.min_length",
        "8",
        Kind::Int(6, 31),
        "shortest password a station may have",
    ),
    (
        "security.whitelist",
        "127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
        Kind::Networks,
        "Phone IP White List (stations with use_whitelist register only from these)",
    ),
    (
        "security.register_retry_limit",
        "5",
        Kind::Int(1, 100),
        "failed REGISTERs from one address before it is blocked (Register Retry Limit)",
    ),
    (
        "security.register_block_seconds",
        "60",
        Kind::Int(1, 86400),
        "how long a blocked address stays blocked (Register Block Timer)",
    ),
    (
        "security.failed_response",
        "response",
        Kind::OneOf(&["response", "silent"]),
        "Comm Exclusive: answer refused registrations (response) or drop them (silent)",
    ),
    (
        "security.digest",
        "md5",
        Kind::OneOf(&["md5", "sha256", "both"]),
        "digest algorithms offered, first preferred (md5 for phones that answer only MD5)",
    ),
    (
        "security.invite_auth",
        "always",
        Kind::OneOf(&["always", "never"]),
        "INVITEs must answer a 407 digest challenge as the station they claim to be from",
    ),
    (
        "sip.rate_per_address",
        "50",
        Kind::Int(0, 1_000_000),
        "SIP messages a second one address may send (twice that at once); past it datagrams are dropped unread. 0 = no limit. Raise it for a NAT router with many phones behind it (read when the server starts)",
    ),
    (
        "sip.min_expires",
        "60",
        Kind::Int(1, 3600),
        "shortest registration accepted (Min-Expires)",
    ),
    (
        "sip.t1_ms",
        "500",
        Kind::Int(100, 5000),
        "SIP timer T1 (round-trip estimate, ms); a transaction gives up after 64 × T1; read when the PBX starts",
    ),
    (
        "nat.keepalive_seconds",
        "30",
        Kind::Int(0, 3600),
        "how often a keep-alive (CRLF) goes to each UDP phone behind NAT; 0 = never",
    ),
    (
        "nat.public_address",
        "",
        Kind::Ip,
        "the office's public address when the PBX sits behind a NAT router with SIP and the RTP ports forwarded (OfficeServ Private with Public); phones outside the private networks are given it; empty = none",
    ),
    (
        "nat.relay_public_address",
        "",
        Kind::Ip,
        "the public address of the media relay when it differs from nat.public_address; empty = the same",
    ),
    (
        "forward.noanswer_seconds",
        "15",
        Kind::Int(1, 300),
        "how long a call rings before Call Forward No Answer (603/604) sends it on",
    ),
    (
        "tls.certificate",
        "",
        Kind::Path,
        "PEM certificate chain the PBX shows on its TLS port; empty = a certificate from the office's own CA (DB.tls/)",
    ),
    (
        "tls.private_key",
        "",
        Kind::Path,
        "PEM private key of tls.certificate (set both or neither)",
    ),
    (
        "tls.mutual",
        "no",
        Kind::OneOf(&["yes", "no"]),
        "SIP Mutual TLS: a phone must show a client certificate to connect on the TLS port",
    ),
    (
        "tls.verify_client",
        "known",
        Kind::OneOf(&["known", "any"]),
        "with tls.mutual: known = the certificate must come from the office CA or tls.client_ca; any = any certificate (Validate Any TLS Certificate)",
    ),
    (
        "tls.client_ca",
        "",
        Kind::Path,
        "PEM roots besides the office CA that phones' client certificates may come from",
    ),
    (
        "srtp.plain_signalling",
        "no",
        Kind::OneOf(&["yes", "no"]),
        "send SRTP keys (a=crypto) to phones on plain UDP/TCP SIP too; no = only over TLS, where nobody on the way can read them",
    ),
    (
        "hold.music",
        "",
        Kind::Path,
        "WAV file played to held and parked parties (any rate, mono or stereo); empty = a built-in tune",
    ),
    (
        "hold.recall_seconds",
        "60",
        Kind::Int(0, 3600),
        "a call held this many seconds rings the holding station again (OfficeServ Hold Recall); 0 = never",
    ),
    (
        "voicemail.max_seconds",
        "120",
        Kind::Int(5, 3600),
        "longest voicemail message recorded",
    ),
    (
        "ringgroup.batch",
        "4",
        Kind::Int(1, 32),
        "how many members of a ring group are rung at once",
    ),
    (
        "ringgroup.stagger_ms",
        "50",
        Kind::Int(0, 2000),
        "the pause between batches of a ring group",
    ),
    (
        "park.recall_seconds",
        "60",
        Kind::Int(5, 3600),
        "a parked call not retrieved within this many seconds rings the parking station again (OfficeServ E-Hold Recall)",
    ),
    (
        "transfer.recall_seconds",
        "30",
        Kind::Int(5, 600),
        "a blind transfer not answered within this many seconds rings the transferor again",
    ),
    (
        "conference.max_members",
        "32",
        Kind::Int(3, 32),
        "most parties in one conference, the owner included (OfficeServ allows 5)",
    ),
    (
        "calls.probe_seconds",
        "30",
        Kind::Int(0, 3600),
        "how often each call's phones are asked (in-dialog OPTIONS) if they are still there; a call whose phone is gone is hung up; 0 = never",
    ),
    (
        "media.rtp_timeout",
        "60",
        Kind::Int(0, 3600),
        "a relayed call with no RTP from either phone for this many seconds (not on hold) is hung up; 0 = never",
    ),
    (
        "media.relay",
        "auto",
        Kind::OneOf(&["auto", "always", "never"]),
        "anchor calls' media in the PBX relay: auto = unless both phones are on the private networks",
    ),
    (
        "media.private_networks",
        "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
        Kind::Networks,
        "the office's own networks (OfficeServ Private IP Address): phones on them talk directly",
    ),
    (
        "firmware.cisco-7940",
        "",
        Kind::Text,
        "SIP image for 7940 (e.g. P0S3-8-12-00); enables OS79XX.TXT and XMLDefault.cnf.xml",
    ),
    (
        "firmware.cisco-7960",
        "",
        Kind::Text,
        "SIP image for 7960 (e.g. P0S3-8-12-00)",
    ),
    (
        "cisco.sync",
        "1",
        Kind::Text,
        "Cisco sync value; change it and send check-sync to reboot phones",
    ),
    (
        "provisioning.tftp_per_address",
        "8",
        Kind::Int(1, 1000),
        "TFTP transfers one address may have at once; read requests past it are dropped (a phone fetches its files one after another)",
    ),
    (
        "provisioning.http_port",
        "80",
        Kind::Int(1, 65535),
        "port of the provisioning web server, as phones are told",
    ),
    (
        "directory.title",
        "Office Directory",
        Kind::Text,
        "title of the Cisco XML directory",
    ),
    (
        "directory.access",
        "phones",
        Kind::OneOf(&["phones", "anyone"]),
        "who may read the directory: phones = requests from an address a station is registered from, or with a station's user ID and password; anyone = every request",
    ),
];

/// Cisco time zone codes with their offset from GMT in minutes.
pub const ZONES: &[(&str, i32)] = &[
    ("IDL", -720),
    ("NT", -660),
    ("AHST", -600),
    ("YST", -540),
    ("PST", -480),
    ("MST", -420),
    ("CST", -360),
    ("EST", -300),
    ("AST", -240),
    ("NST", -210),
    ("BST", -180),
    ("AT", -120),
    ("WAT", -60),
    ("GMT", 0),
    ("CET", 60),
    ("EET", 120),
    ("BT", 180),
    ("IT", 210),
    ("ZP4", 240),
    ("AFG", 270),
    ("ZP5", 300),
    ("IST", 330),
    ("ZP6", 360),
    ("SUM", 390),
    ("WAST", 420),
    ("HST", 480),
    ("JST", 540),
    ("CAST", 570),
    ("EAST", 600),
    ("EADT", 660),
    ("NZST", 720),
];

const ZONES_NAMES: &[&str] = &[
    "IDL", "NT", "AHST", "YST", "PST", "MST", "CST", "EST", "AST", "NST", "BST", "AT", "WAT",
    "GMT", "CET", "EET", "BT", "IT", "ZP4", "AFG", "ZP5", "IST", "ZP6", "SUM", "WAST", "HST",
    "JST", "CAST", "EAST", "EADT", "NZST",
];

/// The row of a setting.
pub fn lookup(
    key: &str,
) -> Result<&'static (&'static str, &'static str, Kind, &'static str), StationError> {
    SETTINGS
        .iter()
        .find(|(k, _, _, _)| *k == key)
        .ok_or_else(|| StationError::UnknownSetting(key.to_string()))
}

/// Checks a value for `key`; returns it normalised.
pub fn validate(key: &str, value: &str) -> Result<String, StationError> {
    let (k, _, kind, _) = lookup(key)?;
    let v = value.trim();
    let bad = |why: String| {
        Err(StationError::Invalid {
            field: k,
            value: v.to_string(),
            reason: why,
        })
    };
    match kind {
        Kind::Text => {
            if v.chars().any(|c| c.is_control() || c == '"') || v.len() > 64 {
                return bad(
                    "must be at most 64 characters without quotes or control characters".into(),
                );
            }
        }
        Kind::Path => {
            if v.chars().any(char::is_control) || v.len() > 255 {
                return bad("must be a file path of at most 255 characters".into());
            }
        }
        Kind::Host => {
            let ok = v == "auto"
                || (!v.is_empty()
                    && v.len() <= 253
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c)));
            if !ok {
                return bad("must be a host name, an IPv4 address or auto".into());
            }
        }
        Kind::Ip => {
            if !v.is_empty() && v.parse::<std::net::IpAddr>().is_err() {
                return bad("must be an IPv4 or IPv6 address, or empty for none".into());
            }
        }
        Kind::Int(lo, hi) => match v.parse::<i64>() {
            Ok(n) if (*lo..=*hi).contains(&n) => return Ok(n.to_string()),
            _ => return bad(format!("must be a whole number from {lo} to {hi}")),
        },
        Kind::OneOf(words) => {
            return match words.iter().find(|w| w.eq_ignore_ascii_case(v)) {
                Some(w) => Ok((*w).to_string()),
                None => bad(format!("must be one of {}", words.join(", "))),
            };
        }
        Kind::Code => {
            if v.is_empty()
                || v.len() > 6
                || !v
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
            {
                return bad("must be 1 to 6 of 0-9 * #".into());
            }
        }
        Kind::Networks => {
            for n in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if parse_network(n).is_none() {
                    return bad(format!(
                        "{n:?} is not a network (CIDR, address or broadcast form)"
                    ));
                }
            }
        }
    }
    Ok(v.to_string())
}

/// An IPv4 network as (address, prefix length): `10.0.0.0/8`, `192.168.1.7` (/32), or the
/// OfficeServ broadcast form `192.168.1.255` (the class-full network it ends).
pub fn parse_network(s: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    if let Some((a, p)) = s.split_once('/') {
        let prefix: u8 = p.parse().ok().filter(|p| *p <= 32)?;
        return Some((a.parse().ok()?, prefix));
    }
    let addr: std::net::Ipv4Addr = s.parse().ok()?;
    let o = addr.octets();
    let prefix = if o[1..] == [255, 255, 255] {
        8
    } else if o[2..] == [255, 255] {
        16
    } else if o[3] == 255 {
        24
    } else {
        32
    };
    Some((addr, prefix))
}

/// Does `ip` fall in any network of a `security.whitelist` value?
pub fn whitelisted(list: &str, ip: std::net::Ipv4Addr) -> bool {
    list.split(',')
        .filter_map(|n| parse_network(n.trim()))
        .any(|(net, prefix)| {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            u32::from(ip) & mask == u32::from(net) & mask
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        for (k, d, _, _) in SETTINGS {
            validate(k, d).unwrap_or_else(|e| panic!("default of {k}: {e}"));
        }
    }

    #[test]
    fn refusals_and_normalising() {
        assert_eq!(validate("pbx.transport", "TCP").unwrap(), "tcp");
        assert_eq!(validate("pbx.port", " 05070 ").unwrap(), "5070");
        for (k, v) in [
            ("pbx.port", "70000"),
            ("pbx.host", "a b"),
            ("numberplan.park", "1x"),
            ("time.zone", "XYZ"),
            ("security.whitelist", "10.0.0.0/33"),
        ] {
            let e = validate(k, v).unwrap_err().to_string();
            assert!(e.starts_with(k), "{e}");
        }
        assert!(validate("no.such", "1").is_err());
    }

    #[test]
    fn whitelist_forms() {
        let list = "192.168.1.255, 10.0.0.0/8, 172.16.5.9";
        assert!(whitelisted(list, "192.168.1.77".parse().unwrap()));
        assert!(!whitelisted(list, "192.168.2.77".parse().unwrap()));
        assert!(whitelisted(list, "10.200.1.1".parse().unwrap()));
        assert!(whitelisted(list, "172.16.5.9".parse().unwrap()));
        assert!(!whitelisted(list, "172.16.5.10".parse().unwrap()));
    }
}
