//! The playout buffer between a call and a sound card. Frames arrive on the far end's clock
//! (through the jitter buffer, every 20 ms); the card takes samples on its own. The two
//! clocks drift (±200 ppm is normal, a sample every 5,000 or so), so a plain queue would
//! grow or starve over a long call. [`Playout`] keeps its fill near a target by controlled
//! slip: above the target band it merges two neighbouring samples into one, below it adds one
//! between two, never more than one in [`SLIP_EVERY`] samples, so the change is inaudible and
//! no click is made. An underrun (nothing queued) plays silence and refills to the target
//! before playing again; an overrun (more than the card's period and a frame beyond the band:
//! a card slow to start, or stalled) drops the oldest to the target at once — slipped away
//! one sample in 400, 100 ms too many would be delay for half a minute.
//! Pure: pushes and pulls, no clock.

use std::collections::VecDeque;

/// At most one sample slipped in this many.
pub const SLIP_EVERY: usize = 400;

#[derive(Debug, Clone)]
pub struct Playout {
    queue: VecDeque<i16>,
    /// The fill it steers to, and how far it may stray before slipping (samples).
    target: usize,
    band: usize,
    /// Samples since the last slip.
    since_slip: usize,
    /// The fill, averaged over the card's pulls (a card may take large periods at once:
    /// the instant fill swings, the average follows only the drift).
    average: f64,
    /// Refilling after an underrun: play silence until the queue holds the target.
    refilling: bool,
    /// The card's largest period so far (samples it takes at once).
    period: usize,
    /// Samples slipped each way, underruns, overruns (for statistics).
    pub dropped: u64,
    pub inserted: u64,
    pub underruns: u64,
    pub overruns: u64,
}

impl Playout {
    /// A buffer steering to `target` samples queued (e.g. 40 ms), within ±`band`.
    pub fn new(target: usize, band: usize) -> Playout {
        Playout {
            queue: VecDeque::with_capacity(target * 4),
            target,
            band: band.max(1),
            since_slip: 0,
            average: target as f64,
            refilling: true,
            period: 0,
            dropped: 0,
            inserted: 0,
            underruns: 0,
            overruns: 0,
        }
    }

    /// Samples queued now: the delay the buffer adds.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// A frame from the call.
    pub fn push(&mut self, pcm: &[i16]) {
        self.queue.extend(pcm);
        if self.queue.len() > self.target + self.period + pcm.len() + self.band {
            // Far more than the card's period and a frame's jitter can explain (the card was
            // slow to start, or stalled): back to the target at once, not by slow slips
            // that would keep the delay for minutes.
            let excess = self.queue.len() - self.target;
            self.queue.drain(..excess);
            self.overruns += 1;
        }
    }

