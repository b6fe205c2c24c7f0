//! The transport driver on tokio: UDP, TCP and TLS (rustls), as client and server.
//!
//! - Receiving: datagrams and stream frames (Content-Length framing, RFC 5626 CRLF
//!   keep-alives answered) are parsed; a malformed request gets `400` with the reason when
//!   enough of it can be read to address a response, otherwise it is dropped (RFC 3261 §16.3
//!   and RFC 4475 §1); a received request gets `received`/`rport` on its top Via (RFC 3261
//!   §18.2.1, RFC 3581). Every good message goes out on one channel as [`Incoming`].
//! - Budgets: each source address may send [`TransportConfig::rate`] messages (datagrams
//!   past it are dropped before they are parsed; a stream connection past it is read more
//!   slowly), and the channel holds at most [`INCOMING_QUEUE`] messages (datagrams that find
//!   it full are dropped, streams wait), so a flood costs a bounded amount of memory and
//!   leaves every other address its share.
//! - Sending: [`Transport::send`] to a [`Peer`]: UDP `send_to`, or the stream connection to
//!   that address — reused whether we opened it or the peer did — opened on demand.
//!
//! This is the only place in the crate with sockets. UDP may also run on an in-memory
//! network ([`MemNet`], [`TransportConfig::memory`]) for tests on virtual time.

mod datagram;
mod stream;

use crate::message::{MAX_MESSAGE_SIZE, Message};
use crate::rate::{MessageRate, RateLimiter};
use crate::transaction::{Peer, TransportKind};
use bytes::Bytes;
use ezk_sip_types::Name;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use datagram::{Datagram, DatagramSocket, MemNet, MemSocket};
pub use stream::{ClientCerts, TlsSettings, fingerprints, system_roots};

/// A message that arrived, and from where.
#[derive(Debug)]
pub struct Incoming {
    pub message: Message,
    pub peer: Peer,
}

/// Which sockets to open. Port 0 picks a free port (tests).
#[derive(Debug, Clone, Default)]
pub struct TransportConfig {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<(SocketAddr, TlsSettings)>,
    /// TLS client settings for connections we open (trusted roots); without them, TLS
    /// sends to peers with no open connection fail.
    pub tls_client: Option<TlsSettings>,
    /// Caps and timeouts of stream connections.
    pub limits: StreamLimits,
    /// What one source address may send; `None` is no limit (tests, tools).
    pub rate: Option<MessageRate>,
    /// Bind UDP on this in-memory network instead of the system's (tests on virtual
    /// time); TCP and TLS are not opened then.
    pub memory: Option<MemNet>,
}

/// Refused TLS handshakes kept until taken (a flood keeps only the newest).
pub const REFUSALS_KEPT: usize = 256;

/// Messages received and not yet taken by the endpoint.
pub const INCOMING_QUEUE: usize = 4096;

/// What one stream connection, and one address, may hold of the server: idle connections
/// and half-sent messages are closed, and connections past the caps are refused at once.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections from one address.
    pub per_address: usize,
    /// A connection with nothing sent for this long is closed (phones re-register, or send
    /// CRLF keep-alives, well within it).
    pub idle: std::time::Duration,
    /// A message begun but not finished within this long closes its connection, as does a
    /// TLS handshake not done within it.
    pub partial: std::time::Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_connections: 1024,
            per_address: 32,
            idle: std::time::Duration::from_secs(900),
            partial: std::time::Duration::from_secs(10),
        }
    }
}

/// Open sockets and stream connections.
pub struct Transport {
    udp: Option<Arc<DatagramSocket>>,
    tcp_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    connections: Arc<Mutex<HashMap<Peer, mpsc::UnboundedSender<Bytes>>>>,
    incoming: mpsc::Sender<Incoming>,
    rate: Option<Mutex<RateLimiter>>,
    /// Datagrams dropped because the queue was full.
    full: std::sync::atomic::AtomicU64,
    /// TLS handshakes that failed or timed out, with why (the newest [`REFUSALS_KEPT`]).
    tls_refused: Mutex<std::collections::VecDeque<(SocketAddr, String)>>,
    tls_client: Option<TlsSettings>,
    limits: StreamLimits,
}

