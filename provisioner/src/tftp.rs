//! TFTP (RFC 1350) for reading only, with the option extension (RFC 2347): blksize (RFC
//! 2348), timeout and tsize (RFC 2349), windowsize (RFC 7440). Pure: [`Packet`] parses and
//! prints packets, and [`Transfer`] is one read transfer told the time, with the same shape
//! as the SIP machines (`handle_*`, `poll_transmit`, `poll_timeout`). The socket driver is
//! `crate::tftp_server`.
//!
//! Why not async-tftp: it ignores malformed packets and truncates long names silently, where
//! an error packet is owed, and it brings a second async runtime.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Longest file name accepted (RFC 1350 sets none; phones use short names).
pub const MAX_NAME: usize = 255;
const DEFAULT_BLKSIZE: usize = 512;
const MAX_BLKSIZE: usize = 65_464;
const MAX_WINDOW: u16 = 64;
const RETRIES: u32 = 5;

/// Retransmissions to a client that has not acknowledged anything yet. Its address may be
/// forged (a read request is one unauthenticated datagram), so what it gets stays close to
/// what was asked: the first packet and one retransmission. A real client that lost both
/// asks again.
const UNHEARD_RETRIES: u32 = 1;

/// TFTP error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    IllegalOperation = 4,
    UnknownTid = 5,
    OptionRefused = 8,
}

/// A TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Rrq {
        name: String,
        mode: String,
        options: Vec<(String, String)>,
    },
    Wrq {
        name: String,
    },
    Data {
        block: u16,
        data: Vec<u8>,
    },
    Ack {
        block: u16,
    },
    Error {
        code: u16,
        message: String,
    },
    Oack {
        options: Vec<(String, String)>,
    },
}

/// Why a packet could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("packet too short")]
    Short,
    #[error("unknown opcode {0}")]
    Opcode(u16),
    #[error("missing NUL terminator")]
    Unterminated,
    #[error("file name is not text")]
    NotText,
    #[error("file name longer than {MAX_NAME} bytes")]
    NameTooLong,
}

fn strings(mut b: &[u8]) -> Result<Vec<String>, PacketError> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let end = b
            .iter()
            .position(|&c| c == 0)
            .ok_or(PacketError::Unterminated)?;
        out.push(String::from_utf8(b[..end].to_vec()).map_err(|_| PacketError::NotText)?);
        b = &b[end + 1..];
    }
    Ok(out)
}

