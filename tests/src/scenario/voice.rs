//! A scenario phone's audio.

use super::*;

/// A phone's audio: a tone sent as PCMU every 20 ms to wherever the last SDP said, and
/// everything received decoded in order of arrival.
pub(super) struct Media {
    pub(super) local: SocketAddr,
    pub(super) digits: tokio::sync::mpsc::UnboundedSender<char>,
    pub(super) remote: Arc<Mutex<Option<SocketAddr>>>,
    pub(super) heard: Arc<Mutex<Vec<i16>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Media {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Media {
    pub(super) async fn start(net: &MemNet, local: SocketAddr, freq: f32) -> Media {
        let sock = Arc::new(DatagramSocket::bind(local, Some(net)).await.unwrap());
        let remote: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let heard: Arc<Mutex<Vec<i16>>> = Arc::default();
        let (digits, mut pressed) = tokio::sync::mpsc::unbounded_channel::<char>();
        let send = tokio::spawn({
            let (sock, remote) = (sock.clone(), remote.clone());
            async move {
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                let mut p = RtpPacket {
                    ssrc: u32::from(local.ip().to_string().len() as u8) << 8 | 0x5a,
                    ..Default::default()
                };
                // One second of the tone, whole cycles for whole-Hz tones, sent in turn.
                let second: Vec<u8> = (0..8000)
                    .map(|i| {
                        let t = i as f32 / 8000.0;
                        ulaw_encode(((std::f32::consts::TAU * freq * t).sin() * 8000.0) as i16)
                    })
                    .collect();
                let mut frames = second.chunks(160).cycle();
                loop {
                    tick.tick().await;
                    let frame = frames.next().unwrap_or_default();
                    let Some(to) = *remote.lock().unwrap() else {
                        continue;
                    };
                    if let Ok(d) = pressed.try_recv() {
                        // RFC 4733 events in place of this frame's voice.
                        for (marker, e) in media::dtmf::key_press(d, 100, 20, 8000).unwrap() {
                            let ev = RtpPacket {
                                marker,
                                payload_type: 101,
                                payload: e.to_bytes().to_vec(),
                                ..p.clone()
                            };
                            let _ = sock.send_to(&ev.to_bytes(), to).await;
                            p.seq = p.seq.wrapping_add(1);
                        }
                        p.timestamp = p.timestamp.wrapping_add(800);
                        continue;
                    }
                    p.payload = frame.to_vec();
                    let _ = sock.send_to(&p.to_bytes(), to).await;
                    p.seq = p.seq.wrapping_add(1);
                    p.timestamp = p.timestamp.wrapping_add(160);
                }
            }
        });
        let receive = tokio::spawn({
            let heard = heard.clone();
            async move {
                let mut buf = [0u8; 2048];
                while let Ok((n, _)) = sock.recv_from(&mut buf).await {
                    if let Ok(p) = RtpPacket::parse(&buf[..n])
                        && p.payload_type == 0
                    {
                        heard
                            .lock()
                            .unwrap()
                            .extend(p.payload.iter().map(|b| ulaw_decode(*b)));
                    }
                }
            }
        });
        Media {
            local,
            digits,
            remote,
            heard,
            tasks: vec![send, receive],
        }
    }

    /// Sends to where `sdp` says (nowhere for hold's `c=0.0.0.0` or no SDP).
    pub(super) fn follow(&self, sdp: &[u8]) {
        if sdp.is_empty() {
            return;
        }
        *self.remote.lock().unwrap() = Remote::of(sdp).addr.filter(|a| !a.ip().is_unspecified());
    }

    pub(super) fn sdp(&self, direction: &str) -> String {
        let ip = self.local.ip();
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na={direction}\r\n",
            self.local.port()
        )
    }
}
