//! Helpers for tests that run real processes: free loopback ports, children killed on drop,
//! and the switch that skips peer tests in `scripts/check --quick`.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// True when peer tests are switched off (`SIP_SKIP_PEERS=1`); they never skip silently
/// otherwise: a missing peer is a failure.
pub(crate) fn skip_peers() -> bool {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        eprintln!("SIP_SKIP_PEERS=1: peer test skipped");
        return true;
    }
    false
}

/// A loopback port free for both UDP and TCP at the time of asking.
pub(crate) fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A child process killed when dropped.
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn spawn(cmd: &mut Command) -> Guard {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    Guard(child)
}

/// Runs a command to completion with a time limit; panics when it overruns.
pub(crate) fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{cmd:?} ran over {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Waits until the server under test is up: a TCP connect succeeds (`tcp`), or the UDP port
/// is taken.
pub(crate) fn wait_for_port(port: u16, tcp: bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let up = if tcp {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        } else {
            UdpSocket::bind(("127.0.0.1", port)).is_err()
        };
        if up {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on port {port}");
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
