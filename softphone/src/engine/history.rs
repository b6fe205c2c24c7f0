//! The call history, kept in a file of JSON lines beside the configuration
//! (`phone.toml.history`): one line per call when it ends — when it began, the line,
//! dialled, received, missed or rejected, the other party, and how long it was answered. Feature-code
//! calls are not calls and are not kept. `history [N]` reads the newest N back.

use super::{Engine, Event};
use serde::{Deserialize, Serialize};
use sip::clock::Clock;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

/// One call, as the history keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryEntry {
    /// When the call began (seconds since 1970).
    pub at: u64,
    pub line: usize,
    /// `dialled`, `received`, `missed` or `rejected`.
    pub kind: String,
    pub party: String,
    #[serde(default)]
    pub display: String,
    /// How long it was answered (0 when it never was).
    pub seconds: u64,
}

/// A call under way, until it ends and is written down.
pub(super) struct Open {
    entry: HistoryEntry,
    answered: Option<Instant>,
}

/// Updates the open calls with an event that happened at `clock`; returns the entry to keep
/// when a call ended.
pub(super) fn note(open: &mut Vec<(u32, Open)>, e: &Event, clock: Clock) -> Option<HistoryEntry> {
    let start = |line: usize, kind: &str, party: &str, display: &str| Open {
        entry: HistoryEntry {
            at: clock.unix().max(0) as u64,
            line,
            kind: kind.into(),
            party: party.into(),
            display: display.into(),
            seconds: 0,
        },
        answered: None,
    };
    match e {
        Event::Calling { call, line, to } => open.push((*call, start(*line, "dialled", to, ""))),
        Event::Incoming {
            call,
            line,
            from,
            display,
            ..
        } => open.push((*call, start(*line, "missed", from, display))),
        Event::Established { call } => {
            if let Some((_, o)) = open.iter_mut().find(|(id, _)| id == call) {
                o.answered = Some(clock.now);
                if o.entry.kind == "missed" {
                    o.entry.kind = "received".into();
                }
            }
        }
        Event::Ended { call, reason, .. } => {
            let i = open.iter().position(|(id, _)| id == call)?;
            let (_, mut o) = open.remove(i);
            if o.entry.kind == "missed" && reason == "rejected" {
                o.entry.kind = "rejected".into();
            }
            o.entry.seconds = o
                .answered
                .map_or(0, |t| clock.now.saturating_duration_since(t).as_secs());
            return Some(o.entry);
        }
        Event::Replaced { call, by } => {
            if let Some((id, _)) = open.iter_mut().find(|(id, _)| id == call) {
                *id = *by;
            }
        }
        _ => {}
    }
    None
}

/// Appends an entry to the history file.
pub(super) fn append(path: &Path, entry: &HistoryEntry) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
    writeln!(f, "{line}")
}

/// The newest `n` entries, oldest first; lines that do not read are passed over.
pub(super) fn read(path: &Path, n: usize) -> Vec<HistoryEntry> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let all: Vec<HistoryEntry> = std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    all[all.len().saturating_sub(n)..].to_vec()
}

impl Engine {
    /// Keeps a call in the history when it ends.
    pub(super) fn keep_history(&self, e: &Event) {
        let done = {
            let mut open = self.open_calls.lock().unwrap_or_else(|e| e.into_inner());
            note(&mut open, e, self.clock)
        };
        if let (Some(entry), Some(path)) = (done, &self.history)
            && let Err(err) = append(path, &entry)
        {
            let _ = self.events.send(Event::Error {
                message: format!("{}: the call history: {err}", path.display()),
            });
        }
    }

    /// A feature-code call is no call: it is not kept.
    pub(super) fn forget_call(&self, call: u32) {
        self.open_calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _)| *id != call);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_become_entries_when_they_end() {
        // On virtual time: the call is answered at 10 s and ends 75 s later.
        let t0 = Clock::now();
        let at = |s: u64| Clock {
            now: t0.now + std::time::Duration::from_secs(s),
            wall: t0.wall + std::time::Duration::from_secs(s),
        };
        let mut open = Vec::new();
        let incoming = Event::Incoming {
            call: 1,
            line: 1,
            from: "202".into(),
            display: "Sales".into(),
            diversion: String::new(),
            alert_info: String::new(),
            auto_answer: false,
        };
        assert_eq!(note(&mut open, &incoming, at(0)), None);
        let ended = |call| Event::Ended {
            call,
            status: 487,
            reason: "cancelled".into(),
        };
        let missed = note(&mut open, &ended(1), at(3)).unwrap();
        assert_eq!(
            (missed.kind.as_str(), missed.party.as_str(), missed.seconds),
            ("missed", "202", 0)
        );
        assert_eq!(missed.at, t0.unix() as u64, "when it rang");
        note(
            &mut open,
            &Event::Calling {
                call: 2,
                line: 1,
                to: "203".into(),
            },
            at(5),
        );
        note(&mut open, &Event::Established { call: 2 }, at(10));
        let dialled = note(&mut open, &ended(2), at(85)).unwrap();
        assert_eq!(dialled.kind, "dialled");
        assert_eq!(dialled.seconds, 75, "answered for 75 s");
        assert_eq!(dialled.at, t0.unix() as u64 + 5);
        assert!(open.is_empty());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phone.toml.history");
        append(&path, &missed).unwrap();
        append(&path, &dialled).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"not json\n")
            .unwrap();
        assert_eq!(read(&path, 10), vec![missed, dialled.clone()]);
        assert_eq!(read(&path, 1), vec![dialled]);
    }
}
