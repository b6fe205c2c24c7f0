//! The media relay: when a call is anchored in the PBX, each leg gets its own UDP socket
//! pair (RTP and RTCP on the next port) from the configured range, the SDP each phone sees
//! points at the PBX, and a task forwards packets between the legs. Destinations latch on
//! the first packet from each phone (symmetric RTP, so phones behind NAT work) and start at
//! the SDP address until then. When the phones share no G.711 law, payloads are transcoded
//! μ-law ⇄ A-law on the way through.

use media::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Ports for relay sockets, handed out round-robin in even/odd pairs.
#[derive(Debug)]
pub struct PortRange {
    lo: u16,
    hi: u16,
    next: AtomicU16,
}

impl PortRange {
    pub fn new(lo: u16, hi: u16) -> Self {
        let lo = lo + lo % 2;
        PortRange {
            lo,
            hi: hi.max(lo + 2),
            next: AtomicU16::new(lo),
        }
    }

    /// Binds an RTP/RTCP socket pair on `ip`, trying the range until a pair is free.
    pub async fn bind_pair(&self, ip: IpAddr) -> std::io::Result<(UdpSocket, UdpSocket)> {
        let span = (self.hi - self.lo) / 2;
        for _ in 0..span.max(1) {
            let mut p = self.next.fetch_add(2, Ordering::Relaxed);
            if p < self.lo || p + 1 > self.hi {
                self.next.store(self.lo + 2, Ordering::Relaxed);
                p = self.lo;
            }
            if let Ok(rtp) = UdpSocket::bind((ip, p)).await
                && let Ok(rtcp) = UdpSocket::bind((ip, p + 1)).await
            {
                return Ok((rtp, rtcp));
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "no free RTP port pair in the range",
        ))
    }
}

/// How payloads change on the way from one leg to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transcode {
    #[default]
    None,
    /// A sends μ-law (PT 0), B receives A-law (PT 8).
    UlawToAlaw,
    /// A sends A-law, B receives μ-law.
    AlawToUlaw,
}

/// Where each leg's media should go, from SDP (updated on re-INVITE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Targets {
    pub a: Option<SocketAddr>,
    pub b: Option<SocketAddr>,
    pub transcode: Transcode,
}

/// One call's relay: the local ports each phone is told, and the forwarding task.
pub struct Relay {
    pub port_a: u16,
    pub port_b: u16,
    pub ip: IpAddr,
    targets: watch::Sender<Targets>,
    task: tokio::task::JoinHandle<()>,
    /// When the relay started, and each phone's last RTP packet since then (ms), for the
    /// inactivity timeout.
    started: Instant,
    last_rtp: Arc<[AtomicU64; 2]>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn convert(packet: &mut [u8], from_ulaw: bool) {
    if packet.len() <= 12 || packet[0] >> 6 != 2 {
        return;
    }
    let pt = packet[1] & 0x7F;
    let (want, to) = if from_ulaw { (0, 8) } else { (8, 0) };
    if pt != want {
        return; // telephone-event and the like pass as they are
    }
    packet[1] = (packet[1] & 0x80) | to;
    let cc = usize::from(packet[0] & 0x0F);
    for b in &mut packet[12 + 4 * cc..] {
        *b = if from_ulaw {
            alaw_encode(ulaw_decode(*b))
        } else {
            ulaw_encode(alaw_decode(*b))
        };
    }
}

impl Relay {
    pub async fn start(ports: &PortRange, ip: IpAddr) -> std::io::Result<Relay> {
        let (a_rtp, a_rtcp) = ports.bind_pair(ip).await?;
        let (b_rtp, b_rtcp) = ports.bind_pair(ip).await?;
        let port_a = a_rtp.local_addr()?.port();
        let port_b = b_rtp.local_addr()?.port();
        let (tx, rx) = watch::channel(Targets::default());
        let started = Instant::now();
        let last_rtp = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let task = tokio::spawn(forward(
            Arc::new([a_rtp, b_rtp, a_rtcp, b_rtcp]),
            rx,
            (started, last_rtp.clone()),
        ));
        Ok(Relay {
            port_a,
            port_b,
            ip,
            targets: tx,
            task,
            started,
            last_rtp,
        })
    }

