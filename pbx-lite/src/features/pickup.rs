//! Call Pickup (OfficeServ): answer a call ringing at another station from this phone. My
//! Group Pickup (55) takes a call ringing in the caller's own pickup group — every station
//! without a group is in the same one, as in OfficeServ —, Group Pickup (56 + group) one
//! ringing in the named group, Directed Pickup (57 + station) the one ringing at that
//! station. The dialling phone is answered and talks to the caller; the phone that rang
//! gets CANCEL.

use super::{Action, Feature, Pickup as Which, Request};
use crate::calls::{Calls, Leg, LegId, Partner};

#[derive(Clone, Copy)]
enum Kind {
    MyGroup,
    Group,
    Directed,
}

pub(super) struct Pickup(Kind);

pub(super) fn all() -> Vec<Box<dyn Feature>> {
    [Kind::MyGroup, Kind::Group, Kind::Directed]
        .into_iter()
        .map(|k| Box::new(Pickup(k)) as Box<dyn Feature>)
        .collect()
}

impl Feature for Pickup {
    fn code_setting(&self) -> &'static str {
        match self.0 {
            Kind::MyGroup => "numberplan.pickup_my_group",
            Kind::Group => "numberplan.pickup_group",
            Kind::Directed => "numberplan.pickup_directed",
        }
    }

    fn act(&self, r: &Request<'_>) -> Result<Action, String> {
        let arg = r.args.trim();
        Ok(Action::Pickup(match self.0 {
            Kind::MyGroup => Which::MyGroup,
            Kind::Group => Which::Group(
                arg.parse()
                    .map_err(|_| format!("group pickup needs a group number, not {arg:?}"))?,
            ),
            Kind::Directed => Which::Station(
                r.db.get(arg)
                    .map(|s| s.number)
                    .map_err(|_| format!("{arg:?} is no station to pick up from"))?,
            ),
        }))
    }
}

impl Calls {
    /// The pickup group of a station (0: the default group every station starts in).
    fn pickup_group(&self, station: &str) -> u32 {
        self.db()
            .get(station)
            .ok()
            .and_then(|s| s.pickup_group)
            .unwrap_or(0)
    }

    /// The oldest call ringing at a station `which` allows: (the ringing leg, the caller's).
    fn ringing_for(&self, picker: &str, which: &Which) -> Option<(LegId, LegId)> {
        let mine = self.pickup_group(picker);
        let mut ringing: Vec<&Leg> = self
            .legs
            .values()
            .filter(|l| !l.uas && !l.answered && l.station != picker)
            .filter(|l| {
                self.legs
                    .get(&l.rang_for)
                    .is_some_and(|c| c.uas && !c.answered)
            })
            .filter(|l| match which {
                Which::Station(s) => l.station == *s,
                Which::MyGroup => self.pickup_group(&l.station) == mine,
                Which::Group(g) => self.pickup_group(&l.station) == *g,
            })
            .collect();
        ringing.sort_by_key(|l| l.id);
        ringing.first().map(|l| (l.id, l.rang_for))
    }

    /// Answers the ringing call `which` names from `leg`'s phone.
    pub(crate) async fn pickup(&mut self, leg: Leg, which: Which) -> Result<String, (String, Leg)> {
        let Some((ringing, caller)) = self.ringing_for(&leg.station.clone(), &which) else {
            return Err((format!("no call is ringing for {which:?}"), leg));
        };
        let rang = self
            .legs
            .get(&ringing)
            .map(|l| l.station.clone())
            .unwrap_or_default();
        // Every phone the caller rings stops; the caller is answered from the PBX's relay.
        if let Some(Partner::Ringing(forks)) = self.legs.get(&caller).map(|l| l.partner.clone()) {
            for f in forks {
                self.end(f, 0, "");
            }
        }
        if self.legs.get(&caller).is_some_and(|c| c.media.is_none()) {
            match self.open_port().await {
                Some(p) => {
                    if let Some(c) = self.legs.get_mut(&caller) {
                        c.anchor_with(p);
                    }
                }
                None => return Err(("no media port for the caller".into(), leg)),
            }
        }
        let ep = self.ep.clone();
        let who = leg.station.clone();
        if let Some(c) = self.legs.get_mut(&caller) {
            if let Some(r) = &c.record {
                r.answered(&who);
            }
            let offer = c.remote_sdp.clone();
            let body = c.our_sdp(
                crate::sdp::direction(&offer).answer(),
                (!offer.is_empty()).then_some(offer.as_slice()),
            );
            c.answer(&ep, body);
            c.partner = Partner::None;
        }
        let from = self
            .legs
            .get(&caller)
            .map(|c| c.station.clone())
            .unwrap_or_default();
        match self.connect(leg, caller).await {
            Ok(()) => Ok(format!(
                "{who} picked up the call from {from} ringing at {rang}"
            )),
            Err(leg) => {
                self.end(caller, 0, "");
                Err(("no media port for the picking phone".into(), leg))
            }
        }
    }
}
