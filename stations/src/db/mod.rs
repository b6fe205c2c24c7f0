//! The SQLite station database: schema migrations (`PRAGMA user_version`), stations with
//! sealed passwords, settings, phones seen but not known, and a bounded provisioning log.
//! All SQL of the project lives here, so another engine can serve a larger office later.

mod admins;
mod logs;
mod records;
mod state;
mod trunks;

pub use admins::PhoneAction;
pub use records::*;

use crate::error::StationError;
use crate::mac::Mac;
use crate::secret::{Sealer, key_path};
use crate::settings;
use crate::station::{FIELDS, Station};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};

/// Schema versions; migration N brings `user_version` from N to N+1.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE stations (
        number TEXT PRIMARY KEY, user_id TEXT NOT NULL UNIQUE, password TEXT NOT NULL,
        name TEXT NOT NULL, mac TEXT, model TEXT NOT NULL, line INTEGER NOT NULL,
        pickup_group TEXT NOT NULL, voicemail TEXT NOT NULL, tone_source TEXT NOT NULL,
        dtmf TEXT NOT NULL, cf_unreachable TEXT NOT NULL, trunk_port TEXT NOT NULL,
        trunk_type TEXT NOT NULL, nat_check TEXT NOT NULL, use_whitelist TEXT NOT NULL,
        UNIQUE (mac, line));
     CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE unknown_phones (mac TEXT PRIMARY KEY, first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL, address TEXT NOT NULL, file TEXT NOT NULL, count INTEGER NOT NULL);
     CREATE TABLE provision_log (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,
        address TEXT NOT NULL, protocol TEXT NOT NULL, file TEXT NOT NULL, bytes INTEGER NOT NULL,
        result TEXT NOT NULL);",
    "CREATE TABLE registrations (aor TEXT NOT NULL, contact TEXT NOT NULL, expires_at INTEGER NOT NULL,
        source TEXT NOT NULL, transport TEXT NOT NULL, user_agent TEXT NOT NULL, call_id TEXT NOT NULL,
        cseq INTEGER NOT NULL, PRIMARY KEY (aor, contact));
     CREATE TABLE access_log (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,
        address TEXT NOT NULL, caller TEXT NOT NULL, reason TEXT NOT NULL);",
    "CREATE TABLE station_state (number TEXT PRIMARY KEY, dnd INTEGER NOT NULL,
        cf_all TEXT NOT NULL, cf_busy TEXT NOT NULL, cf_noanswer TEXT NOT NULL);",
    "CREATE TABLE parks (slot TEXT PRIMARY KEY, parked TEXT NOT NULL, by TEXT NOT NULL,
        since INTEGER NOT NULL, dialog TEXT NOT NULL);",
    "CREATE TABLE voicemail (id INTEGER PRIMARY KEY, mailbox TEXT NOT NULL, caller TEXT NOT NULL,
        at INTEGER NOT NULL, path TEXT NOT NULL, heard INTEGER NOT NULL DEFAULT 0);
     CREATE INDEX voicemail_mailbox ON voicemail (mailbox);
     CREATE TABLE subscriptions (id TEXT PRIMARY KEY, mailbox TEXT NOT NULL,
        until INTEGER NOT NULL, dialog TEXT NOT NULL);",
    "CREATE TABLE ring_groups (number TEXT PRIMARY KEY, members TEXT NOT NULL);
     ALTER TABLE stations ADD COLUMN call_waiting TEXT NOT NULL DEFAULT 'no';",
    "ALTER TABLE registrations ADD COLUMN instance TEXT NOT NULL DEFAULT '';",
    "ALTER TABLE access_log ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
     ALTER TABLE access_log ADD COLUMN first_at INTEGER NOT NULL DEFAULT 0;
     UPDATE access_log SET first_at = at;
     CREATE INDEX access_log_key ON access_log (address, caller, reason, at);",
    "ALTER TABLE stations ADD COLUMN srtp TEXT NOT NULL DEFAULT 'optional';",
    "CREATE TABLE trunks (name TEXT PRIMARY KEY, host TEXT NOT NULL, port INTEGER NOT NULL,
        transport TEXT NOT NULL, user TEXT NOT NULL, password TEXT NOT NULL,
        register INTEGER NOT NULL, from_user TEXT NOT NULL, caller_id TEXT NOT NULL,
        max_calls INTEGER NOT NULL, did_from TEXT NOT NULL);
     CREATE TABLE dids (number TEXT PRIMARY KEY, target TEXT NOT NULL);
     CREATE TABLE routes (prefix TEXT PRIMARY KEY, trunk TEXT NOT NULL);
     CREATE TABLE trunk_state (name TEXT PRIMARY KEY, registered INTEGER NOT NULL,
        expires_at INTEGER NOT NULL, last_error TEXT NOT NULL, calls INTEGER NOT NULL);
     ALTER TABLE stations ADD COLUMN caller_id TEXT NOT NULL DEFAULT '';
     ALTER TABLE stations ADD COLUMN toll TEXT NOT NULL DEFAULT 'national';",
    "CREATE TABLE call_records (id INTEGER PRIMARY KEY AUTOINCREMENT, started INTEGER NOT NULL,
        answered INTEGER, ended INTEGER NOT NULL, caller TEXT NOT NULL, dialled TEXT NOT NULL,
        callee TEXT NOT NULL, disposition TEXT NOT NULL, status INTEGER NOT NULL);
     CREATE INDEX call_records_started ON call_records (started);",
    "CREATE TABLE admins (name TEXT PRIMARY KEY, hash TEXT NOT NULL, created INTEGER NOT NULL);
     CREATE TABLE phone_actions (id INTEGER PRIMARY KEY AUTOINCREMENT, station TEXT NOT NULL,
        action TEXT NOT NULL, at INTEGER NOT NULL);",
];

