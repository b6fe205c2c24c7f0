//! RFC 3711 Appendix B through our SRTP session, with an independent AES-CM written here from
//! §4.1.1 (on RustCrypto's AES block cipher):
//! - B.2: the independent AES-CM reproduces the published keystream blocks;
//! - B.3: with the master key and salt of B.3, the packet our `SrtpSession` protects is exactly
//!   the plaintext XOR the AES-CM keystream under B.3's published session key and salt, and
//!   its 80-bit tag is HMAC-SHA1 under B.3's published authentication key — so key derivation,
//!   encryption and authentication each match the RFC's numbers.
#![allow(clippy::unwrap_used)]

mod support;

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use hmac::{Hmac, Mac};
use media::srtp::{Crypto, SrtpSession, Suite};
use support::unhex;

/// AES in counter mode (RFC 3711 §4.1.1): block i is E(key, IV + i).
fn aes_cm(key: &[u8], iv: [u8; 16], len: usize) -> Vec<u8> {
    let cipher = Aes128::new(GenericArray::from_slice(key));
    let mut out = Vec::new();
    let base = u128::from_be_bytes(iv);
    for i in 0..len.div_ceil(16) {
        let mut block =
            GenericArray::clone_from_slice(&(base.wrapping_add(i as u128)).to_be_bytes());
        cipher.encrypt_block(&mut block);
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

#[test]
fn b2_aes_cm_keystream() {
    let key = unhex("2B7E151628AED2A6ABF7158809CF4F3C");
    let iv: [u8; 16] = unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
        .try_into()
        .unwrap();
    let ks = aes_cm(&key, iv, 48);
    assert_eq!(ks[0..16], unhex("E03EAD0935C95E80E166B16DD92B4EB4")[..]);
    assert_eq!(ks[16..32], unhex("D23513162B02D0F72A43A2FE4A5F97AB")[..]);
    assert_eq!(ks[32..48], unhex("41E95B3BB0A2E8DD477901E4FCA894C0")[..]);
}

#[test]
fn b3_derived_keys_encrypt_and_authenticate_our_packets() {
    let master = unhex("E1F97A0D3E018BE0D64FA32C06DE4139");
    let master_salt = unhex("0EC675AD498AFEEBB6960B3AABE6");
    let session_key = unhex("C61E7A93744F39EE10734AFE3FF7A087");
    let session_salt = unhex("30CBBC08863D8C85D49DB34A9AE1");
    let auth_key = unhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4");
    let crypto = Crypto {
        tag: 1,
        suite: Suite::AesCm128HmacSha1_80,
        key: master.try_into().unwrap(),
        salt: master_salt.try_into().unwrap(),
    };
    let mut session = SrtpSession::new(&crypto, &crypto).unwrap();
    let (ssrc, seq) = (0xCAFE_BABEu32, 0x1234u16);
    let mut packet = vec![0x80, 0x00];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&0xDECA_FBADu32.to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    let payload: Vec<u8> = (0..160u32).map(|i| (i * 7) as u8).collect();
    packet.extend_from_slice(&payload);
    let protected = session.protect(&packet).unwrap();
    // IV = (salt · 2^16) XOR (SSRC · 2^64) XOR (index · 2^16), index = ROC · 2^16 + SEQ.
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(&session_salt);
    for (i, b) in ssrc.to_be_bytes().iter().enumerate() {
        iv[4 + i] ^= b;
    }
    let index = u64::from(seq);
    for (i, b) in index.to_be_bytes()[2..].iter().enumerate() {
        iv[8 + i] ^= b;
    }
    let keystream = aes_cm(&session_key, iv, payload.len());
    let expected: Vec<u8> = payload.iter().zip(&keystream).map(|(p, k)| p ^ k).collect();
    assert_eq!(&protected[..12], &packet[..12], "header in the clear");
    assert_eq!(
        &protected[12..172],
        &expected[..],
        "payload = plaintext XOR keystream(B.3 session key)"
    );
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(&auth_key).unwrap();
    mac.update(&protected[..172]);
    mac.update(&0u32.to_be_bytes()); // rollover counter
    let tag = mac.finalize().into_bytes();
    assert_eq!(
        &protected[172..],
        &tag[..10],
        "tag = HMAC-SHA1(B.3 auth key)[..10]"
    );
}
