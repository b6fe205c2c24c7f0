//! The registrar's policy on virtual time: bindings, expiry, digest, retry limits.

use super::*;
use sip::auth::DigestClient;
use sip::transaction::TransportKind;
use sip::{Method, build};
use std::time::Duration;

struct Dir(Vec<Station>);

impl Directory for Dir {
    fn by_number(&self, n: &str) -> Option<Station> {
        self.0.iter().find(|s| s.number == n).cloned()
    }
}

fn dir() -> Dir {
    let mut s = Station::new("201", "u201", "Right-pass-1", 8).unwrap();
    s.set("use_whitelist", "yes").unwrap();
    Dir(vec![s])
}

fn policy(silent: bool) -> Policy {
    Policy {
        retry_limit: 3,
        block_seconds: 60,
        silent,
        whitelist: "127.0.0.0/8".into(),
        min_expires: 60,
        default_expires: 600,
        nat_expires: 60,
    }
}

fn register(aor: &str, from: &str) -> (Request, Peer) {
    let local: std::net::SocketAddr = format!("{from}:5070").parse().unwrap();
    let mut r = build::request(
        Method::Register,
        "sip:127.0.0.1",
        &format!("sip:{aor}@127.0.0.1"),
        &format!("sip:{aor}@127.0.0.1"),
        TransportKind::Udp,
        local,
    )
    .unwrap();
    r.headers.insert(Name::EXPIRES, "600");
    (r, Peer::new(TransportKind::Udp, local))
}

fn status(o: &Outcome) -> u16 {
    match o {
        Outcome::Reply(r) => r.status,
        Outcome::Silent => 0,
    }
}

/// REGISTER, answer the challenge with `password`, REGISTER again.
fn attempt(
    reg: &mut Registrar,
    now: SystemTime,
    aor: &str,
    user: &str,
    password: &str,
    from: &str,
    p: &Policy,
) -> Outcome {
    let (mut req, peer) = register(aor, from);
    let Outcome::Reply(challenge) = reg.handle(now, &req, peer, p, &dir()) else {
        return Outcome::Silent;
    };
    if challenge.status != 401 {
        return Outcome::Reply(challenge);
    }
    DigestClient::new(user, password).authorize(&mut req, &challenge);
    reg.handle(now, &req, peer, p, &dir())
}

/// A REGISTER from `from` (an address:port) naming `contact`, asking for `expires`,
/// authenticated as u201; the 200's granted expiry of each contact.
fn bind_as(
    reg: &mut Registrar,
    from: &str,
    contact: &str,
    expires: &str,
    call_id: &str,
) -> Result<Vec<(String, u32)>, u16> {
    let source: std::net::SocketAddr = from.parse().unwrap();
    let (mut req, _) = register("201", &source.ip().to_string());
    for (name, value) in [
        (Name::CONTACT, contact),
        (Name::EXPIRES, expires),
        (Name::CALL_ID, call_id),
    ] {
        req.headers.remove(&name);
        req.headers.insert(name, value.to_string());
    }
    let peer = Peer::new(TransportKind::Udp, source);
    let now = SystemTime::now();
    let Outcome::Reply(c) = reg.handle(now, &req, peer, &policy(false), &dir()) else {
        return Err(0);
    };
    DigestClient::new("u201", "Right-pass-1").authorize(&mut req, &c);
    let Outcome::Reply(ok) = reg.handle(now, &req, peer, &policy(false), &dir()) else {
        return Err(0);
    };
    if ok.status != 200 {
        return Err(ok.status);
    }
    Ok(ok
        .headers
        .get_raw(&Name::CONTACT)
        .map(|v| {
            let (uri, exp) = v.split_once(";expires=").unwrap();
            (
                uri.trim_matches(['<', '>']).to_string(),
                exp.parse().unwrap(),
            )
        })
        .collect())
}

