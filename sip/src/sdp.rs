//! SDP offer/answer (RFC 3264) for audio, over ezk-sdp-types' model.
//!
//! - [`answer`]: the answerer's side — codec intersection in the offer's order and with the
//!   offer's payload-type numbers, telephone-event (RFC 4733) kept when both sides have it,
//!   direction mirrored (`sendonly` ⇄ `recvonly`, `inactive`), an RFC 2543 hold
//!   (`c=0.0.0.0`) understood as "do not send to me", unusable streams rejected with port 0,
//!   and the offerer's `a=crypto` handed back for SRTP keying.
//! - [`offer`] and [`take_answer`]: the offerer's side — build an offer from our codecs, then
//!   read the answer's choice with the answer's payload types.
//!
//! The result of either side is a [`Negotiated`] stream description the media layer can use
//! without reading SDP.

use bytesstr::BytesStr;
pub use ezk_sdp_types::Direction;
use ezk_sdp_types::{
    MediaDescription, MediaType, SessionDescription, SrtpCrypto, TaggedAddress, TransportProtocol,
};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// Why an SDP could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("malformed SDP: {0}")]
    Malformed(String),
    #[error("no audio stream with a codec in common")]
    NoCommonCodec,
}

/// A codec as SDP names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// Encoding name, compared case-insensitively (`PCMU`, `opus`, `telephone-event`).
    pub name: String,
    pub clock_rate: u32,
    /// Channel count when not 1 (`opus/48000/2`).
    pub channels: Option<u32>,
    /// The static payload type (RFC 3551), if the codec has one.
    pub static_pt: Option<u8>,
    /// `a=fmtp` parameters we offer.
    pub fmtp: Option<String>,
}

impl Codec {
    pub fn pcmu() -> Self {
        Codec::new("PCMU", 8000, Some(0))
    }
    pub fn pcma() -> Self {
        Codec::new("PCMA", 8000, Some(8))
    }
    pub fn g722() -> Self {
        Codec::new("G722", 8000, Some(9))
    }
    pub fn opus() -> Self {
        Codec {
            channels: Some(2),
            fmtp: Some("useinbandfec=1".into()),
            ..Codec::new("opus", 48000, None)
        }
    }
    /// RFC 4733 DTMF events 0–15.
    pub fn telephone_event() -> Self {
        Codec {
            fmtp: Some("0-15".into()),
            ..Codec::new("telephone-event", 8000, None)
        }
    }

    fn new(name: &str, clock_rate: u32, static_pt: Option<u8>) -> Self {
        Codec {
            name: name.into(),
            clock_rate,
            channels: None,
            static_pt,
            fmtp: None,
        }
    }

    pub fn is_telephone_event(&self) -> bool {
        self.name.eq_ignore_ascii_case("telephone-event")
    }

    fn same(&self, name: &str, rate: u32) -> bool {
        self.name.eq_ignore_ascii_case(name) && self.clock_rate == rate
    }

    fn rtpmap(&self, pt: u8) -> String {
        match self.channels {
            Some(c) => format!("a=rtpmap:{pt} {}/{}/{c}\r\n", self.name, self.clock_rate),
            None => format!("a=rtpmap:{pt} {}/{}\r\n", self.name, self.clock_rate),
        }
    }
}

/// The audio stream both sides agreed on.
#[derive(Debug, Clone)]
pub struct Negotiated {
    /// Where to send RTP; None when the peer does not want media (`c=0.0.0.0`, port 0).
    pub remote: Option<SocketAddr>,
    /// Agreed codecs with the payload types to use, preferred first (never telephone-event).
    pub codecs: Vec<(u8, Codec)>,
    /// The telephone-event payload type, when both sides support RFC 4733.
    pub telephone_event: Option<u8>,
    /// Our direction: may we send, do we receive.
    pub direction: Direction,
    /// The peer put the stream on hold (sendonly, inactive or c=0.0.0.0).
    pub remote_hold: bool,
    /// The peer's `a=crypto` lines (SDES keys for SRTP), as offered.
    pub crypto: Vec<SrtpCrypto>,
    /// RTP/SAVP: SRTP is required.
    pub secure: bool,
}

/// What we bring to a negotiation.
#[derive(Debug, Clone)]
pub struct Local {
    pub addr: IpAddr,
    pub port: u16,
    /// Codecs in our order of preference; include [`Codec::telephone_event`] for RFC 4733.
    pub codecs: Vec<Codec>,
    /// What we want: `SendRecv`, or `SendOnly`/`Inactive` to hold.
    pub direction: Direction,
    /// Our `a=crypto` line(s) (SRTP); makes the offer RTP/SAVP.
    pub crypto: Vec<String>,
    /// o= session id and version (bump the version on every new offer of a session).
    pub session_id: u64,
    pub version: u64,
}

