//! The call features on virtual time (issue #16): the whole PBX runs on an in-memory network
//! with tokio's clock paused, and phones made of the SIP core act out each feature at the
//! level of SIP messages, hearing each other as RTP. No peer, no socket: each test takes
//! milliseconds however many minutes of calls it plays.
#![allow(clippy::unwrap_used)]

use e2e::audio::{heard_in_order, timeline};
use e2e::scenario::{Call, MUSIC, Office, Phone, pass};
use sip::Method;
use sip::types::Name;

#[tokio::test(start_paused = true)]
async fn a_call_connects_and_each_hears_the_other() {
    let o = Office::start(&["201", "202"], &[("media.relay", "always")]).await;
    let (mut a, mut b) = (o.phone("201", 440.0).await, o.phone("202", 600.0).await);
    let dialing = a.dial("202").await;
    let at_b = b.answer().await;
    let call = a.outcome(dialing).await.unwrap();
    pass(3.0).await;
    a.hang_up(&call).await;
    b.until_ended(at_b.id()).await;
    assert!(
        heard_in_order(&b.heard(), &[440.0]),
        "202 heard {:?}",
        timeline(&b.heard())
    );
    assert!(
        heard_in_order(&a.heard(), &[600.0]),
        "201 heard {:?}",
        timeline(&a.heard())
    );
}

#[tokio::test(start_paused = true)]
async fn hold_recall_rings_the_holding_station_again() {
    let o = Office::start(&["201", "202"], &[("hold.recall_seconds", "30")]).await;
    let (mut a, mut b) = (o.phone("201", 440.0).await, o.phone("202", 600.0).await);
    let dialing = a.dial("202").await;
    let _at_b = b.answer().await;
    let call = a.outcome(dialing).await.unwrap();
    pass(2.0).await;
    a.hold(&call).await;
    let held_at = tokio::time::Instant::now();
    // 30 s on, the PBX rings 201 again for its held call.
    a.until("the hold recall rings", |s| {
        s.got(Method::Invite).iter().any(|r| r.to_tag().is_none())
    })
    .await;
    let waited = held_at.elapsed().as_secs_f32();
    assert!((29.0..=32.0).contains(&waited), "recalled after {waited} s");
    assert!(
        heard_in_order(&b.heard(), &[440.0, MUSIC]),
        "202 heard {:?}",
        timeline(&b.heard())
    );
}

/// The phones of 201, 202 and 203, playing 440, 600 and 1000 Hz.
async fn three(o: &Office) -> (Phone, Phone, Phone) {
    (
        o.phone("201", 440.0).await,
        o.phone("202", 600.0).await,
        o.phone("203", 1000.0).await,
    )
}

/// 201 calls 202, which answers; both calls as each sees them.
async fn connect(a: &mut Phone, b: &mut Phone) -> (Call, Call) {
    let dialing = a.dial(&b.number.clone()).await;
    let at_b = b.answer().await;
    let at_a = a.outcome(dialing).await.unwrap();
    (at_a, at_b)
}

fn heard(p: &Phone, freqs: &[f32]) {
    let h = p.heard();
    assert!(
        heard_in_order(&h, freqs),
        "{} heard {:?}, wanted {freqs:?}",
        p.number,
        timeline(&h)
    );
}

/// New INVITEs (not re-INVITEs) that reached the phone.
fn rung(p: &Phone) -> usize {
    p.seen()
        .got(Method::Invite)
        .iter()
        .filter(|r| r.to_tag().is_none())
        .count()
}

#[tokio::test(start_paused = true)]
async fn direct_media_and_the_callers_name_and_number() {
    let o = Office::start(&["201", "202"], &[("media.relay", "never")]).await;
    let (mut a, mut b) = (o.phone("201", 440.0).await, o.phone("202", 600.0).await);
    let (call, _) = connect(&mut a, &mut b).await;
    let invite = b.seen().got(Method::Invite)[0].clone();
    let from = invite
        .headers
        .get_raw(&Name::FROM)
        .next()
        .unwrap()
        .to_string();
    assert!(
        from.contains("Station 201") && from.contains("sip:201@"),
        "{from}"
    );
    // Direct: 202's SDP names 201's own address.
    assert!(
        String::from_utf8_lossy(&invite.body).contains("c=IN IP4 10.0.1.202"),
        "{}",
        String::from_utf8_lossy(&invite.body)
    );
    pass(2.0).await;
    a.hang_up(&call).await;
    heard(&b, &[440.0]);
    heard(&a, &[600.0]);
}

