//! PBX feature sequences as one action each (OfficeServ, seed 000): a list of steps — hold
//! the current call, dial a feature code (which the PBX answers 480), resume the held call —
//! each started when the one before has finished. Pure: the engine reports what happened
//! ([`Fact`]) and asks for the next [`Step`].

use std::collections::VecDeque;

/// One step of a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Hold the newest established call not on hold yet.
    Hold,
    /// Dial these digits on the sequence's line and wait for the final answer.
    Code(String),
    /// Resume the newest call we hold.
    Resume,
}

/// What the engine saw, as far as sequences care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    Held(u32),
    Resumed(u32),
    /// A call ended with this status (0: by BYE or locally).
    Ended(u32, u16),
}

/// What a step is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Held(u32),
    Resumed(u32),
    Code(u32),
}

/// What happened to the sequence after a fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Nothing to do yet.
    Waiting,
    /// The step finished; `ok` says whether as expected (a code answered 480).
    StepDone { step: String, ok: bool, status: u16 },
}

#[derive(Debug)]
pub struct Sequence {
    pub name: String,
    /// The line (0-based) the codes go out on.
    pub line: usize,
    steps: VecDeque<Step>,
    waiting: Option<Wait>,
    pub failed: bool,
}

impl Sequence {
    pub fn new(name: &str, line: usize, steps: Vec<Step>) -> Sequence {
        Sequence {
            name: name.to_string(),
            line,
            steps: steps.into(),
            waiting: None,
            failed: false,
        }
    }

    /// The next step to start, when nothing is awaited.
    pub fn next_step(&mut self) -> Option<Step> {
        if self.waiting.is_some() || self.failed {
            return None;
        }
        self.steps.pop_front()
    }

    /// The engine started a step and now waits for `w`.
    pub fn wait(&mut self, w: Wait) {
        self.waiting = Some(w);
    }

    /// A step could not even start (no call to hold, for one).
    pub fn fail(&mut self) {
        self.failed = true;
        self.steps.clear();
        self.waiting = None;
    }

    pub fn done(&self) -> bool {
        self.waiting.is_none() && (self.steps.is_empty() || self.failed)
    }

    /// Feeds what happened.
    pub fn on_fact(&mut self, fact: &Fact) -> Progress {
        let finished = match (self.waiting, fact) {
            (Some(Wait::Held(a)), Fact::Held(b)) if a == *b => Some(("hold".to_string(), true, 0)),
            (Some(Wait::Resumed(a)), Fact::Resumed(b)) if a == *b => {
                Some(("resume".to_string(), true, 0))
            }
            (Some(Wait::Held(a) | Wait::Resumed(a)), Fact::Ended(b, s)) if a == *b => {
                Some(("call ended".to_string(), false, *s))
            }
            // Feature codes are answered 480 whatever the outcome (OfficeServ); a call that
            // connects (retrieve, pickup) is fine too.
            (Some(Wait::Code(a)), Fact::Ended(b, s)) if a == *b => {
                Some(("code".to_string(), *s == 480, *s))
            }
            _ => None,
        };
        match finished {
            None => Progress::Waiting,
            Some((step, ok, status)) => {
                self.waiting = None;
                if !ok {
                    self.fail();
                }
                Progress::StepDone { step, ok, status }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn park_waits_for_the_hold_then_the_480() {
        let mut s = Sequence::new("park", 0, vec![Step::Hold, Step::Code("11".into())]);
        assert_eq!(s.next_step(), Some(Step::Hold));
        s.wait(Wait::Held(1));
        assert_eq!(s.next_step(), None, "nothing new while waiting");
        assert_eq!(s.on_fact(&Fact::Held(2)), Progress::Waiting, "another call");
        assert!(matches!(
            s.on_fact(&Fact::Held(1)),
            Progress::StepDone { ok: true, .. }
        ));
        assert_eq!(s.next_step(), Some(Step::Code("11".into())));
        s.wait(Wait::Code(3));
        assert!(matches!(
            s.on_fact(&Fact::Ended(3, 480)),
            Progress::StepDone {
                ok: true,
                status: 480,
                ..
            }
        ));
        assert!(s.done() && !s.failed);
    }

    #[test]
    fn a_code_not_answered_480_stops_the_sequence() {
        let mut s = Sequence::new("x", 0, vec![Step::Code("46".into()), Step::Resume]);
        s.next_step();
        s.wait(Wait::Code(1));
        assert!(matches!(
            s.on_fact(&Fact::Ended(1, 404)),
            Progress::StepDone { ok: false, .. }
        ));
        assert!(s.done() && s.failed);
        assert_eq!(s.next_step(), None);
    }
}
