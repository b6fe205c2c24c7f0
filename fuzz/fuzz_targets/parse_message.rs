//! Fuzzes the message parsers: arbitrary bytes as a datagram and as a stream. Whatever parses
//! must print and parse again to the same bytes.
//!
//! Run (see README "Fuzzing"): `cargo fuzz run parse_message -- -max_total_time=60`
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::Message;

fuzz_target!(|data: &[u8]| {
    let _ = Message::parse_stream(data);
    if let Ok(msg) = Message::parse_datagram(data) {
        let printed = msg.to_bytes();
        let again = Message::parse_datagram(&printed).expect("a printed message parses");
        assert_eq!(again.to_bytes(), printed, "print/parse is stable");
    }
});
