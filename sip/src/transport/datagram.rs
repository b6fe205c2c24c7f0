//! Datagram sockets: the system's UDP, or a socket on a [`MemNet`] — an in-memory network of
//! addresses that tests run whole servers on, with tokio's clock paused, so that a call
//! flow of minutes is checked in milliseconds without a socket or a packet leaving the
//! process. The SIP transport and the PBX's media relay both send through
//! [`DatagramSocket`], so either runs on either.

use bytes::Bytes;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

type Inbox = mpsc::UnboundedSender<(Bytes, SocketAddr)>;

/// An in-memory datagram network: sockets bound at addresses, delivering in order and
/// without loss; a datagram to an address nobody holds is dropped, as UDP would.
#[derive(Clone, Default)]
pub struct MemNet {
    inner: Arc<Mutex<Sockets>>,
}

#[derive(Default)]
struct Sockets {
    bound: HashMap<SocketAddr, Inbox>,
    next_port: u16,
    /// Every datagram sent, when [`MemNet::record`] asked for it.
    log: Option<Vec<Datagram>>,
}

/// A datagram that crossed a [`MemNet`]: from, to, bytes.
pub type Datagram = (SocketAddr, SocketAddr, Bytes);

impl std::fmt::Debug for MemNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemNet")
    }
}

impl MemNet {
    pub fn new() -> MemNet {
        MemNet::default()
    }

    /// Binds `addr` (port 0 picks a free port from 40000 up).
    pub fn bind(&self, addr: SocketAddr) -> io::Result<MemSocket> {
        let mut s = self.lock();
        let mut addr = addr;
        if addr.port() == 0 {
            loop {
                s.next_port = s.next_port.max(40000).wrapping_add(1).max(40000);
                addr.set_port(s.next_port);
                if !s.bound.contains_key(&addr) {
                    break;
                }
            }
        }
        if s.bound.get(&addr).is_some_and(|tx| !tx.is_closed()) {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, addr.to_string()));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        s.bound.insert(addr, tx);
        Ok(MemSocket {
            net: self.clone(),
            addr,
            rx: tokio::sync::Mutex::new(rx),
        })
    }

    /// Keeps every datagram sent from now on, for [`MemNet::recorded`].
    pub fn record(&self) {
        self.lock().log.get_or_insert_with(Vec::new);
    }

    /// The datagrams sent since [`MemNet::record`], in order.
    pub fn recorded(&self) -> Vec<Datagram> {
        self.lock().log.clone().unwrap_or_default()
    }

    fn deliver(&self, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        let data = Bytes::copy_from_slice(data);
        let mut s = self.lock();
        if let Some(log) = s.log.as_mut() {
            log.push((from, to, data.clone()));
        }
        if let Some(tx) = s.bound.get(&to) {
            let _ = tx.send((data, from));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sockets> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A socket bound on a [`MemNet`]; dropping it frees the address.
pub struct MemSocket {
    net: MemNet,
    addr: SocketAddr,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<(Bytes, SocketAddr)>>,
}

impl Drop for MemSocket {
    fn drop(&mut self) {
        self.net.lock().bound.remove(&self.addr);
    }
}

/// A datagram socket on the system or on a [`MemNet`].
pub enum DatagramSocket {
    Udp(UdpSocket),
    Memory(MemSocket),
}

impl DatagramSocket {
    /// Binds `addr` on `net`, or on the system when there is none.
    pub async fn bind(addr: SocketAddr, net: Option<&MemNet>) -> io::Result<DatagramSocket> {
        Ok(match net {
            Some(net) => DatagramSocket::Memory(net.bind(addr)?),
            None => DatagramSocket::Udp(UdpSocket::bind(addr).await?),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            DatagramSocket::Udp(s) => s.local_addr(),
            DatagramSocket::Memory(s) => Ok(s.addr),
        }
    }

    pub async fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        match self {
            DatagramSocket::Udp(s) => s.send_to(data, to).await,
            DatagramSocket::Memory(_) => self.try_send_to(data, to),
        }
    }

    /// Sends without waiting (a full system buffer is an error, as `UdpSocket`'s).
    pub fn try_send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        match self {
            DatagramSocket::Udp(s) => s.try_send_to(data, to),
            DatagramSocket::Memory(s) => {
                s.net.deliver(s.addr, to, data);
                Ok(data.len())
            }
        }
    }

    /// Receives one datagram (cut to `buf`'s length, as UDP's).
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self {
            DatagramSocket::Udp(s) => s.recv_from(buf).await,
            DatagramSocket::Memory(s) => {
                let got = s.rx.lock().await.recv().await;
                let (data, from) = got.ok_or_else(|| io::Error::other("network gone"))?;
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                Ok((n, from))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_sockets_deliver_to_bound_addresses_and_free_them_on_drop() {
        let net = MemNet::new();
        let a = DatagramSocket::bind("10.0.0.1:5060".parse().unwrap(), Some(&net))
            .await
            .unwrap();
        let b = DatagramSocket::bind("10.0.0.2:0".parse().unwrap(), Some(&net))
            .await
            .unwrap();
        let b_addr = b.local_addr().unwrap();
        assert_ne!(b_addr.port(), 0);
        a.send_to(b"hello", b_addr).await.unwrap();
        a.send_to(b"lost", "10.0.0.9:1".parse().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"hello"[..], a.local_addr().unwrap()));
        assert!(net.bind("10.0.0.1:5060".parse().unwrap()).is_err());
        drop(a);
        assert!(net.bind("10.0.0.1:5060".parse().unwrap()).is_ok());
    }
}
