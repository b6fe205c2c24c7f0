//! The headless softphone against the real `pbx-lite serve` on loopback (issue #7): two
//! lines register with digest auth — one with the right password, one with a wrong one —,
//! `status` reports them, a bad command gets an error event and changes nothing, and
//! `quit` unregisters before it exits.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use support::{Pbx, expect, registered, softphone};

#[test]
fn lines_register_report_refuse_bad_commands_and_unregister_on_quit() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let pbx = Pbx::start(&["201", "202"]);
    let config = format!(
        "{}\n{}",
        pbx.account("201", "Pw-201-secret"),
        pbx.account("202", "not-the-password")
    );
    let (mut phone, rx, mut stdin) = softphone(pbx.dir.path(), "phone", &config);
    let db = &pbx.db;
    assert_eq!(expect(&rx, "ready")["lines"], 2);
    let ok = expect(&rx, "registered");
    assert_eq!(
        (ok["line"].as_u64(), ok["expires"].as_u64()),
        (Some(1), Some(600))
    );
    let refused = expect(&rx, "registration_failed");
    assert_eq!(refused["line"], 2);
    assert!(registered(db, "201") && !registered(db, "202"));
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
    assert!(!registered(db, "201"), "quit removed the binding");
}

/// `--control`: a loopback TCP connection takes the stdin commands and gets every event back
/// as a JSON line (the same server the window uses).
#[test]
fn the_control_socket_takes_commands_and_gives_events() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    // A line whose server is nobody: it does not matter to the control socket.
    let config = dir.path().join("phone.toml");
    std::fs::write(
        &config,
        "[[account]]\nnumber = \"201\"\npassword = \"x\"\nserver = \"127.0.0.1\"\nport = 9\n",
    )
    .unwrap();
    let port = support::free_port();
    let _phone = support::Kill(
        std::process::Command::new(env!("CARGO_BIN_EXE_softphone"))
            .args(["--headless", "--sip", "127.0.0.1:0", "--control"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--config")
            .arg(&config)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stream = None;
    support::wait_for("the control socket", || {
        stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok();
        stream.is_some()
    });
    let mut stream = stream.unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    writeln!(stream, "status\nfly to the moon").unwrap();
    let mut events = std::io::BufReader::new(stream.try_clone().unwrap()).lines();
    let mut seen = Vec::new();
    while !(seen.contains(&"status".to_string()) && seen.contains(&"error".to_string())) {
        let line = events.next().expect("an event line").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        seen.push(v["event"].as_str().unwrap_or_default().to_string());
    }
    writeln!(stream, "quit").unwrap();
}
