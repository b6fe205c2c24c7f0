//! Feature codes (OfficeServ "SIP Station features"): an INVITE whose number starts with a
//! code of the number plan is not a call. The feature acts, and the caller is answered
//! `480 Temporarily Unavailable` whether it succeeded or not, as OfficeServ phones expect.
//! Each feature is one file behind [`Feature`], registered in [`all`]; its code comes from
//! the `numberplan.*` setting it names, so an office can renumber it. Features that change
//! settings act at once; features that move calls (park, retrieve, pickup, conference)
//! return an [`Action`], and their file also holds how [`crate::calls::Calls`] carries it
//! out. Retrieve and pickup connect the dialling phone instead of answering 480. Hold with
//! system tone and the transfers need no code: they live in `hold.rs` and `transfer.rs`.

mod conference;
mod dnd;
mod forward;
mod hold;
mod park;
mod pickup;
mod resync;
mod ring_group;
mod transfer;
mod voicemail;

pub use park::release_stale as release_stale_parks;
use stations::Db;
pub use voicemail::dir_of as voicemail_dir_of;
pub(crate) use voicemail::{Subscription, restore_subscriptions};

/// What a feature gets to act on.
pub struct Request<'a> {
    pub db: &'a Db,
    /// The station that dialled the code (authenticated, or matched to its registration).
    pub caller: &'a str,
    /// The digits after the code (a destination, 1/0, a station...).
    pub args: &'a str,
}

/// What a feature code asks of the PBX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Done (a setting changed); the text goes to the log.
    Done(String),
    /// Park the call the caller holds, in this slot (a station number).
    Park(String),
    /// Connect the caller to the call parked in this slot.
    Retrieve(String),
    /// Move the call the caller holds into its conference, or end the adding.
    Conference,
    /// Answer a ringing call from the caller's phone.
    Pickup(Pickup),
    /// Open the caller's mailbox.
    Voicemail,
}

/// Which ringing call a pickup takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pickup {
    /// One ringing a station in the caller's own pickup group.
    MyGroup,
    /// One ringing a station in this pickup group.
    Group(u32),
    /// The one ringing this station.
    Station(String),
}

/// One feature code.
pub trait Feature: Send + Sync {
    /// The `numberplan.*` setting that holds the code.
    fn code_setting(&self) -> &'static str;
    /// Acts, or says what the PBX must do; an error (why not) goes to the log.
    fn act(&self, r: &Request<'_>) -> Result<Action, String>;
}

/// Every feature code the PBX knows.
pub fn all() -> Vec<Box<dyn Feature>> {
    let mut v: Vec<Box<dyn Feature>> = vec![
        Box::new(dnd::Dnd),
        Box::new(park::Park),
        Box::new(park::Retrieve),
        Box::new(conference::Conference),
        Box::new(voicemail::Voicemail),
    ];
    v.extend(forward::all());
    v.extend(pickup::all());
    v
}

/// The feature whose code starts `dialled` (the longest code wins, so `601` beats `60`),
/// with the digits after the code. None when `dialled` is no feature code.
pub fn find<'f, 'd>(
    features: &'f [Box<dyn Feature>],
    db: &Db,
    dialled: &'d str,
) -> Option<(&'f dyn Feature, &'d str)> {
    features
        .iter()
        .filter_map(|f| {
            let code = db.setting(f.code_setting()).ok()?;
            let rest = dialled.strip_prefix(code.as_str())?;
            (!code.is_empty()).then_some((f.as_ref(), rest, code.len()))
        })
        .max_by_key(|(_, _, len)| *len)
        .map(|(f, rest, _)| (f, rest))
}

/// A destination a forward may name: an existing station other than the caller.
fn station_target(r: &Request<'_>) -> Result<String, String> {
    let t = r.args.trim();
    if t.is_empty() {
        return Err("no destination dialled".into());
    }
    if t == r.caller {
        return Err(format!("{t} is the station itself"));
    }
    r.db.get(t)
        .map(|s| s.number)
        .map_err(|_| format!("{t} is no station"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("office.db")).unwrap();
        for n in ["201", "202"] {
            db.add(
                &stations::Station::new(n, &format!("u{n}"), &format!("Pw-{n}-secret"), 8).unwrap(),
            )
            .unwrap();
        }
        (dir, db)
    }

    #[test]
    fn codes_from_the_number_plan_longest_first() {
        let (_d, db) = db();
        let f = all();
        let act = |dialled: &str| {
            let (feature, args) = find(&f, &db, dialled).unwrap();
            feature.act(&Request {
                db: &db,
                caller: "201",
                args,
            })
        };
        assert_eq!(act("11").unwrap(), Action::Park("201".into()));
        assert_eq!(act("11202").unwrap(), Action::Park("202".into()));
        assert_eq!(act("12202").unwrap(), Action::Retrieve("202".into()));
        assert!(act("12").is_err(), "retrieve names the parking station");
        assert_eq!(act("46").unwrap(), Action::Conference);
        assert_eq!(act("50").unwrap(), Action::Voicemail);
        assert_eq!(act("55").unwrap(), Action::Pickup(Pickup::MyGroup));
        assert_eq!(act("563").unwrap(), Action::Pickup(Pickup::Group(3)));
        assert_eq!(
            act("57202").unwrap(),
            Action::Pickup(Pickup::Station("202".into()))
        );
        assert!(act("57999").is_err());
        assert!(
            find(&f, &db, "202").is_none(),
            "a station number is no code"
        );
        act("401").unwrap();
        assert!(db.station_state("201").unwrap().dnd);
        act("400").unwrap();
        assert!(!db.station_state("201").unwrap().dnd);
        assert!(act("402").is_err());
        act("601202").unwrap();
        assert_eq!(db.station_state("201").unwrap().cf_all, "202");
        assert!(act("601201").is_err(), "not to itself");
        assert!(act("601999").is_err(), "not to a number that is no station");
        act("604202").unwrap();
        let st = db.station_state("201").unwrap();
        assert_eq!(
            (st.cf_busy.as_str(), st.cf_noanswer.as_str()),
            ("202", "202")
        );
        act("600").unwrap();
        assert_eq!(
            db.station_state("201").unwrap(),
            stations::db::StationState {
                number: "201".into(),
                ..Default::default()
            }
        );
        // Renumbered: DND on 77.
        db.set_setting("numberplan.dnd", "77").unwrap();
        assert!(find(&f, &db, "401").is_none());
        act("771").unwrap();
        assert!(db.station_state("201").unwrap().dnd);
    }
}
