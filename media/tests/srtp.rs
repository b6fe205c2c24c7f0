//! SRTP known answers and behaviour (RFC 3711):
//! - Appendix B.3's master key and salt through a whole AES_CM_128_HMAC_SHA1_80 packet: the
//!   expected bytes are the reference vector libsrtp ships for this suite (key derivation,
//!   AES-CM keystream and the 80-bit HMAC-SHA1 tag all have to be right for them to match);
//! - SDES `a=crypto` parse/print round trip (RFC 4568);
//! - protect/unprotect both ways, across the 16-bit sequence wrap (rollover counter), with a
//!   replayed packet and a tampered packet refused;
//! - every packet byte for byte what webrtc-srtp (an independent implementation) makes under
//!   the same keys, across the wrap and with a header extension, and SRTCP opened both ways.
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

/// webrtc-srtp, an independent implementation, under the same keys.
fn theirs(c: &Crypto, replay: bool) -> webrtc_srtp::context::Context {
    use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
    use webrtc_srtp::protection_profile::ProtectionProfile;
    let profile = match c.suite {
        Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
    };
    let (rtp, rtcp) = if replay {
        (
            Some(srtp_replay_protection(64)),
            Some(srtcp_replay_protection(64)),
        )
    } else {
        (None, None)
    };
    webrtc_srtp::context::Context::new(&c.key, &c.salt, profile, rtp, rtcp).unwrap()
}

fn packet(seq: u16, ssrc: u32, payload: u8, extension: bool) -> Vec<u8> {
    let mut p = vec![if extension { 0x90 } else { 0x80 }, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&u32::from(seq).wrapping_mul(160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    if extension {
        // RFC 8285 one-byte form: one element of 2 bytes, padded to a word.
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x11, 0xAA, 0xBB, 0]);
    }
    p.extend((0..160).map(|i| payload.wrapping_add(i as u8)));
    p
}

#[test]
fn every_packet_is_byte_for_byte_what_webrtc_srtp_makes_and_each_opens_the_others() {
    for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
        let (a, b) = (Crypto::generate(1, suite), Crypto::generate(1, suite));
        let mut ours = SrtpSession::new(&a, &b).unwrap();
        let mut their_tx = theirs(&a, false);
        let mut their_rx = theirs(&a, true);
        let mut their_back = theirs(&b, false);
        // Two streams, one across the sequence wrap; one with a header extension.
        for i in 0..400u32 {
            let (seq, ssrc, ext) = if i % 2 == 0 {
                (65_436u16.wrapping_add(i as u16 / 2), 0x1111_1111, false)
            } else {
                (1_000 + i as u16 / 2, 0x2222_2222, true)
            };
            let plain = packet(seq, ssrc, i as u8, ext);
            let mine = ours.protect(&plain).unwrap();
            let other = their_tx.encrypt_rtp(&plain).unwrap();
            assert_eq!(mine, other.to_vec(), "{suite:?} packet {i} (seq {seq})");
            assert_eq!(their_rx.decrypt_rtp(&mine).unwrap().to_vec(), plain);
            let back = their_back.encrypt_rtp(&plain).unwrap().to_vec();
            assert_eq!(ours.unprotect(&back).unwrap(), plain, "packet {i}");
        }
    }
}

#[test]
fn srtcp_opens_both_ways_with_webrtc_srtp() {
    let (a, b) = (
        Crypto::generate(1, Suite::AesCm128HmacSha1_80),
        Crypto::generate(1, Suite::AesCm128HmacSha1_80),
    );
    let mut ours = SrtpSession::new(&a, &b).unwrap();
    let (mut their_tx, mut their_rx) = (theirs(&b, false), theirs(&a, true));
    // A receiver report: header, the reporter's SSRC, one block.
    let mut rr = vec![0x81, 201, 0, 7];
    rr.extend_from_slice(&0x3333_3333u32.to_be_bytes());
    rr.extend((0..24).map(|i| i as u8));
    for _ in 0..5 {
        let mine = ours.protect_rtcp(&rr).unwrap();
        assert_eq!(their_rx.decrypt_rtcp(&mine).unwrap().to_vec(), rr);
        let other = their_tx.encrypt_rtcp(&rr).unwrap().to_vec();
        assert_eq!(ours.unprotect_rtcp(&other).unwrap(), rr);
        assert!(
            ours.unprotect_rtcp(&other).is_err(),
            "an SRTCP replay is refused"
        );
    }
}
