//! Voicemail. A station whose `voicemail` field names a mailbox (usually its own number)
//! sends callers there when it is busy, not registered, or does not answer within
//! `forward.noanswer_seconds` — unless a call forward says otherwise. The PBX answers, plays
//! the mailbox's greeting (`greeting.wav` in its directory, or a built-in chime) and a beep,
//! and records up to `voicemail.max_seconds` to a WAV file beside the database
//! (`office.db.voicemail/<mailbox>/`), filed in the `voicemail` table so it survives
//! restarts. The voicemail code (50) opens the caller's own mailbox: one beep per message,
//! then each message, new ones first; during a message 1 plays it again, 7 deletes it, #
//! goes to the next; after the last, an end tone and the PBX hangs up.
//!
//! Message Waiting Indication (RFC 3842): stations that SUBSCRIBE to message-summary get
//! NOTIFYs in their subscription; every other registered contact of a station with a
//! mailbox gets unsolicited NOTIFYs (the Cisco 7960 relies on them) whenever the counts
//! change, and after a restart.

use super::{Action, Feature, Request as FeatureRequest};
use crate::address::{Addressing, uri_host};
use crate::calls::{Calls, Clock, Leg, Partner, SavedDialog};
use crate::relay::{FRAME, Heard, Voice};
use media::wav::{WavSink, WavSource};
use sip::dialog::Dialog;
use sip::transaction::{Peer, TsxKey};
use sip::types::Name;
use sip::{Method, Request, build};
use stations::Db;
use stations::db::Message;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub(super) struct Voicemail;

impl Feature for Voicemail {
    fn code_setting(&self) -> &'static str {
        "numberplan.voicemail"
    }

    fn act(&self, _r: &FeatureRequest<'_>) -> Result<Action, String> {
        Ok(Action::Voicemail)
    }
}

/// Where the voicemail of the database at `db` lives.
pub fn dir_of(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".voicemail");
    PathBuf::from(p)
}

/// A message-summary subscription (RFC 3842), also kept in the database so a restarted
/// PBX goes on notifying in it.
pub(crate) struct Subscription {
    mailbox: String,
    dialog: Dialog,
    peer: Peer,
    until: Instant,
}

impl Subscription {
    fn id(&self) -> String {
        format!("{};{}", self.dialog.id.call_id, self.dialog.id.local_tag)
    }

    fn save(&self, db: &Db, clock: Clock) {
        let left = self.until.saturating_duration_since(clock.now).as_secs() as i64;
        let Some(dialog) = SavedDialog::of(&self.dialog, self.peer) else {
            return;
        };
        let _ = db.save_subscription(&stations::db::SubscriptionRecord {
            id: self.id(),
            mailbox: self.mailbox.clone(),
            until: clock.unix() + left,
            dialog: dialog.to_json(),
        });
    }
}

/// The subscriptions a previous run of the PBX left that have not lapsed.
pub(crate) fn restore_subscriptions(db: &Db, clock: Clock) -> Vec<Subscription> {
    let now = clock.unix();
    db.subscriptions()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            if r.until <= now {
                let _ = db.delete_subscription(&r.id);
                return None;
            }
            let (dialog, peer) = SavedDialog::from_json(&r.dialog)?.dialog()?;
            Some(Subscription {
                mailbox: r.mailbox,
                dialog,
                peer,
                until: clock.now + Duration::from_secs((r.until - now) as u64),
            })
        })
        .collect()
}

fn tone(freq: f32, ms: usize, out: &mut Vec<i16>) {
    let n = ms * 8;
    out.extend((0..n).map(|i| {
        let fade = (i.min(n - i) as f32 / 80.0).min(1.0);
        ((2.0 * std::f32::consts::PI * freq * i as f32 / 8000.0).sin() * 9000.0 * fade) as i16
    }));
}

fn silence(ms: usize, out: &mut Vec<i16>) {
    out.extend(std::iter::repeat_n(0, ms * 8));
}

/// The greeting when a mailbox has none: a falling chime, then the beep.
fn built_in_greeting() -> Vec<i16> {
    let mut g = Vec::new();
    silence(300, &mut g);
    tone(659.3, 250, &mut g);
    tone(523.3, 350, &mut g);
    silence(300, &mut g);
    tone(1400.0, 400, &mut g);
    g
}