impl Transport {
    /// Opens the configured sockets and starts their receive tasks.
    pub async fn bind(
        cfg: TransportConfig,
    ) -> io::Result<(Arc<Transport>, mpsc::Receiver<Incoming>)> {
        let (tx, rx) = mpsc::channel(INCOMING_QUEUE);
        let udp = match cfg.udp {
            Some(a) => Some(Arc::new(
                DatagramSocket::bind(a, cfg.memory.as_ref()).await?,
            )),
            None => None,
        };
        let on_system = cfg.memory.is_none();
        let tcp = match cfg.tcp.filter(|_| on_system) {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        let tls = match cfg.tls.as_ref().filter(|_| on_system) {
            Some((a, settings)) => Some((TcpListener::bind(a).await?, settings.acceptor()?)),
            None => None,
        };
        let transport = Arc::new(Transport {
            udp: udp.clone(),
            tcp_addr: tcp.as_ref().map(|l| l.local_addr()).transpose()?,
            tls_addr: tls.as_ref().map(|(l, _)| l.local_addr()).transpose()?,
            connections: Arc::default(),
            incoming: tx,
            rate: cfg.rate.map(|r| Mutex::new(RateLimiter::new(r))),
            full: Default::default(),
            tls_refused: Default::default(),
            tls_client: cfg.tls_client,
            limits: cfg.limits,
        });
        if let Some(sock) = udp {
            tokio::spawn(udp_loop(sock, Arc::downgrade(&transport)));
        }
        if let Some(listener) = tcp {
            tokio::spawn(stream::accept_loop(
                listener,
                None,
                Arc::downgrade(&transport),
            ));
        }
        if let Some((listener, acceptor)) = tls {
            tokio::spawn(stream::accept_loop(
                listener,
                Some(acceptor),
                Arc::downgrade(&transport),
            ));
        }
        Ok((transport, rx))
    }

    /// The bound address of a transport, if open.
    pub fn local_addr(&self, kind: TransportKind) -> Option<SocketAddr> {
        match kind {
            TransportKind::Udp => self.udp.as_ref().and_then(|s| s.local_addr().ok()),
            TransportKind::Tcp => self.tcp_addr,
            TransportKind::Tls => self.tls_addr,
        }
    }

    /// Sends bytes to a peer. Stream sends queue on the connection (opened if needed).
    pub async fn send(self: &Arc<Self>, peer: Peer, bytes: Bytes) -> io::Result<()> {
        match peer.transport {
            TransportKind::Udp => {
                let sock = self.udp.as_ref().ok_or_else(|| closed("no UDP socket"))?;
                // An ICMP port-unreachable for an earlier datagram (a phone that went away)
                // surfaces as ECONNREFUSED on the next send: it is not this send's failure.
                let to = for_socket(sock.local_addr()?, peer.addr);
                match sock.send_to(&bytes, to).await {
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        sock.send_to(&bytes, to).await.map(|_| ())
                    }
                    r => r.map(|_| ()),
                }
            }
            TransportKind::Tcp | TransportKind::Tls => {
                let existing = self.connection(&peer);
                let sender = match existing {
                    Some(s) => s,
                    None => stream::connect(self, peer).await?,
                };
                sender.send(bytes).map_err(|_| closed("connection closed"))
            }
        }
    }

    fn connection(&self, peer: &Peer) -> Option<mpsc::UnboundedSender<Bytes>> {
        let map = self.connections.lock().ok()?;
        map.get(peer).filter(|s| !s.is_closed()).cloned()
    }

    fn register(&self, peer: Peer, sender: mpsc::UnboundedSender<Bytes>) {
        if let Ok(mut map) = self.connections.lock() {
            map.insert(peer, sender);
        }
    }

    fn unregister(&self, peer: &Peer) {
        if let Ok(mut map) = self.connections.lock() {
            map.remove(peer);
        }
    }

    /// May one more connection from `ip` be taken? (Under both caps.)
    fn room_for(&self, ip: std::net::IpAddr) -> bool {
        let Ok(map) = self.connections.lock() else {
            return false;
        };
        map.len() < self.limits.max_connections
            && map.keys().filter(|p| p.addr.ip() == ip).count() < self.limits.per_address
    }