#[test]
fn the_office_interval_caps_what_a_phone_asks_for() {
    let mut reg = Registrar::new("office", [1; 32], vec![DigestAlgorithm::Md5]);
    let c = "<sip:201@127.0.0.1:5070>";
    let granted = bind_as(&mut reg, "127.0.0.1:5070", c, "3600", "a").unwrap();
    assert_eq!(granted, [("sip:201@127.0.0.1:5070".to_string(), 600)]);
    let granted = bind_as(&mut reg, "127.0.0.1:5070", c, "300", "a").unwrap();
    assert_eq!(granted[0].1, 300, "a shorter request is granted as asked");
    assert_eq!(bind_as(&mut reg, "127.0.0.1:5070", c, "30", "a"), Err(423));
}

#[test]
fn a_phone_behind_nat_gets_the_nat_interval() {
    let mut reg = Registrar::new("office", [1; 32], vec![DigestAlgorithm::Md5]);
    // Its Contact names its private address; its packets come from the NAT's.
    let c = "<sip:201@10.0.5.11:5060>";
    let granted = bind_as(&mut reg, "127.0.0.9:40000", c, "3600", "a").unwrap();
    assert_eq!(granted, [("sip:201@10.0.5.11:5060".to_string(), 60)]);
}

#[test]
fn a_rebooted_phone_replaces_its_old_binding() {
    let mut reg = Registrar::new("office", [1; 32], vec![DigestAlgorithm::Md5]);
    let now = SystemTime::now();
    bind_as(
        &mut reg,
        "127.0.0.5:5060",
        "<sip:201@127.0.0.5:5060>",
        "600",
        "boot-1",
    )
    .unwrap();
    // Rebooted: a new port in its Contact, a new Call-ID, from the same address.
    let granted = bind_as(
        &mut reg,
        "127.0.0.5:5062",
        "<sip:201@127.0.0.5:5062>",
        "600",
        "boot-2",
    )
    .unwrap();
    assert_eq!(granted.len(), 1, "the 200 names only the new binding");
    let now_bound = reg.lookup("201", now);
    assert_eq!(now_bound.len(), 1);
    assert_eq!(now_bound[0].contact, "sip:201@127.0.0.5:5062");
    // Another phone of the same station, elsewhere, keeps its own binding.
    bind_as(
        &mut reg,
        "127.0.0.6:5060",
        "<sip:201@127.0.0.6:5060>",
        "600",
        "x",
    )
    .unwrap();
    assert_eq!(reg.lookup("201", now).len(), 2);
    // The same instance (RFC 5626) moving to a new address replaces its binding too.
    let inst = ";+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-000000000001>\"";
    bind_as(
        &mut reg,
        "127.0.0.7:5060",
        &format!("<sip:201@127.0.0.7:5060>{inst}"),
        "600",
        "y",
    )
    .unwrap();
    bind_as(
        &mut reg,
        "127.0.0.8:5060",
        &format!("<sip:201@127.0.0.8:5060>{inst}"),
        "600",
        "y",
    )
    .unwrap();
    let contacts: Vec<String> = reg
        .lookup("201", now)
        .into_iter()
        .map(|r| r.contact)
        .collect();
    assert!(contacts.contains(&"sip:201@127.0.0.8:5060".to_string()));
    assert!(
        !contacts.contains(&"sip:201@127.0.0.7:5060".to_string()),
        "{contacts:?}"
    );
}

#[test]
fn register_binds_and_unregisters() {
    let mut reg = Registrar::new("office", [1; 32], vec![DigestAlgorithm::Md5]);
    let now = SystemTime::now();
    let o = attempt(
        &mut reg,
        now,
        "201",
        "u201",
        "Right-pass-1",
        "127.0.0.1",
        &policy(false),
    );
    assert_eq!(status(&o), 200);
    assert_eq!(reg.lookup("201", now).len(), 1);
    assert_eq!(reg.take_changes().len(), 1);
    assert!(
        reg.lookup("201", now + Duration::from_secs(601)).is_empty(),
        "expires after 600 s"
    );
    // Expires: 0 with * removes every binding.
    let (mut req, peer) = register("201", "127.0.0.1");
    req.headers.remove(&Name::EXPIRES);
    req.headers.insert(Name::EXPIRES, "0");
    req.headers.remove(&Name::CONTACT);
    req.headers.insert(Name::CONTACT, "*");
    let Outcome::Reply(c) = reg.handle(now, &req, peer, &policy(false), &dir()) else {
        panic!()
    };
    DigestClient::new("u201", "Right-pass-1").authorize(&mut req, &c);
    assert_eq!(
        status(&reg.handle(now, &req, peer, &policy(false), &dir())),
        200
    );
    assert!(reg.lookup("201", now).is_empty());
}

