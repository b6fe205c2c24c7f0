//! Mouth-to-ear latency the phone adds (issue #19, must-show 4): the softphone's beside
//! baresip's, on the same sound card in the same run.
//!
//! The card is a PulseAudio null sink whose monitor is the microphone (`e2e::pulse`): what
//! the phone plays, it hears, as a handset held to a loudspeaker. The far end is this
//! bench, a probe answering one call on loopback: every second it sends a 20 ms burst of
//! 1 kHz in its RTP (PCMU), and it times when the burst comes back in the phone's RTP. The
//! phone's part is everything in between — its jitter buffer, its playback buffer, the card,
//! its capture buffer — less the 20 ms of its own packetisation, which is taken out by the
//! burst's place in the returning packet. The card's own latency (PulseAudio's null sink)
//! is the same for both phones. Echo cancellation is off in the softphone for the run (it
//! would cancel the loop, as it should); baresip runs none.
//!
//! `scripts/bench-latency` runs it: `cargo bench -p softphone --bench latency`.
//! BURSTS (15) sets the bursts timed per phone.

use e2e::baresip::Baresip;
use e2e::process::Kill;
use e2e::pulse::Card;
use sip::Message;
use sip::types::Name;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Samples in a 20 ms PCMU packet.
const FRAME: usize = 160;

/// The far end: SIP and RTP on loopback, answering REGISTER, SUBSCRIBE and one INVITE.
struct Probe {
    sip: SocketAddr,
    rtp: Arc<UdpSocket>,
    /// Where the phone's RTP comes from, once it does.
    phone: Arc<Mutex<Option<SocketAddr>>>,
    stop: Arc<AtomicBool>,
}

impl Probe {
    fn start() -> Probe {
        let sip = UdpSocket::bind("127.0.0.1:0").expect("a SIP port");
        let rtp = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("an RTP port"));
        let stop = Arc::new(AtomicBool::new(false));
        let addr = sip.local_addr().expect("its address");
        let rtp_port = rtp.local_addr().expect("its address").port();
        sip.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("a timeout");
        let s = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = sip.recv_from(&mut buf) else {
                    continue;
                };
                if let Ok(Message::Request(r)) = Message::parse_datagram(&buf[..n]) {
                    let method = r.method.to_string();
                    if method == "ACK" {
                        continue;
                    }
                    let mut ok = r.make_response(200, "OK");
                    ok.set_to_tag("probe");
                    ok.headers
                        .insert(Name::CONTACT, format!("<sip:echo@{addr}>"));
                    if matches!(method.as_str(), "REGISTER" | "SUBSCRIBE") {
                        ok.headers.insert(Name::EXPIRES, "3600");
                    }
                    if method == "INVITE" {
                        ok.headers.insert(Name::CONTENT_TYPE, "application/sdp");
                        ok.body = format!(
                            "v=0\r\no=probe 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                             t=0 0\r\nm=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
                             a=ptime:20\r\na=sendrecv\r\n"
                        )
                        .into();
                    }
                    let _ = sip.send_to(&ok.to_bytes(), from);
                }
            }
        });
        Probe {
            sip: addr,
            rtp,
            phone: Arc::default(),
            stop,
        }
    }

    /// Sends `bursts` bursts, one a second, and returns each one's trip through the phone
    /// (ms); a burst that does not come back within the second counts as none.
    fn measure(&self, bursts: usize) -> Vec<f64> {
        self.rtp
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("a timeout");
        // The phone's first packet says where it is.
        let t0 = Instant::now();
        let mut buf = [0u8; 2048];
        while self.phone.lock().expect("lock").is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "no RTP from the phone"
            );
            if let Ok((_, from)) = self.rtp.recv_from(&mut buf) {
                *self.phone.lock().expect("lock") = Some(from);
            }
        }
        let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let sender = {
            let (rtp, phone, sent, done) = (
                self.rtp.clone(),
                self.phone.clone(),
                sent.clone(),
                done.clone(),
            );
            std::thread::spawn(move || {
                let to = phone.lock().expect("lock").expect("the phone's address");
                let start = Instant::now();
                // A second of silence first, for the phone's buffers to settle.
                for n in 0..(bursts + 1) * 50 {
                    let at = start + Duration::from_millis(20 * n as u64);
                    std::thread::sleep(at.saturating_duration_since(Instant::now()));
                    let burst = n % 50 == 0 && n >= 50;
                    let payload: Vec<u8> = (0..FRAME)
                        .map(|i| {
                            let s = if burst {
                                ((i as f32 * std::f32::consts::TAU / 8.0).sin() * 12_000.0) as i16
                            } else {
                                0
                            };
                            media::g711::ulaw_encode(s)
                        })
                        .collect();
                    let packet = media::rtp::RtpPacket {
                        marker: n == 0,
                        payload_type: 0,
                        seq: n as u16,
                        timestamp: (n * FRAME) as u32,
                        ssrc: 0x7072_6f62,
                        csrc: Vec::new(),
                        extension: None,
                        payload,
                    };
                    if burst {
                        sent.lock().expect("lock").push(Instant::now());
                    }
                    let _ = rtp.send_to(&packet.to_bytes(), to);
                }
                done.store(true, Ordering::Relaxed);
            })
        };
        // The burst's onset in what comes back: the first loud sample after a quiet 200 ms.
        let mut trips = Vec::new();
        let mut quiet_since: Option<Instant> = Some(Instant::now());
        while !done.load(Ordering::Relaxed) {
            let Ok((n, _)) = self.rtp.recv_from(&mut buf) else {
                continue;
            };
            let arrived = Instant::now();
            let Ok(p) = media::rtp::RtpPacket::parse(&buf[..n]) else {
                continue;
            };
            let loud = p
                .payload
                .iter()
                .position(|c| media::g711::ulaw_decode(*c).unsigned_abs() > 3000);
            match loud {
                Some(k)
                    if quiet_since.is_some_and(|q| arrived - q > Duration::from_millis(200)) =>
                {
                    // Sample k of this packet was captured (FRAME - k) samples before it left.
                    let heard = arrived - Duration::from_micros(((FRAME - k) * 125) as u64);
                    let sent_at = sent
                        .lock()
                        .expect("lock")
                        .iter()
                        .rev()
                        .find(|t| **t < heard)
                        .copied();
                    if let Some(s) = sent_at
                        && heard - s < Duration::from_millis(900)
                    {
                        trips.push((heard - s).as_secs_f64() * 1000.0);
                    }
                    quiet_since = None;
                }
                Some(_) => quiet_since = None,
                None => {
                    quiet_since.get_or_insert(arrived);
                }
            }
        }
        let _ = sender.join();
        *self.phone.lock().expect("lock") = None;
        trips
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// min, median, max.
fn figures(trips: &[f64]) -> (f64, f64, f64) {
    let mut t = trips.to_vec();
    t.sort_by(f64::total_cmp);
    if t.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    (t[0], t[t.len() / 2], t[t.len() - 1])
}