fn now_unix() -> i64 {
    sip::clock::Clock::now().unix()
}

fn lock(db: &Mutex<Db>) -> std::sync::MutexGuard<'_, Db> {
    db.lock().unwrap_or_else(|e| e.into_inner())
}

/// Plays `samples` to the phone in real time, stopping early when `stop` says so.
struct Speaker {
    voice: Voice,
    tick: tokio::time::Interval,
}

impl Speaker {
    fn new(voice: Voice) -> Speaker {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Speaker { voice, tick }
    }

    async fn frame(&mut self, pcm: &[i16]) {
        self.tick.tick().await;
        let mut f = [0i16; FRAME];
        f[..pcm.len().min(FRAME)].copy_from_slice(&pcm[..pcm.len().min(FRAME)]);
        self.voice.send(&f);
    }
}

/// Takes a message: greeting, beep, then what the caller says until it hangs up (the port
/// closes), presses #, or `max` passes.
async fn deposit(
    voice: Voice,
    mut heard: mpsc::Receiver<(u64, Heard)>,
    greeting: Vec<i16>,
    path: PathBuf,
    max: Duration,
    (db, mailbox, caller): (Arc<Mutex<Db>>, String, String),
    done: Arc<AtomicBool>,
) {
    let mut speaker = Speaker::new(voice);
    for chunk in greeting.chunks(FRAME) {
        speaker.frame(chunk).await;
        while heard.try_recv().is_ok() {} // what the caller says over the greeting is not kept
    }
    let Some(parent) = path.parent() else {
        return;
    };
    // Messages are for their mailbox's owner: nobody else on the machine may list or play them.
    let _ = std::fs::create_dir_all(parent);
    // The layout is ROOT/MAILBOX/MESSAGE.wav: the root and the mailbox are closed.
    for dir in [Some(parent), parent.parent()].into_iter().flatten() {
        let _ = std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    }
    let made = WavSink::create(&path, 8000);
    let _ = std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600));
    let Ok(mut sink) = made else {
        tracing::info!("voicemail for {mailbox}: cannot write {}", path.display());
        done.store(true, Ordering::Relaxed);
        return;
    };
    let (mut kept, started) = (0usize, sip::clock::Clock::now().now);
    let deadline = tokio::time::sleep(max);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            h = heard.recv() => match h {
                Some((_, Heard::Audio(pcm))) => {
                    kept += pcm.len();
                    let _ = sink.write(&pcm);
                }
                Some((_, Heard::Digit('#'))) | None => break,
                Some(_) => {}
            },
            _ = &mut deadline => break,
        }
    }
    let _ = sink.finish();
    if kept < 4000 {
        let _ = std::fs::remove_file(&path); // under half a second: a hang-up, no message
    } else {
        let m = Message {
            mailbox: mailbox.clone(),
            caller: caller.clone(),
            at: now_unix(),
            path: path.display().to_string(),
            ..Default::default()
        };
        let _ = lock(&db).add_message(&m);
        tracing::info!(
            "voicemail for {mailbox} from {caller}: {:.1} s kept",
            sip::clock::Clock::now()
                .now
                .duration_since(started)
                .as_secs_f32()
                .min(kept as f32 / 8000.0)
        );
    }
    done.store(true, Ordering::Relaxed);
}

