//! Stream connections (TCP and TLS): accept, connect, frame by Content-Length, answer CRLF
//! keep-alive pings (RFC 5626 §4.4.1), and register each connection under its peer so that
//! later sends to that address reuse it.

use super::{Incoming, Transport, bad_request, stamp_received};
use crate::message::Message;
use crate::transaction::{Peer, TransportKind};
use bytes::{Buf, Bytes, BytesMut};
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io;
use std::sync::{Arc, Weak};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// TLS certificates: a server identity, and/or the roots a client trusts.
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    server: Option<Arc<ServerConfig>>,
    client: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

/// Which client certificates a TLS server asks for (mutual TLS; OfficeServ "SIP Mutual TLS
/// Enable" and "SIP Validate Any TLS Certificate").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClientCerts {
    /// None asked for.
    #[default]
    None,
    /// One is required; any is taken (the client still proves it holds its key).
    Any,
    /// One is required, and it must chain to one of these PEM roots.
    Known(Vec<u8>),
}

/// The SHA-256 fingerprint (lower-case hex) of each certificate in a PEM bundle: what a
/// profile pins a CA by.
pub fn fingerprints(pem: &[u8]) -> io::Result<Vec<String>> {
    use sha2::Digest;
    CertificateDer::pem_slice_iter(pem)
        .map(|c| {
            c.map(|der| hex::encode(sha2::Sha256::digest(der.as_ref())))
                .map_err(invalid)
        })
        .collect()
}

/// The system's trusted roots (Debian's bundle), empty where there is none.
pub fn system_roots() -> Vec<u8> {
    std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default()
}

/// The roots of a PEM bundle. A bundle as large as the system's may hold a certificate
/// webpki cannot use: it is left out, but a bundle of which none is usable is an error.
fn roots(pem: &[u8]) -> io::Result<rustls::RootCertStore> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let mut roots = rustls::RootCertStore::empty();
    let (_, unusable) = roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(invalid(format!(
            "no usable root certificate ({unusable} unusable)"
        )));
    }
    Ok(roots)
}

/// A client verifier that takes any certificate, checking only the handshake signature
/// made with its key ([`ClientCerts::Any`]).
#[derive(Debug)]
struct AnyClientCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::server::danger::ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl TlsSettings {
    /// The server side's rustls configuration (other TLS listeners of the office, such as
    /// the web admin's HTTPS, serve the same identity with it).
    pub fn server_config(&self) -> Option<Arc<ServerConfig>> {
        self.server.clone()
    }

    /// A server identity from a PEM certificate chain and PEM private key.
    pub fn server(cert_chain_pem: &[u8], key_pem: &[u8]) -> io::Result<Self> {
        Self::server_with(cert_chain_pem, key_pem, &ClientCerts::None)
    }

    /// [`TlsSettings::server`], asking clients for the certificates `clients` says. TLS 1.2
    /// and 1.3 only, whatever the setting.
    pub fn server_with(
        cert_chain_pem: &[u8],
        key_pem: &[u8],
        clients: &ClientCerts,
    ) -> io::Result<Self> {
        let certs = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(invalid)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(invalid)?;
        let builder = match clients {
            ClientCerts::None => builder.with_no_client_auth(),
            ClientCerts::Any => {
                builder.with_client_cert_verifier(Arc::new(AnyClientCert(provider())))
            }
            ClientCerts::Known(pem) => builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots(pem)?),
                    provider(),
                )
                .build()
                .map_err(invalid)?,
            ),
        };
        let config = builder.with_single_cert(certs, key).map_err(invalid)?;
        Ok(TlsSettings {
            server: Some(Arc::new(config)),
            client: None,
        })
    }

    /// A client that trusts the PEM roots and expects the server to be `server_name`.
    pub fn client(roots_pem: &[u8], server_name: &str) -> io::Result<Self> {
        Self::client_with(roots_pem, server_name, None)
    }

    /// [`TlsSettings::client`] presenting a client certificate: `(PEM chain, PEM key)`.
    pub fn client_with(
        roots_pem: &[u8],
        server_name: &str,
        identity: Option<(&[u8], &[u8])>,
    ) -> io::Result<Self> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(invalid)?
            .with_root_certificates(roots(roots_pem)?);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(chain)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(invalid)?,
                    PrivateKeyDer::from_pem_slice(key).map_err(invalid)?,
                )
                .map_err(invalid)?,
        };
        let name = ServerName::try_from(server_name.to_string()).map_err(invalid)?;
        Ok(TlsSettings {
            server: None,
            client: Some((Arc::new(config), name)),
        })
    }

    pub(super) fn acceptor(&self) -> io::Result<TlsAcceptor> {
        let config = self
            .server
            .clone()
            .ok_or_else(|| invalid("TLS listener without a server certificate"))?;
        Ok(TlsAcceptor::from(config))
    }
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    transport: Weak<Transport>,
) {
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => {
                // Out of file descriptors, say: wait instead of spinning on the error.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let remote = super::canonical(remote);
        let Some(t) = transport.upgrade() else {
            return;
        };
        if !t.room_for(remote.ip()) {
            continue; // dropped: closed at once
        }
        let partial = t.limits.partial;
        drop(t);
        let _ = tcp.set_nodelay(true);
        let transport = transport.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    start(tcp, Peer::new(TransportKind::Tcp, remote), transport);
                }
                Some(acceptor) => {
                    let why = match tokio::time::timeout(partial, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            start(stream, Peer::new(TransportKind::Tls, remote), transport);
                            return;
                        }
                        Ok(Err(e)) => format!("TLS handshake failed: {e}"),
                        Err(_) => "TLS handshake not finished in time".to_string(),
                    };
                    if let Some(t) = transport.upgrade() {
                        t.tls_refused(remote, why);
                    }
                }
            }
        });
    }
}

