//! Virtual networks for tests, from Linux network namespaces (root needed): hosts with their
//! own addresses joined by bridges (switches), routers with NAT, and a packet capture on
//! every host. Everything is made by [`Net::new`] and torn down when the [`Net`] is dropped;
//! no namespace is joined to the machine's own network, so nothing a test sends leaves it.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Can this process make namespaces (root, `ip` present)?
pub fn available() -> bool {
    let probe = format!(
        "probe{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let ok = Command::new("ip")
        .args(["netns", "add", &probe])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    }
    ok
}

/// Runs a command, which must succeed; its output.
pub fn run(program: &str, args: &[&str]) -> Output {
    let o = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        o.status.success(),
        "{program} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A virtual network: namespaces named `<prefix>-<host>`, one of them (`<prefix>-sw`)
/// holding the bridges.
pub struct Net {
    prefix: String,
    hosts: Vec<String>,
    bridges: Vec<String>,
    links: u32,
    captures: Vec<(Child, PathBuf)>,
    pub dir: tempfile::TempDir,
}

impl Net {
    pub fn new() -> Net {
        let prefix = format!(
            "t{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let net = Net {
            prefix,
            hosts: Vec::new(),
            bridges: Vec::new(),
            links: 0,
            captures: Vec::new(),
            dir: tempfile::tempdir().expect("a temporary folder"),
        };
        net.make_namespace("sw");
        net
    }

    /// The namespace name of `host`.
    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    fn make_namespace(&self, host: &str) {
        let ns = self.ns(host);
        run("ip", &["netns", "add", &ns]);
        run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
    }

    /// A switch: a bridge in the switch namespace.
    pub fn switch(&mut self, name: &str) {
        let sw = self.ns("sw");
        run("ip", &["-n", &sw, "link", "add", name, "type", "bridge"]);
        run("ip", &["-n", &sw, "link", "set", name, "up"]);
        self.bridges.push(name.to_string());
    }

    /// A host (a namespace of its own).
    pub fn host(&mut self, host: &str) {
        self.make_namespace(host);
        self.hosts.push(host.to_string());
    }

    /// Plugs `host` into `switch` as interface `ifname` with addresses `cidrs`
    /// (`192.168.77.1/24`, `fd00:77::1/64`).
    pub fn plug(&mut self, host: &str, ifname: &str, switch: &str, cidrs: &[&str]) {
        self.links += 1;
        let (a, b) = (
            format!("{}l{}a", self.prefix, self.links),
            format!("{}l{}b", self.prefix, self.links),
        );
        let (ns, sw) = (self.ns(host), self.ns("sw"));
        run(
            "ip",
            &["link", "add", &a, "type", "veth", "peer", "name", &b],
        );
        run("ip", &["link", "set", &a, "netns", &ns]);
        run("ip", &["link", "set", &b, "netns", &sw]);
        run("ip", &["-n", &ns, "link", "set", &a, "name", ifname]);
        for cidr in cidrs {
            let mut args = vec!["-n", &ns, "addr", "add", cidr, "dev", ifname];
            if cidr.contains(':') {
                args.push("nodad"); // usable at once, no duplicate-address wait
            }
            run("ip", &args);
        }
        run("ip", &["-n", &ns, "link", "set", ifname, "up"]);
        run("ip", &["-n", &sw, "link", "set", &b, "master", switch]);
        run("ip", &["-n", &sw, "link", "set", &b, "up"]);
    }

    /// Runs `args` in `host`'s namespace, which must succeed.
    pub fn exec(&self, host: &str, args: &[&str]) -> Output {
        let ns = self.ns(host);
        let mut all = vec!["netns", "exec", &ns];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// A command to run in `host`'s namespace.
    pub fn command(&self, host: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(host), program]);
        c
    }

    /// A route in `host`: `default via 192.168.77.254`, `192.168.88.0/24 via …`.
    pub fn route(&self, host: &str, route: &str) {
        let ns = self.ns(host);
        let mut args = vec!["-n", ns.as_str(), "route", "add"];
        args.extend(route.split_whitespace());
        run("ip", &args);
    }

    /// Lets `host` forward packets between its interfaces (a router).
    pub fn forwarding(&self, host: &str) {
        self.exec(host, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        self.exec(
            host,
            &["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"],
        );
    }

    /// An iptables rule in `host` (`-t nat -A POSTROUTING -o eth1 -j MASQUERADE`).
    pub fn iptables(&self, host: &str, rule: &str) {
        let mut args = vec!["iptables"];
        args.extend(rule.split_whitespace());
        self.exec(host, &args);
    }

    /// Starts a capture of every packet on every interface of every host; read it back with
    /// [`Net::captured`].
    pub fn capture_all(&mut self) {
        for host in self.hosts.clone() {
            let file = self.dir.path().join(format!("{host}.pcap"));
            let err = self.dir.path().join(format!("{host}.tcpdump"));
            let child = self
                .command(&host, "tcpdump")
                .args(["-i", "any", "-n", "-U", "-s", "0", "-w"])
                .arg(&file)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&err).expect("capture log"))
                .spawn()
                .expect("tcpdump");
            let t0 = Instant::now();
            while !std::fs::read_to_string(&err)
                .unwrap_or_default()
                .contains("listening on")
            {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "tcpdump in {host} did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            self.captures.push((child, file));
        }
    }

    /// Stops the captures; for each host, its packets as `tcpdump -A` prints them (a header
    /// line, then the payload as text).
    pub fn captured(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for ((mut child, file), host) in self.captures.drain(..).zip(self.hosts.clone()) {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
            let text = run("tcpdump", &["-r", &file.to_string_lossy(), "-n", "-A"]);
            out.push((host, String::from_utf8_lossy(&text.stdout).into_owned()));
        }
        out
    }

    /// A file in the network's temporary folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Default for Net {
    fn default() -> Self {
        Net::new()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for (mut c, _) in self.captures.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Whatever still runs in a namespace (a PBX, phones) is ended with it.
        for host in self.hosts.iter().chain(std::iter::once(&"sw".to_string())) {
            let ns = self.ns(host);
            if let Ok(o) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Splits `tcpdump -A` text into packets: (header line, payload text).
pub fn packets(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let starts_packet = line.len() > 15
            && line.as_bytes()[2] == b':'
            && line.as_bytes()[5] == b':'
            && line[..2].chars().all(|c| c.is_ascii_digit());
        if starts_packet {
            out.push((line.to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// A UDP socket sending from `addr`, the host's own or not: a forged source for attacks in
/// a namespace (IP_TRANSPARENT, which needs CAP_NET_ADMIN: the tests run as root). Replies
/// to a forged source go to whoever really has it.
pub fn udp_from(addr: std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    if let Ok(s) = std::net::UdpSocket::bind(addr) {
        return Ok(s);
    }
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv4() {
        s.set_ip_transparent_v4(true)?;
    } else {
        s.set_ip_transparent_v6(true)?;
    }
    s.bind(&addr.into())?;
    Ok(s.into())
}
