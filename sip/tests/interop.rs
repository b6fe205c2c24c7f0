//! Interop with SIPp (package sip-tester) on loopback, UDP and TCP:
//! - SIPp's built-in `uac` places 1,000 calls at 200 calls/s to `sip-ua uas`: 0 failed;
//! - `sip-ua uac` places 1,000 calls to SIPp's built-in `uas`: 0 failed;
//! - SIPp REGISTER scenarios with `[authentication]` (tests/sipp/) against `sip-ua uas` as a
//!   digest registrar: the right password is accepted (200); a wrong password and an unknown
//!   user are refused alike (403).
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

const UA: &str = env!("CARGO_BIN_EXE_sip-ua");
const LIMIT: Duration = Duration::from_secs(120);

fn sipp_transport(tcp: bool) -> &'static str {
    if tcp { "t1" } else { "u1" }
}

fn sipp_uac_to_our_uas(tcp: bool) {
    if skip_peers() {
        return;
    }
    let port = free_port();
    let transport = if tcp { "tcp" } else { "udp" };
    let _uas = spawn(Command::new(UA).args([
        "uas",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--transport",
        transport,
    ]));
    wait_for_port(port, tcp);
    let out = run(
        Command::new("sipp")
            .args([
                "-sn",
                "uac",
                &format!("127.0.0.1:{port}"),
                "-i",
                "127.0.0.1",
            ])
            .args(["-p", &free_port().to_string(), "-t", sipp_transport(tcp)])
            .args(["-r", "200", "-m", "1000", "-nostdin", "-timeout", "100s"]),
        LIMIT,
    );
    let log = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "SIPp reported failed calls:\n{log}"
    );
    let successful = log
        .lines()
        .find(|l| l.contains("Successful call"))
        .and_then(|l| l.split('|').nth(2))
        .map(|c| c.trim().to_string());
    assert_eq!(successful.as_deref(), Some("1000"), "{log}");
}

fn our_uac_to_sipp_uas(tcp: bool) {
    if skip_peers() {
        return;
    }
    let port = free_port();
    let _uas = spawn(
        Command::new("sipp")
            .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", sipp_transport(tcp), "-nostdin"]),
    );
    wait_for_port(port, tcp);
    let transport = if tcp { "tcp" } else { "udp" };
    let out = run(
        Command::new(UA)
            .args(["uac", "--target", &format!("127.0.0.1:{port}")])
            .args(["--calls", "1000", "--rate", "200", "--transport", transport]),
        LIMIT,
    );
    let log = text(&out);
    assert!(log.contains("1000 passed, 0 failed"), "{log}");
    assert!(out.status.success(), "{log}");
}

#[test]
fn sipp_uac_places_1000_calls_to_our_uas_over_udp() {
    sipp_uac_to_our_uas(false);
}

#[test]
fn sipp_uac_places_1000_calls_to_our_uas_over_tcp() {
    sipp_uac_to_our_uas(true);
}

#[test]
fn our_uac_places_1000_calls_to_sipp_uas_over_udp() {
    our_uac_to_sipp_uas(false);
}

#[test]
fn our_uac_places_1000_calls_to_sipp_uas_over_tcp() {
    our_uac_to_sipp_uas(true);
}

fn register(scenario: &str, user: &str, password: &str) -> std::process::Output {
    let port = free_port();
    let _registrar = spawn(
        Command::new(UA)
            .args(["uas", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--user", "u201", "--password", "Corr3ct-horse-9"]),
    );
    wait_for_port(port, false);
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(scenario);
    run(
        Command::new("sipp")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-sf")
            .arg(file)
            .args(["-i", "127.0.0.1", "-p", &free_port().to_string(), "-m", "1"])
            .args(["-au", user, "-ap", password, "-nostdin", "-timeout", "20s"]),
        LIMIT,
    )
}

#[test]
fn sipp_register_with_digest_is_accepted_with_the_right_password() {
    if skip_peers() {
        return;
    }
    let out = register("register-accepted.xml", "u201", "Corr3ct-horse-9");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn sipp_register_with_a_wrong_password_or_user_is_refused() {
    if skip_peers() {
        return;
    }
    // The "expect 200" scenario must fail with a wrong password...
    let out = register("register-accepted.xml", "u201", "wrong-password");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // ...and the refusal is a 403, the same for a wrong password as for an unknown user.
    for (user, password) in [("u201", "wrong-password"), ("nobody", "Corr3ct-horse-9")] {
        let out = register("register-refused.xml", user, password);
        assert_eq!(out.status.code(), Some(0), "{user}: {}", text(&out));
    }
}
