//! The media relay. When the PBX anchors a call's media, each phone gets a [`MediaPort`]: an
//! RTP/RTCP socket pair from the configured range, which the SDP that phone sees names. What
//! a port receives follows its [`Route`]: forwarded packet by packet to another phone's port
//! (a two-party call, transcoding μ-law ⇄ A-law when the phones chose different laws), fed
//! decoded to a conference [`Room`] or a recorder, or dropped; a port can also play a source
//! to its phone (music on hold, tones, prompts). Destinations start at the SDP address and
//! latch on the phone's first packet (symmetric RTP, so phones behind NAT work) — strictly:
//! only a packet from an address the phone signalled (its SDP or its SIP source) is taken,
//! and a port moves only for a packet of the same stream (SSRC); see [`Latch`]. Anything
//! else sprayed at a port is dropped, so nobody else can take or inject a call's audio.
//!
//! A port keyed for SRTP ([`MediaPort::set_srtp`]) decrypts what its phone sends before
//! anything else (a packet with a wrong tag is dropped and counted) and encrypts what goes
//! to its phone; each phone has its own keys with the PBX, so an SRTP phone can talk to a
//! plain-RTP one, and no phone's key ever reaches another.

mod room;

pub use room::Room;

use media::dtmf::EventReceiver;
use media::g711::{Law, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};
use media::rtp::RtpPacket;
use media::srtp::{Crypto, SrtpSession};
use sip::clock::Clock;
use sip::transport::{DatagramSocket, MemNet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;

/// Ports for relay sockets, handed out round-robin in even/odd pairs.
#[derive(Debug)]
pub struct PortRange {
    lo: u16,
    hi: u16,
    next: AtomicU16,
    /// Bind on this in-memory network instead of the system's (tests on virtual time).
    net: Option<MemNet>,
}

impl PortRange {
    pub fn new(lo: u16, hi: u16) -> Self {
        let lo = lo + lo % 2;
        PortRange {
            lo,
            hi: hi.max(lo + 2),
            next: AtomicU16::new(lo),
            net: None,
        }
    }

    /// The same range on an in-memory network (tests on virtual time).
    pub fn on(mut self, net: Option<MemNet>) -> Self {
        self.net = net;
        self
    }

    /// Binds an RTP/RTCP socket pair on `ip`, trying the range until a pair is free.
    pub async fn bind_pair(&self, ip: IpAddr) -> std::io::Result<(DatagramSocket, DatagramSocket)> {
        let net = self.net.as_ref();
        let span = (self.hi - self.lo) / 2;
        for _ in 0..span.max(1) {
            let mut p = self.next.fetch_add(2, Ordering::Relaxed);
            if p < self.lo || p + 1 > self.hi {
                self.next.store(self.lo + 2, Ordering::Relaxed);
                p = self.lo;
            }
            if let Ok(rtp) = DatagramSocket::bind((ip, p).into(), net).await
                && let Ok(rtcp) = DatagramSocket::bind((ip, p + 1).into(), net).await
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

/// What a phone's SDP says about its audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Remote {
    /// Where it receives (None until known; 0.0.0.0 while it holds).
    pub addr: Option<SocketAddr>,
    /// The G.711 law it chose: 0 (μ-law) or 8 (A-law).
    pub pt: u8,
    /// Its telephone-event payload type.
    pub event_pt: Option<u8>,
    /// The address its SIP comes from: behind NAT, its media comes from there too.
    pub signalled: Option<IpAddr>,
}

impl Remote {
    /// From the phone's SDP body.
    pub fn of(body: &[u8]) -> Remote {
        Remote {
            addr: crate::sdp::address(body),
            pt: crate::sdp::g711(body),
            event_pt: crate::sdp::event_payload(body),
            signalled: None,
        }
    }

    /// Is `ip` an address the phone told us of (in its SDP, or by sending its SIP from it)?
    fn names(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.addr.is_some_and(|a| a.ip().to_canonical() == ip)
            || self.signalled.is_some_and(|s| s.to_canonical() == ip)
    }
}

/// Where one channel (RTP or RTCP) of a port takes packets from: the phone's own source,
/// once it has shown itself. Pure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latch {
    pub addr: Option<SocketAddr>,
    pub ssrc: Option<u32>,
}

impl Latch {
    /// Is a packet from `from`, of stream `ssrc`, the phone's? The first packet from an
    /// address the phone signalled latches; after that only the latched source is taken, or
    /// a packet of the same stream from a signalled address (a NAT that changed the port).
    pub fn admit(&mut self, remote: &Remote, from: SocketAddr, ssrc: Option<u32>) -> bool {
        if self.addr == Some(from) {
            if self.ssrc.is_none() {
                self.ssrc = ssrc;
            }
            return true;
        }
        if !remote.names(from.ip()) {
            return false;
        }
        if self.addr.is_some() && (ssrc.is_none() || ssrc != self.ssrc) {
            return false;
        }
        *self = Latch {
            addr: Some(from),
            ssrc,
        };
        true
    }
}

/// The sender's SSRC of an RTP packet (bytes 8-11) or an RTCP one (bytes 4-7).
fn ssrc_of(packet: &[u8], rtcp: bool) -> Option<u32> {
    let at = if rtcp { 4 } else { 8 };
    let b = packet.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Something a phone said, decoded for a room or a recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    Audio(Vec<i16>),
    Digit(char),
}

/// Where a port's incoming audio goes.
#[derive(Clone, Default)]
pub enum Route {
    #[default]
    Drop,
    /// To another phone, through that phone's port.
    Forward(Arc<Shared>),
    /// Decoded, tagged with this port's id.
    Feed(mpsc::Sender<(u64, Heard)>),
}

/// The parts of a port its own task and other ports' tasks share.
pub struct Shared {
    id: u64,
    rtp: DatagramSocket,
    rtcp: DatagramSocket,
    remote: Mutex<Remote>,
    /// The phone's real RTP and RTCP sources, once seen.
    latched: Mutex<[Latch; 2]>,
    started: Instant,
    /// The phone's last RTP packet, in ms since `started` (0: none yet).
    last_rtp: AtomicU64,
    /// Sequence and timestamp of what the PBX itself sends (players and rooms).
    out: Mutex<(u32, u16, u32)>,
    /// SRTP with the phone: the keys (the PBX's, the phone's) and their session.
    srtp: Mutex<Option<((Crypto, Crypto), SrtpSession)>>,
    /// SRTP/SRTCP packets from the phone's address that failed authentication.
    srtp_dropped: AtomicU64,
}

/// The largest datagram a port reads.
const BUFFER: usize = 2048;
/// What SRTP adds to a packet at most: SRTCP's index and tag.
const SRTP_ROOM: usize = 14;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn remote(&self) -> Remote {
        *lock(&self.remote)
    }

    /// Where RTP (or RTCP) for the phone goes: its latched source, else its SDP address;
    /// nowhere while it holds with c=0.0.0.0.
    fn dest(&self, rtcp: bool) -> Option<SocketAddr> {
        let latched = lock(&self.latched)[usize::from(rtcp)].addr;
        let d = latched.or_else(|| {
            self.remote()
                .addr
                .map(|a| SocketAddr::new(a.ip(), a.port() + u16::from(rtcp)))
        })?;
        if d.ip().is_unspecified() {
            return None;
        }
        // A port on `[::]` reaches an IPv4 phone at its mapped address.
        Some(match (self.rtp.local_addr(), d) {
            (Ok(SocketAddr::V6(_)), SocketAddr::V4(v4)) => {
                SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
            }
            _ => d,
        })
    }

    /// Sends an RTP (or RTCP) packet to the phone, encrypted when the port is keyed (in a
    /// buffer on the stack: no allocation per packet).
    fn send(&self, packet: &[u8], rtcp: bool) {
        let Some(dest) = self.dest(rtcp) else { return };
        let socket = if rtcp { &self.rtcp } else { &self.rtp };
        match &mut *lock(&self.srtp) {
            None => {
                let _ = socket.try_send_to(packet, dest);
            }
            Some((_, session)) => {
                let mut buf = [0u8; BUFFER + SRTP_ROOM];
                let Some(room) = buf.get_mut(..packet.len()) else {
                    return;
                };
                room.copy_from_slice(packet);
                let protected = if rtcp {
                    session.protect_rtcp_in_place(&mut buf, packet.len())
                } else {
                    session.protect_in_place(&mut buf, packet.len())
                };
                if let Ok(n) = protected {
                    let _ = socket.try_send_to(&buf[..n], dest);
                }
            }
        }
    }

    /// What the phone sent, decrypted in place when the port is keyed; None for a packet
    /// that does not authenticate (counted).
    fn open<'a>(&self, packet: &'a mut [u8], rtcp: bool) -> Option<&'a mut [u8]> {
        let mut srtp = lock(&self.srtp);
        let Some((_, session)) = &mut *srtp else {
            return Some(packet);
        };
        let plain = if rtcp {
            session.unprotect_rtcp_in_place(packet)
        } else {
            session.unprotect_in_place(packet)
        };
        match plain {
            Ok(n) => Some(&mut packet[..n]),
            Err(_) => {
                self.srtp_dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Sends one frame of audio the PBX made (a player or a room) to the phone.
    fn send_pcm(&self, pcm: &[i16]) {
        if self.dest(false).is_none() {
            return;
        }
        let law = if self.remote().pt == 8 {
            Law::A
        } else {
            Law::Mu
        };
        let mut payload = Vec::with_capacity(pcm.len());
        law.encode(pcm, &mut payload);
        let packet = {
            let mut out = lock(&self.out);
            out.1 = out.1.wrapping_add(1);
            out.2 = out.2.wrapping_add(pcm.len() as u32);
            RtpPacket {
                payload_type: law.payload_type(),
                seq: out.1,
                timestamp: out.2,
                ssrc: out.0,
                payload,
                ..Default::default()
            }
        };
        self.send(&packet.to_bytes(), false);
    }
}

/// One phone's media port on the PBX.
pub struct MediaPort {
    shared: Arc<Shared>,
    route: watch::Sender<Route>,
    task: JoinHandle<()>,
    player: Option<JoinHandle<()>>,
}

impl Drop for MediaPort {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(p) = self.player.take() {
            p.abort();
        }
        let _ = self.route.send(Route::Drop);
    }
}

static NEXT_PORT_ID: AtomicU64 = AtomicU64::new(1);

impl MediaPort {
    /// Opens a port from `ports` on `ip`; it drops what it receives until routed.
    pub async fn open(ports: &PortRange, ip: IpAddr) -> std::io::Result<MediaPort> {
        let (rtp, rtcp) = ports.bind_pair(ip).await?;
        let shared = Arc::new(Shared {
            id: NEXT_PORT_ID.fetch_add(1, Ordering::Relaxed),
            rtp,
            rtcp,
            remote: Mutex::new(Remote::default()),
            latched: Mutex::new([Latch::default(); 2]),
            started: Clock::now().now,
            last_rtp: AtomicU64::new(0),
            out: Mutex::new((rand::random(), rand::random(), rand::random())),
            srtp: Mutex::new(None),
            srtp_dropped: AtomicU64::new(0),
        });
        let (route, rx) = watch::channel(Route::Drop);
        let task = tokio::spawn(receive(shared.clone(), rx));
        Ok(MediaPort {
            shared,
            route,
            task,
            player: None,
        })
    }

    pub fn id(&self) -> u64 {
        self.shared.id
    }

    pub fn port(&self) -> u16 {
        self.shared.rtp.local_addr().map_or(0, |a| a.port())
    }

    pub fn ip(&self) -> IpAddr {
        self.shared
            .rtp
            .local_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip())
    }

    /// What the phone's latest SDP says. A phone that moved its media (another address)
    /// is latched afresh.
    pub fn set_remote(&self, r: Remote) {
        let mut remote = lock(&self.shared.remote);
        if (remote.addr, remote.signalled) != (r.addr, r.signalled) {
            *lock(&self.shared.latched) = [Latch::default(); 2];
        }
        *remote = r;
    }

    /// SRTP with the phone: `(the PBX's keys, the phone's)`, or None for plain RTP. The
    /// same keys again keep the session (and its rollover counters): a re-INVITE that keeps
    /// the keys keeps the audio.
    pub fn set_srtp(&self, keys: Option<(Crypto, Crypto)>) -> Result<(), media::srtp::SrtpError> {
        let mut srtp = lock(&self.shared.srtp);
        if srtp.as_ref().map(|(k, _)| k) == keys.as_ref() {
            return Ok(());
        }
        *srtp = match keys {
            Some((ours, theirs)) => {
                let session = SrtpSession::new(&ours, &theirs)?;
                Some(((ours, theirs), session))
            }
            None => None,
        };
        Ok(())
    }

    /// Is the port keyed for SRTP?
    pub fn encrypted(&self) -> bool {
        lock(&self.shared.srtp).is_some()
    }

    /// How many SRTP/SRTCP packets from the phone failed authentication and were dropped.
    pub fn srtp_dropped(&self) -> u64 {
        self.shared.srtp_dropped.load(Ordering::Relaxed)
    }

    /// How long the phone has sent no RTP (counted from the port's opening until its first).
    pub fn idle(&self) -> Duration {
        let last = self.shared.last_rtp.load(Ordering::Relaxed);
        Clock::now()
            .now
            .saturating_duration_since(self.shared.started)
            .saturating_sub(Duration::from_millis(last))
    }

    /// Where what the phone sends goes.
    pub fn set_route(&self, r: Route) {
        let _ = self.route.send(r);
    }

    /// Sends this phone's audio to `other`'s phone.
    pub fn forward_to(&self, other: &MediaPort) {
        self.set_route(Route::Forward(other.shared.clone()));
    }

    /// Plays `source` to the phone, a 20 ms frame at a time, until [`MediaPort::stop_playing`]
    /// or another `play`. `source` fills a frame and says whether it has more.
    pub fn play(&mut self, mut source: impl FnMut(&mut [i16]) -> bool + Send + 'static) {
        self.stop_playing();
        let shared = self.shared.clone();
        self.player = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut frame = [0i16; FRAME];
            loop {
                tick.tick().await;
                let more = source(&mut frame);
                shared.send_pcm(&frame);
                if !more {
                    return;
                }
            }
        }));
    }

    /// Is a player still sending?
    pub fn playing(&self) -> bool {
        self.player.as_ref().is_some_and(|p| !p.is_finished())
    }

    pub fn stop_playing(&mut self) {
        if let Some(p) = self.player.take() {
            p.abort();
        }
    }
}

