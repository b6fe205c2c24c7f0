//! The HTTP listener every web surface of the office runs on (provisioning and admin): axum
//! routes served by hyper with limits an attacker cannot outlast. Connections are capped in
//! all and per address (past the caps a connection is closed at once), a request's headers
//! must arrive within [`HttpLimits::header_read`], a connection lives at most
//! [`HttpLimits::lifetime`], and a body is read up to [`HttpLimits::body`]. So slow or
//! endless uploads hold a bounded amount of memory, and the accept loop waits instead of
//! spinning when the machine is out of file descriptors.

use crate::slots::Slots;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// What one connection, and one address, may hold of an HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Open connections in all.
    pub connections: usize,
    /// Open connections from one address.
    pub per_address: usize,
    /// Time for a request's headers to arrive.
    pub header_read: Duration,
    /// Time a connection may stay open, whatever it does.
    pub lifetime: Duration,
    /// Largest request body read (phones send none; the Bria login sends a form).
    pub body: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            connections: 256,
            per_address: 16,
            header_read: Duration::from_secs(10),
            lifetime: Duration::from_secs(300),
            body: 64 * 1024,
        }
    }
}

/// Serves `app` on `listener` until the task is dropped. Handlers may extract
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(listener: TcpListener, app: Router, limits: HttpLimits) {
    serve_on(listener, app, limits, None).await;
}

/// [`serve`] over TLS (HTTPS only): the handshake must end within
/// [`HttpLimits::header_read`] too.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    tls: tokio_rustls::TlsAcceptor,
) {
    serve_on(listener, app, limits, Some(tls)).await;
}

async fn serve_on(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let app = app.layer(DefaultBodyLimit::max(limits.body));
    let open = Arc::new(Slots::default());
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => {
                // Out of file descriptors, say: wait instead of spinning on the error.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = sip::transport::canonical(peer);
        let Some(place) = open.take(peer.ip(), limits.connections, limits.per_address) else {
            continue; // dropped: closed at once
        };
        let app = app.clone().layer(axum::Extension(ConnectInfo(peer)));
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = TowerToHyperService::new(app);
            let builder = {
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(TokioTimer::new())
                    .header_read_timeout(limits.header_read);
                b
            };
            let _ = tokio::time::timeout(limits.lifetime, async {
                match tls {
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                    Some(tls) => {
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(limits.header_read, tls.accept(tcp)).await
                        else {
                            return;
                        };
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            })
            .await;
            drop(place);
        });
    }
}