#[tokio::test(start_paused = true)]
async fn hold_plays_music_to_the_held_party_and_resume_brings_the_voice_back() {
    for relay in ["never", "always"] {
        let o = Office::start(&["201", "202"], &[("media.relay", relay)]).await;
        let (mut a, mut b) = (o.phone("201", 440.0).await, o.phone("202", 600.0).await);
        let (call, _) = connect(&mut a, &mut b).await;
        pass(2.0).await;
        a.hold(&call).await;
        pass(3.0).await;
        a.resume(&call).await;
        pass(2.0).await;
        a.hang_up(&call).await;
        heard(&b, &[440.0, MUSIC, 440.0]);
    }
}

#[tokio::test(start_paused = true)]
async fn hold_with_the_phones_own_tone_plays_no_music() {
    let o = Office::start(&["201", "202"], &[("media.relay", "never")]).await;
    o.station("202", "tone_source", "phone");
    let (mut a, mut b) = (o.phone("201", 440.0).await, o.phone("202", 600.0).await);
    let (call, _) = connect(&mut a, &mut b).await;
    pass(2.0).await;
    a.hold(&call).await;
    pass(3.0).await;
    let t = timeline(&b.heard());
    assert!(
        !t.iter().any(|f| (f - MUSIC).abs() < 8.0),
        "202 heard {t:?}"
    );
}

/// 201 talks to 202, holds, and parks it with 11.
async fn park_202(a: &mut Phone, b: &mut Phone) -> Call {
    let (call, at_b) = connect(a, b).await;
    pass(1.5).await;
    a.hold(&call).await;
    assert_eq!(a.code("11").await, 480);
    a.until_ended(call.id()).await; // its held call is released
    at_b
}

#[tokio::test(start_paused = true)]
async fn park_then_retrieve_from_another_station() {
    let o = Office::start(&["201", "202", "203"], &[]).await;
    let (mut a, mut b, mut c) = three(&o).await;
    park_202(&mut a, &mut b).await;
    pass(2.0).await;
    let retrieved = c.call("12201").await;
    pass(2.0).await;
    c.hang_up(&retrieved).await;
    heard(&b, &[440.0, MUSIC, 1000.0]);
    heard(&c, &[600.0]);
}

#[tokio::test(start_paused = true)]
async fn an_unretrieved_park_recalls_the_parking_station() {
    let o = Office::start(&["201", "202", "203"], &[("park.recall_seconds", "40")]).await;
    let (mut a, mut b) = (o.phone("201", 440.0).await, o.phone("202", 600.0).await);
    park_202(&mut a, &mut b).await;
    let parked_at = tokio::time::Instant::now();
    let recall = a.answer().await;
    let waited = parked_at.elapsed().as_secs_f32();
    assert!((39.0..=42.0).contains(&waited), "recalled after {waited} s");
    pass(2.0).await;
    a.hang_up(&recall).await;
    heard(&b, &[440.0, MUSIC, 440.0]);
}

/// 201 talks to 202, holds it and calls 203, which answers.
async fn consult(a: &mut Phone, b: &mut Phone, c: &mut Phone) -> (Call, Call) {
    let (first, _) = connect(a, b).await;
    pass(1.5).await;
    a.hold(&first).await;
    let (second, _) = connect(a, c).await;
    (first, second)
}