    /// Fills `out` for the card.
    pub fn pull(&mut self, out: &mut [i16]) {
        self.period = self.period.max(out.len());
        if self.refilling && self.queue.len() >= self.target {
            self.refilling = false;
            self.average = self.queue.len() as f64;
        }
        // Before this period and after it: the middle of the swing.
        let mid = self.queue.len() as f64 - out.len() as f64 / 2.0;
        self.average += (mid - self.average) * 0.02;
        for o in out.iter_mut() {
            if self.refilling {
                *o = 0;
                continue;
            }
            self.since_slip += 1;
            let fill = self.queue.len();
            let slip = self.since_slip >= SLIP_EVERY;
            let steady = self.average.round() as usize;
            *o = if slip && steady > self.target + self.band && fill >= 2 {
                // Merge two samples into one: the queue shrinks by one.
                self.since_slip = 0;
                self.dropped += 1;
                let a = i32::from(self.queue.pop_front().unwrap_or(0));
                let b = i32::from(self.queue.pop_front().unwrap_or(0));
                ((a + b) / 2) as i16
            } else if slip && steady + self.band < self.target && fill >= 1 {
                // One more sample, between the last played and the next: the queue keeps it.
                self.since_slip = 0;
                self.inserted += 1;
                let next = self.queue.front().copied().unwrap_or(0);
                next / 2
            } else if let Some(s) = self.queue.pop_front() {
                s
            } else {
                self.underruns += 1;
                self.refilling = true;
                0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Must-show 2 of issue #19: ten simulated minutes of a call at 8 kHz, the far end's
    /// frames every 20 ms on its clock and a card taking 80-sample periods on a clock 200 ppm
    /// fast, then one 200 ppm slow: the delay stays bounded and, once playing, no gap.
    #[test]
    fn drift_of_200_ppm_either_way_keeps_the_delay_bounded_without_gaps() {
        for ppm in [200.0f64, -200.0] {
            let mut p = Playout::new(320, 80); // 40 ms ± 10 ms
            let card_rate = 8000.0 * (1.0 + ppm / 1e6);
            let (mut far_t, mut card_t) = (0.0f64, 0.0f64);
            let (mut max_delay, mut gap, mut longest_gap) = (0usize, 0usize, 0usize);
            let mut started = false;
            let mut period = [0i16; 80];
            let frame: Vec<i16> = (0..160).map(|i| 1000 + i as i16).collect();
            while far_t < 600.0 {
                // Whichever clock ticks next.
                if far_t <= card_t {
                    p.push(&frame);
                    far_t += 0.020;
                } else {
                    p.pull(&mut period);
                    card_t += 80.0 / card_rate;
                    for s in period {
                        if s == 0 {
                            gap += 1;
                        } else {
                            started = true;
                            gap = 0;
                        }
                        if started {
                            longest_gap = longest_gap.max(gap);
                        }
                    }
                    if started {
                        max_delay = max_delay.max(p.queued());
                    }
                }
            }
            let ms = |n: usize| n as f64 / 8.0;
            eprintln!(
                "{ppm:+} ppm: max delay {:.1} ms, final {:.1} ms, longest gap {longest_gap} samples, slipped -{} +{}, underruns {}",
                ms(max_delay),
                ms(p.queued()),
                p.dropped,
                p.inserted,
                p.underruns
            );
            assert!(
                ms(max_delay) <= 80.0,
                "{ppm} ppm: the delay grew to {} ms",
                ms(max_delay)
            );
            assert!(
                longest_gap <= 160,
                "{ppm} ppm: a gap of {longest_gap} samples"
            );
            assert_eq!(p.underruns, 0, "{ppm} ppm starved");
            let slipped = p.dropped + p.inserted;
            // 200 ppm of 4.8 M samples is about 960: the buffer followed the drift.
            assert!((600..1400).contains(&slipped), "{ppm} ppm: {slipped} slips");
        }
    }

    #[test]
    fn an_underrun_plays_silence_and_refills_before_playing_again() {
        let mut p = Playout::new(160, 40);
        let mut out = [7i16; 80];
        p.pull(&mut out);
        assert!(out.iter().all(|s| *s == 0), "nothing yet: silence");
        p.push(&[5; 160]);
        p.pull(&mut out);
        assert!(out.iter().all(|s| *s == 5));
        p.pull(&mut out);
        p.pull(&mut out);
        assert_eq!(p.underruns, 1);
        p.push(&[6; 80]);
        p.pull(&mut out);
        assert!(out.iter().all(|s| *s == 0), "refilling to the target first");
        p.push(&[6; 160]);
        p.pull(&mut out);
        assert!(out.iter().all(|s| *s == 6));
        // Overruns (the card stalled) go back to the target: the queue never holds much more
        // than four times it.
        for _ in 0..100 {
            p.push(&[9; 160]);
            assert!(p.queued() <= 5 * 160, "{}", p.queued());
        }
        assert!(p.overruns >= 10, "{}", p.overruns);
    }

    /// A card that starts 140 ms after the call does: the frames queued meanwhile are not
    /// kept as delay. Once the card plays, the queue stays within its period and a frame of
    /// the target.
    #[test]
    fn a_card_slow_to_start_adds_no_delay() {
        let mut p = Playout::new(320, 80);
        let frame = [1000i16; 160];
        // 140 ms: under the old bound (four times the target) it stayed as delay.
        for _ in 0..7 {
            p.push(&frame);
        }
        assert!(
            p.queued() <= 320 + 160 + 80,
            "queued {} before the card started",
            p.queued()
        );
        let mut period = [0i16; 80];
        let mut most = 0;
        for n in 0..2000 {
            if n % 2 == 0 {
                p.push(&frame);
            }
            p.pull(&mut period);
            most = most.max(p.queued());
        }
        assert!(most <= 320 + 80 + 160 + 80, "queued up to {most}");
        assert_eq!(p.underruns, 0);
    }
}
