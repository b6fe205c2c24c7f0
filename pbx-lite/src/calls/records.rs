//! Call records: each call a phone or an outside line places gets a [`Record`] on its leg,
//! told as the call moves (who answered, when, the status the caller got, a transfer); when
//! the leg is dropped — hung up, refused, cancelled, or the PBX stopping — the record is
//! written to the database with the time the call logic was last told. One home for the
//! bookkeeping, so no path that ends a call can forget it.

use stations::Db;
use stations::db::CallRecord;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// Writes records to the database, stamped with the call logic's time.
#[derive(Clone)]
pub(crate) struct Recorder {
    db: Arc<Mutex<Db>>,
    /// Unix seconds of the event being handled (set with the call logic's clock).
    now: Arc<AtomicI64>,
}

fn unix(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Recorder {
    pub(crate) fn new(db: Arc<Mutex<Db>>, wall: std::time::SystemTime) -> Recorder {
        Recorder {
            db,
            now: Arc::new(AtomicI64::new(unix(wall))),
        }
    }

    /// The call logic's time moved on.
    pub(crate) fn set_time(&self, wall: std::time::SystemTime) {
        self.now.store(unix(wall), Ordering::Relaxed);
    }

    fn now(&self) -> i64 {
        self.now.load(Ordering::Relaxed)
    }

    /// A call from `caller` to `dialled` starts now.
    pub(crate) fn start(&self, caller: &str, dialled: &str) -> Record {
        Record {
            recorder: self.clone(),
            call: Mutex::new(CallRecord {
                started: self.now(),
                caller: caller.to_string(),
                dialled: dialled.to_string(),
                ..Default::default()
            }),
            transferred: std::sync::atomic::AtomicBool::new(false),
            discarded: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// A call under way; written when dropped.
pub(crate) struct Record {
    recorder: Recorder,
    call: Mutex<CallRecord>,
    transferred: std::sync::atomic::AtomicBool,
    discarded: std::sync::atomic::AtomicBool,
}

impl Record {
    fn call(&self) -> std::sync::MutexGuard<'_, CallRecord> {
        self.call.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `callee` answered (the first answer counts).
    pub(crate) fn answered(&self, callee: &str) {
        let now = self.recorder.now();
        let mut c = self.call();
        if c.answered.is_none() {
            c.answered = Some(now);
            c.callee = callee.to_string();
        }
    }

    /// The caller was turned away, or gave up, with `status`.
    pub(crate) fn ended_with(&self, status: u16) {
        let mut c = self.call();
        if c.answered.is_none() && c.status == 0 {
            c.status = status;
        }
    }

    /// When the call started and was answered, the caller and the number dialled.
    pub(crate) fn summary(&self) -> (i64, Option<i64>, String, String) {
        let c = self.call();
        (c.started, c.answered, c.caller.clone(), c.dialled.clone())
    }

    /// Not a call after all (a feature code): nothing is written.
    pub(crate) fn discard(self) {
        self.discarded.store(true, Ordering::Relaxed);
    }

    /// The call was handed on to another party by a transfer.
    pub(crate) fn transferred(&self) {
        self.transferred.store(true, Ordering::Relaxed);
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if self.discarded.load(Ordering::Relaxed) {
            return;
        }
        let mut c = std::mem::take(&mut *self.call());
        c.ended = self.recorder.now();
        c.disposition = match (c.answered, c.status) {
            (Some(_), _) if self.transferred.load(Ordering::Relaxed) => "transferred",
            (Some(_), _) => "answered",
            (None, 486 | 600) => "busy",
            (None, 0 | 408 | 487) => "missed",
            (None, _) => "refused",
        }
        .into();
        if c.answered.is_some() {
            c.status = 200;
            if c.callee.is_empty() {
                c.callee.clone_from(&c.dialled);
            }
        }
        let db = self.recorder.db.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = db.add_call_record(&c) {
            tracing::warn!("call record {} → {}: {e}", c.caller, c.dialled);
        }
    }
}
