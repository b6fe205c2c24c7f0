//! Recovery by retransmission (RFC 3261 §17) under 20% random packet loss.
//!
//! The test creates a network namespace with only `lo` up, drops 20% of the packets entering
//! `lo` there (`iptables -m statistic --mode random --probability 0.2`; this kernel has no
//! netem), and runs two `sip-ua` endpoints inside it: 100 transactions — OPTIONS answered
//! 200, and INVITEs answered 486 (so Timer G, the ACK and its loss are exercised too) — must
//! all complete, while the DROP counter shows packets really were lost. Nothing can leave the
//! namespace. Needs root (CI runs as root); skipped only with SIP_SKIP_PEERS=1.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;
use support::*;

const UA: &str = env!("CARGO_BIN_EXE_sip-ua");

/// A network namespace deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("sip-loss-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(ok.success(), "ip netns add failed (root needed)");
        let ns = Netns(name);
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(args);
        c
    }

    fn exec_ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn hundred_transactions_complete_under_20_percent_loss() {
    if skip_peers() {
        return;
    }
    let ns = Netns::new();
    ns.exec_ok(&[
        "iptables",
        "-A",
        "INPUT",
        "-i",
        "lo",
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.2",
        "-j",
        "DROP",
    ]);
    let uas = spawn(&mut ns.cmd(&[UA, "uas", "--listen", "127.0.0.1:5060", "--mix"]));
    std::thread::sleep(Duration::from_millis(500));
    let out = run(
        &mut ns.cmd(&[
            UA,
            "options",
            "--target",
            "127.0.0.1:5060",
            "--count",
            "100",
            "--mix",
            "--concurrency",
            "10",
            "--rate",
            "1000",
        ]),
        Duration::from_secs(180),
    );
    drop(uas);
    let log = text(&out);
    assert!(log.contains("100 passed, 0 failed"), "{log}");
    let counters = ns.exec_ok(&["iptables", "-L", "INPUT", "-v", "-n", "-x"]);
    let dropped: u64 = counters
        .lines()
        .find(|l| l.contains("DROP"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    // ~100 requests + ~100 responses (+ 100 Trying and ACKs for the INVITEs) at 20%.
    assert!(
        dropped >= 20,
        "only {dropped} packets dropped: loss not in effect"
    );
    eprintln!("{dropped} packets dropped; all 100 transactions completed");
}
