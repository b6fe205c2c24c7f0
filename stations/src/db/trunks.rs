//! Outside lines in the database: trunks (passwords sealed), DIDs, outbound routes, and the
//! trunks' registration state as the running PBX writes it.

use super::Db;
use crate::error::StationError;
use crate::trunk::{Trunk, TrunkState, number_ok};
use rusqlite::{OptionalExtension, params};

impl Db {
    /// Adds or replaces a trunk (checked; the password sealed).
    pub fn save_trunk(&self, t: &Trunk) -> Result<(), StationError> {
        t.check()?;
        let password = if t.password.is_empty() {
            String::new()
        } else {
            self.sealer.seal(t.password.as_bytes())
        };
        self.conn.execute(
            "INSERT OR REPLACE INTO trunks (name, host, port, transport, user, password, register,
                from_user, caller_id, max_calls, did_from)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                t.name,
                t.host,
                t.port,
                t.transport,
                t.user,
                password,
                t.register,
                t.from_user,
                t.caller_id,
                t.max_calls,
                t.did_from
            ],
        )?;
        Ok(())
    }

    fn trunk_of(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<Trunk> {
        let sealed: String = r.get(5)?;
        let password = if sealed.is_empty() {
            String::new()
        } else {
            self.sealer
                .open(&sealed)
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default()
        };
        Ok(Trunk {
            name: r.get(0)?,
            host: r.get(1)?,
            port: r.get(2)?,
            transport: r.get(3)?,
            user: r.get(4)?,
            password,
            register: r.get(6)?,
            from_user: r.get(7)?,
            caller_id: r.get(8)?,
            max_calls: r.get(9)?,
            did_from: r.get(10)?,
        })
    }

    /// Every trunk, by name.
    pub fn trunks(&self) -> Result<Vec<Trunk>, StationError> {
        let mut st = self.conn.prepare_cached(
            "SELECT name, host, port, transport, user, password, register, from_user, caller_id,
                max_calls, did_from FROM trunks ORDER BY name",
        )?;
        let rows = st.query_map([], |r| self.trunk_of(r))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The trunk named `name`.
    pub fn trunk(&self, name: &str) -> Result<Trunk, StationError> {
        self.trunks()?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| StationError::invalid("trunk", name, "no such trunk"))
    }

    /// Removes a trunk (its routes too); false when there was none.
    pub fn delete_trunk(&self, name: &str) -> Result<bool, StationError> {
        self.conn
            .execute("DELETE FROM routes WHERE trunk = ?1", [name])?;
        self.bookkeeping(|| {
            self.conn
                .execute("DELETE FROM trunk_state WHERE name = ?1", [name])?;
            Ok(())
        })?;
        Ok(self
            .conn
            .execute("DELETE FROM trunks WHERE name = ?1", [name])?
            > 0)
    }

    /// The office's number `number` (as the provider sends it) rings `target`: a station, a
    /// ring group, or `voicemail:MAILBOX`.
    pub fn set_did(&self, number: &str, target: &str) -> Result<(), StationError> {
        if !number_ok(number) {
            return Err(StationError::invalid(
                "did",
                number,
                "must be a number (digits, + first)",
            ));
        }
        let known = match target.strip_prefix("voicemail:") {
            Some(mailbox) => self.get(mailbox).is_ok(),
            None => self.get(target).is_ok() || self.ring_group(target)?.is_some(),
        };
        if !known {
            return Err(StationError::invalid(
                "to",
                target,
                "is no station, ring group or voicemail:MAILBOX of a station",
            ));
        }
        self.conn.execute(
            "INSERT OR REPLACE INTO dids (number, target) VALUES (?1, ?2)",
            params![number, target],
        )?;
        Ok(())
    }

    /// Every DID with where it rings.
    pub fn dids(&self) -> Result<Vec<(String, String)>, StationError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT number, target FROM dids ORDER BY number")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn delete_did(&self, number: &str) -> Result<bool, StationError> {
        Ok(self
            .conn
            .execute("DELETE FROM dids WHERE number = ?1", [number])?
            > 0)
    }

    /// Numbers starting with `prefix` (E.164 with `+`, or a dialled form) go out through
    /// `trunk`; the longest matching prefix wins, and `+` alone is the default route.
    pub fn set_route(&self, prefix: &str, trunk: &str) -> Result<(), StationError> {
        if prefix != "+" && !number_ok(prefix) {
            return Err(StationError::invalid(
                "prefix",
                prefix,
                "must be + (every number) or a number's first digits",
            ));
        }
        self.trunk(trunk)?;
        self.conn.execute(
            "INSERT OR REPLACE INTO routes (prefix, trunk) VALUES (?1, ?2)",
            params![prefix, trunk],
        )?;
        Ok(())
    }

    pub fn routes(&self) -> Result<Vec<(String, String)>, StationError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT prefix, trunk FROM routes ORDER BY prefix")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn delete_route(&self, prefix: &str) -> Result<bool, StationError> {
        Ok(self
            .conn
            .execute("DELETE FROM routes WHERE prefix = ?1", [prefix])?
            > 0)
    }

    /// Records a trunk's registration state (the running PBX; bookkeeping, not
    /// configuration).
    pub fn save_trunk_state(&self, s: &TrunkState) -> Result<(), StationError> {
        self.bookkeeping(|| {
            self.conn.execute(
                "INSERT OR REPLACE INTO trunk_state (name, registered, expires_at, last_error, calls)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.name, s.registered, s.expires_at, s.last_error, s.calls],
            )?;
            Ok(())
        })
    }

    /// A trunk's state as last written (the default when none was).
    pub fn trunk_state(&self, name: &str) -> Result<TrunkState, StationError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT registered, expires_at, last_error, calls FROM trunk_state WHERE name = ?1",
            )?
            .query_row([name], |r| {
                Ok(TrunkState {
                    name: name.to_string(),
                    registered: r.get(0)?,
                    expires_at: r.get(1)?,
                    last_error: r.get(2)?,
                    calls: r.get(3)?,
                })
            })
            .optional()?;
        Ok(row.unwrap_or(TrunkState {
            name: name.to_string(),
            ..Default::default()
        }))
    }
}
