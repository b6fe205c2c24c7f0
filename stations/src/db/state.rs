//! The PBX's state that outlives a restart, one table per pbx-lite module: registrations,
//! each station's DND and forwarding, parked calls, ring groups, message-summary
//! subscriptions and voicemail messages.

use super::*;

impl Db {
    /// Replaces every registration of each AOR in `changes` (an empty list unregisters it),
    /// all in one transaction: the registrar's changes since it last saved, committed
    /// together before any of them is acknowledged (group commit).
    pub fn save_registrations(
        &self,
        changes: &[(String, Vec<Registration>)],
    ) -> Result<(), StationError> {
        self.bookkeeping(|| self.replace_registrations(changes))
    }

    /// Every stored registration.
    pub fn registrations(&self) -> Result<Vec<Registration>, StationError> {
        let mut stmt = self.conn.prepare(
            "SELECT aor, contact, expires_at, source, transport, user_agent, call_id, cseq, instance FROM registrations ORDER BY aor, contact",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Registration {
                aor: r.get(0)?,
                contact: r.get(1)?,
                expires_at: r.get(2)?,
                source: r.get(3)?,
                transport: r.get(4)?,
                user_agent: r.get(5)?,
                call_id: r.get(6)?,
                cseq: r.get(7)?,
                instance: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A station's DND and forwarding (all off when never set).
    pub fn station_state(&self, number: &str) -> Result<StationState, StationError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT dnd, cf_all, cf_busy, cf_noanswer FROM station_state WHERE number = ?1",
            )?
            .query_row([number], |r| {
                Ok(StationState {
                    number: number.to_string(),
                    dnd: r.get::<_, i64>(0)? != 0,
                    cf_all: r.get(1)?,
                    cf_busy: r.get(2)?,
                    cf_noanswer: r.get(3)?,
                })
            })
            .optional()?;
        Ok(row.unwrap_or_else(|| StationState {
            number: number.to_string(),
            ..StationState::default()
        }))
    }

    /// Stores a station's DND and forwarding.
    pub fn save_station_state(&self, st: &StationState) -> Result<(), StationError> {
        self.bookkeeping(|| {
            self.conn.execute(
                "INSERT OR REPLACE INTO station_state (number, dnd, cf_all, cf_busy, cf_noanswer)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    st.number,
                    i64::from(st.dnd),
                    st.cf_all,
                    st.cf_busy,
                    st.cf_noanswer
                ],
            )?;
            Ok(())
        })
    }

    /// Stores a parked call (replacing what the slot held).
    pub fn save_park(&self, p: &ParkRecord) -> Result<(), StationError> {
        self.bookkeeping(|| {
            self.conn.execute(
                "INSERT OR REPLACE INTO parks (slot, parked, by, since, dialog)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![p.slot, p.parked, p.by, p.since, p.dialog],
            )?;
            Ok(())
        })
    }

    /// Empties a park slot.
    pub fn delete_park(&self, slot: &str) -> Result<(), StationError> {
        self.bookkeeping(|| {
            self.conn
                .execute("DELETE FROM parks WHERE slot = ?1", [slot])?;
            Ok(())
        })
    }

