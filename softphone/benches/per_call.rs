//! CPU time and memory per active call: the headless softphone beside baresip, carrying the
//! same calls in the same run (issue #7). For G.711 (PCMU) and Opus, 20 ms frames:
//! `PAIRS` (default 4) headless softphones (stations 201…) each call a baresip (301…)
//! through pbx-lite with direct media, so each call's two ends are one softphone and one
//! baresip. Both ends play a WAV file and record what they decode (baresip's sndfile records
//! what it sends as well).
//!
//! CPU time is read from `/proc/PID/task/*/schedstat` (nanoseconds on a CPU, every thread) over
//! `IDLE_SECONDS` (default 5) registered and idle, then over `CALL_SECONDS` (default 20) in
//! the call; a call's cost is the difference of the two rates, as a share of one core.
//! Memory is `VmRSS` idle and in the call. After each run both recordings must hold the
//! other side's audio, so the figures are those of calls that carried sound both ways.
//!
//! Run with `scripts/bench-softphone` (or `cargo bench -p softphone --bench per_call`).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use e2e::baresip::Baresip;
use std::io::Write;
use std::time::{Duration, Instant};
use support::{Pbx, expect, samples, sine};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Nanoseconds every live thread of `pid` has spent on a CPU.
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// CPU (ns) of each process over `secs` seconds, and the seconds it really took.
fn cpu_over(pids: &[u32], secs: u64) -> (Vec<u64>, f64) {
    let before: Vec<u64> = pids.iter().map(|&p| cpu_ns(p)).collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let took = t0.elapsed().as_secs_f64();
    let after: Vec<u64> = pids.iter().map(|&p| cpu_ns(p)).collect();
    (
        after.iter().zip(&before).map(|(a, b)| a - b).collect(),
        took,
    )
}

/// Per-call figures of one kind of phone: CPU as a share of one core, RSS in KiB.
struct Figures {
    cpu_share: f64,
    rss_idle: f64,
    rss_call: f64,
}

impl Figures {
    fn of(idle: &(Vec<u64>, f64), call: &(Vec<u64>, f64), rss: &[(u64, u64)]) -> Figures {
        let n = rss.len() as f64;
        let rate = |(v, secs): &(Vec<u64>, f64)| v.iter().sum::<u64>() as f64 / 1e9 / secs;
        let mean = |f: fn(&(u64, u64)) -> u64| rss.iter().map(f).sum::<u64>() as f64 / n;
        Figures {
            cpu_share: (rate(call) - rate(idle)) / n,
            rss_idle: mean(|r| r.0),
            rss_call: mean(|r| r.1) - mean(|r| r.0),
        }
    }
}