    /// How long the quieter phone has sent no RTP (counted from the start until its first).
    pub fn idle(&self) -> Duration {
        let last = self
            .last_rtp
            .iter()
            .map(|t| t.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        self.started
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }

    pub fn set_targets(&self, t: Targets) {
        let _ = self.targets.send(t);
    }
}

/// Forwards A↔B on RTP (sockets 0/1) and RTCP (2/3), latching on each phone's real source.
async fn forward(
    socks: Arc<[UdpSocket; 4]>,
    targets: watch::Receiver<Targets>,
    (started, last_rtp): (Instant, Arc<[AtomicU64; 2]>),
) {
    let mut latched: [Option<SocketAddr>; 4] = [None; 4];
    let mut bufs = [[0u8; 2048], [0u8; 2048], [0u8; 2048], [0u8; 2048]];
    loop {
        let [b0, b1, b2, b3] = &mut bufs;
        let (i, n, from) = tokio::select! {
            r = socks[0].recv_from(b0) => match r { Ok((n, f)) => (0, n, f), Err(_) => continue },
            r = socks[1].recv_from(b1) => match r { Ok((n, f)) => (1, n, f), Err(_) => continue },
            r = socks[2].recv_from(b2) => match r { Ok((n, f)) => (2, n, f), Err(_) => continue },
            r = socks[3].recv_from(b3) => match r { Ok((n, f)) => (3, n, f), Err(_) => continue },
        };
        latched[i] = Some(from);
        if i < 2 {
            last_rtp[i].store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        let t = *targets.borrow();
        let other = i ^ 1; // 0↔1, 2↔3
        let rtcp = i >= 2;
        let sdp = if other % 2 == 0 { t.a } else { t.b };
        let dest = latched[other].or_else(|| {
            sdp.map(|a| {
                if rtcp {
                    SocketAddr::new(a.ip(), a.port() + 1)
                } else {
                    a
                }
            })
        });
        let Some(dest) = dest else { continue };
        if dest.ip().is_unspecified() {
            continue; // the other side holds (c=0.0.0.0)
        }
        let packet = &mut bufs[i][..n];
        if !rtcp {
            match (t.transcode, i) {
                (Transcode::UlawToAlaw, 0) | (Transcode::AlawToUlaw, 1) => convert(packet, true),
                (Transcode::AlawToUlaw, 0) | (Transcode::UlawToAlaw, 1) => convert(packet, false),
                _ => {}
            }
        }
        let _ = socks[other].send_to(packet, dest).await;
    }
}

/// Rewrites an SDP body so media goes to `ip:port` (the relay), keeping holds: a `c=` of
/// 0.0.0.0 stays as it is, and `a=rtcp` lines go (RTCP is on port + 1).
pub fn rewrite_sdp(body: &[u8], ip: IpAddr, port: u16) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut out = String::with_capacity(text.len());
    for line in text.split("\r\n").flat_map(|l| l.split('\n')) {
        if line.is_empty() {
            continue;
        }
        let l = if let Some(rest) = line.strip_prefix("c=IN ") {
            if rest.ends_with(" 0.0.0.0") {
                line.to_string()
            } else {
                format!("c=IN {fam} {ip}")
            }
        } else if let Some(rest) = line.strip_prefix("m=audio ") {
            let tail = rest.split_once(' ').map_or("", |(_, t)| t);
            format!("m=audio {port} {tail}")
        } else if line.starts_with("a=rtcp:") {
            continue;
        } else {
            line.to_string()
        };
        out.push_str(&l);
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// The audio address an SDP body names (None for hold or no audio).
pub fn sdp_address(body: &[u8]) -> Option<SocketAddr> {
    let text = String::from_utf8_lossy(body);
    let mut ip: Option<IpAddr> = None;
    let mut port = None;
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix("c=IN ") {
            ip = rest
                .split_whitespace()
                .nth(1)
                .and_then(|a| a.parse().ok())
                .or(ip);
        }
        if let Some(rest) = line.trim().strip_prefix("m=audio ") {
            port = rest
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok());
        }
    }
    Some(SocketAddr::new(ip?, port?))
}

/// The payload types of the audio m= line, in order.
pub fn sdp_payloads(body: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(body)
        .lines()
        .find_map(|l| {
            l.trim().strip_prefix("m=audio ").map(|r| {
                r.split_whitespace()
                    .skip(2)
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Adds the other G.711 law to an offer that has exactly one of them, so the callee can
/// choose either and the relay transcodes.
pub fn offer_both_laws(body: &[u8]) -> Vec<u8> {
    let pts = sdp_payloads(body);
    let add = match (pts.contains(&0), pts.contains(&8)) {
        (true, false) => 8,
        (false, true) => 0,
        _ => return body.to_vec(),
    };
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("m=audio ") {
            out.push_str(&format!("{line} {add}\r\n"));
            out.push_str(&format!(
                "a=rtpmap:{add} {}/8000\r\n",
                if add == 0 { "PCMU" } else { "PCMA" }
            ));
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &[u8] = b"v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp:4001\r\n";

    #[test]
    fn sdp_rewriting() {
        let r = rewrite_sdp(OFFER, "127.0.0.1".parse().unwrap(), 20000);
        let t = String::from_utf8(r.clone()).unwrap();
        assert!(
            t.contains("c=IN IP4 127.0.0.1\r\n")
                && t.contains("m=audio 20000 RTP/AVP 0 101\r\n")
                && !t.contains("a=rtcp")
        );
        assert_eq!(sdp_address(&r), Some("127.0.0.1:20000".parse().unwrap()));
        let hold = rewrite_sdp(
            b"c=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n",
            "127.0.0.1".parse().unwrap(),
            20000,
        );
        assert!(
            String::from_utf8(hold)
                .unwrap()
                .contains("c=IN IP4 0.0.0.0")
        );
        let both = offer_both_laws(OFFER);
        assert_eq!(sdp_payloads(&both), vec![0, 101, 8]);
    }

    #[test]
    fn transcoding_swaps_law_and_payload_type() {
        let mut p = vec![0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        p.extend((0..160).map(|i| ulaw_encode((i * 100) as i16)));
        let orig = p.clone();
        convert(&mut p, true);
        assert_eq!(p[1], 8);
        for (a, u) in p[12..].iter().zip(&orig[12..]) {
            let (x, y) = (i32::from(alaw_decode(*a)), i32::from(ulaw_decode(*u)));
            assert!((x - y).abs() <= (y.abs() / 16).max(16), "{x} vs {y}");
        }
    }
}