/// The headless softphone on the card, calling the probe: its trips.
fn softphone(card: &Card, dir: &std::path::Path, probe: &Probe, bursts: usize) -> Vec<f64> {
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[[account]]\nnumber = \"bench\"\npassword = \"x\"\nserver = \"127.0.0.1\"\n\
             port = {}\ncodecs = [\"PCMU\"]\n\n[audio]\necho_cancellation = false\n",
            probe.sip.port()
        ),
    )
    .expect("a configuration");
    let mut c = card.command(env!("CARGO_BIN_EXE_softphone"));
    c.args([
        "--headless",
        "--audio",
        "device",
        "--sip",
        "127.0.0.1:0",
        "--config",
    ])
    .arg(&config)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut phone = Kill(c.spawn().expect("the softphone"));
    let mut stdin = phone.0.stdin.take().expect("its input");
    let (tx, events) = std::sync::mpsc::channel::<String>();
    let out = phone.0.stdout.take().expect("its events");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("\"event\":\"error\"") {
                eprintln!("softphone: {line}");
            }
            let _ = tx.send(line);
        }
    });
    let wait = |what: &str| {
        let tag = format!("\"event\":\"{what}\"");
        while let Ok(line) = events.recv_timeout(Duration::from_secs(15)) {
            if line.contains(&tag) {
                return;
            }
        }
        panic!("the softphone said no {what}");
    };
    wait("registered");
    writeln!(stdin, "dial echo").expect("a command");
    wait("established");
    let trips = probe.measure(bursts);
    let _ = writeln!(stdin, "quit");
    trips
}

/// baresip on the card, calling the probe: its trips.
fn baresip(card: &Card, probe: &Probe, bursts: usize) -> Vec<f64> {
    let b = Baresip::start_on_card(card, |port| {
        format!("<sip:bench@127.0.0.1:{port}>;regint=0;audio_codecs=PCMU")
    })
    .expect("baresip");
    b.command(&format!("/dial sip:echo@{}\n", probe.sip))
        .expect("a command");
    probe.measure(bursts)
}

fn main() {
    if e2e::kit::skip_peers() {
        println!("latency: SIP_SKIP_PEERS=1, nothing measured");
        return;
    }
    let bursts: usize = std::env::var("BURSTS")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(15);
    let dir = tempfile::tempdir().expect("a folder");
    let card = Card::start(dir.path(), "air", "air");
    let probe = Probe::start();
    let ours = softphone(&card, dir.path(), &probe, bursts);
    let theirs = baresip(&card, &probe, bursts);
    println!(
        "mouth-to-ear latency the phone adds (jitter buffer + playback + card + capture), PCMU 20 ms, \
         {bursts} bursts each, ms:"
    );
    println!(
        "{:<10} {:>6} {:>8} {:>8} {:>8}",
        "phone", "timed", "min", "median", "max"
    );
    for (name, trips) in [("softphone", &ours), ("baresip", &theirs)] {
        let (min, median, max) = figures(trips);
        println!(
            "{name:<10} {:>6} {min:>8.1} {median:>8.1} {max:>8.1}",
            trips.len()
        );
    }
    let (_, a, _) = figures(&ours);
    let (_, b, _) = figures(&theirs);
    println!("softphone / baresip (median): {:.2}", a / b);
}
