//! Fuzzes TFTP: arbitrary bytes as a packet (what parses must print and parse again the
//! same), and the input split on 0xFF as the packets a client sends during one transfer of a
//! 2,000-byte file, with timeouts in between. Nothing may panic, and the transfer ends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisioner::tftp::{Packet, Transfer};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::parse(data) {
        let printed = p.to_bytes();
        let again = Packet::parse(&printed).expect("a printed packet parses");
        assert_eq!(again.to_bytes(), printed, "print/parse is stable");
    }
    let start = Instant::now();
    let options = [
        ("blksize".to_string(), "512".to_string()),
        ("tsize".to_string(), "0".to_string()),
    ];
    let mut t = Transfer::new(start, vec![7u8; 2000], &options);
    let mut now = start;
    for (i, packet) in data.split(|&b| b == 0xFF).enumerate() {
        while t.poll_transmit().is_some() {}
        if i % 3 == 2 {
            now += Duration::from_secs(1);
            t.handle_timeout(now);
        }
        t.handle_packet(now, packet);
    }
    for _ in 0..100 {
        if t.outcome().is_some() {
            return;
        }
        while t.poll_transmit().is_some() {}
        match t.poll_timeout() {
            Some(at) => {
                now = now.max(at);
                t.handle_timeout(now);
            }
            None => break,
        }
    }
    assert!(t.outcome().is_some(), "a transfer nobody answers ends");
});
