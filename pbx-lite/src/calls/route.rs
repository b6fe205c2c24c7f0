//! Where a call to a station goes: the B2BUA's routing decision as one pure function of
//! what the office knows (each station's DND and forwarding, who is registered, who can
//! take a call, mailboxes). [`Calls::on_invite`](super::Calls::on_invite) asks it, then
//! rings, sends to voicemail or refuses as it says.
//!
//! The order is the OfficeServ's: Do Not Disturb, then Call Forward All (followed along its
//! chain while it leads somewhere new: a loop rings the last station not yet tried), then
//! Forward Unreachable for a station that is not registered, then Forward Busy for one that
//! cannot take the call; voicemail catches what is left for a station with a mailbox.

use stations::db::StationState;

/// What the routing needs to know of the office, asked station by station.
pub(crate) trait Office {
    /// The station's DND and forwarding.
    fn state(&self, number: &str) -> StationState;
    /// Is it registered, so that it can be rung?
    fn reachable(&self, number: &str) -> bool;
    /// Can it ring now: free, or busy with call waiting on?
    fn can_take_call(&self, number: &str) -> bool;
    /// Its Call Forward Unreachable station, if any.
    fn cf_unreachable(&self, number: &str) -> Option<String>;
    /// Its voicemail mailbox, if any.
    fn mailbox(&self, number: &str) -> Option<String>;
}