/// Plays a mailbox to its owner, with the keys of the menu.
async fn menu(
    voice: Voice,
    mut heard: mpsc::Receiver<(u64, Heard)>,
    db: Arc<Mutex<Db>>,
    mailbox: String,
    done: Arc<AtomicBool>,
) {
    let mut speaker = Speaker::new(voice);
    let mut messages = lock(&db).messages(&mailbox).unwrap_or_default();
    let mut intro = Vec::new();
    silence(400, &mut intro);
    for _ in 0..messages.len().min(9) {
        tone(700.0, 150, &mut intro);
        silence(150, &mut intro);
    }
    silence(500, &mut intro);
    for chunk in intro.chunks(FRAME) {
        speaker.frame(chunk).await;
    }
    let mut i = 0;
    'messages: while i < messages.len() {
        let m = messages[i].clone();
        let mut audio = WavSource::open(Path::new(&m.path), 8000, false)
            .map(|s| {
                let mut v = vec![0i16; s.len()];
                let mut s = s;
                s.fill(&mut v);
                v
            })
            .unwrap_or_default();
        silence(600, &mut audio);
        let _ = lock(&db).mark_heard(m.id);
        let mut at = 0;
        while at < audio.len() {
            let end = (at + FRAME).min(audio.len());
            speaker.frame(&audio[at..end]).await;
            at = end;
            while let Ok((_, h)) = heard.try_recv() {
                match h {
                    Heard::Digit('1') => at = 0,
                    Heard::Digit('7') => {
                        let _ = lock(&db).delete_message(m.id);
                        let _ = std::fs::remove_file(&m.path);
                        tracing::info!("voicemail {mailbox}: message from {} deleted", m.caller);
                        messages.remove(i);
                        continue 'messages;
                    }
                    Heard::Digit('#') => {
                        i += 1;
                        continue 'messages;
                    }
                    _ => {}
                }
            }
        }
        i += 1;
    }
    let mut end = Vec::new();
    tone(440.0, 200, &mut end);
    silence(100, &mut end);
    tone(440.0, 200, &mut end);
    silence(300, &mut end);
    for chunk in end.chunks(FRAME) {
        speaker.frame(chunk).await;
    }
    done.store(true, Ordering::Relaxed);
}

impl Calls {
    /// The mailbox that takes `station`'s unanswered calls, if it has one.
    pub(crate) fn mailbox_of(&self, station: &str) -> Option<String> {
        self.db().get(station).ok().and_then(|s| s.voicemail)
    }

    /// Answers `leg` (a caller whose call was not taken) and records a message for `mailbox`.
    pub(crate) async fn send_to_voicemail(&mut self, mut leg: Leg, mailbox: &str) {
        if leg.media.is_none() {
            match self.open_port().await {
                Some(p) => leg.anchor_with(p),
                None => return self.reply_to_invite(&leg, 503, "Service Unavailable"),
            }
        }
        let offer = leg.remote_sdp.clone();
        let body = leg.our_sdp(
            crate::sdp::direction(&offer).answer(),
            (!offer.is_empty()).then_some(offer.as_slice()),
        );
        leg.answer(&self.ep, body);
        leg.partner = Partner::Service;
        let Some(port) = leg.media.as_mut() else {
            return;
        };
        let (heard, voice) = port.serve();
        let dir = self.voicemail_dir.join(mailbox);
        let greeting = WavSource::open(&dir.join("greeting.wav"), 8000, false)
            .ok()
            .map(|mut s| {
                let mut v = vec![0i16; s.len()];
                s.fill(&mut v);
                let mut beep = Vec::new();
                silence(200, &mut beep);
                tone(1400.0, 400, &mut beep);
                v.extend(beep);
                v
            })
            .unwrap_or_else(built_in_greeting);
        let caller = leg.caller_id().1;
        let path = dir.join(format!(
            "{}-{caller}-{:04x}.wav",
            self.clock.unix(),
            rand::random::<u16>()
        ));
        let max = Duration::from_secs(self.setting_u64("voicemail.max_seconds", 120));
        let done = Arc::new(AtomicBool::new(false));
        leg.service = Some(done.clone());
        tracing::info!("call from {caller} goes to voicemail {mailbox}");
        tokio::spawn(deposit(
            voice,
            heard,
            greeting,
            path,
            max,
            (self.db.clone(), mailbox.to_string(), caller),
            done,
        ));
        self.legs.insert(leg.id, leg);
    }

    /// Connects `leg` (a station that dialled the voicemail code) to its own mailbox.
    pub(crate) async fn voicemail_menu(&mut self, mut leg: Leg) -> Result<String, (String, Leg)> {
        let mailbox = self
            .mailbox_of(&leg.station)
            .unwrap_or_else(|| leg.station.clone());
        let Some(p) = self.open_port().await else {
            return Err(("no media port".into(), leg));
        };
        leg.anchor_with(p);
        let offer = leg.remote_sdp.clone();
        let body = leg.our_sdp(
            crate::sdp::direction(&offer).answer(),
            (!offer.is_empty()).then_some(offer.as_slice()),
        );
        leg.answer(&self.ep, body);
        leg.partner = Partner::Service;
        let done = Arc::new(AtomicBool::new(false));
        leg.service = Some(done.clone());
        if let Some(port) = leg.media.as_mut() {
            let (heard, voice) = port.serve();
            tokio::spawn(menu(voice, heard, self.db.clone(), mailbox.clone(), done));
        }
        let who = leg.station.clone();
        self.legs.insert(leg.id, leg);
        Ok(format!("{who} listens to mailbox {mailbox}"))
    }

