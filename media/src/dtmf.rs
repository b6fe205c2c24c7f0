//! DTMF: RFC 4733 telephone-events (sent with three redundant end packets, received once per
//! event) and in-band detection with the Goertzel algorithm for phones that only send tones.

/// Digits in event order: 0-9, *, #, A-D (RFC 4733 §3.2).
const DIGITS: &[u8; 16] = b"0123456789*#ABCD";

pub fn digit_to_event(d: char) -> Option<u8> {
    DIGITS
        .iter()
        .position(|c| *c as char == d.to_ascii_uppercase())
        .map(|i| i as u8)
}

pub fn event_to_digit(e: u8) -> Option<char> {
    DIGITS.get(e as usize).map(|c| *c as char)
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub event: u8,
    pub end: bool,
    /// Power level in -dBm0 (0-63).
    pub volume: u8,
    /// In timestamp units since the event began.
    pub duration: u16,
}

impl Event {
    pub fn parse(b: &[u8]) -> Option<Event> {
        if b.len() < 4 {
            return None;
        }
        Some(Event {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// The packets of one key press: `(marker, event)`, all with the event's start timestamp,
/// one per `packet_ms`, the end packet sent three times (RFC 4733 §2.5.1.4).
pub fn key_press(
    digit: char,
    duration_ms: u32,
    packet_ms: u32,
    clock_rate: u32,
) -> Option<Vec<(bool, Event)>> {
    let event = digit_to_event(digit)?;
    let step = packet_ms * clock_rate / 1000;
    let total = (duration_ms * clock_rate / 1000)
        .max(step)
        .min(u32::from(u16::MAX));
    let mut out = Vec::new();
    let mut d = step;
    while d < total {
        out.push((
            out.is_empty(),
            Event {
                event,
                end: false,
                volume: 10,
                duration: d as u16,
            },
        ));
        d += step;
    }
    for _ in 0..3 {
        out.push((
            out.is_empty(),
            Event {
                event,
                end: true,
                volume: 10,
                duration: total as u16,
            },
        ));
    }
    Some(out)
}

/// Reports each received event once, however many packets (and redundant ends) carry it.
#[derive(Debug, Default)]
pub struct EventReceiver {
    last: Option<(u32, u8)>,
}

impl EventReceiver {
    /// A telephone-event packet with RTP timestamp `ts`: the digit, the first time it is seen.
    pub fn on_packet(&mut self, ts: u32, payload: &[u8]) -> Option<char> {
        let e = Event::parse(payload)?;
        if self.last == Some((ts, e.event)) {
            return None;
        }
        self.last = Some((ts, e.event));
        event_to_digit(e.event)
    }
}

const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

/// The two frequencies of a digit.
pub fn frequencies(digit: char) -> Option<(f32, f32)> {
    let i = DIGITS
        .iter()
        .position(|c| *c as char == digit.to_ascii_uppercase())?;
    const LAYOUT: &[u8; 16] = b"123A456B789C*0#D";
    let p = LAYOUT.iter().position(|c| *c == DIGITS[i])?;
    Some((ROWS[p / 4], COLS[p % 4]))
}

/// Goertzel power of `f` in `x`, as a share of the block's energy (a pure tone at `f`
/// gives about 1.0; each tone of a DTMF pair about 0.5).
fn share(x: &[f32], energy: f32, f: f32, rate: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * f / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for v in x {
        let s = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power / (x.len() as f32 * energy)
}

/// In-band DTMF detector: blocks of ~25 ms; a digit is reported when two blocks in a row
/// agree, and not again until the tone stops.
#[derive(Debug)]
pub struct Detector {
    rate: f32,
    block: usize,
    buf: Vec<f32>,
    candidate: Option<char>,
    reported: Option<char>,
}

impl Detector {
    pub fn new(rate: u32) -> Self {
        Detector {
            rate: rate as f32,
            block: (rate as usize * 205) / 8000,
            buf: Vec::new(),
            candidate: None,
            reported: None,
        }
    }

    /// Feeds samples; returns the digits that began in them.
    pub fn process(&mut self, samples: &[i16]) -> Vec<char> {
        let mut out = Vec::new();
        for s in samples {
            self.buf.push(f32::from(*s));
            if self.buf.len() == self.block {
                let d = self.classify();
                self.buf.clear();
                if d.is_some() && d == self.candidate && self.reported != d {
                    out.extend(d);
                    self.reported = d;
                }
                if d.is_none() {
                    self.reported = None;
                }
                self.candidate = d;
            }
        }
        out
    }

    fn classify(&self) -> Option<char> {
        let x = &self.buf;
        let energy: f32 = x.iter().map(|v| v * v).sum();
        if energy / (x.len() as f32) < 100.0 * 100.0 / 2.0 {
            return None; // quieter than a tone of amplitude 100
        }
        let r: Vec<f32> = ROWS
            .iter()
            .map(|f| share(x, energy, *f, self.rate))
            .collect();
        let c: Vec<f32> = COLS
            .iter()
            .map(|f| share(x, energy, *f, self.rate))
            .collect();
        let best = |v: &[f32]| -> (usize, f32, f32) {
            let (i, m) = v
                .iter()
                .enumerate()
                .fold((0, 0.0f32), |a, (i, x)| if *x > a.1 { (i, *x) } else { a });
            let second = v
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, x)| *x)
                .fold(0.0, f32::max);
            (i, m, second)
        };
        let (ri, rm, r2) = best(&r);
        let (ci, cm, c2) = best(&c);
        let pure = rm + cm > 0.6 && rm > 0.12 && cm > 0.12;
        let dominant = rm > 6.0 * r2 && cm > 6.0 * c2;
        let twist = rm / cm < 6.3 && cm / rm < 6.3; // within 8 dB
        if pure && dominant && twist {
            const LAYOUT: &[u8; 16] = b"123A456B789C*0#D";
            Some(LAYOUT[ri * 4 + ci] as char)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_packets() {
        let e = Event {
            event: 11,
            end: true,
            volume: 10,
            duration: 1600,
        };
        assert_eq!(Event::parse(&e.to_bytes()), Some(e));
        let p = key_press('#', 100, 20, 8000).unwrap();
        assert_eq!(p.len(), 4 + 3);
        assert!(p[0].0 && !p[1].0, "marker on the first packet only");
        assert!(p[4..].iter().all(|(_, e)| e.end && e.duration == 800));
        let mut r = EventReceiver::default();
        let got: Vec<char> = p
            .iter()
            .filter_map(|(_, e)| r.on_packet(1000, &e.to_bytes()))
            .collect();
        assert_eq!(got, vec!['#']);
        assert_eq!(
            r.on_packet(
                2000,
                &Event {
                    event: 5,
                    end: false,
                    volume: 10,
                    duration: 160
                }
                .to_bytes()
            ),
            Some('5')
        );
        assert_eq!(digit_to_event('d'), Some(15));
        assert_eq!(frequencies('0'), Some((941.0, 1336.0)));
    }
}
