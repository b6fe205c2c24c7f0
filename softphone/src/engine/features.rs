//! The PBX's features from the phone: a feature (park, DND, forwarding, conference, …) as a
//! sequence of steps (hold, dial a code, wait for its answer) advanced as its facts come, and
//! joining two calls.

use super::*;

impl Engine {
    /// Starts a feature sequence (one at a time).
    pub(super) async fn feature(&mut self, f: Feature) {
        if self.sequence.is_some() {
            return self.emit(Event::Error {
                message: "a feature is already under way".into(),
            });
        }
        let codes = self.features.clone();
        let own = self
            .lines
            .first()
            .map(|l| l.account.number.clone())
            .unwrap_or_default();
        let code = |c: &str, arg: &str| Step::Code(format!("{c}{arg}"));
        let (name, steps) = match f {
            Feature::Dnd(on) => ("dnd", vec![code(&codes.dnd, if on { "1" } else { "0" })]),
            Feature::Forward(None) => ("forward", vec![code(&codes.forward_clear, "")]),
            Feature::Forward(Some((kind, to))) => {
                let c = match kind.as_str() {
                    "all" => &codes.forward_all,
                    "busy" => &codes.forward_busy,
                    "noanswer" => &codes.forward_noanswer,
                    _ => &codes.forward_busy_noanswer,
                };
                ("forward", vec![code(c, &to)])
            }
            Feature::Park(slot) => {
                let slot = slot.unwrap_or(own);
                ("park", vec![Step::Hold, code(&codes.park, &slot)])
            }
            Feature::Retrieve(slot) => {
                return self.dial(&format!("{}{slot}", codes.retrieve), 1).await;
            }
            Feature::Pickup(Some(st)) => {
                return self
                    .dial(&format!("{}{st}", codes.pickup_directed), 1)
                    .await;
            }
            Feature::Pickup(None) => return self.dial(&codes.pickup_my_group, 1).await,
            Feature::ConferenceAdd => ("conference", vec![Step::Hold, code(&codes.conference, "")]),
            Feature::ConferenceEnd => (
                "conference",
                vec![code(&codes.conference, ""), Step::Resume],
            ),
        };
        self.sequence = Some(Sequence::new(name, 0, steps));
    }

    /// Moves the feature sequence on with what happened.
    pub(super) async fn advance(&mut self) {
        let Some(mut seq) = self.sequence.take() else {
            self.facts.lock().unwrap_or_else(|e| e.into_inner()).clear();
            return;
        };
        loop {
            let facts: Vec<Fact> =
                std::mem::take(&mut *self.facts.lock().unwrap_or_else(|e| e.into_inner()));
            for f in &facts {
                if let Progress::StepDone { step, ok, status } = seq.on_fact(f) {
                    self.emit(Event::Feature {
                        name: seq.name.clone(),
                        step,
                        ok,
                        status,
                    });
                }
            }
            let Some(step) = seq.next_step() else {
                if facts.is_empty() {
                    break;
                }
                continue;
            };
            match step {
                Step::Hold => {
                    match self.pick(None, |c| c.state == CallState::Established && !c.on_hold) {
                        Some(i) => {
                            let id = self.calls[i].id;
                            self.reinvite(Some(id), true);
                            seq.wait(Wait::Held(id));
                        }
                        None => seq.fail(),
                    }
                }
                Step::Resume => {
                    match self.pick(None, |c| c.state == CallState::Established && c.on_hold) {
                        Some(i) => {
                            let id = self.calls[i].id;
                            self.reinvite(Some(id), false);
                            seq.wait(Wait::Resumed(id));
                        }
                        None => seq.fail(),
                    }
                }
                Step::Code(digits) => {
                    let before = self.next_call;
                    self.dial(&digits, seq.line + 1).await;
                    if self.next_call > before {
                        self.forget_call(before);
                        seq.wait(Wait::Code(before));
                    } else {
                        seq.fail();
                    }
                }
            }
        }
        if seq.done() {
            self.emit(Event::FeatureDone {
                name: seq.name.clone(),
                ok: !seq.failed,
            });
            self.facts.lock().unwrap_or_else(|e| e.into_inner()).clear();
        } else {
            self.sequence = Some(seq);
        }
    }

    /// A local 3-way conference: both calls resumed and mixed in the phone.
    pub(super) fn join(&mut self, call: Option<u32>, other: Option<u32>) {
        let established = |c: &Call| c.state == CallState::Established;
        let Some(a) = self.pick(call, |c| established(c) && !c.on_hold) else {
            return self.no_call("join");
        };
        let a_id = self.calls[a].id;
        let b = match other {
            Some(id) => self.calls.iter().position(|c| c.id == id && established(c)),
            None => self
                .calls
                .iter()
                .rposition(|c| c.id != a_id && established(c)),
        };
        let Some(b) = b.filter(|b| *b != a) else {
            return self.emit(Event::Error {
                message: "join: a second established call is needed".into(),
            });
        };
        if self.calls[a].rate != self.calls[b].rate {
            return self.emit(Event::Error {
                message: "join: the calls run at different rates (G.711 and Opus); not mixed"
                    .into(),
            });
        }
        let b_id = self.calls[b].id;
        if self.calls[b].on_hold {
            self.reinvite(Some(b_id), false);
        }
        let mix = call::local_mix();
        self.calls[a].media(MediaControl::Mix(Some((mix.clone(), 0))));
        self.calls[b].media(MediaControl::Mix(Some((mix, 1))));
        self.emit(Event::Joined {
            calls: [a_id, b_id],
        });
    }
}
