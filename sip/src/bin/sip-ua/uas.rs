//! The answering side: a UAS that accepts every call.

use crate::{Args, transports};
use anyhow::{Context, Result};
use sip::auth::{Denied, DigestVerifier, Verdict};
use sip::dialog::{Dialog, DialogId};
use sip::endpoint::Endpoint;
use sip::transaction::{Peer, TsxEvent};
use sip::types::Name;
use sip::{Message, Method, Request, Response, build};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::oneshot;

const SDP: &str = "v=0\r\no=sip-ua 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// Calls waiting for their ACK: dialog → stop signal for the 2xx retransmission.
type Pending = Arc<Mutex<HashMap<DialogId, oneshot::Sender<()>>>>;

pub(crate) async fn run(args: Args) -> Result<bool> {
    let listen = args.listen.context("uas needs --listen")?;
    let (ep, mut events) = Endpoint::start(transports(args.transport, listen), args.timers).await?;
    let pending: Pending = Arc::default();
    let mut verifier =
        DigestVerifier::new("sip-ua", rand::random()).with_algorithms(args.digest.clone());
    let mut dialogs: HashMap<DialogId, Dialog> = HashMap::new();
    println!("sip-ua uas listening on {listen}");
    while let Some(event) = events.recv().await {
        match event {
            TsxEvent::Request { key, request, peer } => {
                let response = match request.method {
                    Method::Invite if request.to_tag().is_none() => {
                        if args.mix {
                            Some(with_tag(request.make_response(486, "Busy Here")))
                        } else {
                            answer(&ep, &key, &request, peer, &pending, &mut dialogs, &args)
                        }
                    }
                    Method::Ack => {
                        if let Some(id) = DialogId::of_request(&request)
                            && let Ok(mut p) = pending.lock()
                            && let Some(stop) = p.remove(&id)
                        {
                            let _ = stop.send(());
                        }
                        None
                    }
                    Method::Bye => {
                        let known = DialogId::of_request(&request)
                            .and_then(|id| dialogs.remove(&id))
                            .is_some();
                        Some(if known {
                            request.make_response(200, "OK")
                        } else {
                            request.make_response(481, "Call/Transaction Does Not Exist")
                        })
                    }
                    Method::Register => {
                        Some(register(&mut verifier, &request, peer.addr.ip(), &args))
                    }
                    Method::Options | Method::Invite => {
                        Some(with_tag(request.make_response(200, "OK")))
                    }
                    _ => Some(with_tag(request.make_response(501, "Not Implemented"))),
                };
                if let Some(r) = response {
                    let _ = ep.send_response(&key, &r);
                }
            }
            TsxEvent::Cancelled { invite, cancel } => {
                let _ = ep.send_response(
                    &invite,
                    &with_tag(cancel.make_response(487, "Request Terminated")),
                );
            }
            _ => {}
        }
    }
    Ok(true)
}

/// REGISTER: 200 when no credentials are configured or the digest is right; a challenge
/// when none or a stale one was given; 403 for a wrong user or password alike.
fn register(
    verifier: &mut DigestVerifier,
    request: &Request,
    source: std::net::IpAddr,
    args: &Args,
) -> Response {
    let Some((user, password)) = &args.credentials else {
        return with_tag(request.make_response(200, "OK"));
    };
    let now = SystemTime::now();
    let tag = build::new_tag();
    match verifier.verify(now, request, source, false, |u| {
        (u == user).then(|| password.clone())
    }) {
        Verdict::Authorized { .. } => {
            let mut ok = request.make_response(200, "OK");
            ok.set_to_tag(&tag);
            for c in request.headers.get_raw(&Name::CONTACT) {
                ok.headers.insert(Name::CONTACT, format!("{c};expires=600"));
            }
            ok
        }
        Verdict::Stale => verifier.challenge(now, request, source, true, false, &tag),
        Verdict::Denied(Denied::NoCredentials | Denied::BadNonce | Denied::WrongRealm) => {
            verifier.challenge(now, request, source, false, false, &tag)
        }
        Verdict::Denied(why) => {
            eprintln!("REGISTER refused: {why:?}");
            with_tag(request.make_response(403, "Forbidden"))
        }
    }
}

fn with_tag(mut r: Response) -> Response {
    r.set_to_tag(&build::new_tag());
    r
}

/// 180 then 200 with SDP; the 200 is retransmitted (T1 doubling to T2) until the ACK comes
/// or 64·T1 passes (RFC 3261 §13.3.1.4).
fn answer(
    ep: &Arc<Endpoint>,
    key: &sip::transaction::TsxKey,
    request: &Request,
    peer: Peer,
    pending: &Pending,
    dialogs: &mut HashMap<DialogId, Dialog>,
    args: &Args,
) -> Option<Response> {
    let tag = build::new_tag();
    let dialog = Dialog::from_uas(request, &tag)?;
    let mut ringing = request.make_response(180, "Ringing");
    ringing.set_to_tag(&tag);
    let _ = ep.send_response(key, &ringing);
    let mut ok = request.make_response(200, "OK");
    ok.set_to_tag(&tag);
    let local = ep.local_addr(args.transport)?;
    ok.headers
        .insert(Name::CONTACT, format!("<sip:uas@{local}>"));
    ok.headers.insert(Name::CONTENT_TYPE, "application/sdp");
    ok.body = SDP.into();
    let (stop_tx, mut stop_rx) = oneshot::channel();
    if let Ok(mut p) = pending.lock() {
        p.insert(dialog.id.clone(), stop_tx);
    }
    dialogs.insert(dialog.id.clone(), dialog);
    if !peer.transport.is_reliable() {
        let (ep, ok, t) = (ep.clone(), Message::Response(ok.clone()), args.timers);
        tokio::spawn(async move {
            let mut interval = t.t1;
            let deadline = tokio::time::Instant::now() + t.t64();
            loop {
                tokio::select! {
                    _ = &mut stop_rx => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                if tokio::time::Instant::now() >= deadline {
                    return;
                }
                ep.send_stateless(peer, &ok);
                interval = (interval * 2).min(t.t2);
            }
        });
    }
    Some(ok)
}
