//! Conference via the code (OfficeServ 46), as the manual's "Conference feature SIP
//! messages" figures 1 and 2 show it. The owner holds its call and dials 46 (answered 480):
//! the held party moves into the owner's room in the PBX's mixer (a re-INVITE anchors it if
//! its media went directly). The owner calls the next member, holds, dials 46 again, and so
//! on; when the owner's next call is answered, its older held leg is released, as OfficeServ
//! does for phones with two line keys. A 46 with no held call to add ends the adding: every
//! member gets a re-INVITE (resume), and the owner's final resume of its held leg joins it
//! to the room. Each member hears everyone but itself. A member who hangs up leaves the
//! others talking; when only one is left, it is released. Up to `conference.max_members`
//! (32) members.

use super::{Action, Feature, Request};
use crate::calls::{Calls, LegId, Partner};
use crate::relay::Room;

pub(super) struct Conference;

impl Feature for Conference {
    fn code_setting(&self) -> &'static str {
        "numberplan.conference"
    }

    fn act(&self, _r: &Request<'_>) -> Result<Action, String> {
        Ok(Action::Conference)
    }
}

impl Calls {
    fn members(&self, owner: &str) -> Vec<LegId> {
        let mut m: Vec<LegId> = self
            .legs
            .values()
            .filter(|l| l.partner == Partner::Room(owner.to_string()))
            .map(|l| l.id)
            .collect();
        m.sort_unstable();
        m
    }

    /// The owner dialled the conference code.
    pub(crate) async fn conference(&mut self, owner: &str) -> Result<String, String> {
        if let Some((mine, held)) = self.held_by(owner, None) {
            let max = self.setting_u64("conference.max_members", 32) as usize;
            // Members plus the owner itself.
            if self.members(owner).len() >= max {
                return Err(format!("{owner}'s conference is full ({max} members)"));
            }
            self.rooms
                .entry(owner.to_string())
                .or_insert_with(Room::start);
            let room = Partner::Room(owner.to_string());
            for id in [held, mine] {
                if let Some(l) = self.legs.get_mut(&id) {
                    l.partner = room.clone();
                }
            }
            self.close_stale_owner_legs(owner, mine);
            self.anchor(held).await;
            let who = self
                .legs
                .get(&held)
                .map(|l| l.station.clone())
                .unwrap_or_default();
            return Ok(format!(
                "{who} joins {owner}'s conference ({} in it with the owner)",
                self.members(owner).len()
            ));
        }
        if !self.rooms.contains_key(owner) {
            return Err(format!("{owner} holds no call to conference"));
        }
        // A second 46 in a row: adding ends, everyone is resumed into the room.
        let members = self.members(owner);
        for id in &members {
            // The owner's held leg, if still direct, joins with its own resume.
            if self.legs.get(id).is_some_and(|l| l.media.is_some()) {
                self.offer_relay(*id);
            }
        }
        Ok(format!(
            "{owner}'s conference: adding ended, {} legs resumed",
            members.len()
        ))
    }

    /// The owner's held legs into its room other than `keep` are of no more use: released.
    pub(crate) fn close_stale_owner_legs(&mut self, owner: &str, keep: LegId) {
        let room = Partner::Room(owner.to_string());
        let stale: Vec<LegId> = self
            .legs
            .values()
            .filter(|l| l.station == owner && l.id != keep && l.partner == room && l.holds)
            .map(|l| l.id)
            .collect();
        for id in stale {
            if let Some(l) = self.legs.get_mut(&id) {
                l.partner = Partner::None;
            }
            self.end(id, 0, "");
        }
    }

    /// Someone left `owner`'s room: with one member left the conference is over.
    pub(crate) fn room_member_left(&mut self, owner: &str) {
        let members = self.members(owner);
        if members.len() <= 1 {
            for id in members {
                if let Some(l) = self.legs.get_mut(&id) {
                    l.partner = Partner::None;
                }
                self.end(id, 0, "");
            }
            self.rooms.remove(owner);
            tracing::info!("{owner}'s conference ended");
        }
    }
}
