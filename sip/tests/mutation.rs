//! Fixed-seed mutation test: 100,000 mutants of our own messages (tests/messages) go through
//! the datagram and stream parsers. None may panic; every mutant that parses must print and
//! parse again to the same bytes (the model never holds what it cannot print).
//! A failing mutant is printed with its index so it can be added to tests/messages.
#![allow(clippy::unwrap_used)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sip::Message;
use std::path::Path;

const MUTANTS: usize = 100_000;
const SPECIAL: &[u8] = b"\r\n:;,<>\"%@=?\\ \t0123456789\x00\xff";

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in ["valid", "invalid"] {
        let d = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/messages")
            .join(dir);
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "sip") {
                out.push(std::fs::read(p).unwrap());
            }
        }
    }
    out.sort();
    out
}

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut m = seeds[rng.gen_range(0..seeds.len())].clone();
    for _ in 0..rng.gen_range(1..=4) {
        if m.is_empty() {
            m.push(b'x');
        }
        let i = rng.gen_range(0..m.len());
        match rng.gen_range(0..7) {
            0 => m[i] = rng.r#gen(),
            1 => m[i] = SPECIAL[rng.gen_range(0..SPECIAL.len())],
            2 => m.insert(i, SPECIAL[rng.gen_range(0..SPECIAL.len())]),
            3 => {
                let end = (i + rng.gen_range(1..40)).min(m.len());
                m.drain(i..end);
            }
            4 => {
                let end = (i + rng.gen_range(1..40)).min(m.len());
                let chunk = m[i..end].to_vec();
                let at = rng.gen_range(0..=m.len());
                m.splice(at..at, chunk);
            }
            5 => {
                let other = &seeds[rng.gen_range(0..seeds.len())];
                let j = rng.gen_range(0..other.len());
                let end = (j + rng.gen_range(1..80)).min(other.len());
                m.splice(i..i, other[j..end].iter().copied());
            }
            _ => m.truncate(i),
        }
    }
    m
}

#[test]
fn hundred_thousand_mutants_never_panic() {
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(0x5150_4F52_5445);
    let (mut parsed, mut refused) = (0, 0);
    for n in 0..MUTANTS {
        let m = mutate(&mut rng, &seeds);
        let result = std::panic::catch_unwind(|| {
            let _ = Message::parse_stream(&m);
            match Message::parse_datagram(&m) {
                Ok(msg) => {
                    let printed = msg.to_bytes();
                    let again = Message::parse_datagram(&printed)
                        .map_err(|e| format!("reprint refused: {e}"))?;
                    if again.to_bytes() != printed {
                        return Err("reprint differs".to_string());
                    }
                    Ok(true)
                }
                Err(_) => Ok(false),
            }
        });
        match result {
            Ok(Ok(true)) => parsed += 1,
            Ok(Ok(false)) => refused += 1,
            Ok(Err(why)) => panic!("mutant {n}: {why}\n{}", String::from_utf8_lossy(&m)),
            Err(_) => panic!("mutant {n} panicked:\n{}", String::from_utf8_lossy(&m)),
        }
    }
    eprintln!("{parsed} mutants parsed, {refused} refused, 0 panics");
    assert_eq!(parsed + refused, MUTANTS);
    assert!(
        parsed > 1000 && refused > 1000,
        "mutations too mild or too wild"
    );
}
