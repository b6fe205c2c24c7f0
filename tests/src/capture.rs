//! Wire checks: tcpdump on an interface writes a pcap, read back (pcap-file, etherparse) as
//! the UDP and TCP packets it holds, with their addresses and payloads.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One UDP datagram or TCP segment seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub tcp: bool,
    pub payload: Vec<u8>,
}

/// A tcpdump running until [`Capture::stop`] (or killed when dropped).
pub struct Capture {
    child: Child,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    /// Starts tcpdump on `interface` with the BPF `filter`; returns once it listens.
    pub fn start(interface: &str, filter: &str) -> Capture {
        let dir = tempfile::tempdir().expect("a folder for the capture");
        let file = dir.path().join("capture.pcap");
        let log = dir.path().join("tcpdump.log");
        let child = Command::new("tcpdump")
            .args([
                "-i",
                interface,
                "-n",
                "-U",
                "--immediate-mode",
                "-s",
                "0",
                "-w",
            ])
            .arg(&file)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("capture log"))
            .spawn()
            .expect("tcpdump");
        let t0 = Instant::now();
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("listening on")
        {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "tcpdump did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Capture {
            child,
            file,
            _dir: dir,
        }
    }

    /// What tcpdump has written so far (it writes each packet as it comes).
    pub fn seen(&self) -> Vec<Packet> {
        read(&self.file)
    }

    /// Waits (up to `limit`) until a packet `want` accepts has been written.
    pub fn wait_for(&self, limit: Duration, want: impl Fn(&Packet) -> bool) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self.seen().iter().any(&want) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Stops the capture (SIGINT, so tcpdump writes out what it holds); what it saw. A
    /// packet still in the kernel's buffer may be lost: wait for the last one that matters
    /// with [`Capture::wait_for`] first.
    pub fn stop(mut self) -> Vec<Packet> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        read(&self.file)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The UDP and TCP packets of a pcap file (Ethernet, Linux cooked v1 or v2 framing).
pub fn read(path: &Path) -> Vec<Packet> {
    use pcap_file::DataLink;
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let Ok(mut reader) = pcap_file::pcap::PcapReader::new(file) else {
        return Vec::new();
    };
    let link = reader.header().datalink;
    let mut out = Vec::new();
    while let Some(Ok(p)) = reader.next_packet() {
        let data = &p.data;
        let sliced = match link {
            DataLink::ETHERNET => etherparse::SlicedPacket::from_ethernet(data),
            DataLink::LINUX_SLL => {
                etherparse::SlicedPacket::from_ip(data.get(16..).unwrap_or_default())
            }
            DataLink::LINUX_SLL2 => {
                etherparse::SlicedPacket::from_ip(data.get(20..).unwrap_or_default())
            }
            _ => etherparse::SlicedPacket::from_ip(data),
        };
        if let Ok(s) = sliced
            && let Some(packet) = packet_of(&s)
        {
            out.push(packet);
        }
    }
    out
}

fn packet_of(s: &etherparse::SlicedPacket<'_>) -> Option<Packet> {
    use etherparse::{NetSlice, TransportSlice};
    let (src, dst): (IpAddr, IpAddr) = match s.net.as_ref()? {
        NetSlice::Ipv4(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Ipv6(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        _ => return None,
    };
    let (sport, dport, tcp, payload) = match s.transport.as_ref()? {
        TransportSlice::Udp(u) => (u.source_port(), u.destination_port(), false, u.payload()),
        TransportSlice::Tcp(t) => (t.source_port(), t.destination_port(), true, t.payload()),
        _ => return None,
    };
    Some(Packet {
        from: SocketAddr::new(src, sport),
        to: SocketAddr::new(dst, dport),
        tcp,
        payload: payload.to_vec(),
    })
}

/// Writes a pcap of RTP packets (Ethernet, IPv4, UDP, one every 20 ms) carrying
/// `payloads` with payload type `pt`: what SIPp's `play_pcap_audio` plays (it keeps the RTP
/// and replaces the addresses).
pub fn write_rtp(path: &Path, payloads: &[Vec<u8>], pt: u8) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let header = pcap_file::pcap::PcapHeader {
        datalink: pcap_file::DataLink::ETHERNET,
        ..Default::default()
    };
    let mut w = pcap_file::pcap::PcapWriter::with_header(file, header)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    for (i, payload) in payloads.iter().enumerate() {
        let mut rtp = vec![0x80, pt];
        rtp.extend_from_slice(&(i as u16).to_be_bytes());
        rtp.extend_from_slice(&(i as u32 * 160).to_be_bytes());
        rtp.extend_from_slice(&0x5eed_u32.to_be_bytes());
        rtp.extend_from_slice(payload);
        let builder = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(4000, 4000);
        let mut frame = Vec::with_capacity(builder.size(rtp.len()));
        builder
            .write(&mut frame, &rtp)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let packet = pcap_file::pcap::PcapPacket::new(
            Duration::from_millis(20 * i as u64),
            frame.len() as u32,
            &frame,
        );
        w.write_packet(&packet)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram sent on loopback is read back with its addresses and payload.
    #[test]
    fn a_datagram_on_loopback_is_read_back() {
        if crate::kit::skip_peers() || Command::new("tcpdump").arg("--version").output().is_err() {
            return;
        }
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let to = rx.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let capture = Capture::start("lo", &format!("udp port {}", to.port()));
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        tx.send_to(b"seen on the wire", to)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut buf = [0u8; 64];
        let _ = rx.recv(&mut buf);
        capture.wait_for(Duration::from_secs(5), |p| p.to == to);
        let seen = capture.stop();
        assert!(
            seen.iter().any(|p| p.to == to
                && !p.tcp
                && p.payload == b"seen on the wire"
                && Some(p.from) == tx.local_addr().ok()),
            "{seen:?}"
        );
    }
}
