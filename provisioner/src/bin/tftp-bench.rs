//! `tftp-bench --server ADDR --file NAME [--concurrent N] [--blksize B] [--rounds R]`:
//! fetches NAME N times at once (R rounds), then prints the median and p99 transfer time
//! and the throughput, as `name: N fetches, median X ms, p99 Y ms, Z MiB/s`. Any TFTP
//! server will do, so the provisioner and tftpd-hpa are measured by the same client.

use anyhow::{Context, Result, bail};
use provisioner::tftp::Packet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

struct Args {
    server: SocketAddr,
    file: String,
    concurrent: usize,
    rounds: usize,
    blksize: Option<usize>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        server: "127.0.0.1:69".parse()?,
        file: String::new(),
        concurrent: 1,
        rounds: 1,
        blksize: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let v = it.next().with_context(|| format!("{f} needs a value"))?;
        match f.as_str() {
            "--server" => a.server = v.parse().context("--server")?,
            "--file" => a.file = v,
            "--concurrent" => a.concurrent = v.parse().context("--concurrent")?,
            "--rounds" => a.rounds = v.parse().context("--rounds")?,
            "--blksize" => a.blksize = Some(v.parse().context("--blksize")?),
            other => bail!("unknown flag {other}"),
        }
    }
    if a.file.is_empty() {
        bail!("--file is required");
    }
    Ok(a)
}

/// One complete read; returns the bytes received.
async fn fetch(server: SocketAddr, name: &str, blksize: Option<usize>) -> Result<usize> {
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let options = blksize
        .map(|b| vec![("blksize".to_string(), b.to_string())])
        .unwrap_or_default();
    let rrq = Packet::Rrq {
        name: name.to_string(),
        mode: "octet".into(),
        options,
    }
    .to_bytes();
    sock.send_to(&rrq, server).await?;
    let size = blksize.unwrap_or(512);
    let mut buf = vec![0u8; 65_536];
    let mut total = 0;
    let mut expected: u16 = 1;
    loop {
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .context("timed out")??;
        match Packet::parse(&buf[..n]) {
            Ok(Packet::Oack { .. }) => sock
                .send_to(&Packet::Ack { block: 0 }.to_bytes(), from)
                .await
                .map(|_| ())?,
            Ok(Packet::Data { block, data }) => {
                if block == expected {
                    total += data.len();
                    expected = expected.wrapping_add(1);
                }
                sock.send_to(&Packet::Ack { block }.to_bytes(), from)
                    .await?;
                if block == expected.wrapping_sub(1) && data.len() < size {
                    return Ok(total);
                }
            }
            Ok(Packet::Error { message, .. }) => bail!("server error: {message}"),
            other => bail!("unexpected {other:?}"),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let mut times = Vec::new();
    let mut bytes = 0usize;
    let start = Instant::now();
    for _ in 0..a.rounds {
        let tasks: Vec<_> = (0..a.concurrent)
            .map(|_| {
                let (server, name, blk) = (a.server, a.file.clone(), a.blksize);
                tokio::spawn(async move {
                    let t0 = Instant::now();
                    fetch(server, &name, blk).await.map(|n| (t0.elapsed(), n))
                })
            })
            .collect();
        for t in tasks {
            let (d, n) = t.await??;
            times.push(d);
            bytes += n;
        }
    }
    let wall = start.elapsed();
    times.sort();
    println!(
        "{}: {} fetches, median {:.2} ms, p99 {:.2} ms, {:.1} MiB/s",
        a.file,
        times.len(),
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        bytes as f64 / wall.as_secs_f64() / 1_048_576.0
    );
    Ok(())
}
