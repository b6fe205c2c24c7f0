//! G.711 μ-law and A-law (ITU-T G.711). Encoders are arithmetic (segment from the bit
//! length), decoders are tables built at compile time. `tests/g711.rs` checks all 65,536
//! inputs against the reference companding algorithm.

/// μ-law code of a 16-bit sample.
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut v = i32::from(sample >> 2); // 14-bit magnitude domain
    let mask = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    v = v.min(8159) + 0x21;
    let seg = (32 - (v as u32).leading_zeros()) as i32 - 6;
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let seg = seg.max(0);
    (((seg << 4) | ((v >> (seg + 1)) & 0x0F)) ^ mask) as u8
}

/// A-law code of a 16-bit sample.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut v = i32::from(sample >> 3); // 13-bit domain
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let bits = 32 - (v as u32).leading_zeros() as i32;
    let seg = (bits - 5).clamp(0, 7);
    let q = if seg < 2 {
        (v >> 1) & 0x0F
    } else {
        (v >> seg) & 0x0F
    };
    (((seg << 4) | q) ^ mask) as u8
}

const fn ulaw_decode_const(code: u8) -> i16 {
    let u = !code;
    let t = (((u & 0x0F) as i16) << 3) + 0x84;
    let t = t << ((u & 0x70) >> 4);
    if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }
}

const fn alaw_decode_const(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i16) << 4;
    let seg = (a & 0x70) >> 4;
    t += match seg {
        0 => 8,
        _ => 0x108,
    };
    if seg > 1 {
        t <<= seg - 1;
    }
    if a & 0x80 != 0 { t } else { -t }
}

const fn table(alaw: bool) -> [i16; 256] {
    let mut out = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        out[i] = if alaw {
            alaw_decode_const(i as u8)
        } else {
            ulaw_decode_const(i as u8)
        };
        i += 1;
    }
    out
}

static ULAW: [i16; 256] = table(false);
static ALAW: [i16; 256] = table(true);

pub fn ulaw_decode(code: u8) -> i16 {
    ULAW[code as usize]
}

pub fn alaw_decode(code: u8) -> i16 {
    ALAW[code as usize]
}

/// Which law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// PCMU, payload type 0.
    Mu,
    /// PCMA, payload type 8.
    A,
}

impl Law {
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        out.clear();
        out.extend(pcm.iter().map(|s| match self {
            Law::Mu => ulaw_encode(*s),
            Law::A => alaw_encode(*s),
        }));
    }

    pub fn decode(self, codes: &[u8], out: &mut Vec<i16>) {
        out.clear();
        let t = match self {
            Law::Mu => &ULAW,
            Law::A => &ALAW,
        };
        out.extend(codes.iter().map(|c| t[*c as usize]));
    }

    pub fn payload_type(self) -> u8 {
        match self {
            Law::Mu => 0,
            Law::A => 8,
        }
    }
}
