//! SRTP/SRTCP (RFC 3711) with SDES keying (RFC 4568 `a=crypto`): AES_CM_128_HMAC_SHA1_80 and
//! _32. [`Crypto`] parses and prints the `a=crypto` value and makes new keys; [`SrtpSession`]
//! protects what we send and unprotects what we receive, with the rollover counter across the
//! sequence wrap and replay protection inbound, in place in the caller's buffer (the relay
//! does this for every packet of an SRTP call: no allocation). The transforms are RFC 3711's
//! own, on RustCrypto's AES (AES-NI when the CPU has it), counter mode and HMAC-SHA1 (SHA-NI);
//! tests hold them to the RFC's Appendix B vectors and to webrtc-srtp's output.

use aes::Aes128;
use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use thiserror::Error;

type AesCm = ctr::Ctr128BE<Aes128>;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SrtpError {
    #[error("a=crypto: {0}")]
    Crypto(String),
    #[error("SRTP: {0}")]
    Srtp(String),
}

/// Crypto suites we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The SRTP authentication tag's length in bytes.
    fn tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }
}

/// One `a=crypto` line: tag, suite, 16-byte master key and 14-byte master salt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: Suite,
    pub key: [u8; 16],
    pub salt: [u8; 14],
}

impl Crypto {
    /// New random keys.
    pub fn generate(tag: u32, suite: Suite) -> Self {
        Crypto {
            tag,
            suite,
            key: rand::random(),
            salt: rand::random(),
        }
    }