    /// Is a message from `ip` within its address's budget? (Spends from it.)
    fn admit(&self, ip: std::net::IpAddr) -> bool {
        match &self.rate {
            None => true,
            Some(r) => r
                .lock()
                .map(|mut r| r.admit(crate::clock::Clock::now().now, ip))
                .unwrap_or(true),
        }
    }

    /// How long a stream connection over its budget waits before reading on.
    fn rate_pause(&self) -> Option<std::time::Duration> {
        let r = self.rate.as_ref()?.lock().ok()?;
        Some(std::time::Duration::from_secs_f64(
            1.0 / f64::from(r.rate().per_second.max(1)),
        ))
    }

    /// Datagrams dropped over their address's budget, or for a full queue.
    pub fn dropped(&self) -> u64 {
        let over = self
            .rate
            .as_ref()
            .and_then(|r| r.lock().ok().map(|r| r.dropped()))
            .unwrap_or(0);
        over + self.full.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The TLS handshakes refused since the last call: who, and why (a bad or missing
    /// client certificate, plaintext on the TLS port, a handshake that never finished).
    pub fn take_tls_refusals(&self) -> Vec<(SocketAddr, String)> {
        self.tls_refused
            .lock()
            .map(|mut q| q.drain(..).collect())
            .unwrap_or_default()
    }

    pub(super) fn tls_refused(&self, from: SocketAddr, why: String) {
        if let Ok(mut q) = self.tls_refused.lock() {
            if q.len() >= REFUSALS_KEPT {
                q.pop_front();
            }
            q.push_back((from, why));
        }
    }

    /// Number of open stream connections (for tests of connection reuse).
    pub fn connection_count(&self) -> usize {
        self.connections.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// The local address the system would send from to reach `peer`: a route lookup (a UDP
/// socket connected to the peer, which sends nothing). None when there is no route.
pub fn route_toward(peer: std::net::IpAddr) -> Option<std::net::IpAddr> {
    let any: SocketAddr = match peer {
        std::net::IpAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        std::net::IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = std::net::UdpSocket::bind(any).ok()?;
    sock.connect((peer, 9)).ok()?;
    let ip = sock.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// A peer seen through a dual-stack socket (`[::ffff:a.b.c.d]`) as the IPv4 peer it is, so
/// an IPv4 phone is one peer whether the PBX listens on `0.0.0.0` or `[::]`.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// `to` as a socket bound at `local` can send to it: an IPv4 peer from an IPv6 socket is
/// addressed in its mapped form.
fn for_socket(local: SocketAddr, to: SocketAddr) -> SocketAddr {
    match (local, to) {
        (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
            SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
        }
        _ => to,
    }
}

fn closed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, what.to_string())
}

async fn udp_loop(sock: Arc<DatagramSocket>, transport: std::sync::Weak<Transport>) {
    let mut buf = vec![0u8; MAX_MESSAGE_SIZE + 1];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            // ICMP port-unreachable surfaces as an error on some systems: keep serving.
            Err(_) => continue,
        };
        let Some(t) = transport.upgrade() else {
            return;
        };
        let from = canonical(from);
        let data = &buf[..n];
        if !t.admit(from.ip()) {
            continue;
        }
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            continue; // keep-alive
        }
        let peer = Peer::new(TransportKind::Udp, from);
        match receive(data, peer) {
            Ok(incoming_msg) => match t.incoming.try_send(incoming_msg) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    t.full.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            },
            Err(Some(reply)) => {
                let to = sock.local_addr().map_or(from, |l| for_socket(l, from));
                let _ = sock.send_to(&reply, to).await;
            }
            Err(None) => {}
        }
    }
}

/// Parses a datagram; on failure returns the `400` to send back, if one can be addressed.
pub(crate) fn receive(data: &[u8], peer: Peer) -> Result<Incoming, Option<Bytes>> {
    match Message::parse_datagram(data) {
        Ok(mut message) => {
            if let Message::Request(r) = &mut message {
                stamp_received(&mut r.headers, peer.addr);
            }
            Ok(Incoming { message, peer })
        }
        Err(e) => Err(bad_request(data, &e.to_string())),
    }
}