#[test]
fn wrong_password_and_unknown_user_look_alike_until_blocked() {
    for silent in [false, true] {
        let mut reg = Registrar::new("office", [1; 32], vec![DigestAlgorithm::Md5]);
        let now = SystemTime::now();
        let p = policy(silent);
        let a = attempt(&mut reg, now, "201", "u201", "wrong", "127.0.0.1", &p);
        let b = attempt(
            &mut reg,
            now,
            "201",
            "nobody",
            "Right-pass-1",
            "127.0.0.1",
            &p,
        );
        assert_eq!((status(&a), status(&b)), (401, 401), "same answer");
        let c = attempt(
            &mut reg,
            now,
            "999",
            "u201",
            "Right-pass-1",
            "127.0.0.1",
            &p,
        );
        assert_eq!(
            status(&c),
            if silent { 0 } else { 403 },
            "third failure: blocked"
        );
        // Blocked: even the right password gets nowhere until the timer ends.
        let d = attempt(
            &mut reg,
            now,
            "201",
            "u201",
            "Right-pass-1",
            "127.0.0.1",
            &p,
        );
        assert_eq!(status(&d), if silent { 0 } else { 403 });
        let later = now + Duration::from_secs(61);
        assert_eq!(
            status(&attempt(
                &mut reg,
                later,
                "201",
                "u201",
                "Right-pass-1",
                "127.0.0.1",
                &p
            )),
            200
        );
        let log = reg.take_access();
        assert!(
            log.iter().any(|a| a.reason == "unknown user")
                && log.iter().any(|a| a.reason == "wrong password")
        );
    }
}

#[test]
fn invites_must_authenticate_as_their_station() {
    let mut reg = Registrar::new("office", [1; 32], vec![DigestAlgorithm::Md5]);
    let now = SystemTime::now();
    let local: std::net::SocketAddr = "127.0.0.1:5070".parse().unwrap();
    let peer = Peer::new(TransportKind::Udp, local);
    let invite = || {
        build::request(
            Method::Invite,
            "sip:202@127.0.0.1",
            "sip:201@127.0.0.1",
            "sip:202@127.0.0.1",
            TransportKind::Udp,
            local,
        )
        .unwrap()
    };
    let mut req = invite();
    let challenge = reg
        .authorize_invite(now, &req, peer, &policy(false), &dir())
        .unwrap_err();
    assert_eq!(challenge.status, 407);
    assert!(challenge.headers.contains(&Name::PROXY_AUTHENTICATE));
    DigestClient::new("u201", "wrong-one").authorize(&mut req, &challenge);
    assert_eq!(
        reg.authorize_invite(now, &req, peer, &policy(false), &dir())
            .unwrap_err()
            .status,
        403
    );
    let mut req = invite();
    DigestClient::new("u201", "Right-pass-1").authorize(&mut req, &challenge);
    assert_eq!(
        reg.authorize_invite(now, &req, peer, &policy(false), &dir())
            .unwrap(),
        "201"
    );
    // Another station's credentials do not make a caller 201.
    let mut spoof = invite();
    DigestClient::new("u999", "Right-pass-1").authorize(&mut spoof, &challenge);
    assert_eq!(
        reg.authorize_invite(now, &spoof, peer, &policy(false), &dir())
            .unwrap_err()
            .status,
        403
    );
}

/// The status a REGISTER of 201 as u201 with `password` from `from` ends with.
fn status_201(reg: &mut Registrar, now: SystemTime, password: &str, from: &str, p: &Policy) -> u16 {
    status(&attempt(reg, now, "201", "u201", password, from, p))
}

