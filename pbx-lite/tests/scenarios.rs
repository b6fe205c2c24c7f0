//! The call features on virtual time (issue #16): the whole PBX runs on an in-memory network
//! with tokio's clock paused, and phones made of the SIP core act out each feature at the
//! level of SIP messages, hearing each other as RTP. No peer, no socket: each test takes
//! milliseconds however many minutes of calls it plays.
#![allow(clippy::unwrap_used)]

#[path = "support/scenario.rs"]
mod scenario;

use e2e::audio::{heard_in_order, timeline};
use scenario::{Call, MUSIC, Office, Phone, pass};
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
    let (mut a, mut b, mut c) = (
        o.phone("201", 440.0).await,
        o.phone("202", 600.0).await,
        o.phone("203", 1000.0).await,
    );
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
    let (mut a, mut b, mut c) = (
        o.phone("201", 440.0).await,
        o.phone("202", 600.0).await,
        o.phone("203", 1000.0).await,
    );
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
    let (mut a, mut b, mut c) = (
        o.phone("201", 440.0).await,
        o.phone("202", 600.0).await,
        o.phone("203", 1000.0).await,
    );
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
    let o = Office::start(&["201", "202", "203"], &[]).await;
    let (mut a, mut b, mut c) = (
        o.phone("201", 440.0).await,
        o.phone("202", 600.0).await,
        o.phone("203", 1000.0).await,
    );
    let (first, _) = connect(&mut a, &mut b).await;
    a.hold(&first).await;
    let dialing = a.dial("203").await; // 203 rings...
    c.until("203 rings", |s| !s.ringing.is_empty()).await;
    a.cancel(dialing).await; // ...and 201 hangs up: a blind transfer
    a.until_ended(first.id()).await;
    pass(1.0).await;
    b.clear_heard();
    c.answer().await;
    pass(2.0).await;
    heard(&b, &[1000.0]);
    heard(&c, &[600.0]);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_blind_transfer_recalls_the_transferor() {
    let o = Office::start(&["201", "202", "203"], &[("transfer.recall_seconds", "20")]).await;
    let (mut a, mut b, mut c) = (
        o.phone("201", 440.0).await,
        o.phone("202", 600.0).await,
        o.phone("203", 1000.0).await,
    );
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
    let (mut a, mut b, mut c) = (
        o.phone("201", 440.0).await,
        o.phone("202", 600.0).await,
        o.phone("203", 1000.0).await,
    );
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
    let (mut a, mut b, mut c) = (
        o.phone("201", 440.0).await,
        o.phone("202", 600.0).await,
        o.phone("203", 1000.0).await,
    );
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
