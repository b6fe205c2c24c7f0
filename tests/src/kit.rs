//! What every test suite of the workspace's programs needs: whether to skip the tests with
//! real peers, a port to give a server, and waiting for that server to say it listens.

use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// `SIP_SKIP_PEERS=1` (`scripts/check --quick`) skips the tests that need real peers.
pub fn skip_peers() -> bool {
    std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1")
}

/// A loopback port that was free for UDP and TCP a moment ago, from 20000-29999: below the
/// ephemeral ports other processes get and away from the relay ranges the tests give
/// pbx-lite (10000-19999 by default, 30000 and up in the call tests), so that a port chosen
/// here is rarely taken before the server binds it.
pub fn free_port() -> u16 {
    loop {
        let p = 20000 + rand::random::<u16>() % 10000;
        if UdpSocket::bind(("127.0.0.1", p)).is_ok() && TcpListener::bind(("127.0.0.1", p)).is_ok()
        {
            return p;
        }
    }
}

/// One line of `scripts/bench`'s table: our figure beside `peer`'s for the same work (`peer`
/// empty and its figure 0 where no peer does it), in `unit`, and the `goal` the issue set —
/// `ratio>=1.2` or `ratio<=1.0` for ours over the peer's, `value<=2` for ours alone, `-` for
/// none. `scripts/bench` collects these lines from every bench it runs.
pub fn bench_row(what: &str, ours: f64, peer: &str, theirs: f64, unit: &str, goal: &str) {
    println!("bench-row\t{what}\t{ours:.2}\t{peer}\t{theirs:.2}\t{unit}\t{goal}");
}

/// Waits until `child`'s log at `log` has, past byte `from` (where this start's lines
/// begin), a line containing `line` — the server's own word that it listens, where a
/// successful connect could reach another test's server on a port both were given.
/// `Err` with the log when the child exits first or `within` passes.
pub fn wait_for_log_line(
    child: &mut Child,
    log: &Path,
    from: usize,
    line: &str,
    within: Duration,
) -> Result<(), String> {
    let t0 = Instant::now();
    loop {
        let text = std::fs::read(log).unwrap_or_default();
        let ours = String::from_utf8_lossy(text.get(from..).unwrap_or_default());
        if ours.lines().any(|l| l.contains(line)) {
            return Ok(());
        }
        let fail = |why: String| Err(format!("{why} before logging {line:?}:\n{ours}"));
        if let Ok(Some(status)) = child.try_wait() {
            return fail(format!("exited ({status})"));
        }
        if t0.elapsed() > within {
            return fail(format!("nothing in {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
