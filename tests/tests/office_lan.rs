//! The office as it ships, on a network that looks like an office: `scripts/office` (the
//! README's start command, listening on every address) on a PBX host with two office
//! subnets, behind the office's NAT router with SIP and the RTP ports forwarded; phones
//! (baresip) at their own addresses, provisioned from their own hosts; a home worker behind
//! a NAT router of their own and a phone straight on the internet. Every call's audio is
//! checked both ways, and a capture of every host's packets is read at the end.
//! The network is `e2e::office::office_network`.
#![allow(clippy::unwrap_used)]

use e2e::audio::{heard_in_order, timeline, tone};
use e2e::netns::{Net, packets};
use e2e::office::{
    MUSIC, Office, account, cargo, office_network, provision_cisco, provision_http, release_bin,
    skip, target_dir, wait_for,
};
use std::time::Duration;

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

    // 203 on TLS with SRTP mandatory (trusting only the office's CA): its calls are
    // anchored, the relay decrypting its leg and encrypting 201's plain audio for it.
    o.cli(&["station", "set", "203", "srtp=mandatory"]);
    o.phones.retain(|p| p.number != "203");
    let ca = format!("{}.tls/ca.pem", o.db.display());
    o.phone_with(
        "203",
        "p203",
        "192.168.88.11:5062",
        700.0,
        &format!(
            "{};mediaenc=srtp-mand",
            account(
                "203",
                "192.168.88.1;transport=tls",
                "u203",
                "Office-203-pass"
            )
        ),
        &format!("sip_cafile {ca}\n"),
    );
    o.call("201", "203", "203");
    assert!(
        o.log().contains("201 (RTP) connected to 203 (SRTP)"),
        "{}",
        o.log()
    );
    // Hung up from each end: the PBX's Contact to a phone on TLS names its TLS port (it
    // named the UDP one, so a TLS phone's BYE went to a port that speaks no TLS).
    o.hang_up("203", "201");
    o.call("203", "201", "201");
    o.hang_up("201", "203");

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