/// RFC 3261 §18.2.1 and RFC 3581: note the real source on the top Via.
pub(crate) fn stamp_received(headers: &mut ezk_sip_types::Headers, from: SocketAddr) {
    let mut vias: Vec<String> = headers.get_raw(&Name::VIA).map(|v| v.to_string()).collect();
    let Some(top) = vias.first_mut() else { return };
    let (first, rest) = match top.split_once(',') {
        Some((a, b)) => (a.to_string(), Some(b.to_string())),
        None => (top.clone(), None),
    };
    let mut params: Vec<String> = first.split(';').map(|p| p.trim().to_string()).collect();
    let sent_by_host = params[0]
        .split_whitespace()
        .nth(1)
        .map(|hp| {
            let hp = hp.trim_start_matches('[');
            match hp.rsplit_once(']') {
                Some((h, _)) => h.to_string(),
                None => hp.rsplit_once(':').map_or(hp, |(h, _)| h).to_string(),
            }
        })
        .unwrap_or_default();
    let ip = from.ip().to_string();
    let mut changed = false;
    if let Some(p) = params.iter_mut().find(|p| p.eq_ignore_ascii_case("rport")) {
        *p = format!("rport={}", from.port());
        changed = true;
    }
    let has_received = params
        .iter()
        .any(|p| p.to_ascii_lowercase().starts_with("received="));
    if (sent_by_host != ip || changed) && !has_received {
        params.push(format!("received={ip}"));
        changed = true;
    }
    if !changed {
        return;
    }
    let mut new_top = params.join(";");
    if let Some(rest) = rest {
        new_top.push(',');
        new_top.push_str(&rest);
    }
    *top = new_top;
    headers.remove(&Name::VIA);
    for v in vias {
        headers.insert(Name::VIA, v);
    }
}

/// Builds `400 <reason>` for a request we could not parse, copying the headers a response
/// needs straight from the raw lines. `None` for responses and when there is no Via to
/// answer to.
pub(crate) fn bad_request(data: &[u8], reason: &str) -> Option<Bytes> {
    let text = String::from_utf8_lossy(data);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let first = lines.next()?;
    if first.starts_with("SIP/") || first.trim().is_empty() {
        return None;
    }
    const COPY: &[(&str, &[&str])] = &[
        ("Via", &["via", "v"]),
        ("From", &["from", "f"]),
        ("To", &["to", "t"]),
        ("Call-ID", &["call-id", "i"]),
        ("CSeq", &["cseq"]),
    ];
    let mut out = String::new();
    let mut has_via = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let lname = name.trim().to_ascii_lowercase();
        if let Some((canonical, _)) = COPY.iter().find(|(_, n)| n.contains(&lname.as_str())) {
            has_via |= *canonical == "Via";
            out.push_str(&format!("{canonical}: {}\r\n", value.trim()));
        }
    }
    if !has_via {
        return None;
    }
    let reason: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect();
    Some(Bytes::from(format!(
        "SIP/2.0 400 Bad Request ({reason})\r\n{out}Content-Length: 0\r\n\r\n"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rport_and_received_are_stamped() {
        let raw = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;rport\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK0\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let from: SocketAddr = "127.0.0.9:40000".parse().unwrap();
        let inc = receive(raw, Peer::new(TransportKind::Udp, from)).unwrap();
        let via = inc
            .message
            .headers()
            .get_raw(&Name::VIA)
            .next()
            .unwrap()
            .to_string();
        assert_eq!(
            via,
            "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;rport=40000;received=127.0.0.9"
        );
        assert_eq!(inc.message.headers().get_raw(&Name::VIA).count(), 2);
    }

    #[test]
    fn malformed_request_gets_400_with_reason() {
        let raw = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\ni: 1\r\nCSeq: 1 INVITE\r\n\r\n";
        let err = receive(
            raw,
            Peer::new(TransportKind::Udp, "127.0.0.1:1".parse().unwrap()),
        )
        .err()
        .unwrap()
        .unwrap();
        let text = String::from_utf8(err.to_vec()).unwrap();
        assert!(
            text.starts_with("SIP/2.0 400 Bad Request (CSeq method"),
            "{text}"
        );
        assert!(text.contains("Call-ID: 1\r\n"));
        // A bad response is dropped silently.
        assert!(bad_request(b"SIP/2.0 999 x\r\n\r\n", "r").is_none());
    }
}
