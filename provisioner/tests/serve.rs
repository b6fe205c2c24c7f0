//! `provisioner serve` against real clients on loopback (issue #3, must-show 1, 3, 4, 5):
//! - a CSV import of two Cisco 7960, one AudioCodes 420HD and one X-Lite station;
//! - `curl tftp://`, tftp-hpa's `tftp` and `atftp --option "blksize 1428"` fetch
//!   SIPDefault.cnf, SIP<MAC>.cnf with the MAC in upper and lower case, and <mac>.cfg: each
//!   equals `provisioner render` byte for byte; the same over HTTP (curl);
//! - a write request, a name with `..`, an over-long name and a malformed packet each get an
//!   error packet, and the server keeps serving; an unknown MAC is "file not found" and is
//!   listed by `station unknown`;
//! - per-user files need that user's credentials over HTTP; the Cisco directory pages by 32;
//! - a change to the database shows on the next request, without a restart;
//! - the dnsmasq snippet passes `dnsmasq --test`;
//! - no password in the server's output or its request log.
#![allow(clippy::unwrap_used)]

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");
const CISCO_A: &str = "001122AABB01";
const CISCO_B: &str = "001122aabb03";
const AUDIOCODES: &str = "00908f000004";

fn skip() -> bool {
    std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1")
}

struct Server {
    child: Child,
    dir: tempfile::TempDir,
    tftp: u16,
    http: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    fn db(&self) -> PathBuf {
        self.dir.path().join("office.db")
    }

