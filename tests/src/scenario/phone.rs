//! The scenario phones: a SIP endpoint each, answering the PBX from a task of its own,
//! with what it saw kept for the test.

use super::voice::Media;
use super::*;

/// A call as one phone sees it.
#[derive(Debug, Clone)]
pub struct Call {
    pub dialog: Dialog,
    /// The CSeq of the INVITE that set it up (the ACK's).
    invite_seq: u32,
}

impl Call {
    pub fn id(&self) -> &str {
        &self.dialog.id.call_id
    }
}

/// An INVITE this phone sent and is waiting on.
pub struct Dialing {
    key: TsxKey,
    invite: Request,
}

/// What a phone has seen, shared between the test and the task that answers the PBX.
#[derive(Default)]
pub struct Seen {
    /// Out-of-dialog INVITEs ringing here (answered 180), oldest first.
    pub ringing: VecDeque<(TsxKey, Request)>,
    /// Answers to this phone's requests, by transaction.
    responses: HashMap<TsxKey, Vec<Response>>,
    /// Every request the PBX sent, in order (in-dialog ones are answered as a phone would),
    /// with when it came.
    pub received: Vec<Request>,
    pub received_at: Vec<tokio::time::Instant>,
    /// Calls up, by Call-ID.
    pub calls: HashMap<String, Call>,
    /// Calls the PBX hung up (BYE) or cancelled, by Call-ID.
    pub ended: Vec<String>,
}

impl Seen {
    /// The `Voice-Message` counts (`new/old`) of every message-summary NOTIFY so far.
    pub fn lamp(&self) -> Vec<String> {
        self.got(Method::Notify)
            .iter()
            .filter_map(|n| {
                let body = String::from_utf8_lossy(&n.body).to_string();
                body.lines()
                    .find_map(|l| l.strip_prefix("Voice-Message: "))
                    .map(|v| v.split_whitespace().next().unwrap_or_default().to_string())
            })
            .collect()
    }

    /// Every request received and answer to this phone's requests, for failure messages.
    pub fn summary(&self) -> String {
        let requests: Vec<String> = self.received.iter().map(|r| r.method.to_string()).collect();
        let answers: Vec<String> = self
            .responses
            .values()
            .flatten()
            .map(|r| {
                format!(
                    "{} {}",
                    r.status,
                    r.cseq().map(|c| c.method.to_string()).unwrap_or_default()
                )
            })
            .collect();
        format!("requests {requests:?}, answers {answers:?}")
    }

    /// Requests of `method` the PBX sent here so far.
    pub fn got(&self, method: Method) -> Vec<&Request> {
        self.received
            .iter()
            .filter(|r| r.method == method)
            .collect()
    }
}

/// What answers for a phone: its endpoint, where it is, and its media.
#[derive(Clone)]
struct Answerer {
    number: String,
    addr: SocketAddr,
    ep: Arc<Endpoint>,
    media: Arc<Media>,
}

impl Answerer {
    fn reply(
        &self,
        key: &TsxKey,
        request: &Request,
        status: u16,
        reason: &str,
        sdp: Option<String>,
    ) {
        let mut r = request.make_response(status, reason);
        if request.to_tag().is_none() {
            r.set_to_tag(&format!("t{}", self.number));
        }
        self.me_in(&mut r.headers, &mut r.body, sdp);
        let _ = self.ep.send_response(key, &r);
    }

    /// Puts the phone's Contact, and `sdp` as the body, in a message it sends.
    fn me_in(
        &self,
        headers: &mut sip::types::Headers,
        body: &mut bytes::Bytes,
        sdp: Option<String>,
    ) {
        headers.insert(
            Name::CONTACT,
            format!("<sip:{}@{}>", self.number, self.addr),
        );
        if let Some(sdp) = sdp {
            headers.insert(Name::CONTENT_TYPE, "application/sdp");
            *body = sdp.into();
        }
    }

    /// Handles one event as a phone would, noting it in `seen`.
    fn handle(&self, event: TsxEvent, seen: &mut Seen) {
        match event {
            TsxEvent::Request { key, request, .. } => self.on_request(key, request, seen),
            TsxEvent::Response { key, response } => {
                seen.responses.entry(key).or_default().push(response)
            }
            TsxEvent::Cancelled { invite, .. } => {
                if let Some(i) = seen.ringing.iter().position(|(k, _)| *k == invite) {
                    let (k, r) = seen.ringing.remove(i).unwrap();
                    self.reply(&k, &r, 487, "Request Terminated", None);
                    seen.ended.push(call_id(&r));
                }
            }
            _ => {}
        }
    }

