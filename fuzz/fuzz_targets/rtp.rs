//! Fuzzes the media parsers: arbitrary bytes as RTP (what parses must print the same bytes
//! back), as RTCP, as an RFC 4733 event, and as SRTP and SRTCP under a fixed key. Nothing may
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::rtp::{self, RtpPacket};
use media::srtp::{Crypto, SrtpSession};

const KEY: &str = "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RtpPacket::parse(data) {
        let again = RtpPacket::parse(&p.to_bytes()).expect("a printed packet parses");
        assert_eq!(again, p, "print/parse is stable");
        let _ = media::dtmf::Event::parse(&p.payload);
    }
    let _ = rtp::parse_rtcp(data);
    let _ = rtp::parse_report(data);
    let crypto = Crypto::parse(KEY).expect("the fixed key");
    let mut session = SrtpSession::new(&crypto, &crypto).expect("a session");
    let _ = session.unprotect(data);
    let _ = session.unprotect_rtcp(data);
});
