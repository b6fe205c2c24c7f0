//! Call records: each call a phone or an outside line places gets a [`Record`] on its leg,
//! told as the call moves (who answered, when, the status the caller got, a transfer); when
//! the leg is dropped — hung up, refused, cancelled, or the PBX stopping — the record is
//! finished with the time the call logic was last told, and the records finished since are
//! written in one transaction when the PBX has no event waiting ([`Recorder::flush`], beside
//! the registrations' group commit) or the last recorder goes. One home for the bookkeeping,
//! so no path that ends a call can forget it.

use stations::Db;
use stations::db::CallRecord;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// Writes records to the database, stamped with the call logic's time.
#[derive(Clone)]
pub(crate) struct Recorder {
    finished: Arc<Finished>,
    /// Unix seconds of the event being handled (set with the call logic's clock).
    now: Arc<AtomicI64>,
}

/// Records finished and not yet written; written when the last recorder goes, too.
struct Finished {
    db: Arc<Mutex<Db>>,
    records: Mutex<Vec<CallRecord>>,
}

impl Finished {
    fn flush(&self) {
        let records = std::mem::take(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()));
        if records.is_empty() {
            return;
        }
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = db.add_call_records(&records) {
            tracing::warn!("{} call records not written: {e}", records.len());
        }
    }
}

impl Drop for Finished {
    fn drop(&mut self) {
        self.flush();
    }
}

fn unix(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Recorder {
    pub(crate) fn new(db: Arc<Mutex<Db>>, wall: std::time::SystemTime) -> Recorder {
        Recorder {
            finished: Arc::new(Finished {
                db,
                records: Mutex::new(Vec::new()),
            }),
            now: Arc::new(AtomicI64::new(unix(wall))),
        }
    }

    /// Writes the records finished since the last flush, in one transaction.
    pub(crate) fn flush(&self) {
        self.finished.flush();
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
        self.recorder
            .finished
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(c);
    }
}