    /// Legs whose voicemail session finished are hung up.
    pub(crate) fn end_finished_services(&mut self) {
        let finished: Vec<_> = self
            .legs
            .values()
            .filter(|l| {
                l.service
                    .as_ref()
                    .is_some_and(|d| d.load(Ordering::Relaxed))
            })
            .map(|l| l.id)
            .collect();
        for id in finished {
            self.end(id, 0, "");
        }
    }

    /// A message-summary body for `mailbox` (RFC 3842 §5).
    fn summary(&self, mailbox: &str, (new, old): (u32, u32), here: SocketAddr) -> String {
        format!(
            "Messages-Waiting: {}\r\nMessage-Account: sip:{mailbox}@{}\r\nVoice-Message: {new}/{old} (0/0)\r\n",
            if new > 0 { "yes" } else { "no" },
            uri_host(here.ip())
        )
    }

    fn mwi_headers(r: &mut Request, state: &str, body: String) {
        r.headers.insert(Name::from("Event"), "message-summary");
        r.headers.insert(Name::from("Subscription-State"), state);
        r.headers
            .insert(Name::CONTENT_TYPE, "application/simple-message-summary");
        r.body = body.into_bytes().into();
    }

    /// Sends message-summary NOTIFYs where the counts changed since the last ones: in each
    /// subscription to the mailbox, else unsolicited to the station's registered contacts.
    /// Also drops lapsed subscriptions.
    pub(crate) fn mwi_tick(&mut self) {
        let lapsed: Vec<String> = self
            .subscriptions
            .iter()
            .filter(|s| s.until <= self.clock.now)
            .map(Subscription::id)
            .collect();
        if !lapsed.is_empty() {
            let now = self.clock.now;
            self.subscriptions.retain(|s| s.until > now);
            let db = self.db();
            for id in lapsed {
                let _ = db.delete_subscription(&id);
            }
        }
        let counts = self.db().message_counts().unwrap_or_default();
        let mut changed: Vec<(String, (u32, u32))> = counts
            .iter()
            .filter(|(m, n, o)| self.mwi_sent.get(m) != Some(&(*n, *o)))
            .map(|(m, n, o)| (m.clone(), (*n, *o)))
            .collect();
        // Mailboxes emptied since: their lamp goes out.
        for m in self.mwi_sent.keys() {
            if !counts.iter().any(|(c, _, _)| c == m) && self.mwi_sent.get(m) != Some(&(0, 0)) {
                changed.push((m.clone(), (0, 0)));
            }
        }
        for (mailbox, c) in changed {
            self.mwi_sent.insert(mailbox.clone(), c);
            self.notify_mwi(&mailbox, c);
        }
    }

    fn notify_mwi(&mut self, mailbox: &str, counts: (u32, u32)) {
        let addressing = Addressing::from_db(&self.db());
        let bound = self.bound;
        let mut subscribed = false;
        let clock = self.clock;
        for i in 0..self.subscriptions.len() {
            if self.subscriptions[i].mailbox != mailbox {
                continue;
            }
            let local = addressing
                .toward(bound, self.subscriptions[i].peer.addr.ip())
                .sip;
            let body = self.summary(mailbox, counts, local);
            let s = &mut self.subscriptions[i];
            subscribed = true;
            let via = build::via_value(s.peer.transport, local, &build::new_branch());
            let mut n = s.dialog.request(Method::Notify, &via);
            let left = s.until.saturating_duration_since(clock.now).as_secs();
            Self::mwi_headers(&mut n, &format!("active;expires={left}"), body.clone());
            n.headers
                .insert(Name::CONTACT, format!("<sip:pbx@{local}>"));
            let _ = self.ep.send_request(n, s.peer);
            s.save(&self.db.lock().unwrap_or_else(|e| e.into_inner()), clock);
        }
        if subscribed {
            return;
        }
        let Some((binding, peer)) = self.reach(mailbox) else {
            return;
        };
        let local = addressing.toward(bound, peer.addr.ip()).sip;
        let body = self.summary(mailbox, counts, local);
        if let Some(mut n) = Self::unsolicited_notify(mailbox, &binding, peer, local) {
            Self::mwi_headers(&mut n, "active", body);
            let _ = self.ep.send_request(n, peer);
        }
    }

