//! Call-progress tones (ITU-T E.180 values) for the US, the UK and Europe (CEPT), in-band
//! DTMF, and a generator that plays any of them at any sample rate.

/// A tone: up to two frequencies and a cadence of (on ms, off ms) pairs, repeated; an empty
/// cadence is continuous.
#[derive(Debug, Clone, PartialEq)]
pub struct Tone {
    pub freqs: &'static [f32],
    pub cadence: &'static [(u32, u32)],
}

/// Which tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dial,
    Ringback,
    Busy,
    Congestion,
    CallWaiting,
    Hold,
}

/// Tone plans by country.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Country {
    Us,
    Uk,
    Eu,
}

impl Country {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "us" => Some(Country::Us),
            "uk" => Some(Country::Uk),
            "eu" => Some(Country::Eu),
            _ => None,
        }
    }

    pub fn tone(self, kind: Kind) -> Tone {
        use Kind::*;
        let t = |freqs, cadence| Tone { freqs, cadence };
        match (self, kind) {
            (Country::Us, Dial) => t(&[350.0, 440.0], &[]),
            (Country::Us, Ringback) => t(&[440.0, 480.0], &[(2000, 4000)]),
            (Country::Us, Busy) => t(&[480.0, 620.0], &[(500, 500)]),
            (Country::Us, Congestion) => t(&[480.0, 620.0], &[(250, 250)]),
            (Country::Us, CallWaiting) => t(&[440.0], &[(300, 9700)]),
            (Country::Us, Hold) => t(&[440.0], &[(200, 4800)]),
            (Country::Uk, Dial) => t(&[350.0, 440.0], &[]),
            (Country::Uk, Ringback) => t(&[400.0, 450.0], &[(400, 200), (400, 2000)]),
            (Country::Uk, Busy) => t(&[400.0], &[(375, 375)]),
            (Country::Uk, Congestion) => t(&[400.0], &[(400, 350), (225, 525)]),
            (Country::Uk, CallWaiting) => t(&[400.0], &[(100, 2500)]),
            (Country::Uk, Hold) => t(&[400.0], &[(200, 4800)]),
            (Country::Eu, Dial) => t(&[425.0], &[]),
            (Country::Eu, Ringback) => t(&[425.0], &[(1000, 4000)]),
            (Country::Eu, Busy) => t(&[425.0], &[(500, 500)]),
            (Country::Eu, Congestion) => t(&[425.0], &[(250, 250)]),
            (Country::Eu, CallWaiting) => t(&[425.0], &[(200, 200), (200, 4000)]),
            (Country::Eu, Hold) => t(&[425.0], &[(200, 4800)]),
        }
    }
}

/// Plays a tone, sample by sample; keeps phase across calls.
#[derive(Debug, Clone)]
pub struct Generator {
    tone: Tone,
    rate: u32,
    amplitude: f32,
    n: u64,
}

impl Generator {
    /// `amplitude` per frequency (a pair peaks at twice that).
    pub fn new(tone: Tone, rate: u32, amplitude: f32) -> Self {
        Generator {
            tone,
            rate,
            amplitude,
            n: 0,
        }
    }

    fn on(&self, ms: u64) -> bool {
        let period: u64 = self
            .tone
            .cadence
            .iter()
            .map(|(a, b)| u64::from(a + b))
            .sum();
        if period == 0 {
            return true;
        }
        let mut t = ms % period;
        for (on, off) in self.tone.cadence {
            if t < u64::from(*on) {
                return true;
            }
            t = t.saturating_sub(u64::from(on + off));
            if t == 0 {
                return false;
            }
        }
        false
    }

    pub fn fill(&mut self, out: &mut [i16]) {
        for o in out.iter_mut() {
            let t = self.n as f64 / f64::from(self.rate);
            let v: f64 = if self.on(self.n * 1000 / u64::from(self.rate)) {
                self.tone
                    .freqs
                    .iter()
                    .map(|f| (2.0 * std::f64::consts::PI * f64::from(*f) * t).sin())
                    .sum::<f64>()
                    * f64::from(self.amplitude)
            } else {
                0.0
            };
            *o = v.clamp(-32768.0, 32767.0) as i16;
            self.n += 1;
        }
    }
}

/// `ms` of in-band DTMF for `digit` (amplitude per tone).
pub fn dtmf(digit: char, ms: u32, rate: u32, amplitude: f32) -> Option<Vec<i16>> {
    let (a, b) = crate::dtmf::frequencies(digit)?;
    let mut out = vec![0i16; (rate * ms / 1000) as usize];
    for (n, o) in out.iter_mut().enumerate() {
        let t = n as f32 / rate as f32;
        let v = ((2.0 * std::f32::consts::PI * a * t).sin()
            + (2.0 * std::f32::consts::PI * b * t).sin())
            * amplitude;
        *o = v as i16;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadence_switches_on_and_off() {
        let mut g = Generator::new(Country::Us.tone(Kind::Busy), 8000, 8000.0);
        let mut buf = vec![0i16; 8000];
        g.fill(&mut buf);
        let energy = |s: &[i16]| s.iter().map(|v| i64::from(*v).pow(2)).sum::<i64>();
        assert!(energy(&buf[0..3900]) > 0, "on for the first 500 ms");
        assert_eq!(energy(&buf[4100..7900]), 0, "off for the next 500 ms");
        let mut dial = Generator::new(Country::Eu.tone(Kind::Dial), 8000, 8000.0);
        dial.fill(&mut buf);
        assert!(
            buf[7000..].iter().any(|v| *v != 0),
            "dial tone is continuous"
        );
    }
}