/// Opens a connection to `peer` and registers it.
pub(super) async fn connect(
    transport: &Arc<Transport>,
    peer: Peer,
) -> io::Result<mpsc::UnboundedSender<Bytes>> {
    let tcp = TcpStream::connect(peer.addr).await?;
    let _ = tcp.set_nodelay(true);
    let weak = Arc::downgrade(transport);
    match peer.transport {
        TransportKind::Tls => {
            let (config, name) = transport
                .tls_client
                .as_ref()
                .and_then(|t| t.client.clone())
                .ok_or_else(|| invalid("no TLS client settings"))?;
            let stream = TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("TLS with {}: {e}", peer.addr)))?;
            Ok(start(stream, peer, weak))
        }
        _ => Ok(start(tcp, peer, weak)),
    }
}

/// Registers the connection and spawns its reader and writer.
fn start<S>(stream: S, peer: Peer, transport: Weak<Transport>) -> mpsc::UnboundedSender<Bytes>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    if let Some(t) = transport.upgrade() {
        t.register(peer, tx.clone());
    }
    let (mut reader, mut writer) = tokio::io::split(stream);
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let sender = tx.clone();
    let limits = transport.upgrade().map(|t| t.limits).unwrap_or_default();
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(8192);
        loop {
            // Nothing for `idle`, or half a message for `partial`: the connection goes.
            let wait = if buf.is_empty() {
                limits.idle
            } else {
                limits.partial
            };
            match tokio::time::timeout(wait, reader.read_buf(&mut buf)).await {
                Ok(Ok(0) | Err(_)) | Err(_) => break,
                Ok(Ok(_)) => {}
            }
            let Some(messages) = frames(&mut buf, peer, &sender) else {
                break;
            };
            if !deliver(messages, peer, &transport).await {
                break;
            }
        }
        if let Some(t) = transport.upgrade() {
            t.unregister(&peer);
        }
    });
    tx
}

/// Takes every complete message off `buf`, answering CRLF keep-alives. `None` when the
/// connection must close: framing is lost after a malformed message (answered with 400).
fn frames(
    buf: &mut BytesMut,
    peer: Peer,
    sender: &mpsc::UnboundedSender<Bytes>,
) -> Option<Vec<Incoming>> {
    let mut out = Vec::new();
    loop {
        if buf.starts_with(b"\r\n\r\n") {
            let _ = sender.send(Bytes::from_static(b"\r\n"));
            buf.advance(4);
            continue;
        }
        match Message::parse_stream(buf) {
            Ok(None) => return Some(out),
            Ok(Some((mut message, used))) => {
                buf.advance(used);
                if let Message::Request(r) = &mut message {
                    stamp_received(&mut r.headers, peer.addr);
                }
                out.push(Incoming { message, peer });
            }
            Err(e) => {
                if let Some(reply) = bad_request(buf, &e.to_string()) {
                    let _ = sender.send(reply);
                }
                return None;
            }
        }
    }
}

/// Hands the messages on, each within the address's budget: over it, the connection waits
/// (and is not read meanwhile) rather than losing a message. False when the transport or
/// the endpoint is gone.
async fn deliver(messages: Vec<Incoming>, peer: Peer, transport: &Weak<Transport>) -> bool {
    for m in messages {
        loop {
            let Some(t) = transport.upgrade() else {
                return false;
            };
            if t.admit(peer.addr.ip()) {
                break;
            }
            let pause = t.rate_pause().unwrap_or_default();
            drop(t);
            tokio::time::sleep(pause).await;
        }
        let Some(incoming) = transport.upgrade().map(|t| t.incoming.clone()) else {
            return false;
        };
        if incoming.send(m).await.is_err() {
            return false;
        }
    }
    true
}
