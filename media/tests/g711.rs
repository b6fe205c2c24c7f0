//! G.711 against the reference companding: the segment-search algorithm of the classic
//! public-domain reference implementation (Sun Microsystems' g711.c, the one sox and ffmpeg
//! tables come from), transcribed here independently of `media::g711`, compared over all
//! 65,536 16-bit inputs and all 256 codes.

use media::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};

const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

fn search(v: i32, table: &[i32; 8]) -> i32 {
    table.iter().position(|t| v <= *t).map_or(8, |i| i as i32)
}

fn ref_linear2ulaw(pcm: i16) -> u8 {
    let mut v = i32::from(pcm) >> 2;
    let mask = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    v = v.min(8159) + (0x84 >> 2);
    let seg = search(v, &SEG_UEND);
    if seg >= 8 {
        (0x7F ^ mask) as u8
    } else {
        (((seg << 4) | ((v >> (seg + 1)) & 0xF)) ^ mask) as u8
    }
}

fn ref_ulaw2linear(u: u8) -> i16 {
    let u = !u as i32;
    let mut t = ((u & 0x0F) << 3) + 0x84;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

fn ref_linear2alaw(pcm: i16) -> u8 {
    let mut v = i32::from(pcm) >> 3;
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = search(v, &SEG_AEND);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut a = seg << 4;
    a |= if seg < 2 {
        (v >> 1) & 0xF
    } else {
        (v >> seg) & 0xF
    };
    (a ^ mask) as u8
}

fn ref_alaw2linear(a: u8) -> i16 {
    let a = (a ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

#[test]
fn all_65536_inputs_match_the_reference() {
    for s in i16::MIN..=i16::MAX {
        assert_eq!(ulaw_encode(s), ref_linear2ulaw(s), "μ-law {s}");
        assert_eq!(alaw_encode(s), ref_linear2alaw(s), "A-law {s}");
    }
    for c in 0..=255u8 {
        assert_eq!(ulaw_decode(c), ref_ulaw2linear(c), "μ-law code {c}");
        assert_eq!(alaw_decode(c), ref_alaw2linear(c), "A-law code {c}");
    }
}

#[test]
fn known_points_and_round_trip_error_bound() {
    // Silence and full scale, as every G.711 table has them.
    assert_eq!(ulaw_encode(0), 0xFF);
    assert_eq!(alaw_encode(0), 0xD5);
    assert_eq!(ulaw_decode(0x00), -32124);
    assert_eq!(alaw_decode(0x2A), -32256);
    // Decoding an encoded sample errs by at most half a quantisation step (≤ 1/32 of it).
    for s in (i16::MIN..=i16::MAX).step_by(7) {
        for (enc, dec) in [
            (ulaw_encode as fn(i16) -> u8, ulaw_decode as fn(u8) -> i16),
            (alaw_encode, alaw_decode),
        ] {
            let back = i32::from(dec(enc(s)));
            let err = (back - i32::from(s)).abs();
            assert!(
                err <= (i32::from(s).abs() / 16).max(16) + 8,
                "{s} -> {back}"
            );
        }
    }
}
