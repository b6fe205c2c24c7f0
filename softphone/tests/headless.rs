//! The headless softphone against the real `pbx-lite serve` on loopback (issue #7): two
//! lines register with digest auth — one with the right password, one with a wrong one —,
//! `status` reports them, a bad command gets an error event and changes nothing, and
//! `quit` unregisters before it exits.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The pbx-lite binary of this workspace, built if it is not there yet.
fn pbx_lite() -> PathBuf {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/pbx-lite");
    if !target.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "-p", "pbx-lite"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cargo build -p pbx-lite failed");
    }
    target
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cli(db: &Path, args: &[&str]) -> String {
    let o = Command::new(pbx_lite())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn registered(db: &Path, number: &str) -> bool {
    let v: serde_json::Value = serde_json::from_str(&cli(db, &["status", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .any(|r| r["number"] == number && r["registered"] == true)
}

/// The phone's events, one JSON value per line, as they come.
fn events(child: &mut Child) -> mpsc::Receiver<serde_json::Value> {
    let (tx, rx) = mpsc::channel();
    let out = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    rx
}

/// Waits for the next event named `name`, passing over others.
fn expect(rx: &mpsc::Receiver<serde_json::Value>, name: &str) -> serde_json::Value {
    loop {
        let v = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no {name} event"));
        if v["event"] == name {
            return v;
        }
    }
}

#[test]
fn lines_register_report_refuse_bad_commands_and_unregister_on_quit() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("office.db");
    for n in ["201", "202"] {
        cli(
            &db,
            &[
                "station",
                "add",
                "--number",
                n,
                "--user-id",
                &format!("u{n}"),
                "--password",
                &format!("Pw-{n}-secret"),
            ],
        );
    }
    let port = free_port();
    let _pbx = Kill(
        Command::new(pbx_lite())
            .arg("--db")
            .arg(&db)
            .args([
                "serve",
                "--sip",
                &format!("127.0.0.1:{port}"),
                "--no-provisioning",
            ])
            .args(["--admin", "127.0.0.1:0"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "pbx-lite did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let config = dir.path().join("phone.toml");
    std::fs::write(
        &config,
        format!(
            "[[account]]\nnumber = \"201\"\nuser_id = \"u201\"\npassword = \"Pw-201-secret\"\nserver = \"127.0.0.1\"\nport = {port}\n\n[[account]]\nnumber = \"202\"\nuser_id = \"u202\"\npassword = \"not-the-password\"\nserver = \"127.0.0.1\"\nport = {port}\n"
        ),
    )
    .unwrap();
    let mut phone = Kill(
        Command::new(env!("CARGO_BIN_EXE_softphone"))
            .args(["--headless", "--sip", "127.0.0.1:0", "--config"])
            .arg(&config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rx = events(&mut phone.0);
    assert_eq!(expect(&rx, "ready")["lines"], 2);
    let ok = expect(&rx, "registered");
    assert_eq!(
        (ok["line"].as_u64(), ok["expires"].as_u64()),
        (Some(1), Some(600))
    );
    let refused = expect(&rx, "registration_failed");
    assert_eq!(refused["line"], 2);
    assert!(registered(&db, "201") && !registered(&db, "202"));
    let mut stdin = phone.0.stdin.take().unwrap();
    writeln!(stdin, "fly to the moon").unwrap();
    assert!(
        expect(&rx, "error")["message"]
            .as_str()
            .unwrap()
            .contains("unknown command")
    );
    writeln!(stdin, "status").unwrap();
    let st = expect(&rx, "status");
    assert_eq!(st["lines"][0]["state"], "registered");
    assert_eq!(st["lines"][1]["state"], "failed");
    writeln!(stdin, "quit").unwrap();
    assert_eq!(expect(&rx, "unregistered")["line"], 1);
    expect(&rx, "quit");
    assert!(phone.0.wait().unwrap().success());
    assert!(!registered(&db, "201"), "quit removed the binding");
}
