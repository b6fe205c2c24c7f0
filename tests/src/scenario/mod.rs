//! The whole PBX on virtual time: `pbx_lite::server::run_on` over an in-memory network
//! ([`MemNet`]) in a runtime whose clock is paused, with phones made of the SIP core — an
//! [`Endpoint`] each, speaking at the level of SIP messages — that play a tone as RTP and keep
//! what they hear. No socket is opened and nothing leaves the process; a minute of hold
//! recall passes in milliseconds, because tokio moves the clock on whenever every task waits.
//!
//! A test is a script: phones dial, answer, hold and hang up, and wait (on events, with a
//! timeout on virtual time) until their state shows what the PBX did.

// A kit for tests: what it cannot do is the test's failure, so it unwraps.
#![allow(clippy::unwrap_used)]

mod phone;
mod voice;

pub use phone::{Call, Dialing, Phone, Seen};

use media::g711::{ulaw_decode, ulaw_encode};
use media::rtp::RtpPacket;
use pbx_lite::relay::Remote;
use sip::auth::DigestClient;
use sip::dialog::Dialog;
use sip::endpoint::Endpoint;
use sip::transaction::{Peer, TimerConfig, TransportKind, TsxEvent, TsxKey};
use sip::transport::{DatagramSocket, MemNet, TransportConfig};
use sip::types::Name;
use sip::{Method, Request, Response, build};
use stations::{Db, Station};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the PBX listens on the in-memory network.
pub const PBX: &str = "10.0.0.1:5060";
/// The hold music the offices play (Hz).
pub const MUSIC: f32 = 800.0;
/// How long a wait may take on virtual time before the test fails.
const PATIENCE: Duration = Duration::from_secs(900);

fn pbx() -> SocketAddr {
    PBX.parse().unwrap()
}

/// The PBX, running on `net`, with its database open beside the test.
pub struct Office {
    pub net: MemNet,
    pub db: Arc<Mutex<Db>>,
    pub dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Office {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Office {
    /// The PBX with a station per number (user id = number, password `pw-NUMBER`), hold
    /// music an 800 Hz tone, and `settings`.
    pub async fn start(numbers: &[&str], settings: &[(&str, &str)]) -> Office {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("office.db")).unwrap();
        for n in numbers {
            let mut s = Station::new(n, n, &password(n), db.min_password()).unwrap();
            s.set("name", &format!("Station {n}")).unwrap();
            db.add(&s).unwrap();
        }
        let music = dir.path().join("music.wav");
        // Short, as each hold reads the whole file.
        crate::audio::tone_for(&music, MUSIC, 1);
        db.set_setting("hold.music", music.to_str().unwrap())
            .unwrap();
        for (k, v) in settings {
            db.set_setting(k, v).unwrap();
        }
        let db = Arc::new(Mutex::new(db));
        let net = MemNet::new();
        let task = tokio::spawn({
            let (db, net, vm) = (db.clone(), net.clone(), dir.path().join("voicemail"));
            async move {
                if let Err(e) =
                    pbx_lite::server::run_on(db, pbx(), (10000, 10999), vm, Some(net)).await
                {
                    panic!("the PBX stopped: {e:#}");
                }
            }
        });
        // The PBX binds on its first steps; a datagram sent before would be lost.
        tokio::time::sleep(Duration::from_millis(1)).await;
        Office { net, db, dir, task }
    }

    pub fn set(&self, key: &str, value: &str) {
        self.db().set_setting(key, value).unwrap();
    }

    pub fn station(&self, number: &str, field: &str, value: &str) {
        let db = self.db();
        let mut s = db.get(number).unwrap();
        s.set(field, value).unwrap();
        db.update(number, &s).unwrap();
    }

    pub fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db.lock().unwrap()
    }

    /// Station `number`'s phone, registered; it plays `freq` Hz on its calls.
    pub async fn phone(&self, number: &str, freq: f32) -> Phone {
        let mut p = Phone::start(&self.net, number, freq).await;
        p.register().await;
        p
    }
}

pub fn password(number: &str) -> String {
    format!("pw-{number}-secret")
}

/// Lets `seconds` of virtual time pass; every phone answers the PBX meanwhile.
pub async fn pass(seconds: f32) {
    tokio::time::sleep(Duration::from_secs_f32(seconds)).await;
}
