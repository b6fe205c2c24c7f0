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
    // On a phone's small screen, the dashboard's tables scroll inside the page.
    b.resize(390, 844);
    b.goto("/");
    b.wait_text("#phones", "201", WAIT);
    let wide = b.execute("return document.documentElement.scrollWidth;");
    assert!(
        wide.as_u64().unwrap() <= 390,
        "the page is {wide} px wide on a phone"
    );
    screenshot(&b, "web-phone.png");
    let console = b.console();
    assert!(
        !console
            .iter()
            .any(|l| l.contains("Content Security Policy")),
        "{console:?}"
    );
}

/// An HTTP request from `host` with curl (certificate not checked, no redirect followed):
/// the status and the body.
fn http(o: &Office, host: &str, args: &[&str]) -> (u16, String) {
    let out = o
        .net
        .command(host, "curl")
        .args(["-sk", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A request from the desk in the session of the cookie jar `jar`.
fn http_in(o: &Office, jar: &str, args: &[&str]) -> (u16, String) {
    http(o, "desk", &[&["-b", jar], args].concat())
}

/// Everything an attacker could want to change: stations, settings, groups, admins.
fn everything(o: &Office) -> String {
    [
        "station list --json",
        "settings list",
        "group list",
        "admin list",
    ]
    .map(|c| o.cli(&c.split(' ').collect::<Vec<_>>()))
    .join("\n")
}

/// A session's cookie jar on `host` (logged in from there) and its CSRF token.
fn curl_session(o: &Office, host: &str) -> (String, String) {
    let jar = o.net.path(&format!("cookies-{host}")).display().to_string();
    let (code, _) = http(
        o,
        host,
        &[
            "-c",
            &jar,
            "-d",
            &format!("name={MANAGER}&password={PASSWORD}"),
            &format!("{SITE}/login"),
        ],
    );
    assert_eq!(code, 303, "the manager could not log in from {host}");
    let (_, page) = http(o, host, &["-b", &jar, &format!("{SITE}/stations/new")]);
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a CSRF token in the form")
        .to_string();
    (jar, csrf)
}

/// Must-show 4 and 5: what a careless manager or an attacker on the LAN tries.
#[test]
fn the_admin_holds_against_an_attacker() {
    if skip() {
        return;
    }
    let (o, b) = office();
    o.add_station("201", &[]);
    let before = everything(&o);

    // No page or endpoint without logging in: pages send to the login, changes are refused,
    // and the script endpoints want their token.
    for path in [
        "/",
        "/events",
        "/stations",
        "/stations/new",
        "/stations/import",
        "/stations/export",
        "/stations/201",
        "/unknown",
        "/settings",
        "/groups",
        "/voicemail",
        "/voicemail/1/audio",
        "/logs",
        "/calls",
        "/calls/export",
    ] {
        let (code, body) = http(&o, "desk", &["-D", "-", &format!("{SITE}{path}")]);
        assert_eq!(code, 303, "GET {path} without logging in");
        assert!(body.contains("location: /login"), "GET {path}: {body}");
        assert!(!body.contains("u201"), "GET {path} told: {body}");
    }
    for path in [
        "/logout",
        "/stations",
        "/stations/import",
        "/stations/201",
        "/stations/201/delete",
        "/stations/201/resync",
        "/unknown",
        "/settings",
        "/groups",
        "/groups/300/delete",
        "/voicemail/1/delete",
    ] {
        let (code, _) = http(
            &o,
            "desk",
            &["-d", "number=299&csrf=", &format!("{SITE}{path}")],
        );
        assert_eq!(code, 401, "POST {path} without logging in");
    }
    for path in ["/status", "/access-log"] {
        let (code, body) = http(&o, "desk", &[&format!("{SITE}{path}")]);
        assert_eq!(code, 401, "GET {path} without the token: {body}");
    }
    assert_eq!(everything(&o), before);

    // Logged in, a change without the session's CSRF token (a forged form) is refused; the
    // same form with it goes through.
    let (jar, csrf) = curl_session(&o, "desk");
    let form = "number=230&user_id=u230&password=Office-230-pass&name=Forged&model=softphone";
    for token in ["", "&csrf=", "&csrf=0123456789abcdef"] {
        let (code, _) = http_in(
            &o,
            &jar,
            &["-d", &format!("{form}{token}"), &format!("{SITE}/stations")],
        );
        assert_eq!(code, 403, "a change with {token:?}");
    }
    assert_eq!(everything(&o), before);
    let (code, _) = http_in(
        &o,
        &jar,
        &[
            "-d",
            &format!("{form}&csrf={csrf}"),
            &format!("{SITE}/stations"),
        ],
    );
    assert_eq!(code, 303, "the real form");
    o.cli(&["station", "rm", "230"]);
    assert_eq!(everything(&o), before);

    // Ten wrong passwords in a row from one address: the tenth is throttled (the SIP retry
    // limit, 5, applies), then even the right one; another address still gets in.
    let codes: Vec<u16> = (0..10)
        .map(|i| {
            http(
                &o,
                "p202",
                &[
                    "-d",
                    &format!("name={MANAGER}&password=guess{i}"),
                    &format!("{SITE}/login"),
                ],
            )
            .0
        })
        .collect();
    assert_eq!(codes[0], 403, "{codes:?}");
    assert_eq!(codes[9], 429, "{codes:?}");
    let right = format!("name={MANAGER}&password={PASSWORD}");
    assert_eq!(
        http(&o, "p202", &["-d", &right, &format!("{SITE}/login")]).0,
        429
    );
    assert_eq!(
        http(&o, "p201", &["-d", &right, &format!("{SITE}/login")]).0,
        303
    );
    // A wrong name holding HTML, to show on the logs page below.
    let lure = "<img src=x id=injected>";
    http(
        &o,
        "p201",
        &[
            "--data-urlencode",
            &format!("name={lure}"),
            "-d",
            "password=x",
            &format!("{SITE}/login"),
        ],
    );

    // 4. In the browser: a bad import names each bad line and changes nothing.
    log_in(&b);
    b.goto("/stations/import");
    let csv = "number,user_id,password,name,mac,model\n\
               240,u240,Office-240-pass,Good one,,softphone\n\
               2x1,u241,Office-241-pass,Bad number,,softphone\n\
               242,u242,,No password,,softphone\n\
               243,u240,Office-243-pass,Same user,,softphone\n";
    b.fill("#text", csv);
    b.click("#do-import");
    let bad = b.wait_text("#bad-lines", "line", WAIT);
    for line in ["line 3:", "line 4:", "line 5:"] {
        assert!(bad.contains(line), "{line} not named: {bad}");
    }
    assert!(!bad.contains("line 2:"), "{bad}");
    assert_eq!(everything(&o), before);

    // A bad setting is refused with the CLI's own words.
    let cli = o
        .net
        .command("desk", release_bin("pbx-lite").to_str().unwrap())
        .args([
            "--db",
            o.db.to_str().unwrap(),
            "settings",
            "set",
            "security.register_retry_limit",
            "lots",
        ])
        .output()
        .unwrap();
    assert!(!cli.status.success());
    let message = String::from_utf8_lossy(&cli.stderr)
        .trim()
        .trim_start_matches("pbx-lite: ")
        .to_string();
    assert!(message.contains("lots"), "{message}");
    b.goto("/settings");
    let row = "#setting-security-register_retry_limit";
    b.fill(&format!("{row} input[name=value]"), "lots");
    b.click(&format!("{row} button"));
    b.wait_text("#error", &message, WAIT);
    assert_eq!(everything(&o), before);

    // A station named like a script is refused, and the form it comes back in shows the name
    // as text; the lure on the logs page is text too. No script runs (no dialog, nothing in
    // the browser's log), no element is injected.
    b.goto("/stations/new");
    b.fill("#f-number", "231");
    b.fill("#f-user_id", "u231");
    b.fill("#f-password", "Office-231-pass");
    b.fill("#f-name", SCRIPT);
    b.click("#save");
    b.wait_text("#error", SCRIPT, WAIT);
    assert_eq!(
        b.execute("return document.querySelector('#f-name').value;"),
        SCRIPT
    );
    assert_eq!(
        b.execute("return document.querySelectorAll('main script').length;"),
        0
    );
    assert_eq!(b.alert(), None, "a script ran");
    b.goto(&format!("/logs?q={}", "admin%3A%3Cimg"));
    b.wait_text("main", &format!("admin:{lure}"), WAIT);
    assert_eq!(
        b.execute("return document.querySelectorAll('#injected').length;"),
        0
    );
    assert_eq!(b.alert(), None, "a script ran");
    assert_eq!(everything(&o), before);

    // SQL metacharacters in every search and every form field: searches find nothing, forms
    // are refused or store the text as text, and nothing else changes.
    let sql = [
        "' OR '1'='1",
        "201' OR 1=1 --",
        "%'; DROP TABLE stations; --",
        "\"; DELETE FROM settings; --",
    ];
    for q in sql {
        for page in ["/stations", "/logs", "/calls"] {
            let (code, body) = http_in(
                &o,
                &jar,
                &[
                    "-G",
                    "--data-urlencode",
                    &format!("q={q}"),
                    &format!("{SITE}{page}"),
                ],
            );
            assert_eq!(code, 200, "{page}?q={q}");
            if page == "/stations" {
                assert!(
                    !body.contains("data-number=\"201\""),
                    "{q} found every station"
                );
            }
        }
        let post = |path: &str, fields: &[(&str, &str)]| {
            let mut args = vec!["-d".to_string(), format!("csrf={csrf}")];
            for (k, v) in fields {
                args.extend(["--data-urlencode".into(), format!("{k}={v}")]);
            }
            args.push(format!("{SITE}{path}"));
            http_in(
                &o,
                &jar,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .0
        };
        let fields: Vec<(&str, &str)> = stations::FIELDS.iter().map(|k| (*k, q)).collect();
        for path in ["/stations", "/stations/201", "/unknown"] {
            post(path, &fields);
            post(&format!("{path}/{}", q.replace(' ', "%20")), &fields);
        }
        post("/unknown", &[("mac", q), ("station", "201")]);
        post("/groups", &[("number", q), ("members", q)]);
        post(
            "/groups",
            &[("number", "300"), ("members", &format!("201,{q}"))],
        );
        post("/settings", &[("key", q), ("value", q)]);
        post(
            "/settings",
            &[("key", "security.register_retry_limit"), ("value", q)],
        );
        post(&format!("/groups/{}/delete", q.replace(' ', "%20")), &[]);
        post(
            "/stations/import",
            &[
                ("format", "csv"),
                (
                    "text",
                    &format!("number,user_id,password,name,mac,model\n{q},{q},{q},{q},{q},{q}\n"),
                ),
            ],
        );
        http(
            &o,
            "p201",
            &[
                "--data-urlencode",
                &format!("name={q}"),
                "--data-urlencode",
                &format!("password={q}"),
                &format!("{SITE}/login"),
            ],
        );
    }
    assert_eq!(everything(&o), before);

    let console = b.console();
    assert!(
        !console
            .iter()
            .any(|l| l.contains("Content Security Policy") || l.contains("alert")),
        "{console:?}"
    );
}