impl Packet {
    pub fn parse(b: &[u8]) -> Result<Packet, PacketError> {
        if b.len() < 4 {
            return Err(PacketError::Short);
        }
        let op = u16::from_be_bytes([b[0], b[1]]);
        let rest = &b[2..];
        let word = u16::from_be_bytes([b[2], b[3]]);
        match op {
            1 | 2 => {
                let s = strings(rest)?;
                if s.len() < 2 || s.len() % 2 != 0 {
                    return Err(PacketError::Unterminated);
                }
                if s[0].len() > MAX_NAME {
                    return Err(PacketError::NameTooLong);
                }
                if op == 2 {
                    return Ok(Packet::Wrq { name: s[0].clone() });
                }
                // An option named twice counts once, as first given: it is never echoed twice.
                let mut options: Vec<(String, String)> = Vec::new();
                for c in s[2..].chunks(2) {
                    let name = c[0].to_ascii_lowercase();
                    if !options.iter().any(|(n, _)| *n == name) {
                        options.push((name, c[1].clone()));
                    }
                }
                Ok(Packet::Rrq {
                    name: s[0].clone(),
                    mode: s[1].to_ascii_lowercase(),
                    options,
                })
            }
            3 => Ok(Packet::Data {
                block: word,
                data: b[4..].to_vec(),
            }),
            4 => Ok(Packet::Ack { block: word }),
            5 => {
                let msg = strings(&b[4..])
                    .ok()
                    .and_then(|s| s.into_iter().next())
                    .unwrap_or_default();
                Ok(Packet::Error {
                    code: word,
                    message: msg,
                })
            }
            6 => {
                let s = strings(rest)?;
                if s.len() % 2 != 0 {
                    return Err(PacketError::Unterminated);
                }
                Ok(Packet::Oack {
                    options: s
                        .chunks(2)
                        .filter(|c| c.len() == 2)
                        .map(|c| (c[0].clone(), c[1].clone()))
                        .collect(),
                })
            }
            other => Err(PacketError::Opcode(other)),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let push_str = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        };
        match self {
            Packet::Rrq {
                name,
                mode,
                options,
            } => {
                out.extend_from_slice(&1u16.to_be_bytes());
                push_str(&mut out, name);
                push_str(&mut out, mode);
                for (k, v) in options {
                    push_str(&mut out, k);
                    push_str(&mut out, v);
                }
            }
            Packet::Wrq { name } => {
                out.extend_from_slice(&2u16.to_be_bytes());
                push_str(&mut out, name);
                push_str(&mut out, "octet");
            }
            Packet::Data { block, data } => {
                out.extend_from_slice(&3u16.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(data);
            }
            Packet::Ack { block } => {
                out.extend_from_slice(&4u16.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                out.extend_from_slice(&5u16.to_be_bytes());
                out.extend_from_slice(&code.to_be_bytes());
                push_str(&mut out, message);
            }
            Packet::Oack { options } => {
                out.extend_from_slice(&6u16.to_be_bytes());
                for (k, v) in options {
                    push_str(&mut out, k);
                    push_str(&mut out, v);
                }
            }
        }
        out
    }

    pub fn error(code: ErrorCode, message: &str) -> Packet {
        Packet::Error {
            code: code as u16,
            message: message.to_string(),
        }
    }
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every block acknowledged.
    Sent { bytes: usize },
    /// The client stopped answering, or sent an error.
    Failed(String),
}

/// One read transfer: the file, the negotiated options, and which blocks are acknowledged.
#[derive(Debug)]
pub struct Transfer {
    data: Vec<u8>,
    blksize: usize,
    window: u16,
    timeout: Duration,
    /// Blocks acknowledged so far (block n covers bytes (n-1)·blksize ..).
    acked: u64,
    /// Total blocks: a file of k·blksize bytes ends with an empty block.
    blocks: u64,
    /// The OACK, while it awaits ACK 0.
    oack: Option<Vec<u8>>,
    deadline: Option<Instant>,
    retries: u32,
    /// The client has acknowledged something: it is at the address it asked from.
    heard: bool,
    out: VecDeque<Vec<u8>>,
    outcome: Option<Outcome>,
}

impl Transfer {
    /// Starts sending `data` to a client that asked with `options`. Options we accept are
    /// acknowledged with an OACK; unknown ones are ignored (RFC 2347).
    pub fn new(now: Instant, data: Vec<u8>, options: &[(String, String)]) -> Transfer {
        let mut blksize = DEFAULT_BLKSIZE;
        let mut window = 1u16;
        let mut timeout = Duration::from_secs(1);
        let mut accepted = Vec::new();
        for (k, v) in options {
            match k.as_str() {
                "blksize" => {
                    if let Ok(n) = v.parse::<usize>()
                        && n >= 8
                    {
                        blksize = n.min(MAX_BLKSIZE);
                        accepted.push((k.clone(), blksize.to_string()));
                    }
                }
                "windowsize" => {
                    if let Ok(n) = v.parse::<u16>()
                        && n >= 1
                    {
                        window = n.min(MAX_WINDOW);
                        accepted.push((k.clone(), window.to_string()));
                    }
                }
                "timeout" => {
                    if let Ok(n) = v.parse::<u64>()
                        && (1..=255).contains(&n)
                    {
                        timeout = Duration::from_secs(n);
                        accepted.push((k.clone(), n.to_string()));
                    }
                }
                "tsize" => accepted.push((k.clone(), data.len().to_string())),
                _ => {}
            }
        }
        let blocks = (data.len() / blksize) as u64 + 1;
        let mut t = Transfer {
            data,
            blksize,
            window,
            timeout,
            acked: 0,
            blocks,
            oack: None,
            deadline: None,
            retries: 0,
            heard: false,
            out: VecDeque::new(),
            outcome: None,
        };
        if accepted.is_empty() {
            t.send_window(now);
        } else {
            let oack = Packet::Oack { options: accepted }.to_bytes();
            t.out.push_back(oack.clone());
            t.oack = Some(oack);
            t.deadline = Some(now + t.timeout);
        }
        t
    }

    fn block(&self, n: u64) -> Vec<u8> {
        let start = ((n - 1) as usize * self.blksize).min(self.data.len());
        let end = (start + self.blksize).min(self.data.len());
        Packet::Data {
            block: (n % 65_536) as u16,
            data: self.data[start..end].to_vec(),
        }
        .to_bytes()
    }

    /// Sends the window after the last acknowledged block.
    fn send_window(&mut self, now: Instant) {
        let last = (self.acked + u64::from(self.window)).min(self.blocks);
        for n in self.acked + 1..=last {
            let b = self.block(n);
            self.out.push_back(b);
        }
        self.deadline = Some(now + self.timeout);
    }

    /// A packet from the client's TID.
    pub fn handle_packet(&mut self, now: Instant, bytes: &[u8]) {
        if self.outcome.is_some() {
            return;
        }
        match Packet::parse(bytes) {
            Ok(Packet::Ack { block }) => {
                if self.oack.is_some() {
                    if block == 0 {
                        self.heard = true;
                        self.oack = None;
                        self.retries = 0;
                        self.send_window(now);
                    }
                    return;
                }
                // Which absolute block does this 16-bit number name? The one in the window.
                let base = self.acked;
                let distance = u64::from(block.wrapping_sub((base % 65_536) as u16));
                if distance == 0 || distance > u64::from(self.window) {
                    return; // duplicate or stale ACK
                }
                self.acked = base + distance;
                self.heard = true;
                self.retries = 0;
                if self.acked >= self.blocks {
                    self.deadline = None;
                    self.outcome = Some(Outcome::Sent {
                        bytes: self.data.len(),
                    });
                } else {
                    // The next window starts after the acknowledged block, also when only
                    // part of the last window arrived (RFC 7440 §4).
                    self.send_window(now);
                }
            }
            Ok(Packet::Error { message, .. }) => {
                self.deadline = None;
                self.outcome = Some(Outcome::Failed(format!("client error: {message}")));
            }
            _ => {
                self.out.push_back(
                    Packet::error(ErrorCode::IllegalOperation, "expected ACK").to_bytes(),
                );
            }
        }
    }

    /// Retransmits on timeout; gives up after a few tries.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_some() || self.deadline.is_none_or(|d| d > now) {
            return;
        }
        self.retries += 1;
        if self.retries > if self.heard { RETRIES } else { UNHEARD_RETRIES } {
            self.deadline = None;
            self.outcome = Some(Outcome::Failed("client stopped answering".into()));
            return;
        }
        match &self.oack {
            Some(o) => {
                self.out.push_back(o.clone());
                self.deadline = Some(now + self.timeout);
            }
            None => self.send_window(now),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(o: &[(&str, &str)]) -> Vec<(String, String)> {
        o.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Runs a transfer against a perfect client; returns the bytes received.
    fn receive(t: &mut Transfer, now: Instant, window: u16) -> Vec<u8> {
        let mut got = Vec::new();
        let mut pending = 0;
        for _ in 0..100_000 {
            let Some(p) = t.poll_transmit() else {
                if t.outcome().is_some() {
                    break;
                }
                continue;
            };
            match Packet::parse(&p).unwrap() {
                Packet::Oack { .. } => t.handle_packet(now, &Packet::Ack { block: 0 }.to_bytes()),
                Packet::Data { block, data } => {
                    let last = data.len() < t.blksize;
                    got.extend(data);
                    pending += 1;
                    if pending == window || last {
                        pending = 0;
                        t.handle_packet(now, &Packet::Ack { block }.to_bytes());
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        got
    }

    #[test]
    fn packets_round_trip() {
        for p in [
            Packet::Rrq {
                name: "SIPDefault.cnf".into(),
                mode: "octet".into(),
                options: opts(&[("blksize", "1428"), ("tsize", "0")]),
            },
            Packet::Data {
                block: 7,
                data: vec![1, 2, 3],
            },
            Packet::Ack { block: 65535 },
            Packet::error(ErrorCode::FileNotFound, "File not found"),
            Packet::Oack {
                options: opts(&[("windowsize", "4")]),
            },
        ] {
            assert_eq!(Packet::parse(&p.to_bytes()).unwrap(), p);
        }
        assert_eq!(Packet::parse(b"\x00\x09abc"), Err(PacketError::Opcode(9)));
        assert_eq!(
            Packet::parse(b"\x00\x01name-without-nul"),
            Err(PacketError::Unterminated)
        );
        let long = [b"\x00\x01".as_slice(), &[b'a'; 300], b"\0octet\0"].concat();
        assert_eq!(Packet::parse(&long), Err(PacketError::NameTooLong));
        // Found by fuzz/tftp: an OACK with half an option printed as one with none.
        assert_eq!(
            Packet::parse(b"\x00\x06\x0c\x00"),
            Err(PacketError::Unterminated)
        );
    }

    /// Issue 15: an option named twice (in any case) is taken once, as first given, so the
    /// OACK never echoes it twice.
    #[test]
    fn a_repeated_option_counts_once() {
        let rrq =
            b"\x00\x01f\0octet\0blksize\x001428\0BLKSIZE\x0065464\0tsize\x000\0blksize\x008\0";
        let Ok(Packet::Rrq { options, .. }) = Packet::parse(rrq) else {
            panic!("an RRQ");
        };
        assert_eq!(options, opts(&[("blksize", "1428"), ("tsize", "0")]));
    }

    #[test]
    fn plain_and_optioned_transfers_deliver_every_byte() {
        let now = Instant::now();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for (o, w) in [
            (vec![], 1),
            (opts(&[("blksize", "1428"), ("tsize", "0")]), 1),
            (opts(&[("blksize", "512"), ("windowsize", "8")]), 8),
        ] {
            let mut t = Transfer::new(now, data.clone(), &o);
            assert_eq!(receive(&mut t, now, w), data);
            assert_eq!(t.outcome(), Some(&Outcome::Sent { bytes: data.len() }));
        }
        // Exactly one block: an empty block ends it.
        let mut t = Transfer::new(now, vec![7; 512], &[]);
        assert_eq!(receive(&mut t, now, 1).len(), 512);
    }

    #[test]
    fn block_numbers_roll_over() {
        let now = Instant::now();
        let data = vec![1u8; 70_000 * 8 + 3];
        let mut t = Transfer::new(now, data.clone(), &opts(&[("blksize", "8")]));
        assert_eq!(receive(&mut t, now, 1).len(), data.len());
    }

    #[test]
    fn timeout_retransmits_then_gives_up() {
        let t0 = Instant::now();
        let mut t = Transfer::new(t0, vec![1; 2000], &[]);
        assert!(t.poll_transmit().is_some());
        t.handle_packet(t0, &Packet::Ack { block: 1 }.to_bytes());
        assert!(t.poll_transmit().is_some(), "block 2");
        for i in 1..=5u64 {
            t.handle_timeout(t0 + Duration::from_secs(i));
            assert!(t.poll_transmit().is_some(), "retry {i}");
        }
        t.handle_timeout(t0 + Duration::from_secs(6));
        assert!(matches!(t.outcome(), Some(Outcome::Failed(_))));
    }

    /// Issue 15, finding 9: a read request from a forged address made six copies of the
    /// first block go to it (64× the request). Until the client acknowledges something, the
    /// first packet is retransmitted once, then the transfer ends.
    #[test]
    fn a_client_never_heard_from_gets_one_retransmission() {
        for options in [opts(&[]), opts(&[("blksize", "1428"), ("tsize", "0")])] {
            let t0 = Instant::now();
            let mut t = Transfer::new(t0, vec![1; 20_000], &options);
            let mut sent = 0;
            for i in 0..10u64 {
                t.handle_timeout(t0 + Duration::from_secs(i));
                while t.poll_transmit().is_some() {
                    sent += 1;
                }
            }
            assert_eq!(sent, 2, "{options:?}");
            assert!(matches!(t.outcome(), Some(Outcome::Failed(_))));
        }
    }
}
