//! What the pbx-lite integration tests share.
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod office;

#[allow(unused_imports)] // each test binary uses some of them
pub(crate) use e2e::kit::{free_port, skip_peers as skip};

/// The pbx-lite binary under test.
pub(crate) const PBX: &str = env!("CARGO_BIN_EXE_pbx-lite");

/// Runs `pbx-lite --db DB ARGS…`, which must succeed.
pub(crate) fn cli(db: &std::path::Path, args: &[&str]) -> std::process::Output {
    let o = std::process::Command::new(PBX)
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Where [`serve`] writes what the PBX logs (every run appends).
/// Adds station `number` with user ID `u<number>` and password `Pw-<number>-secret`.
pub(crate) fn add_station(db: &std::path::Path, number: &str) {
    let out = cli(
        db,
        &[
            "station",
            "add",
            "--number",
            number,
            "--user-id",
            &format!("u{number}"),
            "--password",
            &format!("Pw-{number}-secret"),
        ],
    );
    assert!(out.status.success(), "station add {number}: {out:?}");
}

pub(crate) fn log_of(db: &std::path::Path) -> std::path::PathBuf {
    db.with_extension("log")
}

/// Starts `pbx-lite --db DB serve` with SIP on 127.0.0.1:`port`, no provisioning, and
/// `extra` flags (`--admin 127.0.0.1:0` and `--tls 127.0.0.1:0` unless they name them), its log in [`log_of`]`(db)`;
/// returns once it listens.
pub(crate) fn serve(db: &std::path::Path, port: u16, extra: &[&str]) -> std::process::Child {
    let mut c = std::process::Command::new(PBX);
    c.arg("--db").arg(db).args([
        "serve",
        "--sip",
        &format!("127.0.0.1:{port}"),
        "--no-provisioning",
    ]);
    if !extra.contains(&"--admin") {
        c.args(["--admin", "127.0.0.1:0"]);
    }
    if !extra.contains(&"--tls") {
        c.args(["--tls", "127.0.0.1:0"]);
    }
    let from = std::fs::metadata(log_of(db)).map_or(0, |m| m.len() as usize);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_of(db))
        .unwrap();
    let mut child = c
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // Its own word, not a connect, which could reach another test's server on this port.
    if let Err(e) = e2e::kit::wait_for_log_line(
        &mut child,
        &log_of(db),
        from,
        &format!("SIP on 127.0.0.1:{port} "),
        std::time::Duration::from_secs(10),
    ) {
        let _ = child.kill();
        panic!("pbx-lite did not start: {e}");
    }
    child
}