/// The open database and its sealing key.
pub struct Db {
    conn: Connection,
    sealer: Sealer,
    path: PathBuf,
    /// Settings, number prefixes and stations looked up, as of a database version (see
    /// [`Db::version`]).
    cache: std::cell::RefCell<Cached>,
    /// Rows this connection changed in tables that are not configuration (registrations,
    /// logs): they leave the cache valid.
    bookkeeping: std::cell::Cell<u64>,
    /// Inside [`Db::at_once`]: the configuration was checked once and is trusted.
    trusting: std::cell::Cell<bool>,
}

#[derive(Default)]
struct Cached {
    version: Option<(i64, u64)>,
    settings: Vec<(String, String)>,
    number_starts: Vec<String>,
    /// Stations by number as last read (None: no such station).
    stations: std::collections::HashMap<String, Option<Station>>,
}

/// A Unix time as people and log watchers (fail2ban) read it: `2026-12-03T11:40:02Z`.
pub fn readable_time(at: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at.max(0).unsigned_abs());
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Makes the database file, its WAL and its shared-memory file readable and writable by
/// their owner only: they hold the office's call records, registrations and sealed
/// passwords, nothing for other users of the machine.
fn owner_only(path: &Path) -> Result<(), StationError> {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = std::path::PathBuf::from(p);
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
                StationError::Io {
                    path: p.clone(),
                    reason: format!("cannot make it private: {e}"),
                }
            })?;
        }
    }
    Ok(())
}

