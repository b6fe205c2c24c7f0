//! The web admin as the office's manager uses it: `scripts/office` (the README's start
//! command) with the admin on the office LAN (`--admin 192.168.77.1:8443`, so HTTPS with the
//! office's certificate), and a real Chromium on the manager's desk (192.168.77.20) driven
//! through WebDriver. Phones are baresip and SIPp at their own addresses
//! (`e2e::office::office_network`). With `WEB_SCREENSHOTS=DIR`, the pages are saved there
//! for the README (`scripts/screenshots`).
#![allow(clippy::unwrap_used)]

use e2e::browser::Browser;
use e2e::office::{Office, account, office_network, provision_cisco, release_bin, skip, wait_for};
use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const SITE: &str = "https://192.168.77.1:8443";
const MANAGER: &str = "manager";
const PASSWORD: &str = "Front-office-2026";
const SCRIPT: &str = "<script>alert(1)</script>";
const WAIT: Duration = Duration::from_secs(20);

/// The office with its admin on the LAN, an admin account, and a browser on the desk.
fn office() -> (Office, Browser) {
    let mut net = office_network();
    net.host("desk");
    net.plug("desk", "eth0", "lan", &["192.168.77.20/24"]);
    let o = Office::start(net, &["--admin", "192.168.77.1:8443"]);
    let mut add = std::process::Command::new(release_bin("pbx-lite"))
        .args(["--db", o.db.to_str().unwrap(), "admin", "add", MANAGER])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(add.wait().unwrap().success());
    let b = Browser::start(&o.net, "desk", SITE);
    (o, b)
}

fn log_in(b: &Browser) {
    b.goto("/login");
    b.fill("#name", MANAGER);
    b.fill("#password", PASSWORD);
    b.click("#log-in");
    wait_for("the dashboard", WAIT, || b.path() == "/");
}

fn screenshot(b: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("WEB_SCREENSHOTS") {
        b.screenshot(&std::path::Path::new(&dir).join(name));
    }
}

