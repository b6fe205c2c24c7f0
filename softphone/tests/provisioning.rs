//! The softphone takes its configuration from the provisioner (issue #7): `pbx-lite serve`
//! with its HTTP provisioning on loopback serves `softphone-201.toml` to station 201's own
//! user ID and password; the softphone fetches it, keeps it with the password sealed, and
//! registers with what it says. Wrong credentials are refused with a clear error and write
//! nothing; a provisioner that is down leaves the kept copy in use.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use support::{Kill, cli, events, expect, free_port};

fn softphone(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_softphone"))
        .args(["--headless", "--sip", "127.0.0.1:0"])
        .args(args)
        .env_remove("SOFTPHONE_AUTH")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `pbx-lite serve` with SIP, HTTP provisioning, TFTP and TLS on these loopback ports,
/// once it says it listens (its log beside the database).
fn serve(db: &std::path::Path, sip: u16, http: u16, tftp: u16, tls: u16) -> Kill {
    let args = [
        "serve",
        "--sip",
        &format!("127.0.0.1:{sip}"),
        "--http",
        &format!("127.0.0.1:{http}"),
        "--tftp",
        &format!("127.0.0.1:{tftp}"),
        "--admin",
        "127.0.0.1:0",
        "--tls",
        &format!("127.0.0.1:{tls}"),
    ];
    // Provisioning listens before SIP does.
    support::serve(db, &db.with_extension("log"), &args, sip)
        .unwrap_or_else(|e| panic!("pbx-lite did not start: {e}"))
}

/// How a phone gets TLS and SRTP (issue #17): station 201 is `srtp=mandatory`; its profile
/// names the TLS port and carries the office CA with its fingerprint, and the softphone
/// that fetches it registers over TLS trusting that CA and nothing it was not given.
#[test]
fn a_secure_station_gets_tls_srtp_and_the_office_ca_from_its_profile() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("office.db");
    support::add_station(&db, "201", &[]);
    cli(&db, &["station", "set", "201", "srtp=mandatory"]);
    let (sip, http, tftp, tls) = (free_port(), free_port(), free_port(), free_port());
    for (k, v) in [
        ("pbx.host", "127.0.0.1".to_string()),
        ("pbx.port", sip.to_string()),
        ("pbx.tls_port", tls.to_string()),
        ("provisioning.http_port", http.to_string()),
    ] {
        cli(&db, &["settings", "set", k, &v]);
    }
    let _pbx = serve(&db, sip, http, tftp, tls);
    let kept = dir.path().join("phone.toml");
    let mut phone = Kill(softphone(&[
        "--config",
        kept.to_str().unwrap(),
        "--config-url",
        &format!("http://127.0.0.1:{http}/softphone-201.toml"),
        "--auth",
        "u201:Pw-201-secret",
    ]));
    let rx = events(&mut phone.0);
    assert_eq!(expect(&rx, "registered")["account"], "201");
    let text = std::fs::read_to_string(&kept).unwrap();
    let ca = std::fs::read_to_string(dir.path().join("office.db.tls/ca.pem")).unwrap();
    let pin = sip::transport::fingerprints(ca.as_bytes())
        .unwrap()
        .remove(0);
    for want in [
        "transport = \"tls\"".to_string(),
        "srtp = \"mandatory\"".to_string(),
        format!("port = {tls}"),
        pin,
    ] {
        assert!(text.contains(&want), "{want} not in\n{text}");
    }
    let status = cli(&db, &["status", "--json"]);
    assert!(status.contains("\"transport\":\"TLS\""), "{status}");
}

#[test]
fn the_profile_is_fetched_kept_sealed_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("office.db");
    support::add_station(&db, "201", &[]);
    support::add_station(&db, "202", &["--name", "Sales"]);
    let (sip, http, tftp) = (free_port(), free_port(), free_port());
    for (k, v) in [
        ("pbx.host", "127.0.0.1".to_string()),
        ("pbx.port", sip.to_string()),
        ("provisioning.http_port", http.to_string()),
    ] {
        cli(&db, &["settings", "set", k, &v]);
    }
    let pbx = serve(&db, sip, http, tftp, free_port());
    let url = format!("http://127.0.0.1:{http}/softphone-201.toml");
    let kept = dir.path().join("phone.toml");
    let kept_s = kept.to_str().unwrap();

    // Wrong password: refused, nothing written.
    let out = softphone(&[
        "--config",
        kept_s,
        "--config-url",
        &url,
        "--auth",
        "u201:guess",
    ])
    .wait_with_output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused these credentials"), "{err}");
    assert!(!kept.exists(), "a refused fetch wrote the file");

    // Right credentials: fetched, kept sealed, registered.
    let fetching = || {
        Kill(softphone(&[
            "--config",
            kept_s,
            "--config-url",
            &url,
            "--auth",
            "u201:Pw-201-secret",
        ]))
    };
    let mut phone = fetching();
    let rx = events(&mut phone.0);
    let reg = expect(&rx, "registered");
    assert_eq!(reg["account"], "201");
    let text = std::fs::read_to_string(&kept).unwrap();
    assert!(
        !text.contains("Pw-201-secret"),
        "the kept profile holds the password:\n{text}"
    );
    assert!(
        text.contains("password_sealed") && text.contains(&url),
        "{text}"
    );
    // The office's directory comes from the same provisioner.
    let mut stdin = phone.0.stdin.take().unwrap();
    writeln!(stdin, "contacts").unwrap();
    let contacts = expect(&rx, "contacts");
    let entries = contacts["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["name"] == "Sales" && e["number"] == "202" && e["source"] == "directory"),
        "{contacts}"
    );
    drop(phone);

    // The provisioner is down: the kept copy is used.
    drop(pbx);
    support::wait_for("the provisioner to be gone", || {
        std::net::TcpStream::connect(("127.0.0.1", http)).is_err()
    });
    let mut phone = fetching();
    let rx = events(&mut phone.0);
    assert_eq!(expect(&rx, "ready")["lines"], 1);
}