/// Why a call went on to another station (RFC 5806 Diversion `reason`).
pub(crate) type Diversion = (String, &'static str);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Ring `station`; `diverted` names the station first called, when forwarding moved it.
    Ring {
        station: String,
        diverted: Option<Diversion>,
    },
    /// Answer and record a message for `mailbox`.
    Voicemail { mailbox: String },
    /// Refuse with this status.
    Refuse { status: u16, reason: &'static str },
}

/// Where a call from `caller` to station `callee` goes.
pub(crate) fn route(caller: &str, callee: &str, office: &impl Office) -> Route {
    let mut callee = callee.to_string();
    let mut diverted: Option<Diversion> = None;
    let mut seen = vec![callee.clone()];
    loop {
        let st = office.state(&callee);
        if st.dnd {
            return busy();
        }
        if st.cf_all.is_empty() || seen.contains(&st.cf_all) || st.cf_all == caller {
            break;
        }
        seen.push(st.cf_all.clone());
        let from = std::mem::replace(&mut callee, st.cf_all);
        diverted.get_or_insert((from, "unconditional"));
    }
    if !office.reachable(&callee) {
        match office.cf_unreachable(&callee) {
            Some(t) if t != callee && office.reachable(&t) => {
                let from = std::mem::replace(&mut callee, t);
                diverted.get_or_insert((from, "unavailable"));
            }
            _ => {
                return office
                    .mailbox(&callee)
                    .map_or_else(unavailable, |mailbox| Route::Voicemail { mailbox });
            }
        }
    }
    if !office.can_take_call(&callee) {
        let target = office.state(&callee).cf_busy;
        if target.is_empty()
            || target == caller
            || !office.can_take_call(&target)
            || !office.reachable(&target)
        {
            return office
                .mailbox(&callee)
                .map_or_else(busy, |mailbox| Route::Voicemail { mailbox });
        }
        let from = std::mem::replace(&mut callee, target);
        diverted.get_or_insert((from, "user-busy"));
    }
    Route::Ring {
        station: callee,
        diverted,
    }
}

fn busy() -> Route {
    Route::Refuse {
        status: 486,
        reason: "Busy Here",
    }
}

fn unavailable() -> Route {
    Route::Refuse {
        status: 480,
        reason: "Temporarily Unavailable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An office described station by station: `number: flags`, where the flags are
    /// `dnd`, `off` (not registered), `busy` (cannot take a call), `all=N`, `busy=N`,
    /// `unreach=N` and `vm=M`.
    struct Desk(HashMap<String, Vec<String>>);

    impl Desk {
        fn of(rows: &[(&str, &str)]) -> Desk {
            Desk(
                rows.iter()
                    .map(|(n, flags)| {
                        (
                            n.to_string(),
                            flags.split_whitespace().map(str::to_string).collect(),
                        )
                    })
                    .collect(),
            )
        }

        fn flag(&self, number: &str, name: &str) -> bool {
            self.0
                .get(number)
                .is_some_and(|f| f.iter().any(|x| x == name))
        }

        fn value(&self, number: &str, name: &str) -> Option<String> {
            self.0.get(number)?.iter().find_map(|f| {
                f.strip_prefix(name)
                    .and_then(|v| v.strip_prefix('='))
                    .map(str::to_string)
            })
        }
    }

    impl Office for Desk {
        fn state(&self, number: &str) -> StationState {
            StationState {
                number: number.to_string(),
                dnd: self.flag(number, "dnd"),
                cf_all: self.value(number, "all").unwrap_or_default(),
                cf_busy: self.value(number, "busy").unwrap_or_default(),
                cf_noanswer: String::new(),
            }
        }
        fn reachable(&self, number: &str) -> bool {
            self.0.contains_key(number) && !self.flag(number, "off")
        }
        fn can_take_call(&self, number: &str) -> bool {
            !self.flag(number, "busy")
        }
        fn cf_unreachable(&self, number: &str) -> Option<String> {
            self.value(number, "unreach")
        }
        fn mailbox(&self, number: &str) -> Option<String> {
            self.value(number, "vm")
        }
    }

    /// An office's stations, `(number, flags)`.
    type Rows<'a> = &'a [(&'a str, &'a str)];

    fn ring(station: &str, diverted: Option<(&str, &'static str)>) -> Route {
        Route::Ring {
            station: station.to_string(),
            diverted: diverted.map(|(f, r)| (f.to_string(), r)),
        }
    }

    fn refuse(status: u16) -> Route {
        match status {
            486 => busy(),
            _ => unavailable(),
        }
    }

    fn voicemail(mailbox: &str) -> Route {
        Route::Voicemail {
            mailbox: mailbox.to_string(),
        }
    }

    #[test]
    fn each_office_routes_a_call_from_201_to_202_as_the_manual_says() {
        let table: Vec<(&str, Rows, Route)> = vec![
            ("free", &[("202", "")], ring("202", None)),
            ("DND", &[("202", "dnd all=203"), ("203", "")], refuse(486)),
            ("not registered", &[("202", "off")], refuse(480)),
            (
                "not registered, mailbox",
                &[("202", "off vm=202")],
                voicemail("202"),
            ),
            (
                "forward all",
                &[("202", "all=203"), ("203", "")],
                ring("203", Some(("202", "unconditional"))),
            ),
            (
                "forward all along a chain, the first diversion named",
                &[("202", "all=203"), ("203", "all=204"), ("204", "")],
                ring("204", Some(("202", "unconditional"))),
            ),
            (
                "a forward loop rings the last station not yet tried",
                &[("202", "all=203"), ("203", "all=204"), ("204", "all=202")],
                ring("204", Some(("202", "unconditional"))),
            ),
            (
                "forward all back to the caller stops there",
                &[("202", "all=201"), ("201", "")],
                ring("202", None),
            ),
            (
                "forward all to a station in DND",
                &[("202", "all=203"), ("203", "dnd")],
                refuse(486),
            ),
            (
                "forward unreachable",
                &[("202", "off unreach=203"), ("203", "")],
                ring("203", Some(("202", "unavailable"))),
            ),
            (
                "forward unreachable to a station also away",
                &[("202", "off unreach=203 vm=202"), ("203", "off")],
                voicemail("202"),
            ),
            ("busy", &[("202", "busy")], refuse(486)),
            ("busy, mailbox", &[("202", "busy vm=202")], voicemail("202")),
            (
                "forward busy",
                &[("202", "busy busy=203"), ("203", "")],
                ring("203", Some(("202", "user-busy"))),
            ),
            (
                "forward busy to a busy station",
                &[("202", "busy busy=203 vm=202"), ("203", "busy")],
                voicemail("202"),
            ),
            (
                "forward busy to a station not registered",
                &[("202", "busy busy=203"), ("203", "off")],
                refuse(486),
            ),
            (
                "forward busy back to the caller",
                &[("202", "busy busy=201"), ("201", "")],
                refuse(486),
            ),
            (
                "forward all, then busy there, then its forward busy",
                &[("202", "all=203"), ("203", "busy busy=204"), ("204", "")],
                ring("204", Some(("202", "unconditional"))),
            ),
        ];
        for (what, rows, want) in table {
            let mut rows = rows.to_vec();
            if !rows.iter().any(|(n, _)| *n == "201") {
                rows.push(("201", ""));
            }
            assert_eq!(route("201", "202", &Desk::of(&rows)), want, "{what}");
        }
    }
}