/// Waits for a child (SIPp) to end within `limit`; whether it succeeded.
fn ended_well(c: &mut Child, limit: Duration) -> bool {
    let t0 = Instant::now();
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s.success();
        }
        if t0.elapsed() > limit {
            let _ = c.kill();
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Must-show 1, 2, 3 and 6 (and the screenshots of 7), in one office's day.
#[test]
fn the_office_is_run_from_a_browser() {
    if skip() {
        return;
    }
    let (mut o, b) = office();
    log_in(&b);

    // 1. Stations added from the page; phones register with those credentials, and the
    // dashboard, open all along, shows them registered without a reload.
    for (n, name) in [("201", "Front desk"), ("202", "Sales")] {
        b.goto("/stations/new");
        b.fill("#f-number", n);
        b.fill("#f-user_id", &format!("u{n}"));
        b.fill("#f-password", &format!("Office-{n}-pass"));
        b.fill("#f-name", name);
        b.select("#f-model", "softphone");
        b.click("#save");
        wait_for("the station's page", WAIT, || {
            b.path() == format!("/stations/{n}")
        });
    }
    b.goto("/");
    b.execute("window.stayed = 'yes'; return null;");
    for (n, host, ip, freq) in [
        ("201", "p201", "192.168.77.11", 440.0),
        ("202", "p202", "192.168.77.12", 600.0),
    ] {
        let pw = format!("Office-{n}-pass");
        let acc = account(n, "192.168.77.1", &format!("u{n}"), &pw);
        o.phone(n, host, &format!("{ip}:5060"), freq, &acc);
        b.wait_text(
            &format!("#phones tr[data-number='{n}'] td:nth-child(3)"),
            "yes",
            WAIT,
        );
        b.wait_text(&format!("#phones tr[data-number='{n}']"), ip, WAIT);
    }
    assert_eq!(
        b.execute("return window.stayed;"),
        "yes",
        "the dashboard reloaded"
    );

    // A call between the two shows while it lasts, then in the call records.
    o.call("201", "202", "202");
    let row = b.wait_text("#calls tbody", "talking", WAIT);
    assert!(row.contains("201") && row.contains("202"), "{row}");
    screenshot(&b, "web-dashboard.png");
    std::thread::sleep(Duration::from_secs(2));
    o.hang_up("201", "202");
    b.wait_text("#call-count", "0", WAIT);
    assert_eq!(
        b.execute("return window.stayed;"),
        "yes",
        "the dashboard reloaded"
    );
    b.goto("/calls");
    let cells: Vec<String> = (1..=6)
        .map(|i| {
            b.text(&format!(
                "#call-records tbody tr:first-child td:nth-child({i})"
            ))
            .unwrap()
        })
        .collect();
    assert_eq!(&cells[1..5], ["201", "202", "202", "answered"], "{cells:?}");
    let talk: u32 = cells[5].parse().unwrap();
    assert!(talk >= 2, "{cells:?}");
    screenshot(&b, "web-calls.png");

    // 2. An unknown phone asks for its file; assigned to a new station from the page, its
    // next request gets that station's file.
    let ask = o
        .net
        .command("p202", "curl")
        .args(["-s", "tftp://192.168.77.1/SIP001122AABB09.cnf"])
        .output()
        .unwrap();
    assert!(
        !ask.status.success() && ask.stdout.is_empty(),
        "an unknown MAC got a file"
    );
    b.goto("/unknown");
    let row = "#unknown tr[data-mac='001122aabb09']";
    b.wait_text(row, "SIP001122AABB09.cnf", WAIT);
    b.click(&format!("{row} details summary"));
    b.fill(&format!("{row} .new-station input[name=number]"), "209");
    b.fill(&format!("{row} .new-station input[name=user_id]"), "u209");
    b.fill(
        &format!("{row} .new-station input[name=password]"),
        "Office-209-pass",
    );
    b.select(
        &format!("{row} .new-station select[name=model]"),
        "cisco-7960",
    );
    b.click(&format!("{row} .new-station button"));
    b.wait_text("#notice", "station 209", WAIT);
    let (server, user, pw) = provision_cisco(&o.net, "p202", "192.168.77.1", "001122AABB09");
    assert_eq!(
        (server.as_str(), user.as_str(), pw.as_str()),
        ("192.168.77.1", "u209", "Office-209-pass")
    );

    // 3. Voicemail: 204 is not registered, so 201's call leaves a message; the page plays it
    // and deletes it, and 204's subscription hears the lamp go out.
    o.add_station("204", &["--set", "voicemail=204"]);
    let dir = o.net.path("");
    std::fs::write(
        dir.join("mwi.xml"),
        e2e::sipp::mwi_scenario(&["0/0", "1/0", "0/0"]),
    )
    .unwrap();
    std::fs::write(
        dir.join("mwi.inf"),
        "SEQUENTIAL\n204;[authentication username=u204 password=Office-204-pass]\n",
    )
    .unwrap();
    let mut lamp = o
        .net
        .command("p203", "sipp")
        .args(["192.168.88.1:5060", "-i", "192.168.88.11", "-p", "5070"])
        .args([
            "-nostdin", "-timeout", "90s", "-m", "1", "-sf", "mwi.xml", "-inf", "mwi.inf",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the lamp's first NOTIFY", WAIT, || {
        dir.join("lamp-0").exists()
    });
    let established = o.p("201").count("Call established");
    o.p("201").send("/dial 204");
    o.wait_log("201", "Call established", established + 1);
    let mailbox = std::path::PathBuf::from(format!("{}.voicemail/204", o.db.display()));
    wait_for("three seconds of message", WAIT, || {
        std::fs::read_dir(&mailbox).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.metadata().is_ok_and(|m| m.len() > 48_000))
        })
    });
    o.p("201").send("/hangup");
    wait_for("the lamp to light", WAIT, || dir.join("lamp-1").exists());
    b.goto("/voicemail");
    let t0 = Instant::now();
    loop {
        let state = b.execute(
            "const a = document.querySelector('table.messages audio');
             return [a.readyState, a.duration, a.error === null];",
        );
        if state[0].as_u64().unwrap_or(0) >= 1 && state[1].as_f64().unwrap_or(0.0) > 2.0 {
            assert_eq!(state[2], true, "{state}");
            break;
        }
        assert!(t0.elapsed() < WAIT, "the message never loaded: {state}");
        std::thread::sleep(Duration::from_millis(100));
    }
    b.click("table.messages button.danger");
    assert_eq!(b.alert().as_deref(), Some("Delete this message?"));
    b.accept_alert();
    b.wait_text("main", "No messages.", WAIT);
    assert!(ended_well(&mut lamp, WAIT), "the lamp never went out");
    assert!(dir.join("lamp-2").exists());

    // 6. Resync: a Cisco phone (SIPp, its User-Agent full of HTML) registers; the button
    // sends it check-sync.
    o.add_station(
        "203",
        &["--mac", "00:11:22:aa:bb:03", "--model", "cisco-7960"],
    );
    let agent = format!("Cisco-CP7960G/8.0 {SCRIPT}<img src=x id=injected>");
    std::fs::write(
        dir.join("cisco.inf"),
        format!(
            "SEQUENTIAL\n203;[authentication username=u203 password=Office-203-pass];{agent}\n"
        ),
    )
    .unwrap();
    let sipp = |scenario: &str, extra: &[&str]| {
        let mut c = o.net.command("p203", "sipp");
        c.args(["192.168.88.1:5060", "-i", "192.168.88.11", "-p", "5080"])
            .args(["-nostdin", "-timeout", "60s", "-m", "1", "-sf"])
            .arg(format!(
                "{}/../pbx-lite/tests/sipp/{scenario}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .args(extra)
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        c
    };
    let reg = sipp("cisco-register.xml", &["-inf", "cisco.inf"])
        .output()
        .unwrap();
    assert_eq!(
        e2e::sipp::successes(&reg.stdout),
        1,
        "{}",
        String::from_utf8_lossy(&reg.stdout)
    );
    b.goto("/");
    b.wait_text("#phones tr[data-number='203']", SCRIPT, WAIT);
    let injected =
        b.execute("return document.querySelectorAll('#phones script, #injected').length;");
    assert_eq!(injected, 0, "the User-Agent's HTML became elements");
    assert_eq!(b.alert(), None, "a script ran");
    let mut cisco = sipp("cisco-check-sync.xml", &[]).spawn().unwrap();
    wait_for("the Cisco to listen", WAIT, || {
        !o.net
            .exec("p203", &["ss", "-Hlun", "sport = :5080"])
            .stdout
            .is_empty()
    });
    b.goto("/stations/203");
    b.click("#resync");
    b.wait_text("#notice", "Resync sent to 203", WAIT);
    assert!(ended_well(&mut cisco, WAIT), "the Cisco got no check-sync");
    assert_eq!(o.cli(&["settings", "get", "cisco.sync"]).trim(), "2");
    screenshot(&b, "web-station.png");
    let console = b.console();
    assert!(
        !console
            .iter()
            .any(|l| l.contains("Content Security Policy")),
        "{console:?}"
    );
}