    /// Every parked call stored, by slot.
    pub fn parks(&self) -> Result<Vec<ParkRecord>, StationError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT slot, parked, by, since, dialog FROM parks ORDER BY slot")?;
        let rows = st.query_map([], |r| {
            Ok(ParkRecord {
                slot: r.get(0)?,
                parked: r.get(1)?,
                by: r.get(2)?,
                since: r.get(3)?,
                dialog: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets ring group `number` to ring `members` (station numbers, in order). The group
    /// number must not be a station's, and every member must be a station.
    pub fn set_ring_group(&self, number: &str, members: &[String]) -> Result<(), StationError> {
        if number.is_empty() || number.len() > 16 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(StationError::invalid(
                "group",
                number,
                "must be 1 to 16 digits",
            ));
        }
        if self.get(number).is_ok() {
            return Err(StationError::invalid(
                "group",
                number,
                "is a station's number",
            ));
        }
        if members.is_empty() {
            return Err(StationError::invalid(
                "members",
                "",
                "name at least one station",
            ));
        }
        for m in members {
            self.get(m)
                .map_err(|_| StationError::invalid("members", m, "is no station"))?;
        }
        self.conn.execute(
            "INSERT OR REPLACE INTO ring_groups (number, members) VALUES (?1, ?2)",
            params![number, members.join(",")],
        )?;
        Ok(())
    }

    /// The members of ring group `number`, if it is one.
    pub fn ring_group(&self, number: &str) -> Result<Option<Vec<String>>, StationError> {
        let members: Option<String> = self
            .conn
            .prepare_cached("SELECT members FROM ring_groups WHERE number = ?1")?
            .query_row([number], |r| r.get(0))
            .optional()?;
        Ok(members.map(|m| m.split(',').map(str::to_string).collect()))
    }

    /// Every ring group with its members.
    pub fn ring_groups(&self) -> Result<Vec<(String, Vec<String>)>, StationError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT number, members FROM ring_groups ORDER BY number")?;
        let rows = st.query_map([], |r| {
            let m: String = r.get(1)?;
            Ok((r.get(0)?, m.split(',').map(str::to_string).collect()))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes a ring group; false when there was none.
    pub fn delete_ring_group(&self, number: &str) -> Result<bool, StationError> {
        Ok(self
            .conn
            .execute("DELETE FROM ring_groups WHERE number = ?1", [number])?
            > 0)
    }

    /// Stores a subscription (replacing one with the same id).
    pub fn save_subscription(&self, r: &SubscriptionRecord) -> Result<(), StationError> {
        self.bookkeeping(|| {
            self.conn.execute(
                "INSERT OR REPLACE INTO subscriptions (id, mailbox, until, dialog) VALUES (?1, ?2, ?3, ?4)",
                params![r.id, r.mailbox, r.until, r.dialog],
            )?;
            Ok(())
        })
    }

    /// Forgets a subscription.
    pub fn delete_subscription(&self, id: &str) -> Result<(), StationError> {
        self.bookkeeping(|| {
            self.conn
                .execute("DELETE FROM subscriptions WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    /// Every stored subscription.
    pub fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StationError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, mailbox, until, dialog FROM subscriptions ORDER BY id")?;
        let rows = st.query_map([], |r| {
            Ok(SubscriptionRecord {
                id: r.get(0)?,
                mailbox: r.get(1)?,
                until: r.get(2)?,
                dialog: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Files a new voicemail message; returns its id.
    pub fn add_message(&self, m: &Message) -> Result<i64, StationError> {
        self.bookkeeping(|| {
            self.conn.execute(
                "INSERT INTO voicemail (mailbox, caller, at, path, heard) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![m.mailbox, m.caller, m.at, m.path, i64::from(m.heard)],
            )?;
            Ok(self.conn.last_insert_rowid())
        })
    }

    /// A mailbox's messages: new ones first, each group oldest first.
    pub fn messages(&self, mailbox: &str) -> Result<Vec<Message>, StationError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, mailbox, caller, at, path, heard FROM voicemail WHERE mailbox = ?1
             ORDER BY heard, at, id",
        )?;
        let rows = st.query_map([mailbox], message_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Message `id`, if there is one.
    pub fn message(&self, id: i64) -> Result<Option<Message>, StationError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, mailbox, caller, at, path, heard FROM voicemail WHERE id = ?1",
                [id],
                message_row,
            )
            .optional()?)
    }

    /// Marks a message heard.
    pub fn mark_heard(&self, id: i64) -> Result<(), StationError> {
        self.bookkeeping(|| {
            self.conn
                .execute("UPDATE voicemail SET heard = 1 WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    /// Deletes a message (the caller removes its file).
    pub fn delete_message(&self, id: i64) -> Result<(), StationError> {
        self.bookkeeping(|| {
            self.conn
                .execute("DELETE FROM voicemail WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    /// (mailbox, new, heard) for every mailbox that has messages.
    pub fn message_counts(&self) -> Result<Vec<(String, u32, u32)>, StationError> {
        let mut st = self.conn.prepare_cached(
            "SELECT mailbox, sum(heard = 0), sum(heard = 1) FROM voicemail GROUP BY mailbox ORDER BY mailbox",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A message from a row of `SELECT id, mailbox, caller, at, path, heard FROM voicemail`.
fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: r.get(0)?,
        mailbox: r.get(1)?,
        caller: r.get(2)?,
        at: r.get(3)?,
        path: r.get(4)?,
        heard: r.get::<_, i64>(5)? != 0,
    })
}
