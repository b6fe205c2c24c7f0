//! What was seen: phones that asked for a profile but are no station's, the bounded request
//! log, the access log of refusals (each refusal also a `security` warning), and the call
//! records.

use super::*;

impl Db {
    /// Notes a phone that asked for a file of a MAC no station has.
    pub fn record_unknown(
        &self,
        mac: &Mac,
        address: &str,
        file: &str,
        now: i64,
    ) -> Result<(), StationError> {
        // The note and the pruning are one transaction: a writer on another connection
        // (the PBX's) cannot leave the list one over its cap between them.
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO unknown_phones (mac, first_seen, last_seen, address, file, count)
             VALUES (?1, ?2, ?2, ?3, ?4, 1)
             ON CONFLICT(mac) DO UPDATE SET last_seen = ?2, address = ?3, file = ?4, count = count + 1",
            params![mac.lower(), now, address, file],
        )?;
        // Random MACs must not grow the list without end.
        tx.execute(
            "DELETE FROM unknown_phones WHERE mac IN (SELECT mac FROM unknown_phones
             ORDER BY last_seen DESC LIMIT -1 OFFSET ?1)",
            [UNKNOWN_PHONES],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn unknown_phones(&self) -> Result<Vec<UnknownPhone>, StationError> {
        let mut stmt = self.conn.prepare(
            "SELECT mac, first_seen, last_seen, address, file, count FROM unknown_phones ORDER BY last_seen DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(UnknownPhone {
                mac: r.get(0)?,
                first_seen: r.get(1)?,
                last_seen: r.get(2)?,
                address: r.get(3)?,
                file: r.get(4)?,
                count: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Appends to the provisioning log, keeping the newest [`LOG_ROWS`].
    pub fn log(&self, e: &LogEntry) -> Result<(), StationError> {
        self.bookkeeping(|| self.append_log(e))
    }

    /// Records a refused access, keeping the newest [`LOG_ROWS`].
    /// Records a refusal in the access log, and says it on the `security` log target in one
    /// line that fail2ban-style tools can match on `address=<HOST>` (every refusal, also those
    /// the table counts on an earlier row).
    pub fn log_access(&self, a: &Access) -> Result<(), StationError> {
        tracing::warn!(
            target: "security",
            "refused address={} user={:?} reason={:?}",
            a.address,
            a.caller,
            a.reason
        );
        self.bookkeeping(|| self.append_access(a))
    }

    /// The newest `n` access rows, newest first: each a refusal with how many times it
    /// came (within [`ACCESS_AGGREGATE_SECONDS`] of each other) and since when.
    pub fn access_log(&self, n: i64) -> Result<Vec<AccessRow>, StationError> {
        let mut stmt = self.conn.prepare(
            "SELECT at, address, caller, reason, count, first_at FROM access_log
             ORDER BY at DESC, id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([n], |r| {
            Ok(AccessRow {
                last: Access {
                    at: r.get(0)?,
                    address: r.get(1)?,
                    caller: r.get(2)?,
                    reason: r.get(3)?,
                },
                count: r.get(4)?,
                first_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest `n` log entries, newest first.
    pub fn log_tail(&self, n: i64) -> Result<Vec<LogEntry>, StationError> {
        let mut stmt = self.conn.prepare(
            "SELECT at, address, protocol, file, bytes, result FROM provision_log ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([n], |r| {
            Ok(LogEntry {
                at: r.get(0)?,
                address: r.get(1)?,
                protocol: r.get(2)?,
                file: r.get(3)?,
                bytes: r.get(4)?,
                result: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Keeps finished calls, in one transaction.
    pub fn add_call_records(&self, records: &[CallRecord]) -> Result<(), StationError> {
        if records.is_empty() {
            return Ok(());
        }
        self.bookkeeping(|| {
            let tx = self.conn.unchecked_transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO call_records (started, answered, ended, caller, dialled, callee,
                     disposition, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for c in records {
                    insert.execute(params![
                        c.started,
                        c.answered,
                        c.ended,
                        c.caller,
                        c.dialled,
                        c.callee,
                        c.disposition,
                        c.status
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The newest `n` call records, newest first.
    pub fn call_records(&self, n: i64) -> Result<Vec<CallRecord>, StationError> {
        let mut stmt = self.conn.prepare(
            "SELECT started, answered, ended, caller, dialled, callee, disposition, status
             FROM call_records ORDER BY started DESC, id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([n], |r| {
            Ok(CallRecord {
                started: r.get(0)?,
                answered: r.get(1)?,
                ended: r.get(2)?,
                caller: r.get(3)?,
                dialled: r.get(4)?,
                callee: r.get(5)?,
                disposition: r.get(6)?,
                status: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
