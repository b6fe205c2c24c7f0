//! The office as it ships, on a network that looks like an office: `scripts/office` (the
//! README's start command, listening on every address) on a PBX host with two office
//! subnets, behind the office's NAT router with SIP and the RTP ports forwarded; phones
//! (baresip) at their own addresses, provisioned from their own hosts; a home worker behind
//! a NAT router of their own and a phone straight on the internet. Every call's audio is
//! checked both ways, and a capture of every host's packets is read at the end.
//!
//! ```text
//!   p201 .11  p202 .12                     p203 .11
//!      \       /                              |
//!   [lan 192.168.77.0/24] -- eth0 pbx .1 eth1 -- [lan2 192.168.88.0/24]
//!      |
//!   gw .254 (NAT, forwards 5060 and 10000-20000 to the PBX)
//!      | 203.0.113.1
//!   [inet 203.0.113.0/24] -- p205 .30 (a phone on the internet)
//!      | 203.0.113.20
//!   home (NAT) -- [home 10.0.5.0/24] -- p204 .11 (the home worker)
//! ```
#![allow(clippy::unwrap_used)]

use e2e::audio::{heard_in_order, samples_so_far, timeline, tone};
use e2e::baresip::Baresip;
use e2e::netns::{self, Net, packets};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const MUSIC: f32 = 800.0;

fn skip() -> bool {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return true;
    }
    assert!(
        netns::available(),
        "network namespaces are needed (run as root), or set SIP_SKIP_PEERS=1"
    );
    false
}

/// Where cargo puts release binaries, as `scripts/office` finds them.
fn release_bin(name: &str) -> PathBuf {
    static TARGET: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TARGET
        .get_or_init(target_dir)
        .join(format!("release/{name}"))
}

/// A command as a user would run it: without the variables cargo sets for this test, which
/// would make a cargo run from it build again (ring's build script reads
/// CARGO_MANIFEST_DIR, for one).
fn as_user(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let ours = [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_CRATE_",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_BIN_",
        ];
        if ours.iter().any(|p| k.starts_with(p)) {
            c.env_remove(k);
        }
    }
    c
}