/// Sends audio the PBX makes to one phone, from any task (voicemail prompts and messages).
#[derive(Clone)]
pub struct Voice(Arc<Shared>);

impl Voice {
    /// Sends one frame (20 ms is 160 samples).
    pub fn send(&self, pcm: &[i16]) {
        self.0.send_pcm(pcm);
    }
}

impl MediaPort {
    /// What the phone says from now on, decoded (audio and RFC 4733 digits), for a task
    /// that serves it; the returned [`Voice`] talks back to it.
    pub fn serve(&mut self) -> (mpsc::Receiver<(u64, Heard)>, Voice) {
        self.stop_playing();
        let (tx, rx) = mpsc::channel(256);
        self.set_route(Route::Feed(tx));
        (rx, Voice(self.shared.clone()))
    }
}

/// Bridges two phones: each hears the other.
pub fn bridge(a: &mut MediaPort, b: &mut MediaPort) {
    a.stop_playing();
    b.stop_playing();
    a.forward_to(b);
    b.forward_to(a);
}

/// The receiving side of a port: latches the phone's source and routes each packet.
async fn receive(shared: Arc<Shared>, route: watch::Receiver<Route>) {
    let mut bufs = [[0u8; BUFFER], [0u8; BUFFER]];
    let mut events = EventReceiver::default();
    let mut pcm = Vec::with_capacity(FRAME);
    loop {
        let [b0, b1] = &mut bufs;
        let (rtcp, n, from) = tokio::select! {
            r = shared.rtp.recv_from(b0) => match r { Ok((n, f)) => (false, n, f), Err(_) => continue },
            r = shared.rtcp.recv_from(b1) => match r { Ok((n, f)) => (true, n, f), Err(_) => continue },
        };
        let packet = &bufs[usize::from(rtcp)][..n];
        let remote = shared.remote();
        if !lock(&shared.latched)[usize::from(rtcp)].admit(&remote, from, ssrc_of(packet, rtcp)) {
            continue; // not the phone: a stranger spraying the port range
        }
        if !rtcp {
            shared.last_rtp.store(
                Clock::now()
                    .now
                    .saturating_duration_since(shared.started)
                    .as_millis() as u64,
                Ordering::Relaxed,
            );
        }
        let Some(packet) = shared.open(&mut bufs[usize::from(rtcp)][..n], rtcp) else {
            continue; // a wrong SRTP tag, or a replay
        };
        match &*route.borrow() {
            Route::Drop => {}
            Route::Forward(other) => {
                if rtcp {
                    // No phone's address (in its CNAME) reaches the other side.
                    media::rtp::hide_cnames(packet);
                    other.send(packet, true);
                    continue;
                }
                let (mine, theirs) = (shared.remote(), other.remote());
                if packet.len() > 12 {
                    let pt = packet[1] & 0x7F;
                    match (pt, theirs.pt) {
                        (0, 8) => convert(packet, true),
                        (8, 0) => convert(packet, false),
                        _ => {}
                    }
                    if let (Some(m), Some(t)) = (mine.event_pt, theirs.event_pt)
                        && pt == m
                    {
                        packet[1] = (packet[1] & 0x80) | t;
                    }
                }
                other.send(packet, false);
            }
            Route::Feed(tx) => {
                if rtcp {
                    continue;
                }
                let Ok(p) = RtpPacket::parse(packet) else {
                    continue;
                };
                let heard = if Some(p.payload_type) == shared.remote().event_pt {
                    match events.on_packet(p.timestamp, &p.payload) {
                        Some(d) => Heard::Digit(d),
                        None => continue,
                    }
                } else if p.payload_type == 0 || p.payload_type == 8 {
                    let law = if p.payload_type == 8 { Law::A } else { Law::Mu };
                    law.decode(&p.payload, &mut pcm);
                    Heard::Audio(pcm.clone())
                } else {
                    continue;
                };
                let _ = tx.try_send((shared.id, heard));
            }
        }
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

#[cfg(test)]
mod tests;
