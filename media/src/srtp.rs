//! SRTP/SRTCP (RFC 3711) with SDES keying (RFC 4568 `a=crypto`), over webrtc-srtp:
//! AES_CM_128_HMAC_SHA1_80 and _32. [`Crypto`] parses and prints the `a=crypto` value and
//! makes new keys; [`SrtpSession`] protects what we send and unprotects what we receive,
//! with the rollover counter across the sequence wrap and replay protection inbound.

use base64::Engine;
use thiserror::Error;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

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

    fn profile(self) -> ProtectionProfile {
        match self {
            Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
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
    tx: Context,
    rx: Context,
    /// The peer's SRTP authentication tag length.
    rx_tag: usize,
}

/// SRTCP's index (4 bytes) and tag (80 bits, whatever the SRTP suite: RFC 4568 §6.2).
const SRTCP_TRAILER: usize = 4 + 10;

fn ctx(c: &Crypto, replay: bool) -> Result<Context, SrtpError> {
    let (rtp, rtcp) = if replay {
        (
            Some(srtp_replay_protection(64)),
            Some(srtcp_replay_protection(64)),
        )
    } else {
        (None, None)
    };
    Context::new(&c.key, &c.salt, c.suite.profile(), rtp, rtcp)
        .map_err(|e| SrtpError::Srtp(e.to_string()))
}

impl SrtpSession {
    pub fn new(local: &Crypto, remote: &Crypto) -> Result<Self, SrtpError> {
        Ok(SrtpSession {
            tx: ctx(local, false)?,
            rx: ctx(remote, true)?,
            rx_tag: match remote.suite {
                Suite::AesCm128HmacSha1_80 => 10,
                Suite::AesCm128HmacSha1_32 => 4,
            },
        })
    }

    pub fn protect(&mut self, rtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.tx
            .encrypt_rtp(rtp)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Srtp(e.to_string()))
    }

    /// Fails on a bad tag or a replayed packet.
    pub fn unprotect(&mut self, srtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        // Shorter than a header and a tag: webrtc-srtp would underflow on it.
        if srtp.len() < 12 + self.rx_tag {
            return Err(SrtpError::Srtp("an SRTP packet too short".into()));
        }
        if !extension_fits(srtp) {
            return Err(SrtpError::Srtp("an SRTP header extension overruns".into()));
        }
        self.rx
            .decrypt_rtp(srtp)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Srtp(e.to_string()))
    }

    pub fn protect_rtcp(&mut self, rtcp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.tx
            .encrypt_rtcp(rtcp)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Srtp(e.to_string()))
    }

    pub fn unprotect_rtcp(&mut self, srtcp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if srtcp.len() < 8 + SRTCP_TRAILER {
            return Err(SrtpError::Srtp("an SRTCP packet too short".into()));
        }
        self.rx
            .decrypt_rtcp(srtcp)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Srtp(e.to_string()))
    }
}

/// Whether the RFC 8285 header-extension elements of an RTP header lie inside its extension
/// block, and the block inside the packet. webrtc-srtp reads elements without that check and
/// panics on one that runs past the packet (found by `fuzz/fuzz_targets/rtp.rs`).
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