impl Db {
    /// Opens (or creates) the database at `path` with its key file `<path>.key`. A database
    /// that holds sealed passwords but whose key file is missing or wrong is refused before
    /// anything is written.
    pub fn open(path: &Path) -> Result<Db, StationError> {
        let kp = key_path(path);
        let existed = path.exists();
        let conn = Connection::open(path)?;
        let check: Option<String> = if existed {
            let has_meta: bool = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'meta'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n > 0)?;
            if has_meta {
                conn.query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| {
                    r.get(0)
                })
                .optional()?
            } else {
                None
            }
        } else {
            None
        };
        let sealer = match (&check, kp.exists()) {
            (Some(c), true) => {
                let s = Sealer::load(&kp)?;
                if !s.verifies(c) {
                    return Err(StationError::KeyMismatch { path: kp });
                }
                s
            }
            (Some(_), false) => return Err(StationError::KeyMissing { path: kp }),
            (None, true) => Sealer::load(&kp)?,
            (None, false) => Sealer::create(&kp)?,
        };
        conn.execute_batch(
            "PRAGMA secure_delete = ON; PRAGMA foreign_keys = ON;
             PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
        )?;
        owner_only(path)?;
        let db = Db {
            conn,
            sealer,
            path: path.to_path_buf(),
            cache: std::cell::RefCell::new(Cached::default()),
            bookkeeping: std::cell::Cell::new(0),
            trusting: std::cell::Cell::new(false),
        };
        db.migrate()?;
        if check.is_none() {
            db.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('key_check', ?1)",
                [db.sealer.key_check()],
            )?;
        }
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&self) -> Result<(), StationError> {
        let version: usize =
            self.conn
                .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The minimum password length in force.
    pub fn min_password(&self) -> usize {
        self.setting("password.min_length")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(8)
    }

    fn row_to_station(&self, row: &rusqlite::Row<'_>) -> Result<Station, StationError> {
        use rusqlite::types::ValueRef;
        let get = |i: usize| -> Result<String, StationError> {
            Ok(match row.get_ref(i)? {
                ValueRef::Null => String::new(),
                ValueRef::Integer(n) => n.to_string(),
                ValueRef::Real(x) => x.to_string(),
                ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
            })
        };
        let sealed = get(2)?;
        let password = self
            .sealer
            .open(&sealed)
            .and_then(|p| String::from_utf8(p).ok())
            .ok_or_else(|| StationError::KeyMismatch {
                path: key_path(&self.path),
            })?;
        let mut s = Station::new_unchecked();
        for (i, f) in FIELDS.iter().enumerate() {
            let v = if i == 2 { password.clone() } else { get(i)? };
            s.set(f, &v)?;
        }
        Ok(s)
    }

    fn select(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Station>, StationError> {
        let sql = format!(
            "SELECT {} FROM stations {filter} ORDER BY length(number), number, line",
            FIELDS.join(", ")
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(args)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(self.row_to_station(row)?);
        }
        Ok(out)
    }

    pub fn list(&self) -> Result<Vec<Station>, StationError> {
        self.select("", &[])
    }

    /// The distinct first digits of the station numbers (no secrets opened): what a dial
    /// plan is made of.
    pub fn number_starts(&self) -> Result<Vec<String>, StationError> {
        Ok(self.cached()?.number_starts.clone())
    }

    /// Changes by any connection since a given moment show as a different version:
    /// `data_version` counts other connections' commits, `total_changes` our own (less the
    /// bookkeeping rows, which change no configuration).
    fn version(&self) -> Result<(i64, u64), StationError> {
        let v: i64 = self
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        Ok((v, self.conn.total_changes() - self.bookkeeping.get()))
    }

    /// Runs a write that changes no configuration, so it leaves the cache valid.
    fn bookkeeping<T>(
        &self,
        f: impl FnOnce() -> Result<T, StationError>,
    ) -> Result<T, StationError> {
        let before = self.conn.total_changes();
        let r = f();
        self.bookkeeping
            .set(self.bookkeeping.get() + (self.conn.total_changes() - before));
        r
    }

    /// Runs `f` with the configuration checked once: the first lookup asks SQLite whether
    /// another process (the CLI, the web admin) changed it, the rest in `f` trust that answer.
    /// A REGISTER reads seven settings and a station: otherwise a query and a file lock each.
    pub fn at_once<T>(&self, f: impl FnOnce(&Db) -> T) -> T {
        struct Restore<'a>(&'a std::cell::Cell<bool>, bool);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let _restore = Restore(&self.trusting, self.trusting.get());
        if !self.trusting.get() {
            self.check_once();
        }
        f(self)
    }

    /// Checks now whether another process changed the configuration, and trusts that answer
    /// until [`Db::check_always`]: for work that spans several locks of a shared `Db` (a call
    /// event's handling), where [`Db::at_once`]'s closure cannot reach.
    pub fn check_once(&self) {
        self.trusting.set(false);
        let _ = self.cached();
        self.trusting.set(true);
    }

    /// Back to checking the configuration at every lookup (after [`Db::check_once`]).
    pub fn check_always(&self) {
        self.trusting.set(false);
    }

    /// Settings, number prefixes and looked-up stations, read again only when the
    /// configuration may have changed.
    fn cached(&self) -> Result<std::cell::Ref<'_, Cached>, StationError> {
        // Inside `at_once` only this connection's own changes are looked for (no query).
        let mine = self.conn.total_changes() - self.bookkeeping.get();
        if self.trusting.get() && self.cache.borrow().version.is_some_and(|(_, m)| m == mine) {
            return Ok(self.cache.borrow());
        }
        let version = self.version()?;
        if self.cache.borrow().version != Some(version) {
            *self.cache.borrow_mut() = self.read_cache(version)?;
        }
        Ok(self.cache.borrow())
    }

    fn read_cache(&self, version: (i64, u64)) -> Result<Cached, StationError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, value FROM settings")?;
        let stored: std::collections::HashMap<String, String> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let settings: Vec<(String, String)> = settings::SETTINGS
            .iter()
            .map(|(k, d, _, _)| {
                (
                    k.to_string(),
                    stored.get(*k).cloned().unwrap_or_else(|| d.to_string()),
                )
            })
            .collect();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT substr(number, 1, 1) FROM stations ORDER BY 1")?;
        let starts: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(Cached {
            version: Some(version),
            settings,
            number_starts: starts,
            stations: Default::default(),
        })
    }

    pub fn get(&self, number: &str) -> Result<Station, StationError> {
        let known = self.cached()?.stations.get(number).cloned();
        let found = match known {
            Some(found) => found,
            None => {
                let found = self.select("WHERE number = ?1", &[&number])?.pop();
                self.cache
                    .borrow_mut()
                    .stations
                    .insert(number.to_string(), found.clone());
                found
            }
        };
        found.ok_or_else(|| StationError::NotFound(number.to_string()))
    }

    /// Every station on the phone with this MAC, by line key.
    pub fn by_mac(&self, mac: &Mac) -> Result<Vec<Station>, StationError> {
        self.select("WHERE mac = ?1", &[&mac.lower()])
    }

    pub fn by_user_id(&self, user_id: &str) -> Result<Option<Station>, StationError> {
        Ok(self.select("WHERE user_id = ?1", &[&user_id])?.pop())
    }

    /// Refuses a station whose user ID or MAC+line another station (not `replacing`) has.
    fn check_unique(&self, s: &Station, replacing: Option<&str>) -> Result<(), StationError> {
        let other =
            |sql: &str, args: &[&dyn rusqlite::ToSql]| -> Result<Option<String>, StationError> {
                let mut stmt = self.conn.prepare_cached(sql)?;
                let found: Vec<String> = stmt
                    .query_map(args, |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(found.into_iter().find(|n| Some(n.as_str()) != replacing))
            };
        if let Some(n) = other(
            "SELECT number FROM stations WHERE user_id = ?1",
            &[&s.user_id],
        )? {
            return Err(StationError::Duplicate {
                field: "user_id",
                value: s.user_id.clone(),
                other: n,
            });
        }
        if let Some(mac) = s.mac {
            let line = i64::from(s.line);
            if let Some(n) = other(
                "SELECT number FROM stations WHERE mac = ?1 AND line = ?2",
                &[&mac.lower(), &line],
            )? {
                return Err(StationError::Duplicate {
                    field: "mac+line",
                    value: format!("{mac} line {}", s.line),
                    other: n,
                });
            }
        }
        Ok(())
    }

    fn write(&self, s: &Station) -> Result<(), StationError> {
        let values: Vec<String> = FIELDS
            .iter()
            .map(|f| {
                if *f == "password" {
                    self.sealer.seal(s.password.as_bytes())
                } else {
                    s.get(f)
                }
            })
            .collect();
        let mac = s.mac.map(|m| m.lower());
        let placeholders: Vec<String> = (1..=FIELDS.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT OR REPLACE INTO stations ({}) VALUES ({})",
            FIELDS.join(", "),
            placeholders.join(", ")
        );
        let mut args: Vec<&dyn rusqlite::ToSql> =
            values.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
        let mac_index = FIELDS.iter().position(|f| *f == "mac").unwrap_or(4);
        args[mac_index] = &mac; // NULL when unset, so UNIQUE(mac, line) ignores it
        self.conn.execute(&sql, args.as_slice())?;
        if let Some(m) = s.mac {
            self.conn
                .execute("DELETE FROM unknown_phones WHERE mac = ?1", [m.lower()])?;
        }
        Ok(())
    }

    /// Adds a new station.
    pub fn add(&self, s: &Station) -> Result<(), StationError> {
        s.check(self.min_password())?;
        if self.get(&s.number).is_ok() {
            return Err(StationError::Duplicate {
                field: "number",
                value: s.number.clone(),
                other: s.number.clone(),
            });
        }
        self.check_unique(s, None)?;
        self.write(s)
    }

    /// Replaces station `number` with `s` (which may carry a new number).
    pub fn update(&self, number: &str, s: &Station) -> Result<(), StationError> {
        s.check(self.min_password())?;
        self.get(number)?;
        if s.number != number && self.get(&s.number).is_ok() {
            return Err(StationError::Duplicate {
                field: "number",
                value: s.number.clone(),
                other: s.number.clone(),
            });
        }
        self.check_unique(s, Some(number))?;
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM stations WHERE number = ?1", [number])?;
        self.write(s)?;
        tx.commit()?;
        Ok(())
    }

    pub fn remove(&self, number: &str) -> Result<(), StationError> {
        match self
            .conn
            .execute("DELETE FROM stations WHERE number = ?1", [number])?
        {
            0 => Err(StationError::NotFound(number.to_string())),
            _ => Ok(()),
        }
    }

    /// Adds or replaces every station, all or nothing: any refusal rolls everything back.
    /// Errors carry the index of the station in `stations`.
    pub fn import(&self, stations: &[Station]) -> Result<(), Vec<(usize, StationError)>> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| vec![(0, e.into())])?;
        let mut errors = Vec::new();
        // Asked once: each write below makes the settings cache read again.
        let min = self.min_password();
        for (i, s) in stations.iter().enumerate() {
            let r = s
                .check(min)
                .and_then(|_| self.check_unique(s, Some(&s.number)))
                .and_then(|_| {
                    self.conn
                        .execute("DELETE FROM stations WHERE number = ?1", [&s.number])?;
                    self.write(s)
                });
            if let Err(e) = r {
                errors.push((i, e));
            }
        }
        if errors.is_empty() {
            tx.commit().map_err(|e| vec![(0, e.into())])
        } else {
            drop(tx); // rolls back
            Err(errors)
        }
    }

    /// A setting, or its default.
    pub fn setting(&self, key: &str) -> Result<String, StationError> {
        let (_, default, _, _) = settings::lookup(key)?;
        Ok(self
            .cached()?
            .settings
            .iter()
            .find(|(k, _)| k == key)
            .map_or_else(|| default.to_string(), |(_, v)| v.clone()))
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<String, StationError> {
        let v = settings::validate(key, value)?;
        self.conn.execute(
            "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)",
            params![key, v],
        )?;
        Ok(v)
    }

    /// Every setting with its current value.
    pub fn settings(&self) -> Result<Vec<(String, String)>, StationError> {
        Ok(self.cached()?.settings.clone())
    }

    fn append_log(&self, e: &LogEntry) -> Result<(), StationError> {
        self.conn.execute(
            "INSERT INTO provision_log (at, address, protocol, file, bytes, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![e.at, e.address, e.protocol, e.file, e.bytes, e.result],
        )?;
        self.conn.execute(
            "DELETE FROM provision_log WHERE id <= (SELECT max(id) FROM provision_log) - ?1",
            [LOG_ROWS],
        )?;
        Ok(())
    }

    fn replace_registrations(
        &self,
        changes: &[(String, Vec<Registration>)],
    ) -> Result<(), StationError> {
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut delete = tx.prepare_cached("DELETE FROM registrations WHERE aor = ?1")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO registrations (aor, contact, expires_at, source, transport, user_agent, call_id, cseq, instance)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (aor, list) in changes {
                delete.execute([aor])?;
                for r in list {
                    insert.execute(params![
                        r.aor,
                        r.contact,
                        r.expires_at,
                        r.source,
                        r.transport,
                        r.user_agent,
                        r.call_id,
                        r.cseq,
                        r.instance
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn append_access(&self, a: &Access) -> Result<(), StationError> {
        let repeated = self.conn.execute(
            "UPDATE access_log SET count = count + 1, at = max(at, ?1)
             WHERE id = (SELECT id FROM access_log WHERE address = ?2 AND caller = ?3
                         AND reason = ?4 AND at >= ?1 - ?5 ORDER BY at DESC LIMIT 1)",
            params![
                a.at,
                a.address,
                a.caller,
                a.reason,
                ACCESS_AGGREGATE_SECONDS
            ],
        )?;
        if repeated > 0 {
            return Ok(());
        }
        self.conn.execute(
            "INSERT INTO access_log (at, first_at, address, caller, reason, count)
             VALUES (?1, ?1, ?2, ?3, ?4, 1)",
            params![a.at, a.address, a.caller, a.reason],
        )?;
        self.conn.execute(
            "DELETE FROM access_log WHERE id <= (SELECT max(id) FROM access_log) - ?1",
            [LOG_ROWS],
        )?;
        Ok(())
    }
}
