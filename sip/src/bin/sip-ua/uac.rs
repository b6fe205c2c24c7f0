//! The calling side: calls (INVITE, ACK, BYE) and plain transactions, with a router that
//! hands each transaction's responses to the task waiting for them.

use crate::{Args, transports};
use anyhow::{Context, Result};
use sip::dialog::Dialog;
use sip::endpoint::Endpoint;
use sip::transaction::{Peer, TransportKind, TsxEvent, TsxKey};
use sip::types::Name;
use sip::{Message, Method, Request, Response, build};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};

const SDP: &str = "v=0\r\no=sip-ua 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// Responses by transaction, and the ACK to re-send when a 2xx is retransmitted.
#[derive(Default)]
struct Router {
    waiting: HashMap<TsxKey, mpsc::UnboundedSender<Response>>,
    acks: HashMap<TsxKey, (Peer, Message)>,
}

struct Ua {
    ep: Arc<Endpoint>,
    router: Arc<Mutex<Router>>,
    target: SocketAddr,
    transport: TransportKind,
    local: SocketAddr,
}

impl Ua {
    async fn start(args: &Args) -> Result<Arc<Ua>> {
        let target = args.target.context("--target is required")?;
        let bind = args
            .listen
            .unwrap_or_else(|| "127.0.0.1:0".parse().expect("literal"));
        let (ep, mut events) =
            Endpoint::start(transports(args.transport, bind), args.timers).await?;
        let local = ep.local_addr(args.transport).context("no local address")?;
        let router: Arc<Mutex<Router>> = Arc::default();
        let (r, e) = (router.clone(), ep.clone());
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let TsxEvent::Response { key, response } = event else {
                    continue;
                };
                let Ok(router) = r.lock() else { return };
                if let Some((peer, ack)) = router.acks.get(&key) {
                    e.send_stateless(*peer, ack); // a retransmitted 2xx: ACK again
                } else if let Some(tx) = router.waiting.get(&key) {
                    let _ = tx.send(response);
                }
            }
        });
        Ok(Arc::new(Ua {
            ep,
            router,
            target,
            transport: args.transport,
            local,
        }))
    }

    fn peer(&self) -> Peer {
        Peer::new(self.transport, self.target)
    }

    fn new_request(&self, method: Method, user: &str) -> Result<Request> {
        let target = format!("sip:{user}@{}", self.target);
        Ok(build::request(
            method,
            &target,
            &format!("sip:sip-ua@{}", self.local),
            &target,
            self.transport,
            self.local,
        )?)
    }

    fn via(&self) -> String {
        build::via_value(self.transport, self.local, &build::new_branch())
    }

    /// Sends a request and returns its final response.
    async fn transact(&self, request: Request) -> Result<(TsxKey, Response)> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let key = TsxKey::client(&request).context("request without branch")?;
        self.lock().waiting.insert(key.clone(), tx);
        self.ep.send_request(request, self.peer())?;
        let result = loop {
            match rx.recv().await {
                Some(r) if r.status >= 200 => break Ok((key.clone(), r)),
                Some(_) => continue,
                None => break Err(anyhow::anyhow!("router gone")),
            }
        };
        self.lock().waiting.remove(&key);
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// INVITE → 200 → ACK → BYE → 200.
    async fn call(&self) -> Result<()> {
        let mut invite = self.new_request(Method::Invite, "service")?;
        invite.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        invite.body = SDP.into();
        let (key, ok) = self.transact(invite.clone()).await?;
        anyhow::ensure!(
            ok.status == 200,
            "INVITE answered {} {}",
            ok.status,
            ok.reason
        );
        let mut dialog = Dialog::from_uac(&invite, &ok).context("2xx without dialog")?;
        let ack = Message::Request(dialog.ack(dialog.local_seq, &self.via()));
        self.ep.send_stateless(self.peer(), &ack);
        self.lock().acks.insert(key.clone(), (self.peer(), ack));
        let bye = dialog.request(Method::Bye, &self.via());
        let (_, done) = self.transact(bye).await?;
        // Keep re-ACKing 2xx retransmissions a little longer, then forget the call.
        let router = self.router.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            if let Ok(mut r) = router.lock() {
                r.acks.remove(&key);
            }
        });
        anyhow::ensure!(done.status == 200, "BYE answered {}", done.status);
        Ok(())
    }
}

/// Runs `n` jobs at `rate` starts per second with at most `concurrency` in flight.
async fn run_jobs<F, Fut>(n: usize, rate: f64, concurrency: usize, job: F) -> (usize, usize)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let due = start + Duration::from_secs_f64(i as f64 / rate.max(0.001));
        tokio::time::sleep_until(due.into()).await;
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let fut = job(i);
        handles.push(tokio::spawn(async move {
            let r = fut.await;
            drop(permit);
            r
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for h in handles {
        match h.await {
            Ok(Ok(())) => ok += 1,
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("failed: {e:#}");
            }
            Err(_) => failed += 1,
        }
    }
    (ok, failed)
}

pub(crate) async fn run_calls(args: Args) -> Result<bool> {
    let ua = Ua::start(&args).await?;
    let t0 = Instant::now();
    let (ok, failed) = run_jobs(args.count, args.rate, args.count.max(1), |_| {
        let ua = ua.clone();
        async move { ua.call().await }
    })
    .await;
    eprintln!(
        "{} calls in {:.2} s",
        ok + failed,
        t0.elapsed().as_secs_f64()
    );
    println!("{ok} passed, {failed} failed");
    Ok(failed == 0)
}

pub(crate) async fn run_options(args: Args) -> Result<bool> {
    let ua = Ua::start(&args).await?;
    let mix = args.mix;
    let (ok, failed) = run_jobs(args.count, args.rate, args.concurrency, |i| {
        let ua = ua.clone();
        async move {
            let invite = mix && i % 2 == 1;
            let method = if invite {
                Method::Invite
            } else {
                Method::Options
            };
            let want = if invite { 486 } else { 200 };
            let (_, r) = ua.transact(ua.new_request(method, "options")?).await?;
            anyhow::ensure!(r.status == want, "transaction {i} answered {}", r.status);
            Ok(())
        }
    })
    .await;
    println!("{ok} passed, {failed} failed");
    Ok(failed == 0)
}
