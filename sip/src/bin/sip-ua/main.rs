//! `sip-ua`: a small user agent on the `sip` crate, for interop and load tests.
//!
//! ```text
//! sip-ua uas --listen ADDR [--transport udp|tcp]
//!     answers INVITE (180, 200 with SDP, 2xx retransmitted until ACK), BYE, OPTIONS,
//!     CANCEL (487); with --user U --password P it is also a registrar demanding digest
//!     auth for REGISTER (401, then 200 or 403; `--digest md5|sha256|both`, default md5
//!     because SIPp and legacy phones answer only the first challenge and only MD5);
//!     runs until killed.
//! sip-ua uac --target ADDR --calls N [--rate CPS] [--transport udp|tcp] [--local ADDR]
//!     places N calls (INVITE, ACK, BYE); prints "N passed, M failed"; exit 1 on a failure.
//! sip-ua options --target ADDR --count N [--concurrency C] [--mix] [--transport ..]
//!     runs N OPTIONS transactions (with --mix, every other one is an INVITE the peer answers
//!     486); prints "N passed, M failed".
//! ```
//! Timers are RFC 3261 defaults (T1 500 ms) unless `--t1-ms` says otherwise.

mod uac;
mod uas;

use anyhow::{Context, Result, bail};
use sip::auth::DigestAlgorithm;
use sip::transaction::{TimerConfig, TransportKind};
use sip::transport::TransportConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// Parsed command line.
pub(crate) struct Args {
    pub(crate) mode: String,
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) target: Option<SocketAddr>,
    pub(crate) transport: TransportKind,
    pub(crate) count: usize,
    pub(crate) rate: f64,
    pub(crate) concurrency: usize,
    pub(crate) mix: bool,
    pub(crate) timers: TimerConfig,
    /// Credentials the UAS demands for REGISTER (digest auth), if any.
    pub(crate) credentials: Option<(String, String)>,
    /// Digest algorithms the registrar offers, first preferred.
    pub(crate) digest: Vec<DigestAlgorithm>,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().context("usage: sip-ua uas|uac|options [flags]")?;
    let mut a = Args {
        mode,
        listen: None,
        target: None,
        transport: TransportKind::Udp,
        count: 1,
        rate: 100.0,
        concurrency: 10,
        mix: false,
        timers: TimerConfig::default(),
        credentials: None,
        digest: vec![DigestAlgorithm::Md5],
    };
    let (mut user, mut password) = (None, None);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" | "--local" => a.listen = Some(value()?.parse().context("bad address")?),
            "--target" => a.target = Some(value()?.parse().context("bad --target")?),
            "--transport" => {
                a.transport = match value()?.as_str() {
                    "udp" => TransportKind::Udp,
                    "tcp" => TransportKind::Tcp,
                    other => bail!("--transport: {other:?} is not udp or tcp"),
                }
            }
            "--calls" | "--count" => a.count = value()?.parse().context("bad count")?,
            "--rate" => a.rate = value()?.parse().context("bad --rate")?,
            "--concurrency" => a.concurrency = value()?.parse().context("bad --concurrency")?,
            "--t1-ms" => a.timers.t1 = Duration::from_millis(value()?.parse()?),
            "--mix" => a.mix = true,
            "--user" => user = Some(value()?),
            "--password" => password = Some(value()?),
            "--digest" => {
                a.digest = match value()?.as_str() {
                    "md5" => vec![DigestAlgorithm::Md5],
                    "sha256" => vec![DigestAlgorithm::Sha256],
                    "both" => vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
                    other => bail!("--digest: {other:?} is not md5, sha256 or both"),
                }
            }
            other => bail!("unknown flag {other:?}"),
        }
    }
    a.credentials = match (user, password) {
        (Some(u), Some(p)) => Some((u, p)),
        (None, None) => None,
        _ => bail!("--user and --password go together"),
    };
    Ok(a)
}

pub(crate) fn transports(kind: TransportKind, addr: SocketAddr) -> TransportConfig {
    match kind {
        TransportKind::Tcp => TransportConfig {
            tcp: Some(addr),
            ..Default::default()
        },
        _ => TransportConfig {
            udp: Some(addr),
            ..Default::default()
        },
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = match parse_args() {
        Ok(args) => match args.mode.as_str() {
            "uas" => uas::run(args).await,
            "uac" => uac::run_calls(args).await,
            "options" => uac::run_options(args).await,
            other => Err(anyhow::anyhow!("unknown mode {other:?}")),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("sip-ua: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