#[tokio::test(start_paused = true)]
async fn consultation_transfer_joins_the_other_two() {
    let o = Office::start(&["201", "202", "203"], &[]).await;
    let (mut a, mut b, mut c) = three(&o).await;
    let (first, second) = consult(&mut a, &mut b, &mut c).await;
    pass(1.5).await;
    b.clear_heard();
    c.clear_heard();
    a.hang_up(&second).await; // the transferor hangs up: the transfer completes
    a.until_ended(first.id()).await; // and its held call is released: 201 is idle
    pass(2.0).await;
    heard(&b, &[1000.0]);
    heard(&c, &[600.0]);
}

#[tokio::test(start_paused = true)]
async fn the_consulted_party_hangs_up_and_the_held_call_resumes() {
    let o = Office::start(&["201", "202", "203"], &[]).await;
    let (mut a, mut b, mut c) = three(&o).await;
    let (first, second) = consult(&mut a, &mut b, &mut c).await;
    pass(2.0).await;
    let at_c = c.seen().calls.values().next().unwrap().clone();
    c.hang_up(&at_c).await;
    a.until_ended(second.id()).await;
    a.resume(&first).await;
    pass(2.0).await;
    heard(&b, &[440.0, MUSIC, 440.0]);
}

#[tokio::test(start_paused = true)]
async fn a_blind_transfer_rings_on_and_connects_when_answered() {
    blind_transfer(false).await;
}

/// Softphones (baresip among them) take the held call back by themselves the moment the
/// consultation call ends, and the resuming re-INVITE can reach the PBX before the CANCEL:
/// the hang-up is still a blind transfer.
#[tokio::test(start_paused = true)]
async fn a_phone_resuming_by_itself_as_it_hangs_up_still_transfers() {
    blind_transfer(true).await;
}

/// 201 holds its call with 202, dials 203 and hangs up while 203 rings (resuming the held
/// call a moment before, with `resume_first`); 203 answers and talks with 202.
async fn blind_transfer(resume_first: bool) {
    let o = Office::start(&["201", "202", "203"], &[]).await;
    let (mut a, mut b, mut c) = three(&o).await;
    let (first, _) = connect(&mut a, &mut b).await;
    a.hold(&first).await;
    let dialing = a.dial("203").await; // 203 rings...
    c.until("203 rings", |s| !s.ringing.is_empty()).await;
    if resume_first {
        a.resume(&first).await;
    }
    a.cancel(dialing).await; // ...and 201 hangs up: a blind transfer
    a.until_ended(first.id()).await;
    pass(1.0).await;
    b.clear_heard();
    c.answer().await;
    pass(2.0).await;
    heard(&b, &[1000.0]);
    heard(&c, &[600.0]);
}