/// Parses an SDP body.
pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::Malformed("not UTF-8".into()))?;
    SessionDescription::parse(&BytesStr::from(text)).map_err(|e| SdpError::Malformed(e.to_string()))
}

/// The direction we answer with (RFC 3264 §6.1): we may send only if the offerer receives.
fn answer_direction(offered: Direction, ours: Direction) -> Direction {
    let (they_send, they_recv) = sends_recvs(offered);
    let (we_send, we_recv) = sends_recvs(ours);
    direction(we_send && they_recv, we_recv && they_send)
}

fn sends_recvs(d: Direction) -> (bool, bool) {
    match d {
        Direction::SendRecv => (true, true),
        Direction::SendOnly => (true, false),
        Direction::RecvOnly => (false, true),
        Direction::Inactive => (false, false),
    }
}

fn direction(send: bool, recv: bool) -> Direction {
    match (send, recv) {
        (true, true) => Direction::SendRecv,
        (true, false) => Direction::SendOnly,
        (false, true) => Direction::RecvOnly,
        (false, false) => Direction::Inactive,
    }
}

/// The effective direction and address of a remote m-line (session-level values apply when
/// the media level has none; `c=0.0.0.0` means "do not send to me").
fn remote_stream(
    sdp: &SessionDescription,
    m: &MediaDescription,
) -> (Direction, Option<SocketAddr>) {
    let mut d = if m.direction == Direction::SendRecv {
        sdp.direction
    } else {
        m.direction
    };
    let conn = m.connection.as_ref().or(sdp.connection.as_ref());
    let ip = conn.and_then(|c| match &c.address {
        TaggedAddress::IP4(ip) => Some(IpAddr::V4(*ip)),
        TaggedAddress::IP6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    });
    let addr = match ip {
        Some(ip) if !ip.is_unspecified() && m.media.port != 0 => {
            Some(SocketAddr::new(ip, m.media.port))
        }
        _ => None,
    };
    if ip.is_some_and(|ip| ip.is_unspecified()) {
        // RFC 2543 hold: the peer does not receive.
        d = direction(sends_recvs(d).0, false);
    }
    (d, addr)
}

/// The codec a payload type of `m` names (rtpmap, or a static type).
fn codec_of(m: &MediaDescription, pt: u8, known: &[Codec]) -> Option<Codec> {
    if let Some(map) = m.rtpmap.iter().find(|r| r.payload == pt) {
        return known
            .iter()
            .find(|c| c.same(&map.encoding, map.clock_rate))
            .cloned();
    }
    known.iter().find(|c| c.static_pt == Some(pt)).cloned()
}

fn is_audio_rtp(m: &MediaDescription) -> bool {
    m.media.media_type == MediaType::Audio
        && matches!(
            m.media.proto,
            TransportProtocol::RtpAvp | TransportProtocol::RtpSavp
        )
}

/// Answers `offer` (RFC 3264 §6): the first audio stream with a common codec is accepted,
/// every other stream rejected with port 0. Returns the answer body and what was agreed.
pub fn answer(offer: &SessionDescription, local: &Local) -> Result<(String, Negotiated), SdpError> {
    let mut body = session_header(local);
    let mut agreed: Option<Negotiated> = None;
    for m in &offer.media_descriptions {
        let mut accepted = Vec::new();
        if agreed.is_none() && is_audio_rtp(m) {
            for pt in &m.media.fmts {
                if let Some(c) = codec_of(m, *pt, &local.codecs) {
                    accepted.push((*pt, c));
                }
            }
        }
        let has_voice = accepted.iter().any(|(_, c)| !c.is_telephone_event());
        if !has_voice {
            body.push_str(&rejected(m));
            continue;
        }
        let (offered_dir, remote) = remote_stream(offer, m);
        let dir = answer_direction(offered_dir, local.direction);
        let secure = m.media.proto == TransportProtocol::RtpSavp;
        let pts: Vec<String> = accepted.iter().map(|(pt, _)| pt.to_string()).collect();
        let _ = write!(
            body,
            "m=audio {} {} {}\r\n",
            local.port,
            m.media.proto,
            pts.join(" ")
        );
        for (pt, c) in &accepted {
            body.push_str(&c.rtpmap(*pt));
            if let Some(f) = &c.fmtp {
                let _ = write!(body, "a=fmtp:{pt} {f}\r\n");
            }
        }
        // Keys answer keys: on RTP/SAVP, or on RTP/AVP offered with a=crypto (SRTP when
        // both can, as the PBX offers it to phones under an optional policy).
        if secure || !m.crypto.is_empty() {
            for line in &local.crypto {
                let _ = write!(body, "a=crypto:{line}\r\n");
            }
        }
        let _ = write!(body, "a={}\r\n", dir.as_str());
        agreed = Some(negotiated(accepted, dir, offered_dir, remote, m, secure));
    }
    let agreed = agreed.ok_or(SdpError::NoCommonCodec)?;
    Ok((body, agreed))
}

