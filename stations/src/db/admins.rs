//! The web admin's accounts (a name and a password hash the caller made: the database never
//! sees a password), and the phone actions (resync) waiting for the running PBX to send.

use super::*;

/// An action for a phone, queued by the CLI or the web admin, sent by the running PBX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneAction {
    pub id: i64,
    pub station: String,
    /// `resync` (reread the configuration; a Cisco reboots for it).
    pub action: String,
    pub at: i64,
}

impl Db {
    /// Adds an admin account, or changes its password hash.
    pub fn set_admin(&self, name: &str, hash: &str, now: i64) -> Result<(), StationError> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
        {
            return Err(StationError::invalid(
                "name",
                name,
                "must be 1 to 64 letters, digits, '.', '_', '-' or '@'",
            ));
        }
        self.conn.execute(
            "INSERT INTO admins (name, hash, created) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET hash = ?2",
            params![name, hash, now],
        )?;
        Ok(())
    }

    /// The password hash of admin `name`, if there is one.
    pub fn admin_hash(&self, name: &str) -> Result<Option<String>, StationError> {
        Ok(self
            .conn
            .query_row("SELECT hash FROM admins WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Admin names and when each was created.
    pub fn admins(&self) -> Result<Vec<(String, i64)>, StationError> {
        let mut st = self
            .conn
            .prepare("SELECT name, created FROM admins ORDER BY name")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes admin `name`; false if there was none.
    pub fn remove_admin(&self, name: &str) -> Result<bool, StationError> {
        Ok(self
            .conn
            .execute("DELETE FROM admins WHERE name = ?1", [name])?
            > 0)
    }

    /// Queues `action` for station `station` (which must exist).
    pub fn queue_phone_action(
        &self,
        station: &str,
        action: &str,
        now: i64,
    ) -> Result<(), StationError> {
        self.get(station)?;
        self.bookkeeping(|| {
            self.conn.execute(
                "INSERT INTO phone_actions (station, action, at) VALUES (?1, ?2, ?3)",
                params![station, action, now],
            )?;
            Ok(())
        })
    }

    /// Takes the queued phone actions, oldest first: each is handed out once.
    pub fn take_phone_actions(&self) -> Result<Vec<PhoneAction>, StationError> {
        self.bookkeeping(|| {
            let tx = self.conn.unchecked_transaction()?;
            let actions = {
                let mut st = tx.prepare_cached(
                    "SELECT id, station, action, at FROM phone_actions ORDER BY id",
                )?;
                let rows = st.query_map([], |r| {
                    Ok(PhoneAction {
                        id: r.get(0)?,
                        station: r.get(1)?,
                        action: r.get(2)?,
                        at: r.get(3)?,
                    })
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            if !actions.is_empty() {
                tx.execute("DELETE FROM phone_actions", [])?;
            }
            tx.commit()?;
            Ok(actions)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_and_phone_actions() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("o.db")).unwrap();
        assert!(db.set_admin("bad name", "h", 1).is_err());
        db.set_admin("alice", "h1", 1).unwrap();
        db.set_admin("alice", "h2", 2).unwrap();
        assert_eq!(db.admin_hash("alice").unwrap().as_deref(), Some("h2"));
        assert_eq!(db.admin_hash("bob").unwrap(), None);
        assert_eq!(db.admins().unwrap(), vec![("alice".to_string(), 1)]);
        assert!(db.remove_admin("alice").unwrap());
        assert!(!db.remove_admin("alice").unwrap());

        assert!(db.queue_phone_action("201", "resync", 5).is_err());
        let mut s = Station::new_unchecked();
        s.set("number", "201").unwrap();
        s.set("user_id", "u201").unwrap();
        s.set("password", "Office-201-pass").unwrap();
        db.add(&s).unwrap();
        db.queue_phone_action("201", "resync", 5).unwrap();
        let taken = db.take_phone_actions().unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!((taken[0].station.as_str(), taken[0].at), ("201", 5));
        assert!(db.take_phone_actions().unwrap().is_empty());
    }
}