    /// A NOTIFY outside any subscription (message-summary for a Cisco, check-sync) to
    /// `binding`, a contact of station `number`, sent from `local`.
    pub(crate) fn unsolicited_notify(
        number: &str,
        binding: &stations::db::Registration,
        peer: Peer,
        local: SocketAddr,
    ) -> Option<Request> {
        let uri = format!("sip:{number}@{}", uri_host(local.ip()));
        let mut n = build::request(
            Method::Notify,
            &binding.contact,
            &uri,
            &uri,
            peer.transport,
            local,
        )
        .ok()?;
        n.headers
            .insert(Name::CONTACT, format!("<sip:pbx@{local}>"));
        Some(n)
    }

    /// SUBSCRIBE to message-summary (new or a refresh): the subscriber must be the station,
    /// as for INVITEs; the answer is followed by a NOTIFY with the current counts.
    pub async fn on_subscribe(&mut self, key: TsxKey, request: Request, peer: Peer) {
        let event = sip::headers::event_package(&request.headers).unwrap_or_default();
        let tag = request
            .to_tag()
            .map(|t| t.to_string())
            .unwrap_or_else(build::new_tag);
        let reply = |c: &Calls, status: u16, reason: &str| {
            let mut r = request.make_response(status, reason);
            r.set_to_tag(&tag);
            let _ = c.ep.send_response(&key, &r);
        };
        if event != "message-summary" {
            return reply(self, 489, "Bad Event");
        }
        let station = request.header_user(Name::FROM).unwrap_or_default();
        if let Err(mut refusal) = self.authorize(&request, &station, peer) {
            refusal.set_to_tag(&tag);
            let _ = self.ep.send_response(&key, &refusal);
            return;
        }
        let mailbox = self.mailbox_of(&station).unwrap_or(station);
        let expires: u64 = request
            .headers
            .get_raw(&Name::EXPIRES)
            .next()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(3600)
            .min(86400);
        let call_id = request
            .headers
            .get_raw(&Name::CALL_ID)
            .next()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let id = format!("{call_id};{tag}");
        // A refresh goes on in the subscription's dialog (its CSeq, its target); a new
        // SUBSCRIBE starts one.
        let refreshed = self
            .subscriptions
            .iter()
            .position(|s| s.id() == id)
            .map(|i| self.subscriptions.remove(i).dialog);
        let _ = self.db().delete_subscription(&id);
        let mut ok = request.make_response(200, "OK");
        ok.set_to_tag(&tag);
        ok.headers.insert(Name::EXPIRES, expires.to_string());
        let local = self.here(&peer).sip;
        ok.headers
            .insert(Name::CONTACT, format!("<sip:pbx@{local}>"));
        let _ = self.ep.send_response(&key, &ok);
        let dialog = match refreshed {
            Some(mut d) => d.handle_request(&request).is_ok().then_some(d),
            None => Dialog::from_uas(&request, &tag),
        };
        let Some(mut dialog) = dialog else {
            return;
        };
        let counts = self
            .db()
            .message_counts()
            .unwrap_or_default()
            .into_iter()
            .find(|(m, _, _)| *m == mailbox)
            .map_or((0, 0), |(_, n, o)| (n, o));
        let via = build::via_value(peer.transport, local, &build::new_branch());
        let mut n = dialog.request(Method::Notify, &via);
        let state = if expires == 0 {
            "terminated;reason=timeout".to_string()
        } else {
            format!("active;expires={expires}")
        };
        Self::mwi_headers(&mut n, &state, self.summary(&mailbox, counts, local));
        n.headers
            .insert(Name::CONTACT, format!("<sip:pbx@{local}>"));
        let _ = self.ep.send_request(n, peer);
        if expires > 0 {
            let s = Subscription {
                mailbox,
                dialog,
                peer,
                until: self.clock.now + Duration::from_secs(expires),
            };
            s.save(&self.db(), self.clock);
            self.subscriptions.push(s);
        }
    }
}