    fn cli(&self, args: &[&str]) -> Output {
        let out = Command::new(BIN)
            .arg("--db")
            .arg(self.db())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn render(&self, name: &str) -> Vec<u8> {
        self.cli(&["render", name]).stdout
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("stations.csv");
    std::fs::write(
        &csv,
        "number,user_id,password,name,mac,model,line\n\
201,u201,Pw-201-secret,Front Desk,00:11:22:aa:bb:01,cisco-7960,1\n\
202,u202,Pw-202-secret,Back Office,00:11:22:aa:bb:01,cisco-7960,2\n\
203,u203,Pw-203-secret,Warehouse,00:11:22:aa:bb:03,cisco-7960,1\n\
204,u204,Pw-204-secret,Reception,00-90-8F-00-00-04,audiocodes-420hd,1\n\
205,u205,Pw-205-secret,Laptop,,xlite,1\n",
    )
    .unwrap();
    let files = dir.path().join("tftproot");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("ringer9.pcm"), vec![0x7f; 3000]).unwrap();
    std::os::unix::fs::symlink(dir.path().join("office.db.key"), files.join("key-link")).unwrap();
    let (tftp, http) = (free_udp(), free_tcp());
    let mut s = Server {
        child: Command::new("true").spawn().unwrap(),
        dir,
        tftp,
        http,
    };
    s.cli(&["station", "import", csv.to_str().unwrap()]);
    s.cli(&[
        "settings",
        "set",
        "provisioning.http_port",
        &http.to_string(),
    ]);
    s.child = Command::new(BIN)
        .arg("--db")
        .arg(s.db())
        .args([
            "serve",
            "--tftp",
            &format!("127.0.0.1:{tftp}"),
            "--http",
            &format!("127.0.0.1:{http}"),
        ])
        .arg("--files")
        .arg(&files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn curl_tftp(s: &Server, name: &str) -> (i32, Vec<u8>) {
    let out = s.path("curl.out");
    let _ = std::fs::remove_file(&out);
    let o = run(Command::new("curl")
        .args(["-s", "--max-time", "10", "-o"])
        .arg(&out)
        .arg(format!("tftp://127.0.0.1:{}/{name}", s.tftp)));
    (
        o.status.code().unwrap_or(-1),
        std::fs::read(&out).unwrap_or_default(),
    )
}

fn tftp_hpa(s: &Server, name: &str) -> Vec<u8> {
    let out = s.path("hpa.out");
    let _ = std::fs::remove_file(&out);
    let o = run(Command::new("tftp")
        .args([
            "-m",
            "octet",
            "127.0.0.1",
            &s.tftp.to_string(),
            "-c",
            "get",
            name,
        ])
        .arg(&out));
    assert!(
        o.status.success(),
        "tftp get {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read(&out).unwrap()
}

fn atftp(s: &Server, name: &str) -> Vec<u8> {
    let out = s.path("atftp.out");
    let _ = std::fs::remove_file(&out);
    let o = run(Command::new("atftp")
        .args(["--option", "blksize 1428", "-g", "-r", name, "-l"])
        .arg(&out)
        .args(["127.0.0.1", &s.tftp.to_string()]));
    assert!(
        o.status.success(),
        "atftp {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read(&out).unwrap()
}

fn http_get(s: &Server, path: &str, auth: Option<&str>) -> (String, Vec<u8>) {
    let mut c = Command::new("curl");
    c.args(["-s", "--max-time", "10", "-D", "-", "-o"])
        .arg(s.path("http.out"));
    if let Some(a) = auth {
        c.args(["-u", a]);
    }
    c.arg(format!("http://127.0.0.1:{}/{path}", s.http));
    let o = run(&mut c);
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        std::fs::read(s.path("http.out")).unwrap_or_default(),
    )
}

#[test]
fn real_clients_fetch_what_render_prints() {
    if skip() {
        return;
    }
    let s = start();
    let names = [
        "SIPDefault.cnf".to_string(),
        format!("SIP{CISCO_A}.cnf"),
        format!("SIP{}.cnf", CISCO_A.to_lowercase()),
        format!("SIP{}.cnf", CISCO_B.to_uppercase()),
        format!("sip{CISCO_B}.cnf"),
        format!("{AUDIOCODES}.cfg"),
        format!("{}.cfg", AUDIOCODES.to_uppercase()),
        "dialplan.xml".to_string(),
    ];
    for name in &names {
        let want = s.render(name);
        assert!(!want.is_empty(), "{name}");
        let (rc, got) = curl_tftp(&s, name);
        assert_eq!(rc, 0, "curl {name}");
        assert_eq!(got, want, "curl tftp {name}");
        assert_eq!(tftp_hpa(&s, name), want, "tftp-hpa {name}");
        assert_eq!(atftp(&s, name), want, "atftp {name}");
        let (head, body) = http_get(&s, name, None);
        assert!(head.starts_with("HTTP/1.1 200"), "{name}: {head}");
        assert_eq!(body, want, "http {name}");
    }
    let per_phone = String::from_utf8(s.render(&format!("SIP{CISCO_A}.cnf"))).unwrap();
    assert!(per_phone.contains("line2_authname: \"u202\"") && !per_phone.contains("proxy"));
    let shared = String::from_utf8(s.render("SIPDefault.cnf")).unwrap();
    assert!(shared.contains(&format!(
        "directory_url: \"http://127.0.0.1:{}/directory.xml\"",
        s.http
    )));
    assert!(!shared.contains("Pw-"), "no credentials in SIPDefault.cnf");
}

/// Sends a raw packet to the TFTP port and returns the reply.
fn raw(s: &Server, packet: &[u8]) -> Vec<u8> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(packet, ("127.0.0.1", s.tftp)).unwrap();
    let mut buf = [0u8; 1024];
    let (n, _) = sock.recv_from(&mut buf).expect("an error packet");
    buf[..n].to_vec()
}

fn rrq(name: &[u8]) -> Vec<u8> {
    [b"\x00\x01".as_slice(), name, b"\0octet\0"].concat()
}

#[test]
fn bad_requests_get_error_packets_and_the_server_keeps_serving() {
    if skip() {
        return;
    }
    let s = start();
    let error = |p: &[u8]| -> (u16, String) {
        assert_eq!(&p[..2], b"\x00\x05", "an ERROR packet: {p:?}");
        (
            u16::from_be_bytes([p[2], p[3]]),
            String::from_utf8_lossy(&p[4..p.len() - 1]).into_owned(),
        )
    };
    let write = [b"\x00\x02".as_slice(), b"SIPDefault.cnf\0octet\0"].concat();
    assert_eq!(
        error(&raw(&s, &write)).0,
        2,
        "write refused: access violation"
    );
    let (code, msg) = error(&raw(&s, &rrq(b"../../etc/passwd")));
    assert_eq!(code, 2, "{msg}");
    assert_eq!(error(&raw(&s, &rrq(b"/../office.db"))).0, 2);
    let (code, msg) = error(&raw(&s, &rrq(&[b'A'; 400])));
    assert_eq!(code, 4, "over-long name: {msg}");
    assert!(msg.contains("longer"), "{msg}");
    assert_eq!(error(&raw(&s, b"\x00\x07garbage")).0, 4, "unknown opcode");
    assert_eq!(
        error(&raw(&s, b"\x00\x01no-terminator")).0,
        4,
        "malformed request"
    );
    assert_eq!(error(&raw(&s, b"\x00")).0, 4, "short packet");
    // Files outside the virtual root or unknown: not found, never the database or its key,
    // not even through a symlink inside the root; the root's own files are served.
    assert_eq!(error(&raw(&s, &rrq(b"office.db"))).0, 1);
    assert_eq!(error(&raw(&s, &rrq(b"key-link"))).0, 1);
    let (rc, ring) = curl_tftp(&s, "RINGER9.PCM");
    assert!(
        rc == 0 && ring == vec![0x7f; 3000],
        "static file: curl {rc}, {} bytes",
        ring.len()
    );
    let (head, _) = http_get(&s, "key-link", None);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    // An unknown MAC: not found, and listed for the admin.
    let (rc, _) = curl_tftp(&s, "SIP0011223344FF.cnf");
    assert_eq!(rc, 68, "curl: file not found");
    let unknown = String::from_utf8(s.cli(&["station", "unknown"]).stdout).unwrap();
    assert!(
        unknown.contains("0011223344ff") && unknown.contains("127.0.0.1"),
        "{unknown}"
    );
    // Still serving.
    assert_eq!(
        curl_tftp(&s, "SIPDefault.cnf").1,
        s.render("SIPDefault.cnf")
    );
}

/// Issue 15, finding 3: 2,000 guesses over one keep-alive connection found a password in
/// under a second. Now an address that guessed wrong `security.register_retry_limit` times
/// gets 401 even for the right password, while the phone elsewhere still fetches its file.
#[test]
fn http_password_guessing_is_throttled_but_not_the_phone_elsewhere() {
    if skip() {
        return;
    }
    let s = start();
    let url = format!("http://127.0.0.1:{}/settings-205.cps", s.http);
    let codes = |from: &str, auth: &str, times: usize| -> Vec<String> {
        let mut c = Command::new("curl");
        c.args(["-s", "--max-time", "10", "--interface", from, "-u", auth]);
        c.args(["-w", "%{http_code} %{num_connects}\n"]);
        for _ in 0..times {
            c.arg(&url).args(["-o", "/dev/null"]); // one connection, kept alive
        }
        let o = run(&mut c);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let guesses = codes("127.0.0.1", "u205:Guess-pass-1", 20);
    assert!(guesses.iter().all(|c| c.starts_with("401")), "{guesses:?}");
    assert_eq!(
        guesses.iter().filter(|c| c.ends_with(" 1")).count(),
        1,
        "one connection: {guesses:?}"
    );
    let right = codes("127.0.0.1", "u205:Pw-205-secret", 1);
    assert_eq!(right, ["401 1"], "the guessing address is blocked");
    let elsewhere = codes("127.0.0.2", "u205:Pw-205-secret", 1);
    assert_eq!(elsewhere, ["200 1"], "the phone at another address is not");
}

/// Issue 15, finding 8: `softphone-N.toml` answered 401 for a station that exists and 404
/// for one that does not, so it listed the stations to anyone.
#[test]
fn http_files_of_stations_that_do_not_exist_look_like_those_that_do() {
    if skip() {
        return;
    }
    let s = start();
    for auth in [None, Some("u999:Some-pass-1")] {
        let (exists, _) = http_get(&s, "settings-205.cps", auth);
        let (missing, _) = http_get(&s, "settings-999.cps", auth);
        let status = |h: &str| h.lines().next().unwrap_or_default().to_string();
        assert_eq!(status(&exists), status(&missing), "{auth:?}");
        assert!(exists.starts_with("HTTP/1.1 401"), "{exists}");
    }
}

/// Issue 15, finding 6 (TFTP): a flood of read requests that never ACK reached 20,000 open
/// files. Now one address holds at most 8 transfers at once and the rest are dropped, while
/// a phone at another address is served.
#[test]
fn a_read_request_flood_from_one_address_holds_eight_transfers() {
    if skip() {
        return;
    }
    let s = start();
    let socks: Vec<UdpSocket> = (0..20)
        .map(|_| {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.send_to(&rrq(b"SIPDefault.cnf"), ("127.0.0.1", s.tftp))
                .unwrap();
            sock
        })
        .collect();
    let answered = socks
        .iter()
        .filter(|sock| {
            sock.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut buf = [0u8; 1024];
            sock.recv_from(&mut buf)
                .is_ok_and(|(n, _)| n > 4 && buf[1] == 3)
        })
        .count();
    assert_eq!(answered, 8, "transfers started for one address");
    let out = s.path("other.out");
    let o = run(Command::new("curl")
        .args(["-s", "--max-time", "10", "--interface", "127.0.0.2", "-o"])
        .arg(&out)
        .arg(format!("tftp://127.0.0.1:{}/SIPDefault.cnf", s.tftp)));
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(std::fs::read(&out).unwrap(), s.render("SIPDefault.cnf"));
}

/// Issue 15 ("Also"): the per-MAC files, with their passwords, were served to any Host, so
/// a web page that rebinds its own name to the PBX could read them through a browser.
#[test]
fn phone_files_are_served_only_to_the_pbx_s_own_names() {
    if skip() {
        return;
    }
    let s = start();
    let name = format!("SIP{CISCO_B}.cnf");
    let get = |host: &str| {
        let o = run(Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(["-H", &format!("Host: {host}")])
            .arg(format!("http://127.0.0.1:{}/{name}", s.http)));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(get("attacker.example"), "403");
    assert_eq!(get(&format!("127.0.0.1:{}", s.http)), "200");
    s.cli(&["settings", "set", "pbx.host", "pbx.office.lan"]);
    assert_eq!(get("PBX.office.lan"), "200", "the name pbx.host gives");
}

#[test]
fn http_credentials_directory_and_live_changes() {
    if skip() {
        return;
    }
    let s = start();
    let (head, _) = http_get(&s, "settings-205.cps", None);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let (head, _) = http_get(&s, "settings-205.cps", Some("u205:wrong-password"));
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let (head, body) = http_get(&s, "settings-205.cps", Some("u205:Pw-205-secret"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, s.render("settings-205.cps"));
    assert_eq!(
        curl_tftp(&s, "settings-205.cps").0,
        69,
        "never over TFTP: access violation"
    );
    // Bria login: right and wrong credentials.
    let bria = |user: &str, pw: &str| {
        let o = run(Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "10",
                "--data",
                &format!("Username={user}&Password={pw}"),
            ])
            .arg(format!("http://127.0.0.1:{}/bria", s.http)));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(bria("u205", "Pw-205-secret").starts_with("[DATA]\r\nSuccess=1\r\n"));
    assert_eq!(
        bria("u205", "nope"),
        bria("nobody", "Pw-205-secret"),
        "same answer for unknown user and wrong password"
    );
    assert!(bria("nobody", "x").contains("Success=0"));
    // Directory: text/xml, 32 entries a page.
    for n in 300..340 {
        s.cli(&[
            "station",
            "add",
            "--number",
            &n.to_string(),
            "--user-id",
            &format!("d{n}"),
            "--password",
            &format!("Dir-{n}-pass"),
        ]);
    }
    // Only the office's phones read it (issue 15, finding 8): nobody registered from here,
    // so a station's credentials are needed, and wrong ones are refused.
    let (head, _) = http_get(&s, "directory.xml", None);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let (head, _) = http_get(&s, "directory.xml", Some("d300:wrong"));
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let phone = Some("d300:Dir-300-pass");
    let (head, body) = http_get(&s, "directory.xml", phone);
    assert!(
        head.to_ascii_lowercase().contains("content-type: text/xml"),
        "{head}"
    );
    let xml = String::from_utf8(body).unwrap();
    assert_eq!(xml.matches("<DirectoryEntry>").count(), 32);
    assert!(xml.contains("directory.xml?page=2"));
    let (_, page2) = http_get(&s, "directory.xml?page=2", phone);
    assert_eq!(
        String::from_utf8(page2)
            .unwrap()
            .matches("<DirectoryEntry>")
            .count(),
        45 - 32
    );
    // A change shows on the next request.
    s.cli(&["station", "set", "203", "name=Loading Dock"]);
    let (_, got) = curl_tftp(&s, &format!("SIP{CISCO_B}.cnf"));
    assert!(
        String::from_utf8(got)
            .unwrap()
            .contains("line1_displayname: \"Loading Dock\"")
    );
}

#[test]
fn no_password_in_logs_or_server_output() {
    if skip() {
        return;
    }
    let mut s = start();
    for name in [format!("SIP{CISCO_A}.cnf"), format!("{AUDIOCODES}.cfg")] {
        assert_eq!(curl_tftp(&s, &name).0, 0);
    }
    let log = String::from_utf8(s.cli(&["log", "--tail", "100"]).stdout).unwrap();
    assert!(
        log.contains(&format!("SIP{CISCO_A}.cnf")) && log.contains("sent"),
        "{log}"
    );
    let _ = s.child.kill();
    let out = s.child.wait_with_output_ref();
    for text in [log, out] {
        assert!(!text.contains("Pw-20"), "a password leaked: {text}");
    }
    let db = std::fs::read(s.db()).unwrap();
    assert!(
        !db.windows(6).any(|w| w == b"Pw-201"),
        "a password in the SQLite file"
    );
}

#[test]
fn dnsmasq_accepts_the_dhcp_snippet() {
    if skip() {
        return;
    }
    let s = start();
    let snippet = s
        .cli(&["dhcp", "--server", "dnsmasq", "--address", "192.0.2.10"])
        .stdout;
    let conf = s.path("dnsmasq.conf");
    std::fs::write(&conf, &snippet).unwrap();
    let o = run(Command::new("dnsmasq")
        .arg("--test")
        .arg(format!("--conf-file={}", conf.display())));
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&snippet),
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8(snippet).unwrap();
    assert!(
        text.contains("dhcp-option=66,\"192.0.2.10\"")
            && text.contains("150,192.0.2.10")
            && text.contains("160,")
    );
}

trait OutputRef {
    fn wait_with_output_ref(&mut self) -> String;
}

impl OutputRef for Child {
    /// Reads what the (killed) server printed.
    fn wait_with_output_ref(&mut self) -> String {
        use std::io::Read;
        let mut text = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut text);
        }
        if let Some(mut o) = self.stdout.take() {
            let _ = o.read_to_string(&mut text);
        }
        let _ = self.wait();
        text
    }
}