#[test]
fn invite_guesses_count_like_register_guesses_and_carry_the_address() {
    let mut reg = Registrar::new("office", [1; 32], vec![DigestAlgorithm::Md5]);
    let now = SystemTime::now();
    let p = policy(false); // 3 guesses
    let attacker = Peer::new(TransportKind::Udp, "127.0.0.66:5060".parse().unwrap());
    let invite = || {
        build::request(
            Method::Invite,
            "sip:202@127.0.0.1",
            "sip:201@127.0.0.1",
            "sip:202@127.0.0.1",
            TransportKind::Udp,
            attacker.addr,
        )
        .unwrap()
    };
    let challenge = reg
        .authorize_invite(now, &invite(), attacker, &p, &dir())
        .unwrap_err();
    for _ in 0..3 {
        let mut req = invite();
        DigestClient::new("u201", "guess").authorize(&mut req, &challenge);
        assert_eq!(
            reg.authorize_invite(now, &req, attacker, &p, &dir())
                .unwrap_err()
                .status,
            403
        );
    }
    let access = reg.take_access();
    assert_eq!(access.len(), 3);
    assert!(
        access.iter().all(|a| a.address == "127.0.0.66"),
        "{access:?}"
    );
    assert!(access[2].reason.contains("blocked"));
    // Now even the right password is refused from there, and so is REGISTER.
    let mut req = invite();
    DigestClient::new("u201", "Right-pass-1").authorize(&mut req, &challenge);
    assert_eq!(
        reg.authorize_invite(now, &req, attacker, &p, &dir())
            .unwrap_err()
            .status,
        403
    );
    assert_eq!(
        status_201(&mut reg, now, "Right-pass-1", "127.0.0.66", &p),
        403
    );
    // The phone at its own address is not affected.
    assert_eq!(
        status_201(&mut reg, now, "Right-pass-1", "127.0.0.1", &p),
        200
    );
}

#[test]
fn guesses_spread_over_addresses_never_lock_out_the_registered_phone() {
    let mut reg = Registrar::new("office", [1; 32], vec![DigestAlgorithm::Md5]);
    let now = SystemTime::now();
    let p = policy(false); // 3 per address, 12 per station
    assert_eq!(
        status_201(&mut reg, now, "Right-pass-1", "127.0.0.1", &p),
        200
    );
    for i in 0..12 {
        let from = format!("127.0.1.{i}");
        let o = attempt(&mut reg, now, "201", "u201", "guess", &from, &p);
        assert_eq!(status(&o), 401, "a guess from {from}");
    }
    // The station is under attack: a fresh address with the right password is refused…
    assert_eq!(
        status_201(&mut reg, now, "Right-pass-1", "127.0.2.1", &p),
        403
    );
    // …the phone where it is registered goes on…
    assert_eq!(
        status_201(&mut reg, now, "Right-pass-1", "127.0.0.1", &p),
        200
    );
    // …and after the block time anyone may try again.
    let later = now + Duration::from_secs(61);
    assert_eq!(
        status_201(&mut reg, later, "Right-pass-1", "127.0.2.1", &p),
        200
    );
}

#[test]
fn whitelist_and_min_expires() {
    let mut reg = Registrar::new("office", [1; 32], vec![DigestAlgorithm::Md5]);
    let now = SystemTime::now();
    let mut p = policy(false);
    p.whitelist = "10.0.0.0/8".into();
    assert_eq!(
        status(&attempt(
            &mut reg,
            now,
            "201",
            "u201",
            "Right-pass-1",
            "127.0.0.1",
            &p
        )),
        403
    );
    let p = policy(false);
    let (mut req, peer) = register("201", "127.0.0.1");
    req.headers.remove(&Name::EXPIRES);
    req.headers.insert(Name::EXPIRES, "30");
    let Outcome::Reply(c) = reg.handle(now, &req, peer, &p, &dir()) else {
        panic!()
    };
    DigestClient::new("u201", "Right-pass-1").authorize(&mut req, &c);
    let Outcome::Reply(r) = reg.handle(now, &req, peer, &p, &dir()) else {
        panic!()
    };
    assert_eq!(r.status, 423);
    assert_eq!(
        r.headers
            .get_raw(&Name::MIN_EXPIRES)
            .next()
            .unwrap()
            .as_str(),
        "60"
    );
}
