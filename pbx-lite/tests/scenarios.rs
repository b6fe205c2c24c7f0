//! The call features on virtual time (issue #16): the whole PBX runs on an in-memory network
//! with tokio's clock paused, and phones made of the SIP core act out each feature at the
//! level of SIP messages, hearing each other as RTP. No peer, no socket: each test takes
//! milliseconds however many minutes of calls it plays.
#![allow(clippy::unwrap_used)]

#[path = "support/scenario.rs"]
mod scenario;

use e2e::audio::{heard_in_order, timeline};
use scenario::{MUSIC, Office, pass};
use sip::Method;

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
