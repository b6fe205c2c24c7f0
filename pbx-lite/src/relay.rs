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

use media::dtmf::EventReceiver;
use media::g711::{Law, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};
use media::mixer::Mixer;
use media::rtp::RtpPacket;
use sip::clock::Clock;
use sip::transport::{DatagramSocket, MemNet};
use std::collections::{HashMap, VecDeque};
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
}

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

    /// Sends one frame of audio the PBX made (a player or a room) to the phone.
    fn send_pcm(&self, pcm: &[i16]) {
        let Some(dest) = self.dest(false) else { return };
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
        let _ = self.rtp.try_send_to(&packet.to_bytes(), dest);
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
    let mut bufs = [[0u8; 2048], [0u8; 2048]];
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
        let packet = &mut bufs[usize::from(rtcp)][..n];
        match &*route.borrow() {
            Route::Drop => {}
            Route::Forward(other) => {
                let Some(dest) = other.dest(rtcp) else {
                    continue;
                };
                if rtcp {
                    // No phone's address (in its CNAME) reaches the other side.
                    media::rtp::hide_cnames(packet);
                    let _ = other.rtcp.try_send_to(packet, dest);
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
                let _ = other.rtp.try_send_to(packet, dest);
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

enum RoomControl {
    Join(Arc<Shared>),
    Leave(u64),
}

/// A conference room: every 20 ms each member hears the mix of everyone else (mix-minus).
pub struct Room {
    inbox: mpsc::Sender<(u64, Heard)>,
    control: mpsc::UnboundedSender<RoomControl>,
    task: JoinHandle<()>,
    members: Vec<u64>,
}

impl Drop for Room {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Default for Room {
    fn default() -> Self {
        Room::start()
    }
}

impl Room {
    pub fn start() -> Room {
        let (inbox, rx) = mpsc::channel(1024);
        let (control, crx) = mpsc::unbounded_channel();
        Room {
            inbox,
            control,
            task: tokio::spawn(mix(rx, crx)),
            members: Vec::new(),
        }
    }

    /// The phone on `port` joins: what it says goes to the room, and it hears the room.
    pub fn join(&mut self, port: &mut MediaPort) {
        port.stop_playing();
        port.set_route(Route::Feed(self.inbox.clone()));
        if !self.members.contains(&port.id()) {
            self.members.push(port.id());
        }
        let _ = self.control.send(RoomControl::Join(port.shared.clone()));
    }

    pub fn leave(&mut self, port: &MediaPort) {
        self.members.retain(|m| *m != port.id());
        port.set_route(Route::Drop);
        let _ = self.control.send(RoomControl::Leave(port.id()));
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// The room's mixing task. Each member's audio queues up (at most 100 ms, the oldest goes
/// first when it overflows); every 20 ms one frame of each is mixed.
async fn mix(
    mut inbox: mpsc::Receiver<(u64, Heard)>,
    mut control: mpsc::UnboundedReceiver<RoomControl>,
) {
    let mut members: HashMap<u64, (Arc<Shared>, VecDeque<i16>)> = HashMap::new();
    let mut mixer = Mixer::default();
    let mut frames: HashMap<u64, Vec<i16>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            c = control.recv() => match c {
                Some(RoomControl::Join(s)) => {
                    mixer.add(s.id as u32);
                    members.insert(s.id, (s, VecDeque::new()));
                }
                Some(RoomControl::Leave(id)) => {
                    mixer.remove(id as u32);
                    members.remove(&id);
                }
                None => return,
            },
            h = inbox.recv() => {
                if let Some((id, Heard::Audio(pcm))) = h
                    && let Some((_, q)) = members.get_mut(&id)
                {
                    q.extend(pcm);
                    while q.len() > 5 * FRAME {
                        q.pop_front();
                    }
                }
            }
            _ = tick.tick() => {
                for (id, (_, q)) in members.iter_mut() {
                    let f = frames.entry(*id).or_default();
                    f.clear();
                    let n = q.len().min(FRAME);
                    f.extend(q.drain(..n));
                    f.resize(FRAME, 0);
                }
                for (id, heard) in mixer.mix(|id| frames.get(&u64::from(id)).map_or(&[][..], |f| f.as_slice())) {
                    if let Some((s, _)) = members.get(&u64::from(id)) {
                        s.send_pcm(heard);
                    }
                }
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
mod tests {
    use super::*;
    use tokio::net::UdpSocket;

    #[test]
    fn only_the_phone_latches_and_only_its_stream_moves_it() {
        let phone: SocketAddr = "192.168.77.11:4000".parse().unwrap();
        let remote = Remote {
            addr: Some(phone),
            signalled: Some("203.0.113.20".parse().unwrap()),
            ..Default::default()
        };
        let stranger: SocketAddr = "192.168.77.66:4000".parse().unwrap();
        let mut l = Latch::default();
        assert!(
            !l.admit(&remote, stranger, Some(7)),
            "a stranger never latches"
        );
        assert!(
            l.admit(&remote, phone, Some(1)),
            "the phone's SDP address latches"
        );
        assert!(
            !l.admit(&remote, stranger, Some(1)),
            "a stranger with its SSRC"
        );
        assert!(l.admit(&remote, phone, Some(1)));
        // The phone's NAT moved it to another port: the same stream follows.
        let moved: SocketAddr = "192.168.77.11:4010".parse().unwrap();
        assert!(
            !l.admit(&remote, moved, Some(2)),
            "another stream from its address"
        );
        assert!(l.admit(&remote, moved, Some(1)));
        assert!(!l.admit(&remote, phone, Some(9)));
        // Behind NAT the media comes from where its SIP came from.
        let mut l = Latch::default();
        let nat: SocketAddr = "203.0.113.20:30000".parse().unwrap();
        assert!(l.admit(&remote, nat, Some(5)));
        // Through a dual-stack socket it is the same address.
        let mut l = Latch::default();
        assert!(l.admit(
            &remote,
            "[::ffff:192.168.77.11]:4000".parse().unwrap(),
            Some(1)
        ));
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

    /// A loopback "phone": a socket, and its address as SDP would name it.
    async fn phone() -> (UdpSocket, Remote) {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let r = Remote {
            addr: Some(s.local_addr().unwrap()),
            pt: 0,
            event_pt: Some(101),
            signalled: None,
        };
        (s, r)
    }

    async fn recv(s: &UdpSocket) -> RtpPacket {
        let mut b = [0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(2), s.recv(&mut b))
            .await
            .expect("a packet")
            .unwrap();
        RtpPacket::parse(&b[..n]).unwrap()
    }

    fn voice(level: i16, pt: u8, seq: u16) -> Vec<u8> {
        let law = if pt == 8 { Law::A } else { Law::Mu };
        let mut payload = Vec::new();
        law.encode(&[level; FRAME], &mut payload);
        RtpPacket {
            payload_type: pt,
            seq,
            payload,
            ..Default::default()
        }
        .to_bytes()
    }

    #[tokio::test]
    async fn bridged_ports_forward_transcode_and_play() {
        let range = PortRange::new(41000, 41100);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (mut a, mut b) = (
            MediaPort::open(&range, ip).await.unwrap(),
            MediaPort::open(&range, ip).await.unwrap(),
        );
        let ((pa, ra), (pb, mut rb)) = (phone().await, phone().await);
        rb.pt = 8;
        a.set_remote(ra);
        b.set_remote(rb);
        bridge(&mut a, &mut b);
        pa.send_to(&voice(1000, 0, 1), (ip, a.port()))
            .await
            .unwrap();
        let got = recv(&pb).await;
        assert_eq!(got.payload_type, 8, "μ-law in, A-law out");
        assert!((alaw_decode(got.payload[0]) - 1000).abs() < 64);
        // b plays a tone to its phone; a's audio no longer reaches it.
        a.set_route(Route::Drop);
        b.play(|f| {
            f.fill(500);
            true
        });
        let got = recv(&pb).await;
        assert!((alaw_decode(got.payload[0]) - 500).abs() < 32);
        assert!(b.playing());
        b.stop_playing();
        assert!(!b.playing());
    }

    #[tokio::test]
    async fn a_room_mixes_minus_each_member() {
        let range = PortRange::new(41200, 41300);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut room = Room::start();
        let mut phones = Vec::new();
        for level in [1000i16, 2000, 4000] {
            let mut port = MediaPort::open(&range, ip).await.unwrap();
            let (s, r) = phone().await;
            port.set_remote(r);
            room.join(&mut port);
            phones.push((port, s, level));
        }
        assert_eq!(room.len(), 3);
        // Each phone talks for a while; each must hear the sum of the other two.
        for seq in 0..10u16 {
            for (port, s, level) in &phones {
                s.send_to(&voice(*level, 0, seq), (ip, port.port()))
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (_, s, level) in &phones {
            let mut best = 0i32;
            for _ in 0..10 {
                let p = recv(s).await;
                best = best.max(i32::from(ulaw_decode(p.payload[0])));
            }
            let want = 7000 - i32::from(*level);
            assert!((best - want).abs() < want / 10, "heard {best}, want {want}");
        }
        room.leave(&phones[0].0);
        assert_eq!(room.len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_sending_too_fast_is_still_heard() {
        let range = PortRange::new(41400, 41500);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut room = Room::start();
        let (sa, sb) = (
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        );
        let mut ports = Vec::new();
        for s in [&sa, &sb] {
            let mut p = MediaPort::open(&range, ip).await.unwrap();
            p.set_remote(Remote {
                addr: Some(s.local_addr().unwrap()),
                pt: 0,
                event_pt: None,
                signalled: None,
            });
            room.join(&mut p);
            ports.push(p);
        }
        let mut payload = Vec::new();
        Law::Mu.encode(&[3000; FRAME], &mut payload);
        let mut loudest = 0;
        for seq in 0..200u16 {
            let p = RtpPacket {
                payload_type: 0,
                seq,
                payload: payload.clone(),
                ..Default::default()
            };
            sa.send_to(&p.to_bytes(), (ip, ports[0].port()))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            let mut b = [0u8; 2048];
            while let Ok(n) = sb.try_recv(&mut b) {
                if let Ok(p) = RtpPacket::parse(&b[..n]) {
                    loudest = loudest.max(i32::from(ulaw_decode(p.payload[0])));
                }
            }
        }
        assert!(loudest > 2500, "b heard {loudest}");
    }
}
