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