/// Taking the held call back and talking before hanging up the ringing call is the user's
/// choice: no transfer, 201 and 202 talk on.
#[tokio::test(start_paused = true)]
async fn toggling_back_before_hanging_up_cancels_the_transfer() {
    let o = Office::start(&["201", "202", "203"], &[]).await;
    let (mut a, mut b, c) = three(&o).await;
    let (first, _) = connect(&mut a, &mut b).await;
    a.hold(&first).await;
    let dialing = a.dial("203").await;
    c.until("203 rings", |s| !s.ringing.is_empty()).await;
    a.resume(&first).await;
    pass(2.0).await;
    a.cancel(dialing).await;
    c.until("203 stops ringing", |s| s.ringing.is_empty()).await;
    b.clear_heard();
    pass(2.0).await;
    assert!(
        !a.seen().ended.contains(&first.id().to_string()),
        "201's call was ended"
    );
    heard(&b, &[440.0]);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_blind_transfer_recalls_the_transferor() {
    let o = Office::start(&["201", "202", "203"], &[("transfer.recall_seconds", "20")]).await;
    let (mut a, mut b, c) = three(&o).await;
    let (first, _) = connect(&mut a, &mut b).await;
    a.hold(&first).await;
    let dialing = a.dial("203").await;
    c.until("203 rings", |s| !s.ringing.is_empty()).await;
    a.cancel(dialing).await;
    a.until_ended(first.id()).await;
    let left_at = tokio::time::Instant::now();
    let recall = a.answer().await;
    let waited = left_at.elapsed().as_secs_f32();
    assert!((19.0..=22.0).contains(&waited), "recalled after {waited} s");
    c.until("203 stops ringing", |s| s.ringing.is_empty()).await;
    b.clear_heard();
    pass(2.0).await;
    a.hang_up(&recall).await;
    heard(&b, &[440.0]);
}

#[tokio::test(start_paused = true)]
async fn refer_transfers_blind() {
    let o = Office::start(&["201", "202", "203"], &[]).await;
    let (mut a, mut b, mut c) = three(&o).await;
    let (first, _) = connect(&mut a, &mut b).await;
    let r = a.refer(&first, "sip:203@10.0.0.1:5060").await;
    assert_eq!(r.status, 202);
    c.answer().await;
    // The transferor learns the outcome from the NOTIFYs' sipfrags, and hangs up itself.
    a.until("a NOTIFY of 200", |s| {
        s.got(Method::Notify)
            .iter()
            .any(|n| n.body.starts_with(b"SIP/2.0 200"))
    })
    .await;
    a.hang_up(&first).await;
    b.clear_heard();
    pass(2.0).await;
    heard(&b, &[1000.0]);
}

async fn pick_up(code: &str) {
    let o = Office::start(&["201", "202", "203"], &[]).await;
    o.station("202", "pickup_group", "1");
    o.station("203", "pickup_group", "1");
    let (mut a, b, mut c) = three(&o).await;
    let dialing = a.dial("202").await;
    b.until("202 rings", |s| !s.ringing.is_empty()).await;
    let picked = c.call(code).await;
    let call = a.outcome(dialing).await.unwrap();
    b.until("202 stops ringing", |s| s.ringing.is_empty()).await;
    pass(2.0).await;
    c.hang_up(&picked).await;
    a.until_ended(call.id()).await;
    heard(&a, &[1000.0]);
    heard(&c, &[440.0]);
}

#[tokio::test(start_paused = true)]
async fn directed_pickup_answers_the_ringing_station() {
    pick_up("57202").await;
}

#[tokio::test(start_paused = true)]
async fn my_group_pickup_answers_a_call_ringing_in_the_group() {
    pick_up("55").await;
}

/// The Diversion header of the last new INVITE that reached `p`.
fn diversion(p: &Phone) -> String {
    let s = p.seen();
    let invite = s
        .got(Method::Invite)
        .into_iter()
        .rev()
        .find(|r| r.to_tag().is_none());
    invite
        .and_then(|r| {
            r.headers
                .get_raw(&sip::headers::diversion_name())
                .next()
                .map(|d| d.to_string())
        })
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn dnd_on_refuses_calls_and_off_lets_them_ring_again() {
    let o = Office::start(&["201", "202"], &[]).await;
    let (mut a, mut b) = (o.phone("201", 440.0).await, o.phone("202", 600.0).await);
    assert_eq!(a.code("401").await, 480);
    assert!(o.db().station_state("201").unwrap().dnd);
    let d = b.dial("201").await;
    assert_eq!(b.outcome(d).await.unwrap_err(), 486);
    assert_eq!(rung(&a), 0);
    assert_eq!(a.code("400").await, 480);
    assert!(!o.db().station_state("201").unwrap().dnd);
    connect(&mut b, &mut a).await;
}

#[tokio::test(start_paused = true)]
async fn forward_all_rings_the_target_with_diversion_and_clear_ends_it() {
    let o = Office::start(&["201", "202", "203"], &[]).await;
    let (mut a, mut b, mut c) = three(&o).await;
    assert_eq!(a.code("601203").await, 480);
    let d = b.dial("201").await;
    c.answer().await;
    b.outcome(d).await.unwrap();
    assert_eq!(rung(&a), 0);
    let div = diversion(&c);
    assert!(
        div.contains("sip:201@") && div.contains("reason=unconditional"),
        "{div}"
    );
    assert_eq!(a.code("600").await, 480);
    connect(&mut b, &mut a).await;
}

#[tokio::test(start_paused = true)]
async fn a_forward_loop_rings_the_end_of_the_chain() {
    let o = Office::start(&["201", "202", "203", "204"], &[]).await;
    let mut p: Vec<Phone> = Vec::new();
    for (n, f) in [
        ("201", 440.0),
        ("202", 600.0),
        ("203", 1000.0),
        ("204", 1200.0),
    ] {
        p.push(o.phone(n, f).await);
    }
    // 201 → 203 → 204 → 201: a call to 201 ends at 204, the last station not yet tried.
    assert_eq!(p[0].code("601203").await, 480);
    assert_eq!(p[2].code("601204").await, 480);
    assert_eq!(p[3].code("601201").await, 480);
    let d = p[1].dial("201").await;
    p[3].answer().await;
    p[1].outcome(d).await.unwrap();
    assert!(
        diversion(&p[3]).contains("sip:201@"),
        "{}",
        diversion(&p[3])
    );
    assert_eq!((rung(&p[0]), rung(&p[2])), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn forward_busy_rings_the_named_station_while_in_a_call() {
    let o = Office::start(&["201", "202", "203", "204"], &[]).await;
    let (mut a, mut b, mut c, mut d) = (
        o.phone("201", 440.0).await,
        o.phone("202", 600.0).await,
        o.phone("203", 1000.0).await,
        o.phone("204", 1200.0).await,
    );
    assert_eq!(a.code("602203").await, 480);
    connect(&mut d, &mut a).await;
    let dialing = b.dial("201").await;
    c.answer().await;
    b.outcome(dialing).await.unwrap();
    assert!(
        diversion(&c).contains("reason=user-busy"),
        "{}",
        diversion(&c)
    );
    assert_eq!(rung(&a), 1, "only 204's call rang 201");
}

#[tokio::test(start_paused = true)]
async fn forward_no_answer_cancels_and_rings_the_next_station() {
    let o = Office::start(
        &["201", "202", "203"],
        &[("forward.noanswer_seconds", "15")],
    )
    .await;
    let (mut a, mut b, mut c) = three(&o).await;
    assert_eq!(a.code("603203").await, 480);
    let dialing = b.dial("201").await;
    let rang_at = tokio::time::Instant::now();
    c.answer().await;
    let waited = rang_at.elapsed().as_secs_f32();
    assert!(
        (14.0..=17.0).contains(&waited),
        "forwarded after {waited} s"
    );
    b.outcome(dialing).await.unwrap();
    a.until("201's ringing is cancelled", |s| {
        s.ringing.is_empty() && !s.ended.is_empty()
    })
    .await;
    assert!(
        diversion(&c).contains("reason=no-answer"),
        "{}",
        diversion(&c)
    );
}

#[tokio::test(start_paused = true)]
async fn forward_unreachable_rings_the_named_station() {
    let o = Office::start(&["201", "202", "203"], &[]).await;
    o.station("201", "cf_unreachable", "203");
    // 201 never registers.
    let (mut b, mut c) = (o.phone("202", 600.0).await, o.phone("203", 1000.0).await);
    let d = b.dial("201").await;
    c.answer().await;
    b.outcome(d).await.unwrap();
    o.station("201", "cf_unreachable", "");
    let d = b.dial("201").await;
    assert_eq!(b.outcome(d).await.unwrap_err(), 480);
}

#[tokio::test(start_paused = true)]
async fn a_ring_group_rings_in_batches_with_stagger_and_cancels_the_losers() {
    let o = Office::start(
        &["201", "202", "203", "204"],
        &[("ringgroup.batch", "2"), ("ringgroup.stagger_ms", "2000")],
    )
    .await;
    o.db()
        .set_ring_group("300", &["202".into(), "204".into(), "203".into()])
        .unwrap();
    let (mut a, b, mut c, d) = (
        o.phone("201", 440.0).await,
        o.phone("202", 600.0).await,
        o.phone("203", 1000.0).await,
        o.phone("204", 1200.0).await,
    );
    let dialing = a.dial("300").await;
    let t0 = tokio::time::Instant::now();
    b.until("202 rings", |s| !s.ringing.is_empty()).await;
    d.until("204 rings", |s| !s.ringing.is_empty()).await;
    assert!(t0.elapsed() < std::time::Duration::from_millis(100));
    assert_eq!(rung(&c), 0, "203 is in the second batch");
    c.answer().await;
    let waited = t0.elapsed().as_secs_f32();
    assert!(
        (1.9..=2.2).contains(&waited),
        "the second batch rang after {waited} s"
    );
    a.outcome(dialing).await.unwrap();
    for loser in [&b, &d] {
        loser.until("the CANCEL", |s| s.ringing.is_empty()).await;
    }
    // One at a time: 202 answers at once, so 203 never rings.
    o.set("ringgroup.batch", "1");
    o.db()
        .set_ring_group("301", &["202".into(), "203".into()])
        .unwrap();
    let (mut a2, mut b) = (a, b);
    let dialing = a2.dial("301").await;
    b.answer().await;
    a2.outcome(dialing).await.unwrap();
    pass(5.0).await;
    assert_eq!(rung(&c), 1, "203 rang although 202 had answered");
}

#[tokio::test(start_paused = true)]
async fn call_waiting_rings_a_busy_station_only_when_it_is_on() {
    let o = Office::start(&["201", "202", "203"], &[]).await;
    let (mut a, mut b, mut c) = three(&o).await;
    connect(&mut a, &mut b).await;
    let d = c.dial("202").await;
    assert_eq!(c.outcome(d).await.unwrap_err(), 486);
    o.station("202", "call_waiting", "yes");
    let d = c.dial("202").await;
    b.answer().await;
    c.outcome(d).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_conference_via_46_lets_each_hear_the_others_and_goes_on_when_one_leaves() {
    let o = Office::start(&["201", "202", "203"], &[]).await;
    let (mut a, mut b, mut c) = three(&o).await;
    // 201 calls 202, holds, dials 46: 202 waits in the conference.
    let (first, at_b) = connect(&mut a, &mut b).await;
    pass(1.0).await;
    a.hold(&first).await;
    assert_eq!(a.code("46").await, 480);
    // 201 calls 203, holds, 46 adds it; a second 46 ends the adding.
    let (second, at_c) = connect(&mut a, &mut c).await;
    a.until_ended(first.id()).await; // its first leg is released
    pass(1.0).await;
    a.hold(&second).await;
    assert_eq!(a.code("46").await, 480);
    assert_eq!(a.code("46").await, 480);
    a.resume(&second).await; // the owner's final resume joins it
    b.clear_heard();
    c.clear_heard();
    pass(3.0).await;
    let freqs = [440.0, 600.0, 1000.0];
    for (me, p) in [(1, &b), (2, &c)] {
        let shares: Vec<f32> = freqs
            .iter()
            .map(|f| media::analysis::tone_share(&p.heard(), *f, 8000))
            .collect();
        for (j, share) in shares.iter().enumerate() {
            if j == me {
                assert!(*share < 0.05, "{} hears itself: {shares:?}", p.number);
            } else {
                assert!(
                    *share > 0.2,
                    "{} does not hear {}: {shares:?}",
                    p.number,
                    freqs[j]
                );
            }
        }
    }
    b.hang_up(&at_b).await; // one member leaves: the other two go on
    c.clear_heard();
    pass(2.0).await;
    heard(&c, &[440.0]);
    c.hang_up(&at_c).await; // the last two: 201 is released too
    a.until_ended(second.id()).await;
}

#[tokio::test(start_paused = true)]
async fn voicemail_on_no_answer_takes_a_message_lights_the_lamp_and_plays_it() {
    let o = Office::start(&["201", "202"], &[("forward.noanswer_seconds", "10")]).await;
    o.station("202", "voicemail", "202");
    let (mut a, mut b) = (o.phone("201", 440.0).await, o.phone("202", 600.0).await);
    assert!(b.subscribe_mwi().await.status < 300);
    b.until("the lamp is out", |s| s.lamp() == ["0/0"]).await;
    // 202 does not answer: after 10 s voicemail does, and records 201's tone.
    let call = a.call("202").await;
    pass(4.0).await;
    a.hang_up(&call).await;
    b.until("the lamp lights", |s| {
        s.lamp().last().is_some_and(|l| l == "1/0")
    })
    .await;
    let m = o.db().messages("202").unwrap();
    assert_eq!(m.len(), 1);
    let kept = e2e::audio::samples_so_far(std::path::Path::new(&m[0].path));
    assert!(
        heard_in_order(&kept, &[440.0]),
        "kept {:?}",
        timeline(&kept)
    );
    // 202 dials 50: the message plays; 7 deletes it and the lamp goes out.
    let vm = b.call("50").await;
    pass(4.0).await;
    b.press('7');
    b.until_ended(vm.id()).await;
    heard(&b, &[440.0]);
    assert!(o.db().messages("202").unwrap().is_empty());
    b.until("the lamp goes out", |s| {
        s.lamp().last().is_some_and(|l| l == "0/0")
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn voicemail_answers_a_busy_station() {
    let o = Office::start(&["201", "202", "203"], &[]).await;
    o.station("202", "voicemail", "202");
    let (mut a, mut b, mut c) = three(&o).await;
    connect(&mut c, &mut b).await;
    let call = a.call("202").await; // busy: voicemail answers at once
    pass(3.0).await;
    a.hang_up(&call).await;
    pass(1.0).await;
    assert_eq!(o.db().messages("202").unwrap().len(), 1);
    assert_eq!(rung(&b), 1, "only 203's call rang 202");
}

/// SRTP offers the PBX must not take are answered 488 (issue #17): an
/// `a=crypto` that does not parse; a plain offer from a station with `srtp=mandatory`; and
/// keys offered over plain SIP (they would only go back in the clear).
#[tokio::test(start_paused = true)]
async fn srtp_offers_the_pbx_cannot_take_are_refused_488() {
    let o = Office::start(&["201", "202"], &[]).await;
    let (mut a, _b) = (o.phone("201", 440.0).await, o.phone("202", 600.0).await);
    let offer = |proto: &str, crypto: &str| {
        format!(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 {proto} 0\r\n{crypto}a=sendrecv\r\n"
        )
    };
    let good = media::srtp::Crypto::generate(1, media::srtp::Suite::AesCm128HmacSha1_80);
    let keys = format!("a=crypto:{}\r\n", good.to_sdp());
    for (sdp, why) in [
        (
            offer(
                "RTP/SAVP",
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:not*base64\r\n",
            ),
            "an a=crypto that does not parse",
        ),
        (offer("RTP/SAVP", &keys), "keys over plain SIP"),
    ] {
        let d = a.dial_offering("202", sdp).await;
        assert_eq!(a.outcome(d).await.err(), Some(488), "{why}");
    }
    o.station("201", "srtp", "mandatory");
    let d = a.dial_offering("202", offer("RTP/AVP", "")).await;
    assert_eq!(a.outcome(d).await.err(), Some(488), "plain, and mandatory");
}

/// Must-show 6 of issue #18: a provider answers the trunk's REGISTER 423 with Min-Expires
/// 3600, then 403. The PBX asks again for 3600 s, then stops: in the next two hours it
/// sends the provider nothing more, and the trunk's state shows both answers.
#[tokio::test(start_paused = true)]
async fn a_trunk_honours_423_and_stops_after_403() {
    let o = Office::start(&[], &[]).await;
    let provider =
        sip::transport::DatagramSocket::bind("198.51.100.7:5060".parse().unwrap(), Some(&o.net))
            .await
            .unwrap();
    let mut t = stations::trunk::Trunk::new("provider", "198.51.100.7").unwrap();
    for (f, v) in [
        ("user", "office"),
        ("password", "Trunk-pw-1"),
        ("register", "yes"),
    ] {
        t.set(f, v).unwrap();
    }
    o.db().save_trunk(&t).unwrap();
    let mut buf = vec![0u8; 65536];
    let mut next = async || {
        let (n, from) = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            provider.recv_from(&mut buf),
        )
        .await
        .expect("a REGISTER")
        .unwrap();
        let sip::Message::Request(r) = sip::Message::parse_datagram(&buf[..n]).unwrap() else {
            panic!("not a request");
        };
        (r, from)
    };
    let expires = |r: &sip::Request| {
        r.headers
            .get_raw(&Name::EXPIRES)
            .next()
            .map(|v| v.to_string())
    };
    let (first, from) = next().await;
    assert_eq!(first.method, Method::Register);
    assert_eq!(expires(&first).as_deref(), Some("600"));
    let mut brief = first.make_response(423, "Interval Too Brief");
    brief.headers.insert(Name::MIN_EXPIRES, "3600");
    provider.send_to(&brief.to_bytes(), from).await.unwrap();
    let (second, from) = next().await;
    assert_eq!(
        expires(&second).as_deref(),
        Some("3600"),
        "Min-Expires honoured"
    );
    let refused = second.make_response(403, "Forbidden");
    provider.send_to(&refused.to_bytes(), from).await.unwrap();
    pass(3.0).await;
    let state = o.db().trunk_state("provider").unwrap();
    assert!(!state.registered);
    assert!(
        state
            .last_error
            .starts_with("423 Interval Too Brief: asked again for 3600 s")
            && state.last_error.contains("403 Forbidden (stopped"),
        "{}",
        state.last_error
    );
    // Two hours later (any backoff would have asked again by then): not one more REGISTER.
    let quiet = tokio::time::timeout(
        std::time::Duration::from_secs(7200),
        provider.recv_from(&mut buf),
    )
    .await;
    assert!(
        quiet.is_err(),
        "the PBX asked the provider again after its 403"
    );
}

/// Every call leaves a record (issue #20): answered with its duration, busy, refused with
/// its status, missed when the caller gives up, transferred when the transferor leaves.
#[tokio::test(start_paused = true)]
async fn each_call_leaves_a_record_of_how_it_ended() {
    let o = Office::start(&["201", "202", "203"], &[]).await;
    let (mut a, mut b, mut c) = three(&o).await;
    let (at_a, at_b) = connect(&mut a, &mut b).await;
    pass(5.0).await;
    // 202 is busy (no call waiting): 203 is turned away.
    let busy = c.dial("202").await;
    assert_eq!(c.outcome(busy).await.err(), Some(486));
    a.hang_up(&at_a).await;
    b.until_ended(at_b.id()).await;
    let unknown = c.dial("299").await;
    assert_eq!(c.outcome(unknown).await.err(), Some(404));
    // 203 gives up before 201 answers.
    let ringing = c.dial("201").await;
    a.until("203's call rings", |s| !s.got(Method::Invite).is_empty())
        .await;
    pass(2.0).await;
    c.cancel(ringing).await;
    pass(1.0).await;
    // 201 consults 203 and leaves: 202 and 203 talk, the first call is transferred.
    let (_first, second) = consult(&mut a, &mut b, &mut c).await;
    pass(1.5).await;
    a.hang_up(&second).await;
    pass(2.0).await;

    let records = o.db().call_records(20).unwrap();
    let seen: Vec<(&str, &str, &str, &str, u16)> = records
        .iter()
        .rev()
        .map(|r| {
            (
                r.caller.as_str(),
                r.dialled.as_str(),
                r.callee.as_str(),
                r.disposition.as_str(),
                r.status,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("201", "202", "202", "answered", 200),
            ("203", "202", "", "busy", 486),
            ("203", "299", "", "refused", 404),
            ("203", "201", "", "missed", 487),
            ("201", "202", "202", "transferred", 200),
            ("201", "203", "203", "transferred", 200),
        ],
        "{records:#?}"
    );
    let first = records
        .iter()
        .find(|r| r.disposition == "answered")
        .unwrap();
    assert!((5..=7).contains(&first.duration()), "{first:?}");
}