    fn on_request(&self, key: TsxKey, request: Request, seen: &mut Seen) {
        seen.received.push(request.clone());
        seen.received_at.push(tokio::time::Instant::now());
        let id = call_id(&request);
        match request.method {
            Method::Ack => {}
            Method::Invite if request.to_tag().is_none() => {
                self.reply(&key, &request, 180, "Ringing", None);
                seen.ringing.push_back((key, request));
            }
            Method::Invite => {
                // A re-INVITE (the PBX moving the media): follow it, answer with ours.
                self.media.follow(&request.body);
                if let Some(c) = seen.calls.get_mut(&id) {
                    let _ = c.dialog.handle_request(&request);
                }
                self.reply(&key, &request, 200, "OK", Some(self.media.sdp("sendrecv")));
            }
            Method::Bye => {
                seen.calls.remove(&id);
                seen.ended.push(id);
                self.reply(&key, &request, 200, "OK", None);
            }
            _ => self.reply(&key, &request, 200, "OK", None),
        }
    }
}

/// A phone: a SIP endpoint at 10.0.1.x:5060 and RTP at 10.0.1.x:4000. A task answers the
/// PBX at once (180 to a new INVITE, 200 to re-INVITEs, BYE, OPTIONS, NOTIFY), as a phone
/// does while its user does nothing; the test acts through the methods.
pub struct Phone {
    pub number: String,
    pub addr: SocketAddr,
    me: Answerer,
    auth: DigestClient,
    seen: Arc<Mutex<Seen>>,
    changed: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Phone {
    pub async fn start(net: &MemNet, number: &str, freq: f32) -> Phone {
        let ip = host_of(number);
        let (ep, mut events) = Endpoint::start(
            TransportConfig {
                udp: Some((ip, 5060).into()),
                memory: Some(net.clone()),
                ..Default::default()
            },
            TimerConfig::default(),
        )
        .await
        .unwrap();
        let me = Answerer {
            number: number.to_string(),
            addr: (ip, 5060).into(),
            ep,
            media: Arc::new(Media::start(net, (ip, 4000).into(), freq).await),
        };
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let changed = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn({
            let (me, seen, changed) = (me.clone(), seen.clone(), changed.clone());
            async move {
                while let Some(e) = events.recv().await {
                    me.handle(e, &mut seen.lock().unwrap());
                    changed.notify_waiters();
                }
            }
        });
        Phone {
            number: number.to_string(),
            addr: me.addr,
            auth: DigestClient::new(number, &password(number)),
            me,
            seen,
            changed,
            task,
        }
    }

    fn peer() -> Peer {
        Peer::new(TransportKind::Udp, pbx())
    }

    fn aor(&self) -> String {
        format!("sip:{}@{PBX}", self.number)
    }

    fn via(&self) -> String {
        build::via_value(TransportKind::Udp, self.addr, &build::new_branch())
    }

    /// What the phone has seen so far.
    pub fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }

