//! Fuzzes SIP over a stream (TCP, TLS): the bytes arrive in pieces whose sizes the input
//! chooses, and are framed as the connection does it (`Message::parse_stream` on what has
//! arrived, taking every complete message off the front). Framing must not depend on how
//! the bytes were cut: the messages taken are the same as from the whole buffer at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::Message;

/// Frames `chunks` arriving one after another; the printed messages taken, and whether the
/// connection was closed on an error.
fn frame<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> (Vec<Vec<u8>>, bool) {
    let mut buf = Vec::new();
    let mut taken = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            if buf.starts_with(b"\r\n\r\n") {
                buf.drain(..4);
                continue;
            }
            match Message::parse_stream(&buf) {
                Ok(None) => break,
                Ok(Some((message, used))) => {
                    assert!(used > 0 && used <= buf.len(), "a frame uses what arrived");
                    taken.push(message.to_bytes().to_vec());
                    buf.drain(..used);
                }
                Err(_) => return (taken, true),
            }
        }
    }
    (taken, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let whole = frame(std::iter::once(bytes));
    let pieces = frame(bytes.chunks(usize::from(cut).max(1)));
    // A message cut in two may fail differently from the whole, but what was framed before
    // the first error is the same.
    let n = whole.0.len().min(pieces.0.len());
    assert_eq!(whole.0[..n], pieces.0[..n], "framing depends on the cuts");
    if !whole.1 && !pieces.1 {
        assert_eq!(whole.0, pieces.0, "framing depends on the cuts");
    }
});