/// `cargo ARGS…` on the project, as a user would run it; must succeed.
fn cargo(args: &[&str]) -> std::process::Output {
    let o = as_user("cargo")
        .args(args)
        .args(["--manifest-path", &format!("{ROOT}/Cargo.toml")])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn target_dir() -> PathBuf {
    let o = cargo(&["metadata", "--format-version", "1", "--no-deps"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    PathBuf::from(v["target_directory"].as_str().unwrap())
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Phone {
    number: String,
    freq: f32,
    b: Baresip,
}

impl Phone {
    fn send(&self, command: &str) {
        self.b.command(&format!("{command}\n")).unwrap();
    }

    fn count(&self, text: &str) -> usize {
        self.b.log().matches(text).count()
    }

    /// What the phone has heard so far on its latest call.
    fn hearing(&self) -> Vec<i16> {
        self.b
            .latest_decoded()
            .map(|p| samples_so_far(&p))
            .unwrap_or_default()
    }

    /// How many recordings the phone has made (one a call, another after some re-INVITEs).
    fn recordings(&self) -> usize {
        self.b.decoded_files().len()
    }

    /// Everything the phone heard in its recordings from the `first`-th on, in order.
    fn heard_since(&self, first: usize) -> Vec<i16> {
        let mut files = self.b.decoded_files();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .skip(first)
            .flat_map(|f| samples_so_far(f))
            .collect()
    }
}

/// The office: the network, `scripts/office` running on the PBX host, and the phones.
struct Office {
    net: Net,
    db: PathBuf,
    pbx: Child,
    pbx_log: PathBuf,
    phones: Vec<Phone>,
}

impl Drop for Office {
    fn drop(&mut self) {
        self.phones.clear();
        let _ = Command::new("kill")
            .args(["-TERM", &self.pbx.id().to_string()])
            .status();
        let _ = self.pbx.wait();
    }
}

impl Office {
    /// Starts the README's start command in the PBX's namespace, with `extra` flags, and
    /// waits until SIP listens.
    fn start(net: Net, extra: &[&str]) -> Office {
        Office::start_with(net, extra, &[])
    }

    /// [`Office::start`] with environment variables `env` for the start command.
    fn start_with(net: Net, extra: &[&str], env: &[(&str, &Path)]) -> Office {
        let db = net.path("office.db");
        let pbx_log = net.path("pbx.log");
        let pbx = as_user("ip")
            .args([
                "netns",
                "exec",
                &net.ns("pbx"),
                &format!("{ROOT}/scripts/office"),
            ])
            .envs(env.iter().copied())
            .arg("--db")
            .arg(&db)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&pbx_log).unwrap())
            .stderr(std::fs::File::create(net.path("pbx.err")).unwrap())
            .spawn()
            .unwrap();
        let mut o = Office {
            net,
            db,
            pbx,
            pbx_log,
            phones: Vec::new(),
        };
        // The first start builds pbx-lite (scripts/check builds it before the tests).
        wait_for(
            "the PBX to listen on 5060",
            Duration::from_secs(1200),
            || {
                assert!(
                    o.pbx.try_wait().unwrap().is_none(),
                    "scripts/office stopped:\n{}",
                    o.log()
                );
                let ss = o.net.exec("pbx", &["ss", "-Hlun", "sport = :5060"]);
                !ss.stdout.is_empty()
            },
        );
        o
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.pbx_log).unwrap_or_default()
            + &std::fs::read_to_string(self.net.path("pbx.err")).unwrap_or_default()
    }

    /// `pbx-lite --db DB ARGS…` (the binary `scripts/office` built), which must succeed.
    fn cli(&self, args: &[&str]) -> String {
        let o = netns::run(
            release_bin("pbx-lite").to_str().unwrap(),
            &[&["--db", self.db.to_str().unwrap()], args].concat(),
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Adds station `n` (user u`n`, password `Office-n-pass`) as the README says.
    fn add_station(&self, n: &str, extra: &[&str]) {
        let (user, pw) = (format!("u{n}"), format!("Office-{n}-pass"));
        let base = [
            "station",
            "add",
            "--number",
            n,
            "--user-id",
            &user,
            "--password",
            &pw,
        ];
        self.cli(&[&base[..], extra].concat());
    }

    fn set(&self, key: &str, value: &str) {
        self.cli(&["settings", "set", key, value]);
    }

    fn status(&self, number: &str) -> serde_json::Value {
        let rows: serde_json::Value =
            serde_json::from_str(&self.cli(&["status", "--json"])).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["number"] == number)
            .cloned()
            .unwrap()
    }

    /// Starts `number`'s phone on `host` at `listen`, playing `freq`, registering as
    /// `account` (an account line); waits for its registration.
    fn phone(&mut self, number: &str, host: &str, listen: &str, freq: f32, account: &str) {
        let wav = self.net.path(&format!("tone{number}.wav"));
        tone(&wav, freq);
        let listen: SocketAddr = listen.parse().unwrap();
        let b = Baresip::start_in(&self.net.ns(host), listen, &wav, account).unwrap();
        self.phones.retain(|p| p.number != number);
        self.phones.push(Phone {
            number: number.to_string(),
            freq,
            b,
        });
        let t0 = Instant::now();
        while self.status(number)["registered"] != true {
            if t0.elapsed() > Duration::from_secs(20) {
                panic!(
                    "{number} did not register\n----- phone -----\n{}\n----- PBX -----\n{}\n{}",
                    self.p(number).b.log(),
                    self.log(),
                    self.cli(&["access-log"])
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn p(&self, number: &str) -> &Phone {
        self.phones.iter().find(|p| p.number == number).unwrap()
    }

    /// Waits until `text` has appeared `n` times in `number`'s log; on a timeout, shows
    /// every log.
    fn wait_log(&self, number: &str, text: &str, n: usize) {
        let t0 = Instant::now();
        while self.p(number).count(text) < n {
            if t0.elapsed() > Duration::from_secs(20) {
                for q in &self.phones {
                    eprintln!("----- {} -----\n{}", q.number, q.b.log());
                }
                panic!(
                    "timed out waiting for {number}: {text:?} ×{n}\n----- PBX -----\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `number`'s latest recording ends with a second of `freq`.
    fn wait_hearing(&self, number: &str, freq: f32) {
        let t0 = Instant::now();
        loop {
            let t = timeline(&self.p(number).hearing());
            if t.len() >= 2 && t[t.len() - 2..].iter().all(|x| (x - freq).abs() <= 8.0) {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{number} never heard {freq} Hz; it heard {t:?}\n----- PBX -----\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `a` dials `dialled` (a station of phone `b`), `b` answers, and each hears the other.
    fn call(&self, a: &str, dialled: &str, b: &str) {
        let (na, nb) = (
            self.p(a).count("Call established"),
            self.p(b).count("Call established"),
        );
        let (ra, rb) = (self.p(a).recordings(), self.p(b).recordings());
        self.p(a).send(&format!("/dial {dialled}"));
        self.wait_log(a, "Call established", na + 1);
        self.wait_log(b, "Call established", nb + 1);
        wait_for("both phones recording", Duration::from_secs(10), || {
            self.p(a).recordings() > ra && self.p(b).recordings() > rb
        });
        self.wait_hearing(a, self.p(b).freq);
        self.wait_hearing(b, self.p(a).freq);
    }

    /// `who` hangs up; both ends of the call are over.
    fn hang_up(&self, who: &str, other: &str) {
        let (nw, no) = (
            self.p(who).count("terminated"),
            self.p(other).count("terminated"),
        );
        self.p(who).send("/hangup");
        self.wait_log(who, "terminated", nw + 1);
        self.wait_log(other, "terminated", no + 1);
    }
}

/// What a phone provisioned by TFTP gets: `(server, auth name, password)` from the Cisco
/// files it fetches from `server` (`SIPDefault.cnf`, `SIP<MAC>.cnf`).
fn provision_cisco(net: &Net, host: &str, server: &str, mac: &str) -> (String, String, String) {
    let fetch = |name: &str| {
        let o = net.exec(host, &["curl", "-s", &format!("tftp://{server}/{name}")]);
        String::from_utf8(o.stdout).unwrap()
    };
    let value = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("{key} not in:\n{text}"))
    };
    let default = fetch("SIPDefault.cnf");
    let own = fetch(&format!("SIP{mac}.cnf"));
    (
        value(&default, "proxy1_address"),
        value(&own, "line1_authname"),
        value(&own, "line1_password"),
    )
}

/// What the softphone profile fetched over HTTP from `server` says: `(server, user, pw)`.
fn provision_http(net: &Net, host: &str, url: &str, auth: &str) -> (String, String, String) {
    let o = net.exec(host, &["curl", "-sf", "-u", auth, url]);
    let text = String::from_utf8(o.stdout).unwrap();
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("{key} not in:\n{text}"))
    };
    (value("server"), value("user_id"), value("password"))
}

fn account(number: &str, server: &str, user: &str, password: &str) -> String {
    format!(
        "<sip:{number}@{server}>;auth_user={user};auth_pass={password};answermode=auto;\
         audio_codecs=PCMU;regint=3600"
    )
}

fn office_network() -> Net {
    let mut net = Net::new();
    for sw in ["lan", "lan2", "inet", "home"] {
        net.switch(sw);
    }
    for h in ["pbx", "p201", "p202", "p203", "gw", "home", "p204", "p205"] {
        net.host(h);
    }
    net.plug("pbx", "eth0", "lan", &["192.168.77.1/24"]);
    net.plug("pbx", "eth1", "lan2", &["192.168.88.1/24"]);
    net.plug("p201", "eth0", "lan", &["192.168.77.11/24"]);
    net.plug("p202", "eth0", "lan", &["192.168.77.12/24"]);
    net.plug("p203", "eth0", "lan2", &["192.168.88.11/24"]);
    net.plug("gw", "eth0", "lan", &["192.168.77.254/24"]);
    net.plug("gw", "eth1", "inet", &["203.0.113.1/24"]);
    net.plug("home", "eth0", "inet", &["203.0.113.20/24"]);
    net.plug("home", "eth1", "home", &["10.0.5.1/24"]);
    net.plug("p204", "eth0", "home", &["10.0.5.11/24"]);
    net.plug("p205", "eth0", "inet", &["203.0.113.30/24"]);
    // The PBX host routes between the two office subnets; the router is its way out.
    net.forwarding("pbx");
    net.route("pbx", "default via 192.168.77.254");
    net.route("p201", "default via 192.168.77.1");
    net.route("p202", "default via 192.168.77.1");
    net.route("p203", "default via 192.168.88.1");
    // The office's router: NAT out, SIP and the relay's ports forwarded in.
    net.forwarding("gw");
    net.route("gw", "192.168.88.0/24 via 192.168.77.1");
    for rule in [
        "-t nat -A PREROUTING -i eth1 -p udp --dport 5060 -j DNAT --to-destination 192.168.77.1",
        "-t nat -A PREROUTING -i eth1 -p tcp --dport 5060 -j DNAT --to-destination 192.168.77.1",
        "-t nat -A PREROUTING -i eth1 -p udp --dport 10000:20000 -j DNAT --to-destination 192.168.77.1",
        "-t nat -A POSTROUTING -o eth1 -j MASQUERADE",
    ] {
        net.iptables("gw", rule);
    }
    // The home worker's router.
    net.forwarding("home");
    net.iptables("home", "-t nat -A POSTROUTING -o eth0 -j MASQUERADE");
    net.route("p204", "default via 10.0.5.1");
    net
}

#[test]
fn the_office_on_its_lan_behind_its_router() {
    if skip() {
        return;
    }
    let mut net = office_network();
    net.capture_all();
    let mut o = Office::start(net, &[]);
    // The README's set-up: stations, the public address of the router.
    for (n, extra) in [
        (
            "201",
            &["--mac", "00:11:22:aa:bb:01", "--model", "cisco-7960"][..],
        ),
        (
            "202",
            &["--mac", "00:11:22:aa:bb:02", "--model", "cisco-7960"][..],
        ),
        ("203", &["--model", "softphone"][..]),
        ("204", &["--model", "softphone"][..]),
        ("205", &["--model", "softphone"][..]),
    ] {
        o.add_station(n, extra);
    }
    // The two phones outside the office register from addresses no whitelist can name.
    o.cli(&["station", "set", "204", "use_whitelist=no"]);
    o.cli(&["station", "set", "205", "use_whitelist=no"]);
    o.set("nat.public_address", "203.0.113.1");
    let music = o.net.path("music.wav");
    tone(&music, MUSIC);
    o.set("hold.music", music.to_str().unwrap());

    // `provisioner dhcp` without --address names the PBX's LAN address, and says so.
    cargo(&["build", "--release", "-q", "-j2", "-p", "provisioner"]);
    let dhcp = o
        .net
        .command("pbx", release_bin("provisioner").to_str().unwrap())
        .args([
            "--db",
            o.db.to_str().unwrap(),
            "dhcp",
            "--server",
            "dnsmasq",
        ])
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&dhcp.stdout),
        String::from_utf8_lossy(&dhcp.stderr),
    );
    assert!(
        out.contains("dhcp-option=66,\"192.168.77.1\""),
        "{out}{err}"
    );
    assert!(err.contains("using 192.168.77.1"), "{err}");

    // Provisioning from the phones' own hosts: each file names the address it came from.
    let (server, user, pw) = provision_cisco(&o.net, "p201", "192.168.77.1", "001122AABB01");
    assert_eq!(server, "192.168.77.1");
    o.phone(
        "201",
        "p201",
        "192.168.77.11:5060",
        440.0,
        &account("201", &server, &user, &pw),
    );
    let (server, user, pw) = provision_cisco(&o.net, "p202", "192.168.77.1", "001122AABB02");
    o.phone(
        "202",
        "p202",
        "192.168.77.12:5060",
        600.0,
        &account("202", &server, &user, &pw),
    );
    let (server, user, pw) = provision_http(
        &o.net,
        "p203",
        "http://192.168.88.1/softphone-203.toml",
        "u203:Office-203-pass",
    );
    assert_eq!(server, "192.168.88.1", "named as the phone reached it");
    o.phone(
        "203",
        "p203",
        "192.168.88.11:5060",
        700.0,
        &account("203", &server, &user, &pw),
    );
    // The home worker and the phone on the internet know the office's public address.
    o.phone(
        "204",
        "p204",
        "10.0.5.11:5060",
        500.0,
        &account("204", "203.0.113.1", "u204", "Office-204-pass"),
    );
    o.phone(
        "205",
        "p205",
        "203.0.113.30:5060",
        900.0,
        &account("205", "203.0.113.1", "u205", "Office-205-pass"),
    );
    // The registrar's intervals: asked 3600, the office's 600 granted; 60 behind NAT.
    assert!(o.status("201")["expires_in"].as_i64().unwrap() <= 600);
    assert_eq!(o.status("204")["nat"], true);
    assert!(o.status("204")["expires_in"].as_i64().unwrap() <= 60);

    // Direct media on the LAN: hang up from the caller, then from the called phone, and
    // call again at once (the called side's BYE used to go to 0.0.0.0, leaving 202 busy).
    o.call("201", "202", "202");
    o.hang_up("201", "202");
    o.call("201", "202", "202");
    o.hang_up("202", "201");
    let first = o.p("201").recordings();
    o.call("201", "202", "202");
    // Hold and resume from the called side: 201 hears the PBX's music, then 202 again.
    o.p("202").send("/hold");
    o.wait_hearing("201", MUSIC);
    o.p("202").send("/resume");
    o.wait_hearing("201", 600.0);
    let heard = o.p("201").heard_since(first);
    assert!(
        heard_in_order(&heard, &[600.0, MUSIC, 600.0]),
        "{:?}",
        timeline(&heard)
    );
    o.hang_up("202", "201");

    // A blind transfer from the called phone to the other subnet: 201 and 203 talk.
    o.call("201", "202", "202");
    let n203 = o.p("203").count("Call established");
    o.p("202").send("/transfer 203");
    o.wait_log("203", "Call established", n203 + 1);
    o.wait_hearing("201", 700.0);
    o.wait_hearing("203", 440.0);
    o.hang_up("203", "201");

    // Relayed (media.relay=always) across the two subnets: each phone is given the relay
    // at the address of its own side.
    o.set("media.relay", "always");
    o.call("201", "203", "203");
    o.hang_up("201", "203");
    o.set("media.relay", "auto");

    // The home worker behind NAT, relayed: called from the office, then calling in.
    o.call("201", "204", "204");
    o.hang_up("204", "201");
    o.call("204", "202", "202");
    o.hang_up("202", "204");
    // A phone on the internet reaches the PBX through the office router's forwards.
    o.call("205", "201", "201");
    o.hang_up("205", "201");

    // 202 reboots: a new Contact (another port) and Call-ID from the same address. Only
    // the new registration rings.
    o.phones.retain(|p| p.number != "202");
    let (server, user, pw) = provision_cisco(&o.net, "p202", "192.168.77.1", "001122AABB02");
    o.phone(
        "202",
        "p202",
        "192.168.77.12:5062",
        600.0,
        &account("202", &server, &user, &pw),
    );
    wait_for("one binding for 202", Duration::from_secs(10), || {
        o.status("202")["contacts"] == 1
    });
    o.call("201", "202", "202");
    o.hang_up("201", "202");

    // On the wire: no unspecified address anywhere, and nothing of the office's private
    // networks said to a phone on the public side.
    let captured = o.net.captured();
    let all: String = captured.iter().map(|(_, t)| t.as_str()).collect();
    assert!(all.contains("INVITE sip:"), "the capture saw the calls");
    for (host, text) in &captured {
        for (header, body) in packets(text) {
            assert!(
                !body.contains("0.0.0.0") && !header.contains(" 0.0.0.0."),
                "{host}: an unspecified address on the wire:\n{header}\n{body}"
            );
            if host == "p204" || host == "p205" {
                assert!(
                    !body.contains("192.168."),
                    "{host}: a private office address sent to the public side:\n{header}\n{body}"
                );
            }
        }
    }
    // The relay is announced at each phone's own side of the PBX.
    let said_to =
        |host: &str, text: &str| captured.iter().any(|(h, t)| h == host && t.contains(text));
    assert!(said_to("p201", "c=IN IP4 192.168.77.1"));
    assert!(said_to("p203", "c=IN IP4 192.168.88.1"));
    assert!(said_to("p204", "c=IN IP4 203.0.113.1"));
    assert!(said_to("p205", "c=IN IP4 203.0.113.1"));
    // The registrar's grants as the phones saw them.
    let grants = |host: &str| -> Vec<String> {
        let text = &captured.iter().find(|(h, _)| h == host).unwrap().1;
        packets(text)
            .into_iter()
            .filter(|(_, b)| b.contains("SIP/2.0 200 OK") && b.contains(" REGISTER"))
            .filter_map(|(_, b)| {
                b.lines()
                    .find(|l| l.starts_with("Contact:"))
                    .map(str::to_string)
            })
            .collect()
    };
    let office = grants("p201");
    assert!(
        !office.is_empty() && office.iter().all(|c| c.contains("expires=600")),
        "{office:?}"
    );
    let home = grants("p204");
    assert!(
        !home.is_empty() && home.iter().all(|c| c.contains("expires=60")),
        "{home:?}"
    );
}

#[test]
fn the_office_on_ipv6() {
    if skip() {
        return;
    }
    let mut net = Net::new();
    net.switch("lan");
    for h in ["pbx", "p201", "p202"] {
        net.host(h);
    }
    net.plug("pbx", "eth0", "lan", &["fd00:77::1/64"]);
    net.plug("p201", "eth0", "lan", &["fd00:77::11/64"]);
    net.plug("p202", "eth0", "lan", &["fd00:77::12/64"]);
    net.capture_all();
    // The start command runs the binary where cargo says it built it (CARGO_TARGET_DIR
    // here), not a `target/` it assumes. (The folder this build already uses: another would
    // be a second build.)
    let elsewhere = target_dir();
    let mut o = Office::start_with(
        net,
        &[
            "--sip",
            "[::]:5060",
            "--tftp",
            "[::]:69",
            "--http",
            "[::]:80",
        ],
        &[("CARGO_TARGET_DIR", &elsewhere)],
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", o.pbx.id())).unwrap();
    let running = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        running.starts_with(&format!("{}/release/pbx-lite ", elsewhere.display())),
        "{running}"
    );
    for n in ["201", "202"] {
        o.add_station(n, &[]);
    }
    let (server, user, pw) = provision_http(
        &o.net,
        "p201",
        "http://[fd00:77::1]/softphone-201.toml",
        "u201:Office-201-pass",
    );
    assert_eq!(server, "fd00:77::1");
    let server = format!("[{server}]");
    o.phone(
        "201",
        "p201",
        "[fd00:77::11]:5060",
        440.0,
        &account("201", &server, &user, &pw),
    );
    o.phone(
        "202",
        "p202",
        "[fd00:77::12]:5060",
        600.0,
        &account("202", &server, "u202", "Office-202-pass"),
    );
    o.call("201", "202", "202");
    o.hang_up("202", "201");
    o.call("201", "202", "202");
    o.hang_up("201", "202");
    let captured = o.net.captured();
    for (host, text) in &captured {
        for (header, body) in packets(text) {
            let unspecified = body.contains("0.0.0.0")
                || body.contains("[::]")
                || body.lines().any(|l| l.trim_end().ends_with("IP6 ::"));
            assert!(
                !unspecified,
                "{host}: an unspecified address on the wire:\n{header}\n{body}"
            );
        }
    }
}