    /// Waits until `done` holds of what the phone has seen, failing after [`PATIENCE`] of
    /// virtual time.
    pub async fn until(&self, what: &str, done: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(&self.seen()) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "{}: {what} did not happen within {PATIENCE:?}; it saw {}",
                    self.number,
                    self.seen().summary()
                );
            }
        }
    }

    /// The final answer to the request sent as `key` (provisional ones are skipped).
    async fn final_response(&self, key: &TsxKey) -> Response {
        let mut answer = None;
        self.until("an answer", |s| {
            s.responses
                .get(key)
                .is_some_and(|rs| rs.iter().any(|r| r.status >= 200))
        })
        .await;
        if let Some(rs) = self.seen().responses.get(key) {
            answer = rs.iter().find(|r| r.status >= 200).cloned();
        }
        answer.unwrap()
    }

    /// Sends `request`, answering one digest challenge; returns the final answer.
    async fn send(&mut self, mut request: Request) -> Response {
        let key = self
            .me
            .ep
            .send_request(request.clone(), Self::peer())
            .unwrap();
        let mut r = self.final_response(&key).await;
        if matches!(r.status, 401 | 407) {
            assert!(
                self.auth.authorize(&mut request, &r),
                "{}: no challenge I can answer",
                self.number
            );
            renumber(&mut request, self.via());
            let key = self.me.ep.send_request(request, Self::peer()).unwrap();
            r = self.final_response(&key).await;
        }
        r
    }

    pub async fn register(&mut self) {
        let mut r = build::request(
            Method::Register,
            &format!("sip:{PBX}"),
            &self.aor(),
            &self.aor(),
            TransportKind::Udp,
            self.addr,
        )
        .unwrap();
        r.headers.insert(Name::EXPIRES, "3600");
        let answer = self.send(r).await;
        assert_eq!(
            answer.status, 200,
            "{} registers: {}",
            self.number, answer.reason
        );
    }

    /// Dials `number` and waits for the PBX's first answer (a digest challenge is answered);
    /// [`Phone::outcome`] waits for the final one.
    pub async fn dial(&mut self, number: &str) -> Dialing {
        let sdp = self.me.media.sdp("sendrecv");
        self.dial_offering(number, sdp).await
    }

    /// [`Phone::dial`] with `sdp` as the offer.
    pub async fn dial_offering(&mut self, number: &str, sdp: String) -> Dialing {
        let mut r = build::request(
            Method::Invite,
            &format!("sip:{number}@{PBX}"),
            &self.aor(),
            &format!("sip:{number}@{PBX}"),
            TransportKind::Udp,
            self.addr,
        )
        .unwrap();
        build::set_display_name(&mut r, &format!("Station {}", self.number));
        r.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        r.body = sdp.into();
        let mut key = self.me.ep.send_request(r.clone(), Self::peer()).unwrap();
        let first = self.first_response(&key).await;
        if matches!(first.status, 401 | 407) {
            assert!(self.auth.authorize(&mut r, &first));
            renumber(&mut r, self.via());
            key = self.me.ep.send_request(r.clone(), Self::peer()).unwrap();
            self.first_response(&key).await;
        }
        Dialing { key, invite: r }
    }

    async fn first_response(&self, key: &TsxKey) -> Response {
        self.until("an answer", |s| s.responses.contains_key(key))
            .await;
        self.seen().responses[key][0].clone()
    }

    /// The final answer to a dialled call: the call when answered (ACKed), the status
    /// otherwise.
    pub async fn outcome(&mut self, d: Dialing) -> Result<Call, u16> {
        let r = self.final_response(&d.key).await;
        if r.status >= 300 {
            return Err(r.status);
        }
        let dialog = Dialog::from_uac(&d.invite, &r).unwrap();
        self.me.media.follow(&r.body);
        let call = Call {
            dialog,
            invite_seq: d.invite.cseq().unwrap().seq,
        };
        self.ack(&call);
        self.seen()
            .calls
            .insert(call.id().to_string(), call.clone());
        Ok(call)
    }

    /// Dials and waits for the answer, which must be a call.
    pub async fn call(&mut self, number: &str) -> Call {
        let d = self.dial(number).await;
        self.outcome(d)
            .await
            .unwrap_or_else(|s| panic!("{} dials {number}: {s}", self.number))
    }

    /// Dials a feature code and returns the PBX's answer, which must not be a call (the
    /// manual's codes are answered `480` whatever the outcome).
    pub async fn code(&mut self, code: &str) -> u16 {
        let d = self.dial(code).await;
        match self.outcome(d).await {
            Ok(c) => panic!("{} dialled {code} and got a call {}", self.number, c.id()),
            Err(s) => s,
        }
    }

    fn ack(&self, call: &Call) {
        let ack = call.dialog.ack(call.invite_seq, &self.via());
        self.me
            .ep
            .send_stateless(Self::peer(), &sip::message::Message::Request(ack));
    }

    /// Waits for a call to ring here and answers it.
    pub async fn answer(&mut self) -> Call {
        self.until("a call rings", |s| !s.ringing.is_empty()).await;
        let (key, invite) = self.seen().ringing.pop_front().unwrap();
        self.me.media.follow(&invite.body);
        let sdp = self.me.media.sdp("sendrecv");
        self.me.reply(&key, &invite, 200, "OK", Some(sdp));
        let mut dialog = Dialog::from_uas(&invite, &format!("t{}", self.number)).unwrap();
        dialog.confirmed = true;
        let call = Call {
            dialog,
            invite_seq: 0,
        };
        self.seen()
            .calls
            .insert(call.id().to_string(), call.clone());
        call
    }

    /// The call as it stands now (its dialog moves with each request).
    fn current(&self, call: &Call) -> Call {
        self.seen()
            .calls
            .get(call.id())
            .cloned()
            .unwrap_or_else(|| call.clone())
    }

    /// Sends an in-dialog request on `call` and waits for its final answer.
    pub async fn in_dialog(
        &mut self,
        call: &Call,
        method: Method,
        sdp: Option<String>,
    ) -> Response {
        self.in_dialog_with(call, method, sdp, &[]).await
    }

    /// [`Phone::in_dialog`] with more headers.
    pub async fn in_dialog_with(
        &mut self,
        call: &Call,
        method: Method,
        sdp: Option<String>,
        headers: &[(Name, String)],
    ) -> Response {
        let mut c = self.current(call);
        let mut r = c.dialog.request(method.clone(), &self.via());
        for (name, value) in headers {
            r.headers.insert(name.clone(), value.clone());
        }
        self.me.me_in(&mut r.headers, &mut r.body, sdp);
        c.invite_seq = c.dialog.local_seq;
        if let Some(stored) = self.seen().calls.get_mut(call.id()) {
            stored.dialog = c.dialog.clone();
        }
        let answer = self.send(r).await;
        if method == Method::Invite && answer.status < 300 {
            self.me.media.follow(&answer.body);
            // A challenged re-INVITE went again with the next CSeq.
            c.invite_seq = answer.cseq().map_or(c.invite_seq, |s| s.seq);
            c.dialog.local_seq = c.invite_seq;
            self.ack(&c);
            if let Some(stored) = self.seen().calls.get_mut(call.id()) {
                *stored = c;
            }
        }
        answer
    }

    /// Transfers `call` to `target` with REFER; the answer (202) comes back.
    pub async fn refer(&mut self, call: &Call, target: &str) -> Response {
        let refer_to = (Name::REFER_TO, format!("<{target}>"));
        self.in_dialog_with(call, Method::Refer, None, &[refer_to])
            .await
    }

    /// Hangs up a call still ringing (CANCEL) and waits for the INVITE's `487`.
    pub async fn cancel(&mut self, d: Dialing) {
        self.me.ep.cancel(&d.key).unwrap();
        let r = self.final_response(&d.key).await;
        assert_eq!(r.status, 487, "{} cancels", self.number);
    }

    /// Puts `call` on hold (re-INVITE with `a=sendonly`).
    pub async fn hold(&mut self, call: &Call) {
        let sdp = self.me.media.sdp("sendonly");
        let r = self.in_dialog(call, Method::Invite, Some(sdp)).await;
        assert_eq!(r.status, 200, "{} holds", self.number);
    }

    pub async fn resume(&mut self, call: &Call) {
        let sdp = self.me.media.sdp("sendrecv");
        let r = self.in_dialog(call, Method::Invite, Some(sdp)).await;
        assert_eq!(r.status, 200, "{} resumes", self.number);
    }

    pub async fn hang_up(&mut self, call: &Call) {
        let r = self.in_dialog(call, Method::Bye, None).await;
        assert_eq!(r.status, 200, "{} hangs up", self.number);
        self.seen().calls.remove(call.id());
    }

    /// Waits until the PBX has ended `call` (BYE, or CANCEL while it rang).
    pub async fn until_ended(&self, call_id: &str) {
        let id = call_id.to_string();
        self.until(&format!("the end of {id}"), move |s| s.ended.contains(&id))
            .await;
    }

    /// Presses a key on the call (RFC 4733 telephone-events).
    pub fn press(&self, digit: char) {
        let _ = self.me.media.digits.send(digit);
    }

    /// Subscribes to its mailbox's message summary (RFC 3842); NOTIFYs follow.
    pub async fn subscribe_mwi(&mut self) -> Response {
        let mut r = build::request(
            Method::Subscribe,
            &self.aor(),
            &self.aor(),
            &self.aor(),
            TransportKind::Udp,
            self.addr,
        )
        .unwrap();
        r.headers.insert(Name::EVENT, "message-summary");
        r.headers
            .insert(Name::ACCEPT, "application/simple-message-summary");
        r.headers.insert(Name::EXPIRES, "3600");
        self.send(r).await
    }

    /// What the phone has heard, as 8 kHz samples in order of arrival.
    pub fn heard(&self) -> Vec<i16> {
        self.me.media.heard.lock().unwrap().clone()
    }

    /// Forgets what was heard so far.
    pub fn clear_heard(&self) {
        self.me.media.heard.lock().unwrap().clear();
    }
}

/// Station NNN's phone is at 10.0.1.(NNN mod 250 + 1) (10.0.2.… past 249).
fn host_of(number: &str) -> std::net::IpAddr {
    let n: u32 = number.parse().unwrap_or(0);
    std::net::Ipv4Addr::new(10, 0, 1 + (n / 250) as u8, (n % 250) as u8 + 1).into()
}

fn call_id(r: &Request) -> String {
    r.headers
        .get_raw(&Name::CALL_ID)
        .next()
        .map(|c| c.to_string())
        .unwrap_or_default()
}

/// Next CSeq, new branch: the same request sent again with credentials.
fn renumber(r: &mut Request, via: String) {
    let cseq = r.cseq().unwrap();
    r.headers.remove(&Name::CSEQ);
    r.headers
        .insert(Name::CSEQ, format!("{} {}", cseq.seq + 1, r.method));
    r.headers.remove(&Name::VIA);
    r.headers.insert(Name::VIA, via);
}
