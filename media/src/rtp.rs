//! RTP (RFC 3550): packets parsed and printed, sequence numbers extended across the wrap,
//! and the receiver statistics users see as call quality — loss (§A.3) and interarrival
//! jitter (§A.8) — with RTCP sender and receiver reports to carry them.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtpError {
    #[error("packet too short")]
    Short,
    #[error("not RTP version 2")]
    Version,
    #[error("bad padding")]
    Padding,
}

/// An RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtpPacket {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrc: Vec<u32>,
    /// Header extension: profile and data (whole 32-bit words).
    pub extension: Option<(u16, Vec<u8>)>,
    pub payload: Vec<u8>,
}

impl RtpPacket {
    pub fn parse(b: &[u8]) -> Result<Self, RtpError> {
        if b.len() < 12 {
            return Err(RtpError::Short);
        }
        if b[0] >> 6 != 2 {
            return Err(RtpError::Version);
        }
        let cc = (b[0] & 0x0F) as usize;
        let mut at = 12 + 4 * cc;
        if b.len() < at {
            return Err(RtpError::Short);
        }
        let csrc = (0..cc)
            .map(|i| {
                u32::from_be_bytes([b[12 + 4 * i], b[13 + 4 * i], b[14 + 4 * i], b[15 + 4 * i]])
            })
            .collect();
        let mut extension = None;
        if b[0] & 0x10 != 0 {
            if b.len() < at + 4 {
                return Err(RtpError::Short);
            }
            let profile = u16::from_be_bytes([b[at], b[at + 1]]);
            let words = u16::from_be_bytes([b[at + 2], b[at + 3]]) as usize;
            let end = at + 4 + 4 * words;
            if b.len() < end {
                return Err(RtpError::Short);
            }
            extension = Some((profile, b[at + 4..end].to_vec()));
            at = end;
        }
        let mut end = b.len();
        if b[0] & 0x20 != 0 {
            let pad = b[end - 1] as usize;
            if pad == 0 || pad > end - at {
                return Err(RtpError::Padding);
            }
            end -= pad;
        }
        Ok(RtpPacket {
            marker: b[1] & 0x80 != 0,
            payload_type: b[1] & 0x7F,
            seq: u16::from_be_bytes([b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            csrc,
            extension,
            payload: b[at..end].to_vec(),
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.payload.len());
        let ext = u8::from(self.extension.is_some()) << 4;
        out.push(0x80 | ext | (self.csrc.len() as u8 & 0x0F));
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for c in &self.csrc {
            out.extend_from_slice(&c.to_be_bytes());
        }
        if let Some((profile, data)) = &self.extension {
            out.extend_from_slice(&profile.to_be_bytes());
            out.extend_from_slice(&((data.len() / 4) as u16).to_be_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&self.payload);
        out
    }
}

/// Is sequence number `a` after `b` (modulo 2^16)?
pub fn seq_after(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// Extends 16-bit sequence numbers to 64 bits across wraps, relative to the highest seen.
#[derive(Debug, Clone, Default)]
pub struct SeqExtender {
    highest: Option<u64>,
}

impl SeqExtender {
    /// The extended value of `seq`: the one nearest the highest seen so far.
    pub fn extend(&mut self, seq: u16) -> u64 {
        let Some(h) = self.highest else {
            let v = u64::from(seq) + (1 << 16); // room below for early reordered packets
            self.highest = Some(v);
            return v;
        };
        let base = h & !0xFFFF;
        let candidates =
            [base.wrapping_sub(1 << 16), base, base + (1 << 16)].map(|b| b | u64::from(seq));
        let v = candidates
            .into_iter()
            .min_by_key(|c| c.abs_diff(h))
            .unwrap_or(h);
        if v > h {
            self.highest = Some(v);
        }
        v
    }
}

/// The largest change of transit time (timestamp units) taken as jitter.
const MAX_TRANSIT_STEP: u64 = 1 << 16;

/// RFC 3550 receiver statistics for one source.
#[derive(Debug, Clone, Default)]
pub struct ReceiverStats {
    ext: SeqExtender,
    first: Option<u64>,
    highest: u64,
    received: u64,
    /// Interarrival jitter in timestamp units (RFC 3550 §A.8), ×16 fixed point.
    jitter16: u64,
    last_transit: Option<i64>,
    expected_prior: u64,
    received_prior: u64,
}

/// One RTCP report block's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportFigures {
    pub fraction_lost: u8,
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    pub jitter: u32,
}

impl ReceiverStats {
    /// A packet with `seq` and RTP `timestamp` arrived at `arrival` (in timestamp units).
    pub fn on_packet(&mut self, seq: u16, timestamp: u32, arrival: u32) {
        let e = self.ext.extend(seq);
        if self.first.is_none() {
            self.first = Some(e);
        }
        self.highest = self.highest.max(e);
        self.received += 1;
        let transit = i64::from(arrival) - i64::from(timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs();
            // A jump of more than 2^16 units (over a second at 48 kHz) is the sender starting
            // a new timeline (a PBX switching what it relays, say), not network jitter: the
            // estimate goes on from the new base instead of taking seconds to forget it.
            if d <= MAX_TRANSIT_STEP {
                // J += (|D| - J) / 16, kept ×16.
                self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
            }
        }
        self.last_transit = Some(transit);
    }

    pub fn expected(&self) -> u64 {
        self.first.map_or(0, |f| self.highest - f + 1)
    }

    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        (self.jitter16 >> 4) as u32
    }

    /// The figures of a report block; resets the interval for `fraction_lost`.
    pub fn report(&mut self) -> ReportFigures {
        let expected = self.expected();
        let interval_expected = expected - self.expected_prior;
        let interval_received = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = interval_expected as i64 - interval_received as i64;
        let fraction_lost = if interval_expected == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / interval_expected as i64).min(255) as u8
        };
        ReportFigures {
            fraction_lost,
            cumulative_lost: self.lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_seq: (self.highest & 0xFFFF_FFFF) as u32,
            jitter: self.jitter(),
        }
    }
}

/// An RTCP receiver report (PT 201) with one report block about `source`.
pub fn receiver_report(
    own_ssrc: u32,
    source: u32,
    f: &ReportFigures,
    lsr: u32,
    dlsr: u32,
) -> Vec<u8> {
    let mut out = vec![0x81, 201, 0, 7];
    out.extend_from_slice(&own_ssrc.to_be_bytes());
    report_block(&mut out, source, f, lsr, dlsr);
    out
}

/// An RTCP sender report (PT 200) with one report block.
pub fn sender_report(
    own_ssrc: u32,
    ntp: u64,
    rtp_ts: u32,
    packets: u32,
    octets: u32,
    source: u32,
    f: &ReportFigures,
) -> Vec<u8> {
    let mut out = vec![0x81, 200, 0, 12];
    out.extend_from_slice(&own_ssrc.to_be_bytes());
    out.extend_from_slice(&ntp.to_be_bytes());
    out.extend_from_slice(&rtp_ts.to_be_bytes());
    out.extend_from_slice(&packets.to_be_bytes());
    out.extend_from_slice(&octets.to_be_bytes());
    report_block(&mut out, source, f, 0, 0);
    out
}

fn report_block(out: &mut Vec<u8>, source: u32, f: &ReportFigures, lsr: u32, dlsr: u32) {
    out.extend_from_slice(&source.to_be_bytes());
    out.push(f.fraction_lost);
    out.extend_from_slice(&(f.cumulative_lost as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&f.highest_seq.to_be_bytes());
    out.extend_from_slice(&f.jitter.to_be_bytes());
    out.extend_from_slice(&lsr.to_be_bytes());
    out.extend_from_slice(&dlsr.to_be_bytes());
}

/// What a report (SR or RR, the first packet of a compound RTCP packet) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpReport {
    pub sender: u32,
    /// A sender report's NTP timestamp.
    pub sr_ntp: Option<u64>,
    /// The first report block: about which source, its figures, LSR and DLSR.
    pub block: Option<(u32, ReportFigures, u32, u32)>,
}

/// Reads an RTCP SR or RR.
pub fn parse_rtcp(b: &[u8]) -> Option<RtcpReport> {
    if b.len() < 8 || b[0] >> 6 != 2 {
        return None;
    }
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let sender = word(4)?;
    let sr_ntp = match b[1] {
        200 => Some((u64::from(word(8)?) << 32) | u64::from(word(12)?)),
        201 => None,
        _ => return None,
    };
    let block = if b[0] & 0x1F == 0 {
        None
    } else {
        let at = if sr_ntp.is_some() { 28 } else { 8 };
        let (source, figures) = parse_report(b)?;
        Some((source, figures, word(at + 16)?, word(at + 20)?))
    };
    Some(RtcpReport {
        sender,
        sr_ntp,
        block,
    })
}

/// Rewrites, in place, the text of every SDES CNAME item of a plain compound RTCP packet
/// (RFC 3550 §6.5.1) as hex digits of a hash of it: the same length, still one name per
/// source, but no longer `user@10.0.0.5`. A relay between networks forwards RTCP this way so
/// that a phone's private address does not reach the other side. False, and untouched,
/// when the packet is not plain RTCP whose lengths add up to its size (SRTCP, whose SDES is
/// encrypted anyway, has a trailer past them).
pub fn hide_cnames(packet: &mut [u8]) -> bool {
    // Check the whole compound first, then rewrite: nothing changes in a packet we misread.
    let mut spans = Vec::new();
    let mut at = 0;
    while at < packet.len() {
        let Some(head) = packet.get(at..at + 4) else {
            return false;
        };
        let end = at + 4 + 4 * usize::from(u16::from_be_bytes([head[2], head[3]]));
        if head[0] >> 6 != 2 || end > packet.len() {
            return false;
        }
        if head[1] == 202 {
            let mut chunk = at + 4;
            for _ in 0..head[0] & 0x1F {
                let mut item = chunk + 4;
                loop {
                    match packet.get(item) {
                        Some(0) => break,
                        Some(&kind) => {
                            let Some(&len) = packet.get(item + 1) else {
                                return false;
                            };
                            let text = item + 2..item + 2 + usize::from(len);
                            if text.end > end {
                                return false;
                            }
                            if kind == 1 {
                                spans.push(text.clone());
                            }
                            item = text.end;
                        }
                        None => return false,
                    }
                }
                chunk = (item + 4) & !3; // past the terminating zero, to a word boundary
            }
        }
        at = end;
    }
    for span in spans {
        let hash = packet[span.clone()]
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
        let digits = format!("{hash:016x}");
        for (i, at) in span.enumerate() {
            packet[at] = digits.as_bytes()[i % 16];
        }
    }
    true
}

/// The report block figures of an RTCP SR or RR (first block), if it has one.
pub fn parse_report(b: &[u8]) -> Option<(u32, ReportFigures)> {
    if b.len() < 8 || b[0] >> 6 != 2 || b[0] & 0x1F == 0 {
        return None;
    }
    let at = match b[1] {
        200 => 28,
        201 => 8,
        _ => return None,
    };
    let r = b.get(at..at + 24)?;
    let lost = u32::from_be_bytes([0, r[5], r[6], r[7]]);
    let lost = if lost & 0x80_0000 != 0 {
        (lost | 0xFF00_0000) as i32
    } else {
        lost as i32
    };
    Some((
        u32::from_be_bytes([r[0], r[1], r[2], r[3]]),
        ReportFigures {
            fraction_lost: r[4],
            cumulative_lost: lost,
            highest_seq: u32::from_be_bytes([r[8], r[9], r[10], r[11]]),
            jitter: u32::from_be_bytes([r[12], r[13], r[14], r[15]]),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_round_trip() {
        let p = RtpPacket {
            marker: true,
            payload_type: 101,
            seq: 65535,
            timestamp: 0xDEADBEEF,
            ssrc: 0x1234_5678,
            csrc: vec![7, 9],
            extension: Some((0xBEDE, vec![1, 2, 3, 4])),
            payload: vec![0xAA; 160],
        };
        assert_eq!(RtpPacket::parse(&p.to_bytes()).unwrap(), p);
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::Version));
        assert_eq!(RtpPacket::parse(&[0x80; 5]), Err(RtpError::Short));
        let mut padded = RtpPacket {
            payload: vec![1, 2],
            ..Default::default()
        }
        .to_bytes();
        padded[0] |= 0x20;
        padded.extend_from_slice(&[0, 0, 3]);
        assert_eq!(RtpPacket::parse(&padded).unwrap().payload, vec![1, 2]);
    }

    #[test]
    fn sequence_extends_across_the_wrap() {
        let mut e = SeqExtender::default();
        let a = e.extend(65534);
        assert_eq!(e.extend(65535), a + 1);
        assert_eq!(e.extend(0), a + 2);
        assert_eq!(e.extend(65533), a - 1, "a late packet from before the wrap");
        assert_eq!(e.extend(1), a + 3);
        assert!(seq_after(0, 65535) && !seq_after(65535, 0));
    }

    #[test]
    fn loss_jitter_and_reports() {
        let mut s = ReceiverStats::default();
        // 100 packets of 160 samples, every 5th lost, arrivals with ±40 samples of jitter.
        for i in 0..100u32 {
            if i % 5 == 4 {
                continue;
            }
            let ts = i * 160;
            let wobble = if i % 2 == 0 { 40 } else { 0 };
            s.on_packet((65500u32 + i) as u16, ts, ts + 1000 + wobble);
        }
        assert_eq!(s.expected(), 99);
        assert_eq!(s.lost(), 19);
        let j = s.jitter();
        assert!((20..=45).contains(&j), "jitter {j}");
        let f = s.report();
        assert_eq!(f.cumulative_lost, 19);
        assert_eq!(f.fraction_lost, (19 * 256 / 99) as u8);
        let rr = receiver_report(1, 2, &f, 0, 0);
        assert_eq!(parse_report(&rr), Some((2, f)));
        let sr = sender_report(1, 0x1122_3344_5566_7788, 160, 10, 1600, 2, &f);
        assert_eq!(parse_report(&sr), Some((2, f)));
    }

    #[test]
    fn a_new_timeline_is_not_jitter() {
        let mut s = ReceiverStats::default();
        for i in 0..50u32 {
            s.on_packet(i as u16, i * 160, i * 160 + 1000);
        }
        // The sender's timestamps jump by ten minutes while packets keep their pace.
        for i in 50..100u32 {
            s.on_packet(i as u16, i * 160 + 4_800_000, i * 160 + 1000);
        }
        assert!(s.jitter() < 10, "jitter {}", s.jitter());
        assert_eq!(s.lost(), 0);
    }
}

#[cfg(test)]
mod cname_tests {
    use super::*;

    /// An RR, then an SDES with one chunk: CNAME `sip:202@192.168.77.1` and a NAME item.
    fn compound() -> Vec<u8> {
        let mut p = vec![0x80, 201, 0, 1, 0, 0, 0x12, 0x34];
        let cname = b"sip:202@192.168.77.1";
        let mut sdes = vec![0, 0, 0x12, 0x34, 1, cname.len() as u8];
        sdes.extend_from_slice(cname);
        sdes.extend_from_slice(&[2, 3, b'B', b'o', b'b', 0]);
        while sdes.len() % 4 != 0 {
            sdes.push(0);
        }
        p.extend_from_slice(&[0x81, 202]);
        p.extend_from_slice(&((sdes.len() / 4) as u16).to_be_bytes());
        p.extend_from_slice(&sdes);
        p
    }

    #[test]
    fn a_cname_is_hidden_and_nothing_else_changes() {
        let original = compound();
        let mut p = original.clone();
        assert!(hide_cnames(&mut p));
        assert_eq!(p.len(), original.len());
        let text = String::from_utf8_lossy(&p).to_string();
        assert!(!text.contains("192.168"), "{text}");
        assert!(text.contains("Bob"), "other items kept");
        assert_eq!(p[..8], original[..8], "the report kept");
        assert!(parse_rtcp(&p).is_some());
        // The same name hides the same way; another differently.
        let mut again = original.clone();
        hide_cnames(&mut again);
        assert_eq!(again, p);
    }

    #[test]
    fn srtcp_and_garbage_are_left_alone() {
        let mut srtcp = compound();
        srtcp.extend_from_slice(&[0x80, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]);
        let before = srtcp.clone();
        assert!(!hide_cnames(&mut srtcp));
        assert_eq!(srtcp, before);
        let mut short = compound();
        short.truncate(20);
        assert!(!hide_cnames(&mut short));
    }
}
