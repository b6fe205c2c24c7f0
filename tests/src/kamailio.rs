//! Kamailio (Debian's package) as a peer: a registrar and authenticating proxy over SQLite,
//! started from a configuration template with subscribers, in its own process group so that
//! [`Kill`] stops its forked workers too.

use crate::process::Kill;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Kamailio on 127.0.0.1:`port` with the configuration `template` (LISTEN, DBURL, CHILDREN
/// and DBMODE filled in) and `subscribers` (user name, password) in its SQLite database in
/// `dir`; returns once it answers.
pub fn start(dir: &Path, port: u16, template: &str, subscribers: &[(&str, &str)]) -> Kill {
    let db = dir.join("kamailio.db");
    for schema in ["standard", "auth_db", "usrloc"] {
        let sql = std::fs::read(format!("/usr/share/kamailio/db_sqlite/{schema}-create.sql"))
            .expect("Kamailio's SQLite schema (kamailio-sqlite-modules)");
        let mut p = Command::new("sqlite3")
            .arg(&db)
            .stdin(Stdio::piped())
            .spawn()
            .expect("sqlite3");
        p.stdin
            .take()
            .expect("its input")
            .write_all(&sql)
            .expect("the schema");
        assert!(
            p.wait().is_ok_and(|s| s.success()),
            "the schema did not load"
        );
    }
    let users: String = subscribers
        .iter()
        .map(|(u, p)| format!("INSERT INTO subscriber (username, password) VALUES ('{u}', '{p}');"))
        .collect();
    assert!(
        Command::new("sqlite3")
            .arg(&db)
            .arg(users)
            .status()
            .is_ok_and(|s| s.success()),
        "the subscribers did not load"
    );
    let cfg = template
        .replace("LISTEN", &format!("127.0.0.1:{port}"))
        .replace("DBURL", &format!("sqlite://{}", db.display()))
        .replace("CHILDREN", "2")
        .replace("DBMODE", "0");
    std::fs::write(dir.join("kamailio.cfg"), cfg).expect("the configuration");
    let run = dir.join("kamrun");
    std::fs::create_dir_all(&run).expect("its run folder");
    let k = Kill(
        Command::new("kamailio")
            .process_group(0)
            .args(["-DD", "-E", "-f"])
            .arg(dir.join("kamailio.cfg"))
            .arg("-Y")
            .arg(&run)
            .stderr(std::fs::File::create(dir.join("kamailio.log")).expect("its log"))
            .spawn()
            .expect("kamailio"),
    );
    // Up once it answers anything (an OPTIONS to nobody gets 404).
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("a probe socket");
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a timeout");
    let me = probe.local_addr().expect("its address");
    let mut buf = [0u8; 2048];
    for i in 0..50 {
        let options = format!(
            "OPTIONS sip:nobody@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe{i}\r\nFrom: <sip:probe@{me}>;tag=p\r\nTo: <sip:nobody@127.0.0.1>\r\nCall-ID: probe{i}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = probe.send_to(options.as_bytes(), ("127.0.0.1", port));
        if probe.recv(&mut buf).is_ok() {
            return k;
        }
    }
    panic!(
        "kamailio did not start: {}",
        std::fs::read_to_string(dir.join("kamailio.log")).unwrap_or_default()
    );
}
