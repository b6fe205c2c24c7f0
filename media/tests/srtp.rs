//! SRTP known answers and behaviour (RFC 3711):
//! - Appendix B.3's master key and salt through a whole AES_CM_128_HMAC_SHA1_80 packet: the
//!   expected bytes are the reference vector libsrtp ships for this suite (key derivation,
//!   AES-CM keystream and the 80-bit HMAC-SHA1 tag all have to be right for them to match);
//! - SDES `a=crypto` parse/print round trip (RFC 4568);
//! - protect/unprotect both ways, across the 16-bit sequence wrap (rollover counter), with a
//!   replayed packet and a tampered packet refused.
#![allow(clippy::unwrap_used)]

mod support;

use media::srtp::{Crypto, SrtpSession, Suite};
use support::unhex;

fn b3() -> Crypto {
    let ks = unhex("e1f97a0d3e018be0d64fa32c06de41390ec675ad498afeebb6960b3aabe6");
    let mut key = [0u8; 16];
    let mut salt = [0u8; 14];
    key.copy_from_slice(&ks[..16]);
    salt.copy_from_slice(&ks[16..]);
    Crypto {
        tag: 1,
        suite: Suite::AesCm128HmacSha1_80,
        key,
        salt,
    }
}

#[test]
fn rfc3711_b3_key_through_a_whole_packet() {
    let plain = unhex("800f1234decafbadcafebabeabababababababababababababababab");
    let expected =
        unhex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb");
    let mut s = SrtpSession::new(&b3(), &b3()).unwrap();
    let protected = s.protect(&plain).unwrap();
    assert_eq!(protected, expected);
    assert_eq!(s.unprotect(&expected).unwrap(), plain);
}

#[test]
fn crypto_attribute_round_trip() {
    let c = Crypto::generate(3, Suite::AesCm128HmacSha1_32);
    let line = c.to_sdp();
    assert!(line.starts_with("3 AES_CM_128_HMAC_SHA1_32 inline:"));
    assert_eq!(Crypto::parse(&line).unwrap(), c);
    assert_eq!(
        Crypto::parse(&format!("{line}|2^20|1:4")).unwrap(),
        c,
        "lifetime and MKI ignored"
    );
    assert!(Crypto::parse("1 F8_128_HMAC_SHA1_80 inline:AAAA").is_err());
    assert!(Crypto::parse("1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=").is_err());
}

fn rtp(seq: u16, ts: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p.extend(std::iter::repeat_n((seq & 0xFF) as u8, 160));
    p
}

#[test]
fn both_ways_across_the_wrap_with_replay_and_tamper_refused() {
    for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
        let (a, b) = (Crypto::generate(1, suite), Crypto::generate(1, suite));
        let mut alice = SrtpSession::new(&a, &b).unwrap();
        let mut bob = SrtpSession::new(&b, &a).unwrap();
        let mut last = Vec::new();
        for i in 0..600u32 {
            let seq = (65_300 + i) as u16; // wraps after 236 packets
            let p = rtp(seq, i * 160);
            let s = alice.protect(&p).unwrap();
            assert_ne!(&s[12..172], &p[12..172], "payload encrypted");
            assert_eq!(bob.unprotect(&s).unwrap(), p, "packet {i} (seq {seq})");
            last = s;
        }
        assert!(bob.unprotect(&last).is_err(), "replay refused");
        let mut tampered = alice.protect(&rtp(400, 0)).unwrap();
        tampered[20] ^= 1;
        assert!(bob.unprotect(&tampered).is_err(), "tampered packet refused");
        let reply = bob.protect(&rtp(7, 7)).unwrap();
        assert_eq!(alice.unprotect(&reply).unwrap(), rtp(7, 7));
    }
}

#[test]
fn srtcp_round_trip_and_tamper() {
    let (a, b) = (
        Crypto::generate(1, Suite::AesCm128HmacSha1_80),
        Crypto::generate(1, Suite::AesCm128HmacSha1_80),
    );
    let mut alice = SrtpSession::new(&a, &b).unwrap();
    let mut bob = SrtpSession::new(&b, &a).unwrap();
    let mut stats = media::rtp::ReceiverStats::default();
    stats.on_packet(1, 160, 200);
    let rr = media::rtp::receiver_report(0x1111, 0x2222, &stats.report(), 0, 0);
    let protected = alice.protect_rtcp(&rr).unwrap();
    assert!(
        protected.len() >= rr.len() + 4 + 10,
        "SRTCP index and tag added"
    );
    assert_eq!(bob.unprotect_rtcp(&protected).unwrap(), rr);
    assert!(bob.unprotect_rtcp(&protected).is_err(), "replay refused");
    let mut bad = alice.protect_rtcp(&rr).unwrap();
    bad[10] ^= 0x40;
    assert!(bob.unprotect_rtcp(&bad).is_err(), "tampered SRTCP refused");
}

/// Found by `fuzz/fuzz_targets/rtp.rs`: an RFC 8285 header extension whose element runs past
/// the packet made webrtc-srtp panic. Now it is refused like any other bad packet, and the
/// session goes on.
#[test]
fn a_header_extension_past_the_packet_is_refused_not_a_panic() {
    let c = Crypto::generate(1, Suite::AesCm128HmacSha1_80);
    let mut alice = SrtpSession::new(&c, &c).unwrap();
    let mut bob = SrtpSession::new(&c, &c).unwrap();
    let found = include_bytes!("data/srtp-extension-overrun.bin");
    assert!(bob.unprotect(found).is_err());
    // One-byte profile, one word of extension, an element claiming 16 bytes.
    let mut short = vec![
        0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0xBE, 0xDE, 0, 1, 0x1F, 0, 0, 0,
    ];
    short.extend([0u8; 10]);
    assert!(bob.unprotect(&short).is_err());
    let good = alice.protect(&rtp(1, 1)).unwrap();
    assert_eq!(bob.unprotect(&good).unwrap(), rtp(1, 1));
}