    /// Parses `1 AES_CM_128_HMAC_SHA1_80 inline:<base64>[|lifetime][|MKI:len]`.
    pub fn parse(value: &str) -> Result<Self, SrtpError> {
        let bad = |why: &str| SrtpError::Crypto(format!("{why}: {value:?}"));
        let mut parts = value.split_whitespace();
        let tag = parts
            .next()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("bad tag"))?;
        let suite = match parts.next() {
            Some("AES_CM_128_HMAC_SHA1_80") => Suite::AesCm128HmacSha1_80,
            Some("AES_CM_128_HMAC_SHA1_32") => Suite::AesCm128HmacSha1_32,
            _ => return Err(bad("unsupported suite")),
        };
        let inline = parts
            .next()
            .and_then(|k| k.strip_prefix("inline:"))
            .ok_or_else(|| bad("no inline key"))?;
        let b64 = inline.split('|').next().unwrap_or_default();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| bad("key is not base64"))?;
        if raw.len() != 30 {
            return Err(bad("key and salt must be 30 bytes"));
        }
        let mut key = [0u8; 16];
        let mut salt = [0u8; 14];
        key.copy_from_slice(&raw[..16]);
        salt.copy_from_slice(&raw[16..]);
        Ok(Crypto {
            tag,
            suite,
            key,
            salt,
        })
    }

    /// The `a=crypto` value.
    pub fn to_sdp(&self) -> String {
        let mut raw = self.key.to_vec();
        raw.extend_from_slice(&self.salt);
        format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.name(),
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Protection for one call leg: our keys outbound, the peer's inbound.
pub struct SrtpSession {
    tx: Direction,
    rx: Direction,
}

/// SRTCP's index (4 bytes) and tag (80 bits, whatever the SRTP suite: RFC 4568 §6.2).
const SRTCP_TRAILER: usize = 4 + SRTCP_TAG;
const SRTCP_TAG: usize = 10;
/// Streams (SSRCs) one direction keeps a rollover counter and replay window for: a relay
/// port sees a new one when a transfer puts another phone behind it.
const STREAMS: usize = 8;

/// Session keys of one direction (RFC 3711 §4.3), and its streams.
struct Direction {
    rtp: SessionKeys,
    rtcp: SessionKeys,
    tag: usize,
    streams: Vec<Stream>,
    /// The SRTCP index of the next packet sent.
    rtcp_index: u32,
}

struct SessionKeys {
    cipher: Aes128,
    salt: [u8; 14],
    /// HMAC-SHA1 keyed with the session authentication key, cloned per packet.
    auth: Hmac<Sha1>,
}

/// One SSRC's packet index state: the rollover counter and highest sequence number (RFC 3711
/// Appendix A), and replay windows of the last 64 indexes.
#[derive(Clone, Copy)]
struct Stream {
    ssrc: u32,
    roc: u32,
    /// None until the first RTP packet (SRTCP can come first).
    highest: Option<u16>,
    window: Window,
    rtcp_window: Option<Window>,
}

/// The highest index accepted and a bitmap of the 63 before it.
#[derive(Clone, Copy, Default)]
struct Window {
    top: u64,
    seen: u64,
}

impl Window {
    fn fresh(&self, index: u64) -> bool {
        index > self.top || (self.top - index < 64 && self.seen & (1 << (self.top - index)) == 0)
    }

    fn accept(&mut self, index: u64) {
        if index > self.top {
            let shift = index - self.top;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.top = index;
        } else {
            self.seen |= 1 << (self.top - index);
        }
    }
}

/// AES-CM keystream from `iv` XORed onto `data` (RFC 3711 §4.1.1).
fn aes_cm(cipher: &Aes128, iv: [u8; 16], data: &mut [u8]) {
    let core =
        ctr::CtrCore::<Aes128, ctr::flavors::Ctr128BE>::inner_iv_init(cipher.clone(), &iv.into());
    AesCm::from_core(core).apply_keystream(data);
}

impl SessionKeys {
    /// The session keys for packets (`rtcp` false) or control packets, derived from the
    /// master key and salt with the key derivation rate 0 (RFC 3711 §4.3.1).
    fn derive(c: &Crypto, rtcp: bool) -> SessionKeys {
        let master = Aes128::new(&c.key.into());
        let label = |l: u8, out: &mut [u8]| {
            let mut iv = [0u8; 16];
            iv[..14].copy_from_slice(&c.salt);
            iv[7] ^= l;
            out.fill(0);
            aes_cm(&master, iv, out);
        };
        let base = if rtcp { 3 } else { 0 };
        let (mut key, mut auth, mut salt) = ([0u8; 16], [0u8; 20], [0u8; 14]);
        label(base, &mut key);
        label(base + 1, &mut auth);
        label(base + 2, &mut salt);
        SessionKeys {
            cipher: Aes128::new(&key.into()),
            salt,
            auth: <Hmac<Sha1> as Mac>::new_from_slice(&auth).expect("HMAC takes any key length"),
        }
    }

    /// The counter-mode IV for `ssrc`'s packet `index` (RFC 3711 §4.1.1).
    fn iv(&self, ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= s;
        }
        iv
    }

    /// HMAC-SHA1 of `parts` (the callers keep its first 10 or 4 bytes).
    fn tag(&self, parts: &[&[u8]]) -> [u8; 20] {
        let mut mac = self.auth.clone();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

/// Constant-time equality of two tags.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

impl Direction {
    fn new(c: &Crypto) -> Direction {
        Direction {
            rtp: SessionKeys::derive(c, false),
            rtcp: SessionKeys::derive(c, true),
            tag: c.suite.tag_len(),
            streams: Vec::new(),
            rtcp_index: 0,
        }
    }

    /// The state of `ssrc`, new when first seen (the oldest forgotten past [`STREAMS`]).
    fn stream(&mut self, ssrc: u32) -> usize {
        if let Some(i) = self.streams.iter().position(|s| s.ssrc == ssrc) {
            return i;
        }
        if self.streams.len() == STREAMS {
            self.streams.remove(0);
        }
        self.streams.push(Stream {
            ssrc,
            roc: 0,
            highest: None,
            window: Window::default(),
            rtcp_window: None,
        });
        self.streams.len() - 1
    }
}

impl Stream {
    /// The rollover counter `seq` most likely belongs to (RFC 3711 Appendix A).
    fn guess(&self, seq: u16) -> u32 {
        let Some(highest) = self.highest else {
            return 0;
        };
        let (s, h) = (i32::from(seq), i32::from(highest));
        if h < 32768 {
            if s - h > 32768 {
                return self.roc.wrapping_sub(1);
            }
        } else if h - 32768 > s {
            return self.roc.wrapping_add(1);
        }
        self.roc
    }

    /// Packet `seq` of rollover `roc` was accepted.
    fn advance(&mut self, roc: u32, seq: u16) {
        match self.highest {
            None => {
                self.roc = roc;
                self.highest = Some(seq);
            }
            Some(_) if roc == self.roc.wrapping_add(1) => {
                self.roc = roc;
                self.highest = Some(seq);
            }
            Some(h) if roc == self.roc && seq > h => self.highest = Some(seq),
            Some(_) => {}
        }
    }
}

/// The RTP header's length, with its CSRCs and extension, if the packet holds it and at least
/// `tail` bytes after.
fn rtp_header_len(packet: &[u8], tail: usize) -> Result<usize, SrtpError> {
    let short = || SrtpError::Srtp("an SRTP packet too short".into());
    if packet.len() < 12 + tail || packet[0] >> 6 != 2 {
        return Err(short());
    }
    let mut at = 12 + 4 * usize::from(packet[0] & 0x0F);
    if packet[0] & 0x10 != 0 {
        let words = packet
            .get(at + 2..at + 4)
            .ok_or_else(short)
            .map(|w| usize::from(u16::from_be_bytes([w[0], w[1]])))?;
        at += 4 + 4 * words;
    }
    if packet.len() < at + tail {
        return Err(short());
    }
    Ok(at)
}

fn ssrc_and_seq(packet: &[u8]) -> (u32, u16) {
    (
        u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        u16::from_be_bytes([packet[2], packet[3]]),
    )
}

impl SrtpSession {
    pub fn new(local: &Crypto, remote: &Crypto) -> Result<Self, SrtpError> {
        Ok(SrtpSession {
            tx: Direction::new(local),
            rx: Direction::new(remote),
        })
    }

    /// Encrypts the RTP packet in `buf[..len]` and appends its tag: `buf` needs room for it
    /// (10 bytes, or 4 with the _32 suite). Returns the SRTP packet's length.
    pub fn protect_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag = self.tx.tag;
        if buf.len() < len + tag {
            return Err(SrtpError::Srtp("no room for the SRTP tag".into()));
        }
        let header = rtp_header_len(&buf[..len], 0)?;
        let (ssrc, seq) = ssrc_and_seq(buf);
        let at = self.tx.stream(ssrc);
        let stream = &mut self.tx.streams[at];
        let roc = stream.guess(seq);
        stream.advance(roc, seq);
        let index = (u64::from(roc) << 16) | u64::from(seq);
        let keys = &self.tx.rtp;
        aes_cm(&keys.cipher, keys.iv(ssrc, index), &mut buf[header..len]);
        let mac = keys.tag(&[&buf[..len], &roc.to_be_bytes()]);
        buf[len..len + tag].copy_from_slice(&mac[..tag]);
        Ok(len + tag)
    }

    /// Checks the tag of the SRTP packet in `buf` and decrypts it in place. Returns the RTP
    /// packet's length; fails on a bad tag or a replayed packet.
    pub fn unprotect_in_place(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let tag = self.rx.tag;
        let header = rtp_header_len(buf, tag)?;
        if !extension_fits(buf) {
            return Err(SrtpError::Srtp("an SRTP header extension overruns".into()));
        }
        let len = buf.len() - tag;
        let (ssrc, seq) = ssrc_and_seq(buf);
        let known = self.rx.streams.iter().position(|s| s.ssrc == ssrc);
        let (roc, index) = match known {
            Some(i) => {
                let s = &self.rx.streams[i];
                let roc = s.guess(seq);
                let index = (u64::from(roc) << 16) | u64::from(seq);
                if !s.window.fresh(index) {
                    return Err(SrtpError::Srtp("a replayed SRTP packet".into()));
                }
                (roc, index)
            }
            None => (0, u64::from(seq)),
        };
        let keys = &self.rx.rtp;
        let mac = keys.tag(&[&buf[..len], &roc.to_be_bytes()]);
        if !same(&mac[..tag], &buf[len..]) {
            return Err(SrtpError::Srtp(
                "an SRTP packet failed authentication".into(),
            ));
        }
        aes_cm(&keys.cipher, keys.iv(ssrc, index), &mut buf[header..len]);
        let at = self.rx.stream(ssrc);
        let s = &mut self.rx.streams[at];
        s.advance(roc, seq);
        s.window.accept(index);
        Ok(len)
    }

    /// Encrypts the RTCP packet in `buf[..len]` and appends the SRTCP index and tag (14
    /// bytes, which `buf` needs room for). Returns the SRTCP packet's length.
    pub fn protect_rtcp_in_place(
        &mut self,
        buf: &mut [u8],
        len: usize,
    ) -> Result<usize, SrtpError> {
        if len < 8 || buf.len() < len + SRTCP_TRAILER {
            return Err(SrtpError::Srtp(
                "an RTCP packet too short, or no room".into(),
            ));
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let index = self.tx.rtcp_index;
        self.tx.rtcp_index = (index + 1) & 0x7FFF_FFFF;
        let keys = &self.tx.rtcp;
        aes_cm(
            &keys.cipher,
            keys.iv(ssrc, u64::from(index)),
            &mut buf[8..len],
        );
        buf[len..len + 4].copy_from_slice(&(index | 0x8000_0000).to_be_bytes());
        let mac = keys.tag(&[&buf[..len + 4]]);
        buf[len + 4..len + SRTCP_TRAILER].copy_from_slice(&mac[..SRTCP_TAG]);
        Ok(len + SRTCP_TRAILER)
    }

    /// Checks the SRTCP packet in `buf` and decrypts it in place. Returns the RTCP packet's
    /// length; fails on a bad tag or a replayed packet.
    pub fn unprotect_rtcp_in_place(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        if buf.len() < 8 + SRTCP_TRAILER {
            return Err(SrtpError::Srtp("an SRTCP packet too short".into()));
        }
        let len = buf.len() - SRTCP_TRAILER;
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let word = u32::from_be_bytes([buf[len], buf[len + 1], buf[len + 2], buf[len + 3]]);
        let (encrypted, index) = (word & 0x8000_0000 != 0, u64::from(word & 0x7FFF_FFFF));
        let window = self
            .rx
            .streams
            .iter()
            .find(|s| s.ssrc == ssrc)
            .and_then(|s| s.rtcp_window);
        if window.is_some_and(|w| !w.fresh(index)) {
            return Err(SrtpError::Srtp("a replayed SRTCP packet".into()));
        }
        let keys = &self.rx.rtcp;
        let mac = keys.tag(&[&buf[..len + 4]]);
        if !same(&mac[..SRTCP_TAG], &buf[len + 4..]) {
            return Err(SrtpError::Srtp(
                "an SRTCP packet failed authentication".into(),
            ));
        }
        if encrypted {
            aes_cm(&keys.cipher, keys.iv(ssrc, index), &mut buf[8..len]);
        }
        let at = self.rx.stream(ssrc);
        self.rx.streams[at]
            .rtcp_window
            .get_or_insert_with(Window::default)
            .accept(index);
        Ok(len)
    }

    pub fn protect(&mut self, rtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut buf = rtp.to_vec();
        buf.resize(rtp.len() + self.tx.tag, 0);
        let n = self.protect_in_place(&mut buf, rtp.len())?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Fails on a bad tag or a replayed packet.
    pub fn unprotect(&mut self, srtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut buf = srtp.to_vec();
        let n = self.unprotect_in_place(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    pub fn protect_rtcp(&mut self, rtcp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut buf = rtcp.to_vec();
        buf.resize(rtcp.len() + SRTCP_TRAILER, 0);
        let n = self.protect_rtcp_in_place(&mut buf, rtcp.len())?;
        buf.truncate(n);
        Ok(buf)
    }

    pub fn unprotect_rtcp(&mut self, srtcp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut buf = srtcp.to_vec();
        let n = self.unprotect_rtcp_in_place(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }
}

/// Whether the RFC 8285 header-extension elements of an RTP header lie inside its extension
/// block, and the block inside the packet (webrtc-srtp, used before, panicked on one that ran
/// past the packet: found by `fuzz/fuzz_targets/rtp.rs`).
fn extension_fits(packet: &[u8]) -> bool {
    let at = 12 + 4 * usize::from(packet[0] & 0x0F);
    if packet[0] & 0x10 == 0 {
        return packet.len() >= at;
    }
    let Some(head) = packet.get(at..at + 4) else {
        return false;
    };
    let profile = u16::from_be_bytes([head[0], head[1]]);
    let end = at + 4 + 4 * usize::from(u16::from_be_bytes([head[2], head[3]]));
    let Some(block) = packet.get(at + 4..end) else {
        return false;
    };
    let mut i = 0;
    while i < block.len() {
        match (profile, block[i]) {
            (_, 0) => i += 1,
            (0xBEDE, b) if b >> 4 == 15 => return true,
            (0xBEDE, b) => i += 2 + usize::from(b & 0x0F),
            (p, _) if p & 0xFFF0 == 0x1000 => match block.get(i + 1) {
                Some(&len) => i += 2 + usize::from(len),
                None => return false,
            },
            _ => return true,
        }
    }
    i <= block.len()
}
