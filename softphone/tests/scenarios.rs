//! The phone engine on virtual time (issue #16): the engine and the whole PBX run in one
//! process on an in-memory network with tokio's clock paused, so registration refreshes,
//! failover and message-waiting renewals over hours are checked in milliseconds, with no
//! peer and no socket.
#![allow(clippy::unwrap_used)]

use e2e::scenario::{Office, PBX, password};
use sip::transport::MemNet;
use softphone::config::Config;
use softphone::engine::{Command, Event};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The engine as station `number` at 10.0.9.1, with its events.
struct Phone {
    events: mpsc::UnboundedReceiver<Event>,
    /// Kept open: the engine stops when it closes.
    _commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Phone {
    /// `account` is the rest of the `[[account]]` table (server, expiry, …).
    fn start(net: &MemNet, number: &str, account: &str) -> Phone {
        let toml = format!(
            "[[account]]\nnumber = \"{number}\"\npassword = \"{}\"\nvoicemail = \"50\"\n{account}\n",
            password(number)
        );
        let config = Config::parse(&toml, "scenario.toml").unwrap();
        let (commands, rx) = mpsc::unbounded_channel();
        let (tx, events) = mpsc::unbounded_channel();
        let net = net.clone();
        let task = tokio::spawn(async move {
            let listen = "10.0.9.1:5060".parse().unwrap();
            softphone::engine::run_on(config, listen, rx, tx, Some(net))
                .await
                .unwrap();
        });
        Phone {
            events,
            _commands: commands,
            task,
        }
    }

    /// The next event that `want` takes, with when it came; fails after `limit` of virtual
    /// time.
    async fn next<T>(
        &mut self,
        limit: Duration,
        want: impl Fn(&Event) -> Option<T>,
    ) -> (T, Instant) {
        let deadline = Instant::now() + limit;
        loop {
            let e = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no such event within {limit:?}"))
                .unwrap();
            if let Some(t) = want(&e) {
                return (t, Instant::now());
            }
        }
    }
}

fn registered(e: &Event) -> Option<u32> {
    match e {
        Event::Registered { expires, .. } => Some(*expires),
        _ => None,
    }
}

fn pbx_server() -> String {
    let (host, port) = PBX.split_once(':').unwrap();
    format!("server = \"{host}\"\nport = {port}\n")
}

#[tokio::test(start_paused = true)]
async fn the_registration_is_refreshed_before_it_lapses() {
    let o = Office::start(&["201"], &[]).await;
    let mut p = Phone::start(
        &o.net,
        "201",
        &format!("{}registration_expiry = 120\n", pbx_server()),
    );
    let (granted, first) = p.next(Duration::from_secs(5), registered).await;
    assert_eq!(granted, 120);
    // Twenty minutes: every refresh comes before the 120 s run out, and none much earlier
    // than half of them.
    let mut last = first;
    let mut refreshes = 0;
    while last - first < Duration::from_secs(1200) {
        let (_, at) = p.next(Duration::from_secs(120), registered).await;
        let gap = at - last;
        assert!(gap >= Duration::from_secs(60), "refreshed after {gap:?}");
        last = at;
        refreshes += 1;
    }
    assert!(refreshes >= 10, "{refreshes} refreshes in twenty minutes");
    // The PBX holds the binding all along: a lookup now finds it.
    let now = sip::clock::Clock::now().unix();
    let bindings = o.db().registrations().unwrap();
    assert!(
        bindings
            .iter()
            .any(|r| r.aor == "201" && r.expires_at > now),
        "{bindings:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_line_whose_server_is_silent_fails_over_to_its_backup() {
    let o = Office::start(&["201"], &[]).await;
    // The first server is an address nobody answers at; the backup is the PBX.
    let (host, port) = PBX.split_once(':').unwrap();
    let account = format!(
        "server = \"10.0.0.99\"\nport = 5060\nbackup_server = \"{host}\"\nbackup_port = {port}\n"
    );
    let t0 = Instant::now();
    let mut p = Phone::start(&o.net, "201", &account);
    let (server, at) = p
        .next(Duration::from_secs(120), |e| match e {
            Event::Failover { server, .. } => Some(server.clone()),
            _ => None,
        })
        .await;
    assert!(server.contains(host), "{server}");
    // Timer F: 64 × T1 = 32 s without an answer.
    let waited = (at - t0).as_secs_f32();
    assert!(
        (31.0..=34.0).contains(&waited),
        "failed over after {waited} s"
    );
    p.next(Duration::from_secs(10), registered).await;
}

#[tokio::test(start_paused = true)]
async fn the_message_waiting_subscription_is_renewed_and_follows_the_mailbox() {
    let o = Office::start(&["201"], &[]).await;
    o.station("201", "voicemail", "201");
    let mut p = Phone::start(&o.net, "201", &pbx_server());
    p.next(Duration::from_secs(5), registered).await;
    let mwi = |e: &Event| match e {
        Event::Mwi { new, old, .. } => Some((*new, *old)),
        _ => None,
    };
    let (counts, first) = p.next(Duration::from_secs(5), mwi).await;
    assert_eq!(counts, (0, 0));
    // Each renewal (at 80 % of the hour granted) brings a NOTIFY (RFC 6665 §4.2.1.1): the
    // subscription never lapses.
    let mut last = first;
    let mut renewals = 0;
    while renewals < 2 {
        let (counts, at) = p.next(Duration::from_secs(3600), mwi).await;
        assert_eq!(counts, (0, 0));
        let gap = (at - last).as_secs();
        assert!((2800..=3000).contains(&gap), "renewed after {gap} s");
        last = at;
        renewals += 1;
    }
    // A message left now lights the lamp at once.
    o.db()
        .add_message(&stations::db::Message {
            mailbox: "201".into(),
            caller: "202".into(),
            at: sip::clock::Clock::now().unix(),
            path: "/nonexistent.wav".into(),
            ..Default::default()
        })
        .unwrap();
    let (counts, _) = p.next(Duration::from_secs(5), mwi).await;
    assert_eq!(counts, (1, 0));
}