/// The m= line that refuses an offered stream (RFC 3264 §6: port 0, the offer's protocol
/// and formats). An offer's line that parsed but would not print as one that parses (no
/// format, a protocol that is no token) is refused as `RTP/AVP 0`.
fn rejected(m: &MediaDescription) -> String {
    let proto = m.media.proto.to_string();
    let token = |t: &str| {
        t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c))
    };
    let fmts: Vec<String> = m.media.fmts.iter().map(|f| f.to_string()).collect();
    let kind = m.media.media_type.to_string();
    if token(&proto) && token(&kind) && !fmts.is_empty() && fmts.iter().all(|f| token(f)) {
        format!("m={kind} 0 {proto} {}\r\n", fmts.join(" "))
    } else {
        let kind = if token(&kind) { kind } else { "audio".into() };
        format!("m={kind} 0 RTP/AVP 0\r\n")
    }
}

fn negotiated(
    accepted: Vec<(u8, Codec)>,
    dir: Direction,
    remote_dir: Direction,
    remote: Option<SocketAddr>,
    m: &MediaDescription,
    secure: bool,
) -> Negotiated {
    let telephone_event = accepted
        .iter()
        .find(|(_, c)| c.is_telephone_event())
        .map(|(pt, _)| *pt);
    Negotiated {
        remote,
        codecs: accepted
            .into_iter()
            .filter(|(_, c)| !c.is_telephone_event())
            .collect(),
        telephone_event,
        direction: dir,
        remote_hold: !sends_recvs(remote_dir).1,
        crypto: m.crypto.clone(),
        secure,
    }
}

fn session_header(local: &Local) -> String {
    let ip = match local.addr {
        IpAddr::V4(ip) => format!("IP4 {ip}"),
        IpAddr::V6(ip) => format!("IP6 {ip}"),
    };
    format!(
        "v=0\r\no=- {} {} IN {ip}\r\ns=-\r\nc=IN {ip}\r\nt=0 0\r\n",
        local.session_id, local.version
    )
}

/// An offer from our codecs: static payload types where they exist, dynamic ones from 96.
pub fn offer(local: &Local) -> String {
    let mut body = session_header(local);
    let mut next_dynamic = 96u8;
    let mut lines = String::new();
    let mut pts = Vec::new();
    for c in &local.codecs {
        let pt = c.static_pt.unwrap_or_else(|| {
            let pt = if c.is_telephone_event() {
                101
            } else {
                next_dynamic
            };
            if pt == next_dynamic {
                next_dynamic += 1;
            }
            pt
        });
        pts.push(pt.to_string());
        lines.push_str(&c.rtpmap(pt));
        if let Some(f) = &c.fmtp {
            let _ = write!(lines, "a=fmtp:{pt} {f}\r\n");
        }
    }
    let proto = if local.crypto.is_empty() {
        "RTP/AVP"
    } else {
        "RTP/SAVP"
    };
    let _ = write!(
        body,
        "m=audio {} {proto} {}\r\n{lines}",
        local.port,
        pts.join(" ")
    );
    for line in &local.crypto {
        let _ = write!(body, "a=crypto:{line}\r\n");
    }
    let _ = write!(body, "a={}\r\n", local.direction.as_str());
    body
}

/// The offerer reads the answer (RFC 3264 §7): the codecs it accepted, with its payload types.
pub fn take_answer(answer: &SessionDescription, local: &Local) -> Result<Negotiated, SdpError> {
    let m = answer
        .media_descriptions
        .iter()
        .find(|m| is_audio_rtp(m) && m.media.port != 0)
        .ok_or(SdpError::NoCommonCodec)?;
    let accepted: Vec<(u8, Codec)> = m
        .media
        .fmts
        .iter()
        .filter_map(|pt| codec_of(m, *pt, &local.codecs).map(|c| (*pt, c)))
        .collect();
    if !accepted.iter().any(|(_, c)| !c.is_telephone_event()) {
        return Err(SdpError::NoCommonCodec);
    }
    let (remote_dir, remote) = remote_stream(answer, m);
    let (want_send, want_recv) = sends_recvs(local.direction);
    let (they_send, they_recv) = sends_recvs(remote_dir);
    let dir = direction(want_send && they_recv, want_recv && they_send);
    let secure = m.media.proto == TransportProtocol::RtpSavp;
    Ok(negotiated(accepted, dir, remote_dir, remote, m, secure))
}