/// One run: `pairs` calls in `codec` ("PCMU" or "opus"); the softphones' figures, baresip's.
fn run(codec: &str, pairs: usize, idle_secs: u64, call_secs: u64) -> (Figures, Figures) {
    let ours: Vec<String> = (0..pairs).map(|i| format!("{}", 201 + i)).collect();
    let theirs: Vec<String> = (0..pairs).map(|i| format!("{}", 301 + i)).collect();
    let all: Vec<&str> = ours.iter().chain(&theirs).map(String::as_str).collect();
    let pbx = Pbx::start(&all);
    let dir = pbx.dir.path().to_path_buf();
    let opus = codec == "opus";
    let (our_tone, their_tone) = (dir.join("tone440.wav"), dir.join("tone600.wav"));
    // baresip's aufile plays at the file's rate, which must be the codec's; the softphone
    // gets its file at the same rate (as from a sound card), so neither resamples.
    let rate: usize = if opus { 48000 } else { 8000 };
    sine(&our_tone, 440.0, rate as u32);
    sine(&their_tone, 600.0, rate as u32);

    let mut phones = Vec::new();
    for n in &ours {
        let heard = dir.join(format!("heard-{n}"));
        std::fs::create_dir_all(&heard).unwrap();
        let config = format!(
            "{}codecs = [\"{codec}\"]\n[audio]\nsource = \"{}\"\nrecord_dir = \"{}\"\n",
            pbx.account(n, &format!("Pw-{n}-secret")),
            our_tone.display(),
            heard.display()
        );
        let (child, rx, stdin) = support::softphone(&dir, n, &config);
        expect(&rx, "registered");
        phones.push((child, rx, stdin, heard));
    }
    let peers: Vec<Baresip> = theirs
        .iter()
        .map(|n| support::baresip_station(&pbx, n, &their_tone, opus))
        .collect();
    let our_pids: Vec<u32> = phones.iter().map(|p| p.0.0.id()).collect();
    let their_pids: Vec<u32> = peers.iter().map(Baresip::pid).collect();

    std::thread::sleep(Duration::from_secs(1));
    let our_rss_idle: Vec<u64> = our_pids.iter().map(|&p| rss_kib(p)).collect();
    let their_rss_idle: Vec<u64> = their_pids.iter().map(|&p| rss_kib(p)).collect();
    let (our_idle, their_idle) = {
        let all: Vec<u32> = our_pids.iter().chain(&their_pids).copied().collect();
        let (cpu, secs) = cpu_over(&all, idle_secs);
        ((cpu[..pairs].to_vec(), secs), (cpu[pairs..].to_vec(), secs))
    };

    for ((_, rx, stdin, _), n) in phones.iter_mut().zip(&theirs) {
        writeln!(stdin, "dial {n}").unwrap();
        expect(rx, "established");
    }
    std::thread::sleep(Duration::from_secs(1));
    let all: Vec<u32> = our_pids.iter().chain(&their_pids).copied().collect();
    let (cpu, secs) = cpu_over(&all, call_secs);
    let (our_call, their_call) = ((cpu[..pairs].to_vec(), secs), (cpu[pairs..].to_vec(), secs));
    let our_rss: Vec<(u64, u64)> = our_pids
        .iter()
        .zip(&our_rss_idle)
        .map(|(&p, &idle)| (idle, rss_kib(p)))
        .collect();
    let their_rss: Vec<(u64, u64)> = their_pids
        .iter()
        .zip(&their_rss_idle)
        .map(|(&p, &idle)| (idle, rss_kib(p)))
        .collect();

    for (_, rx, stdin, _) in &mut phones {
        writeln!(stdin, "hangup").unwrap();
        expect(rx, "ended");
    }
    std::thread::sleep(Duration::from_millis(500));
    // Sound both ways, or the figures are not those of a call.
    let want = (call_secs as usize) * rate;
    for ((_, _, _, heard), b) in phones.iter().zip(&peers) {
        let got = support::newest_samples(heard);
        let f = media::analysis::dominant_frequency(&got[rate..rate * 3], rate as u32);
        assert!(
            got.len() > want && (f - 600.0).abs() < 5.0,
            "a softphone recorded {} samples at {f} Hz",
            got.len()
        );
        let dec = samples(b.decoded_files().first().unwrap());
        let f = media::analysis::dominant_frequency(&dec[rate..rate * 3], rate as u32);
        assert!(
            dec.len() > want && (f - 440.0).abs() < 5.0,
            "a baresip recorded {} samples at {f} Hz",
            dec.len()
        );
    }
    (
        Figures::of(&our_idle, &our_call, &our_rss),
        Figures::of(&their_idle, &their_call, &their_rss),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and gets no run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let pairs = env_or("PAIRS", 4) as usize;
    let idle_secs = env_or("IDLE_SECONDS", 5);
    let call_secs = env_or("CALL_SECONDS", 20);
    println!(
        "per active call, 20 ms frames, {pairs} calls at once, {call_secs} s in the call \
         (CPU: share of one core above idle; memory: VmRSS)"
    );
    println!(
        "{:<6} {:<10} {:>9} {:>12} {:>13}",
        "codec", "phone", "CPU", "RSS idle", "RSS per call"
    );
    let codecs = std::env::var("CODECS").unwrap_or_else(|_| "PCMU opus".into());
    for codec in codecs.split_whitespace() {
        let (ours, theirs) = run(codec, pairs, idle_secs, call_secs);
        for (name, f) in [("softphone", &ours), ("baresip", &theirs)] {
            println!(
                "{:<6} {:<10} {:>8.3}% {:>8.0} KiB {:>9.0} KiB",
                codec,
                name,
                f.cpu_share * 100.0,
                f.rss_idle,
                f.rss_call
            );
        }
        e2e::kit::bench_row(
            &format!("softphone CPU per {codec} call"),
            ours.cpu_share * 100.0,
            "baresip",
            theirs.cpu_share * 100.0,
            "% of a core",
            if codec == "opus" {
                "ratio<=1.0"
            } else {
                "ratio<=0.5"
            },
        );
        println!(
            "{:<6} {:<10} {:>8.2}x {:>12.2}x {:>12}",
            codec,
            "ratio",
            ours.cpu_share / theirs.cpu_share,
            ours.rss_idle / theirs.rss_idle,
            format!("{:+.0} KiB", ours.rss_call - theirs.rss_call)
        );
    }
}
