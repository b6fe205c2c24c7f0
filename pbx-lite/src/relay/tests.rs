//! The relay with phones on loopback: latching, forwarding and transcoding, playing, rooms.

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

/// Must-show 5 of issue #17, and the relay's half of the SRTP work: phone A on SRTP, phone
/// B on plain RTP. Each hears the other across the 16-bit sequence wrap (the rollover
/// counter), the same keys given again (a re-INVITE) keep the session, and a packet with a
/// wrong tag or a replay is dropped and counted, never forwarded.
#[tokio::test]
async fn an_srtp_leg_talks_to_a_plain_leg_across_the_sequence_wrap() {
    use media::srtp::Suite;
    let range = PortRange::new(41600, 41700);
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let (mut a, mut b) = (
        MediaPort::open(&range, ip).await.unwrap(),
        MediaPort::open(&range, ip).await.unwrap(),
    );
    let ((pa, ra), (pb, rb)) = (phone().await, phone().await);
    a.set_remote(ra);
    b.set_remote(rb);
    let (pbx_key, phone_key) = (
        Crypto::generate(1, Suite::AesCm128HmacSha1_80),
        Crypto::generate(1, Suite::AesCm128HmacSha1_80),
    );
    a.set_srtp(Some((pbx_key.clone(), phone_key.clone())))
        .unwrap();
    assert!(a.encrypted() && !b.encrypted());
    let mut phone_a = SrtpSession::new(&phone_key, &pbx_key).unwrap();
    bridge(&mut a, &mut b);
    let mut last_good = Vec::new();
    for (i, seq) in (65530..=65535).chain(0..10u16).enumerate() {
        let level = 100 * (i as i16 + 1);
        let wire = phone_a.protect(&voice(level, 0, seq)).unwrap();
        pa.send_to(&wire, (ip, a.port())).await.unwrap();
        let got = recv(&pb).await;
        assert_eq!(got.seq, seq, "B gets A's packet in the clear");
        assert!((ulaw_decode(got.payload[0]) - level).abs() <= level / 16 + 8);
        pb.send_to(&voice(level, 0, seq), (ip, b.port()))
            .await
            .unwrap();
        let mut buf = [0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(2), pa.recv(&mut buf))
            .await
            .expect("A gets B's packet")
            .unwrap();
        assert_ne!(&buf[12..n - 10], &voice(level, 0, seq)[12..], "encrypted");
        let plain = RtpPacket::parse(&phone_a.unprotect(&buf[..n]).unwrap()).unwrap();
        assert_eq!(plain.seq, seq);
        if seq == 2 {
            // A re-INVITE that keeps the keys: the session (and its rollover) goes on.
            a.set_srtp(Some((pbx_key.clone(), phone_key.clone())))
                .unwrap();
        }
        last_good = wire;
    }
    // A forged tag, and a replay of the last packet: dropped and counted.
    let mut forged = phone_a.protect(&voice(5000, 0, 10)).unwrap();
    let end = forged.len() - 1;
    forged[end] ^= 0x01;
    pa.send_to(&forged, (ip, a.port())).await.unwrap();
    pa.send_to(&last_good, (ip, a.port())).await.unwrap();
    let good = phone_a.protect(&voice(3000, 0, 11)).unwrap();
    pa.send_to(&good, (ip, a.port())).await.unwrap();
    assert_eq!(
        recv(&pb).await.seq,
        11,
        "only the good packet comes through"
    );
    assert_eq!(a.srtp_dropped(), 2);
}
