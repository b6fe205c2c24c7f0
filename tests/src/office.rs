//! An office as it ships, for tests: `scripts/office` (the README's start command) running in
//! a PBX host's namespace of a [`Net`], the release `pbx-lite` for the commands the README
//! gives, and baresip phones at their own addresses, with what they heard. `office_network`
//! builds the office of `tests/office_lan.rs`:
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
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use crate::audio::{samples_so_far, timeline, tone};
use crate::baresip::Baresip;
use crate::netns::{self, Net};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The project's root.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// The hold music the tests set (Hz).
pub const MUSIC: f32 = 800.0;

/// Should a test of the office on a namespace network be skipped? Only when told so
/// (`SIP_SKIP_PEERS=1`, scripts/check --quick); without root it fails rather than pass
/// unseen.
pub fn skip() -> bool {
    if crate::kit::skip_peers() {
        return true;
    }
    assert!(
        netns::available(),
        "network namespaces are needed (run as root), or set SIP_SKIP_PEERS=1"
    );
    false
}

/// Where cargo puts release binaries, as `scripts/office` finds them.
pub fn release_bin(name: &str) -> PathBuf {
    static TARGET: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TARGET
        .get_or_init(target_dir)
        .join(format!("release/{name}"))
}

/// A command as a user would run it: without the variables cargo sets for this test, which
/// would make a cargo run from it build again (ring's build script reads
/// CARGO_MANIFEST_DIR, for one).
pub fn as_user(program: impl AsRef<std::ffi::OsStr>) -> Command {
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
pub fn cargo(args: &[&str]) -> std::process::Output {
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

pub fn target_dir() -> PathBuf {
    let o = cargo(&["metadata", "--format-version", "1", "--no-deps"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    PathBuf::from(v["target_directory"].as_str().unwrap())
}

pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub struct Phone {
    pub number: String,
    pub freq: f32,
    pub b: Baresip,
}

impl Phone {
    pub fn send(&self, command: &str) {
        self.b.command(&format!("{command}\n")).unwrap();
    }

    pub fn count(&self, text: &str) -> usize {
        self.b.log().matches(text).count()
    }

    /// What the phone has heard so far on its latest call.
    pub fn hearing(&self) -> Vec<i16> {
        self.b
            .latest_decoded()
            .map(|p| samples_so_far(&p))
            .unwrap_or_default()
    }

    /// How many recordings the phone has made (one a call, another after some re-INVITEs).
    pub fn recordings(&self) -> usize {
        self.b.decoded_files().len()
    }

    /// Everything the phone heard in its recordings from the `first`-th on, in order.
    pub fn heard_since(&self, first: usize) -> Vec<i16> {
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
pub struct Office {
    pub net: Net,
    pub db: PathBuf,
    pub pbx: Child,
    pbx_log: PathBuf,
    pub phones: Vec<Phone>,
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
    pub fn start(net: Net, extra: &[&str]) -> Office {
        Office::start_with(net, extra, &[])
    }

    /// [`Office::start`] with environment variables `env` for the start command.
    pub fn start_with(net: Net, extra: &[&str], env: &[(&str, &Path)]) -> Office {
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.pbx_log).unwrap_or_default()
            + &std::fs::read_to_string(self.net.path("pbx.err")).unwrap_or_default()
    }

    /// `pbx-lite --db DB ARGS…` (the binary `scripts/office` built), which must succeed.
    pub fn cli(&self, args: &[&str]) -> String {
        let o = netns::run(
            release_bin("pbx-lite").to_str().unwrap(),
            &[&["--db", self.db.to_str().unwrap()], args].concat(),
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Adds station `n` (user u`n`, password `Office-n-pass`) as the README says.
    pub fn add_station(&self, n: &str, extra: &[&str]) {
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

    pub fn set(&self, key: &str, value: &str) {
        self.cli(&["settings", "set", key, value]);
    }

    pub fn status(&self, number: &str) -> serde_json::Value {
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
    pub fn phone(&mut self, number: &str, host: &str, listen: &str, freq: f32, account: &str) {
        self.phone_with(number, host, listen, freq, account, "");
    }

    /// [`Office::phone`] with `extra` lines of baresip configuration.
    pub fn phone_with(
        &mut self,
        number: &str,
        host: &str,
        listen: &str,
        freq: f32,
        account: &str,
        extra: &str,
    ) {
        let wav = self.net.path(&format!("tone{number}.wav"));
        tone(&wav, freq);
        let listen: SocketAddr = listen.parse().unwrap();
        let b = Baresip::start_in_with(&self.net.ns(host), listen, &wav, account, extra).unwrap();
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

    pub fn p(&self, number: &str) -> &Phone {
        self.phones.iter().find(|p| p.number == number).unwrap()
    }

    /// Waits until `text` has appeared `n` times in `number`'s log; on a timeout, shows
    /// every log.
    pub fn wait_log(&self, number: &str, text: &str, n: usize) {
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
    pub fn wait_hearing(&self, number: &str, freq: f32) {
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
    pub fn call(&self, a: &str, dialled: &str, b: &str) {
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
    pub fn hang_up(&self, who: &str, other: &str) {
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
pub fn provision_cisco(net: &Net, host: &str, server: &str, mac: &str) -> (String, String, String) {
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
pub fn provision_http(net: &Net, host: &str, url: &str, auth: &str) -> (String, String, String) {
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

pub fn account(number: &str, server: &str, user: &str, password: &str) -> String {
    format!(
        "<sip:{number}@{server}>;auth_user={user};auth_pass={password};answermode=auto;\
         audio_codecs=PCMU;regint=3600"
    )
}

pub fn office_network() -> Net {
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
