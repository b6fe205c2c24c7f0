//! The conference mixer: each member hears everyone but itself ("mix-minus"), with a gain
//! per member, in saturating arithmetic. Pure: frames in, frames out.

/// One member's gain, in 1/1024 (1024 = unity).
pub const UNITY: i32 = 1024;

/// Mixes one frame per member; returns, for each member, the sum of everyone else's frame
/// scaled by their gain, saturated to 16 bits. Frames shorter than the longest count as
/// silence past their end. `out` is reused between calls.
pub fn mix_minus(frames: &[&[i16]], gains: &[i32], out: &mut Vec<Vec<i16>>) {
    let len = frames.iter().map(|f| f.len()).max().unwrap_or(0);
    let mut total = vec![0i32; len];
    let scaled = |f: &[i16], g: i32, i: usize| f.get(i).map_or(0, |s| (i32::from(*s) * g) >> 10);
    for (f, g) in frames.iter().zip(gains) {
        for (i, t) in total.iter_mut().enumerate() {
            *t += scaled(f, *g, i);
        }
    }
    out.resize_with(frames.len(), Vec::new);
    for (m, (f, g)) in frames.iter().zip(gains).enumerate() {
        let o = &mut out[m];
        o.clear();
        o.extend(
            total
                .iter()
                .enumerate()
                .map(|(i, t)| (t - scaled(f, *g, i)).clamp(-32768, 32767) as i16),
        );
    }
}

/// A conference: members by id with their gains.
#[derive(Debug, Default)]
pub struct Mixer {
    members: Vec<(u32, i32)>,
    out: Vec<Vec<i16>>,
}

impl Mixer {
    pub fn add(&mut self, id: u32) {
        if !self.members.iter().any(|(m, _)| *m == id) {
            self.members.push((id, UNITY));
        }
    }

    pub fn remove(&mut self, id: u32) {
        self.members.retain(|(m, _)| *m != id);
    }

    pub fn set_gain(&mut self, id: u32, gain: i32) {
        if let Some(m) = self.members.iter_mut().find(|(m, _)| *m == id) {
            m.1 = gain;
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Mixes one frame; `frame_of(id)` gives each member's input (empty for silence).
    /// Returns (id, what that member hears).
    pub fn mix<'a>(&'a mut self, frame_of: impl Fn(u32) -> &'a [i16]) -> Vec<(u32, &'a [i16])> {
        let frames: Vec<&[i16]> = self.members.iter().map(|(id, _)| frame_of(*id)).collect();
        let gains: Vec<i32> = self.members.iter().map(|(_, g)| *g).collect();
        mix_minus(&frames, &gains, &mut self.out);
        self.members
            .iter()
            .zip(self.out.iter())
            .map(|((id, _), o)| (*id, o.as_slice()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_hears_the_others_but_not_itself() {
        let (a, b, c) = (vec![100i16; 4], vec![10i16; 4], vec![1i16; 4]);
        let mut out = Vec::new();
        mix_minus(&[&a, &b, &c], &[UNITY, UNITY, UNITY], &mut out);
        assert_eq!(out[0], vec![11; 4]);
        assert_eq!(out[1], vec![101; 4]);
        assert_eq!(out[2], vec![110; 4]);
    }

    #[test]
    fn gains_and_saturation() {
        let loud = vec![30000i16; 2];
        let mut out = Vec::new();
        mix_minus(&[&loud, &loud, &loud], &[UNITY, UNITY, UNITY], &mut out);
        assert_eq!(out[0], vec![32767; 2], "saturates instead of wrapping");
        let neg = vec![-30000i16; 2];
        mix_minus(&[&neg, &neg, &neg], &[UNITY, UNITY, UNITY], &mut out);
        assert_eq!(out[0], vec![-32768; 2]);
        mix_minus(&[&[1000], &[1000]], &[UNITY / 2, UNITY], &mut out);
        assert_eq!(out[1], vec![500], "member 0 at half gain");
    }

    #[test]
    fn thirty_two_members_and_leaving() {
        let mut m = Mixer::default();
        for id in 0..32 {
            m.add(id);
        }
        let frames: Vec<Vec<i16>> = (0..32).map(|i| vec![i as i16; 160]).collect();
        let total: i16 = (0..32).sum();
        for (id, heard) in m.mix(|id| &frames[id as usize]) {
            assert_eq!(heard[0], total - id as i16);
        }
        m.remove(5);
        assert_eq!(m.len(), 31);
        for (id, heard) in m.mix(|id| &frames[id as usize]) {
            assert_eq!(heard[0], total - 5 - id as i16);
        }
    }
}
