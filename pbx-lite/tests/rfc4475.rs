//! Every RFC 4475 message over UDP to `pbx-lite serve` gets a right answer (issue #5,
//! must-show 3), and a normal REGISTER still succeeds afterwards. The messages name outside
//! hosts, so the PBX and the sender run in a network namespace this test creates with only
//! `lo` up: nothing can leave. Needs root and ../shared; skipped with SIP_SKIP_PEERS=1.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PBX: &str = env!("CARGO_BIN_EXE_pbx-lite");

/// The right final answer for each message ("none": a response, or nothing owed).
const EXPECTED: &[(&str, &str)] = &[
    // §3.1.1 valid: answered by what they are — INVITEs from callers who have not proved
    // they are a station are challenged (407, security.invite_auth), registrars challenge
    // (401), unknown methods 501, OPTIONS to the PBX 200, a To tag for no dialog 481.
    ("wsinv", "481"),
    ("intmeth", "501"),
    ("esc01", "407"),
    ("escnull", "401"),
    ("esc02", "501"),
    ("lwsdisp", "200"),
    ("longreq", "407"),
    ("dblreq", "401"),
    ("semiuri", "200"),
    ("transports", "200"),
    ("mpart01", "501"),
    ("unreason", "none"),
    ("noreason", "none"),
    // §3.1.2 invalid: 400, or dropped when it is a response.
    ("badinv01", "400"),
    ("clerr", "400"),
    ("ncl", "400"),
    ("scalar02", "400"),
    ("scalarlg", "none"),
    ("quotbal", "400"),
    ("ltgtruri", "400"),
    ("lwsruri", "400"),
    ("lwsstart", "400"),
    ("trws", "400"),
    ("escruri", "400"),
    ("baddate", "400"),
    ("regbadct", "400"),
    ("badaspec", "400"),
    ("baddn", "400"),
    ("badvers", "400"),
    ("mismatch01", "400"),
    ("mismatch02", "400"),
    ("bigcode", "none"),
    // §3.2-§3.4: transaction and application layer.
    ("badbranch", "200"),
    ("insuf", "400"),
    ("unkscm", "416"),
    ("novelsc", "416"),
    ("unksm2", "401"),
    ("bext01", "420"),
    ("invut", "415"),
    ("regaut01", "401"),
    ("multi01", "400"),
    ("mcl01", "400"),
    ("bcast", "none"),
    ("zeromf", "483"),
    ("cparam01", "401"),
    ("cparam02", "401"),
    ("regescrt", "401"),
    ("sdp01", "406"),
    ("inv2543", "407"),
];

struct Netns(String, Option<Child>);

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut c) = self.1.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn every_rfc4475_message_gets_a_right_answer() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let torture = here.join("../../shared/reference/rfc4475");
    if !torture.join("SOURCE.md").exists() {
        eprintln!("../shared/reference/rfc4475 not present: skipped");
        return;
    }
    assert_eq!(EXPECTED.len(), 49);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("office.db");
    let out = Command::new(PBX)
        .arg("--db")
        .arg(&db)
        .args([
            "station",
            "add",
            "--number",
            "201",
            "--user-id",
            "u201",
            "--password",
            "Right-pass-201",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let name = format!("pbx4475-{}", std::process::id());
    let _ = Command::new("ip").args(["netns", "del", &name]).status();
    assert!(
        Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success(),
        "ip netns add (root needed)"
    );
    let mut ns = Netns(name.clone(), None);
    assert!(
        Command::new("ip")
            .args(["-n", &name, "link", "set", "lo", "up"])
            .status()
            .unwrap()
            .success()
    );
    let exec = |args: &[&str]| {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &name]).args(args);
        c
    };
    ns.1 = Some(
        exec(&[
            PBX,
            "--db",
            db.to_str().unwrap(),
            "serve",
            "--sip",
            "127.0.0.1:5060",
            "--no-provisioning",
            "--admin",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let t0 = Instant::now();
    while !exec(&["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5060"])
        .status()
        .unwrap()
        .success()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "pbx-lite did not start in the namespace"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let files: Vec<String> = EXPECTED
        .iter()
        .map(|(n, _)| torture.join(format!("{n}.dat")).display().to_string())
        .collect();
    let script = here.join("tests/sipp/send-datagrams.sh");
    let mut args = vec![script.to_str().unwrap()];
    args.extend(files.iter().map(String::as_str));
    let out = exec(&args).env("PORT", "5060").output().unwrap();
    let got: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, codes)| {
            // The final answer: the last status that is not provisional.
            let last = codes
                .split_whitespace()
                .rfind(|c| !c.starts_with('1'))
                .unwrap_or("none");
            (n.to_string(), last.to_string())
        })
        .collect();
    let wrong: Vec<String> = EXPECTED
        .iter()
        .filter(|(n, want)| got.get(*n).map(String::as_str) != Some(*want))
        .map(|(n, want)| format!("{n}: got {:?}, want {want}", got.get(*n)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    // And a normal REGISTER still succeeds.
    let register = here.join("../sip/tests/sipp/register-accepted.xml");
    let sipp = exec(&[
        "sipp",
        "127.0.0.1:5060",
        "-sf",
        register.to_str().unwrap(),
        "-i",
        "127.0.0.1",
        "-p",
        "5070",
        "-m",
        "1",
    ])
    .args([
        "-au",
        "u201",
        "-ap",
        "Right-pass-201",
        "-nostdin",
        "-timeout",
        "20s",
    ])
    .output()
    .unwrap();
    assert_eq!(
        sipp.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&sipp.stdout)
    );
}
