//! # provisioner — the provisioning servers
//!
//! Layer: application. Serves the files of `profiles` rendered from the `stations` database
//! over TFTP and HTTP, as desk phones found through DHCP option 66/150/160 ask for them.
//!
//! ## Brief overview
//! - [`office::Office`]: database + profiles, and [`office::Office::fetch`], the one render
//!   path behind TFTP, HTTP and `provisioner render`.
//! - [`tftp`]: the pure TFTP codec and read-transfer machine; [`tftp_server`]: its sockets.
//! - [`http`]: axum routes (files, Cisco XML directory, Bria login); [`listener`]: the
//!   HTTP server under them, with connection caps and timeouts (admin uses it too).
//! - [`dhcp`]: option 66/150/160 snippets for dnsmasq, ISC dhcpd and Kea.
//! - [`serve`]: runs both servers on sockets the caller bound (tests bind port 0).

pub mod dhcp;
pub mod http;
pub mod listener;
pub mod office;
pub mod slots;
pub mod tftp;
pub mod tftp_server;

use office::Office;
use std::sync::Arc;
use tokio::net::{TcpListener, UdpSocket};

/// Threads for file lookups (SQLite and rendering, which take the database's lock anyway).
pub const LOOKUP_THREADS: usize = 16;

/// The runtime the servers run on (`provisioner serve` and `pbx-lite serve`): lookups past
/// [`LOOKUP_THREADS`] queue rather than start a thread each, so a flood of requests costs
/// a bounded number of threads.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(LOOKUP_THREADS)
        .build()
}

/// Sends the servers' log (`tracing`) to stderr, one line an event: RFC 3339 UTC time,
/// level, target and message. `PBX_LOG` chooses what is shown, as `tracing` targets and
/// levels (`info` by default; `debug`, or `warn,security=warn` for refusals only). Refusals
/// are on the `security` target, one line each with `address=`.
pub fn log_to_stderr() {
    let filter = std::env::var("PBX_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing_subscriber::filter::LevelFilter::INFO)
        });
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(filter)
        .try_init();
}

/// The current year and Unix time: the one place the provisioner reads the clock.
pub fn clock() -> (i32, i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    (year_of(now), now)
}

/// The Gregorian year of a Unix time (Hinnant's civil-from-days).
pub fn year_of(unix: i64) -> i32 {
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2)) as i32
}

/// Runs the TFTP and HTTP servers on the given sockets until one of them fails.
pub async fn serve(
    office: Arc<Office>,
    tftp: Option<UdpSocket>,
    http: Option<TcpListener>,
) -> std::io::Result<()> {
    let t = tftp.map(|s| tokio::spawn(tftp_server::serve(s, office.clone())));
    let h = http.map(|l| {
        let app = http::router(office.clone());
        tokio::spawn(listener::serve(l, app, listener::HttpLimits::default()))
    });
    match (t, h) {
        (Some(t), Some(h)) => {
            tokio::select! {
                _ = t => {}
                r = h => { r.map_err(std::io::Error::other)?; }
            }
        }
        (Some(t), None) => {
            let _ = t.await;
        }
        (None, Some(h)) => {
            h.await.map_err(std::io::Error::other)?;
        }
        (None, None) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn years() {
        assert_eq!(super::year_of(0), 1970);
        assert_eq!(super::year_of(1_795_314_857), 2026);
        assert_eq!(super::year_of(951_782_400), 2000); // 2000-02-29
        assert_eq!(super::year_of(-1), 1969);
    }
}
