//! Fuzzes SDP: arbitrary bytes as an offer, answered as pbx-lite and the softphone answer
//! (G.711, Opus, telephone-event), and as an answer to our own offer. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::sdp::{self, Codec, Direction, Local};

fuzz_target!(|data: &[u8]| {
    let Ok(remote) = sdp::parse(data) else {
        return;
    };
    let local = Local {
        addr: [192, 168, 1, 10].into(),
        port: 10_000,
        codecs: vec![
            Codec::pcmu(),
            Codec::pcma(),
            Codec::opus(),
            Codec::telephone_event(),
        ],
        direction: Direction::SendRecv,
        crypto: Vec::new(),
        session_id: 1,
        version: 1,
    };
    if let Ok((body, _)) = sdp::answer(&remote, &local) {
        sdp::parse(body.as_bytes()).expect("our answer parses");
    }
    let _ = sdp::take_answer(&remote, &local);
});
