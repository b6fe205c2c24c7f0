//! The station database on disk: CRUD and uniqueness, the key file (missing or foreign: a
//! clear refusal and nothing changed), CSV with 3 bad rows among 100 (nothing imported, the 3
//! lines named), CSV and TOML export/import round trips byte for byte, and no password in the
//! SQLite file's bytes.
#![allow(clippy::unwrap_used)]

use stations::transfer::{self, Format};
use stations::{Db, Station, StationError};

fn station(n: u32) -> Station {
    let mut s = Station::new(
        &n.to_string(),
        &format!("u{n}"),
        &format!("Pw-{n}-secret"),
        8,
    )
    .unwrap();
    s.set("name", &format!("Desk {n}")).unwrap();
    s
}

fn csv_rows(n: u32, bad: &[u32]) -> String {
    let mut out = String::from("number,user_id,password,name,mac,model,line\n");
    for i in 0..n {
        let num = 200 + i;
        let mac = format!("00:11:22:33:{:02x}:{:02x}", i / 256, i % 256);
        if bad.contains(&i) {
            out.push_str(&format!(
                "{num},u{num},short,Desk {num},{mac},cisco-7960,1\n"
            ));
        } else {
            out.push_str(&format!(
                "{num},u{num},Pw-{num}-secret,Desk {num},{mac},cisco-7960,1\n"
            ));
        }
    }
    out
}

#[test]
fn add_get_update_remove_and_uniqueness() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("office.db")).unwrap();
    db.add(&station(201)).unwrap();
    let mut dup_user = station(202);
    dup_user.set("user_id", "u201").unwrap();
    let e = db.add(&dup_user).unwrap_err().to_string();
    assert!(e.contains("user_id") && e.contains("201"), "{e}");
    let mut s = db.get("201").unwrap();
    assert_eq!(s.password, "Pw-201-secret");
    s.set("model", "cisco-7960").unwrap();
    s.set("mac", "0011.2233.4455").unwrap();
    db.update("201", &s).unwrap();
    assert_eq!(
        db.by_mac(&"001122334455".parse().unwrap()).unwrap().len(),
        1
    );
    let mut same_key = station(203);
    same_key.set("model", "cisco-7960").unwrap();
    same_key.set("mac", "00-11-22-33-44-55").unwrap();
    assert!(
        db.add(&same_key)
            .unwrap_err()
            .to_string()
            .contains("mac+line")
    );
    same_key.set("line", "2").unwrap();
    db.add(&same_key).unwrap();
    db.remove("201").unwrap();
    assert!(matches!(db.get("201"), Err(StationError::NotFound(_))));
}

/// Issue 15, finding 10: 18,000 random MACs made 17,999 unknown-phone rows, and a flood of
/// refusals pushed older evidence out of the bounded access log.
#[test]
fn what_attackers_send_cannot_fill_the_tables_or_push_evidence_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("office.db")).unwrap();
    for i in 0..1500u32 {
        let b = i.to_be_bytes();
        let mac: stations::Mac = format!("02:00:00:{:02x}:{:02x}:{:02x}", b[1], b[2], b[3])
            .parse()
            .unwrap();
        db.record_unknown(&mac, "192.0.2.9", "SIPx.cnf", i64::from(i))
            .unwrap();
    }
    let unknown = db.unknown_phones().unwrap();
    assert_eq!(unknown.len() as i64, stations::db::UNKNOWN_PHONES);
    assert!(
        unknown.iter().all(|u| u.last_seen >= 500),
        "the newest are kept"
    );
    let access = |at, address: &str, reason: &str| stations::db::Access {
        at,
        address: address.into(),
        caller: "201".into(),
        reason: reason.into(),
    };
    db.log_access(&access(100, "198.51.100.1", "wrong password"))
        .unwrap();
    for n in 0..20_000 {
        db.log_access(&access(200 + n / 100, "203.0.113.66", "wrong password"))
            .unwrap();
    }
    let rows = db.access_log(100).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0].count, rows[0].first_at, rows[0].last.at),
        (20_000, 200, 399)
    );
    assert_eq!(
        rows[1].last.address, "198.51.100.1",
        "the older evidence is still there"
    );
}

/// Issue 15, finding 11: the database, its WAL and shm were 0644.
#[test]
fn the_database_files_are_for_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("office.db");
    let db = Db::open(&path).unwrap();
    db.add(&station(201)).unwrap();
    for name in [
        "office.db",
        "office.db-wal",
        "office.db-shm",
        "office.db.key",
    ] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
    }
}

#[test]
fn missing_or_foreign_key_file_refuses_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("office.db");
    Db::open(&path).unwrap().add(&station(201)).unwrap();
    let before = std::fs::read(&path).unwrap();
    let key = dir.path().join("office.db.key");
    std::fs::rename(&key, dir.path().join("saved.key")).unwrap();
    let e = Db::open(&path).err().unwrap().to_string();
    assert!(
        e.contains("office.db.key is missing") && e.contains("nothing was changed"),
        "{e}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before, "database untouched");
    assert!(!key.exists(), "no new key was made over the old passwords");
    // Another database's key is refused too.
    let other = dir.path().join("other.db");
    Db::open(&other).unwrap();
    std::fs::copy(dir.path().join("other.db.key"), &key).unwrap();
    let e = Db::open(&path).err().unwrap().to_string();
    assert!(e.contains("does not belong"), "{e}");
    std::fs::rename(dir.path().join("saved.key"), &key).unwrap();
    assert_eq!(
        Db::open(&path).unwrap().get("201").unwrap().password,
        "Pw-201-secret"
    );
}

#[test]
fn csv_with_three_bad_rows_among_100_imports_nothing_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("office.db")).unwrap();
    let text = csv_rows(100, &[7, 50, 98]);
    let e = transfer::import(&db, &text, Format::Csv).unwrap_err();
    let StationError::Import(rows) = &e else {
        panic!("{e}")
    };
    let lines: Vec<usize> = rows.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, vec![9, 52, 100], "{e}");
    assert!(e.to_string().contains("line 9: password"), "{e}");
    assert!(db.list().unwrap().is_empty(), "all or nothing");
    assert_eq!(
        transfer::import(&db, &csv_rows(100, &[]), Format::Csv).unwrap(),
        100
    );
    // A duplicate inside the file is named with both lines.
    let dupe = "number,user_id,password,name,mac,model\n301,a301,Pw-301-secret,,,xlite\n302,a301,Pw-302-secret,,,xlite\n";
    let e = transfer::import(&db, dupe, Format::Csv)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3: user_id a301 also on line 2"), "{e}");
    // Lines ended by CRLF (a spreadsheet's export, a browser's form) are counted the same.
    let e = transfer::import(&db, &dupe.replace('\n', "\r\n"), Format::Csv)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3: user_id a301 also on line 2"), "{e}");
}

#[test]
fn export_import_round_trips_exactly() {
    for format in [Format::Csv, Format::Toml] {
        let dir = tempfile::tempdir().unwrap();
        let a = Db::open(&dir.path().join("a.db")).unwrap();
        transfer::import(&a, &csv_rows(20, &[]), Format::Csv).unwrap();
        let mut s = a.get("205").unwrap();
        for (f, v) in [
            ("pickup_group", "3"),
            ("dtmf", "info"),
            ("name", "Ünïcode, comma"),
            ("use_whitelist", "no"),
        ] {
            s.set(f, v).unwrap();
        }
        a.update("205", &s).unwrap();
        let first = transfer::export(&a, format).unwrap();
        let b = Db::open(&dir.path().join("b.db")).unwrap();
        assert_eq!(transfer::import(&b, &first, format).unwrap(), 20);
        assert_eq!(a.list().unwrap(), b.list().unwrap());
        assert_eq!(transfer::export(&b, format).unwrap(), first, "{format:?}");
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn no_password_in_the_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("office.db");
    let db = Db::open(&path).unwrap();
    transfer::import(&db, &csv_rows(50, &[]), Format::Csv).unwrap();
    let mut s = db.get("210").unwrap();
    s.set("password", "Changed-Secret-77").unwrap();
    db.update("210", &s).unwrap();
    drop(db);
    let mut bytes = std::fs::read(&path).unwrap();
    for extra in ["office.db-journal", "office.db-wal"] {
        if let Ok(b) = std::fs::read(dir.path().join(extra)) {
            bytes.extend(b);
        }
    }
    assert!(contains(&bytes, "u210"), "the search itself works");
    for n in 200..250 {
        assert!(
            !contains(&bytes, &format!("Pw-{n}-secret")),
            "password of {n} found"
        );
    }
    assert!(!contains(&bytes, "Changed-Secret-77"));
    assert!(!contains(&bytes, "secret"));
}

#[test]
fn cached_reads_follow_changes_from_this_and_other_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("office.db");
    let pbx = Db::open(&path).unwrap();
    pbx.add(&station(201)).unwrap();
    assert_eq!(pbx.get("201").unwrap().name, "Desk 201");
    assert!(pbx.get("202").is_err());
    assert_eq!(pbx.setting("media.relay").unwrap(), "auto");
    // Bookkeeping writes keep the cache; configuration written elsewhere (the CLI) shows.
    pbx.save_registrations(&[("201".into(), vec![])]).unwrap();
    let cli = Db::open(&path).unwrap();
    let mut s = cli.get("201").unwrap();
    s.set("name", "Reception").unwrap();
    cli.update("201", &s).unwrap();
    cli.add(&station(202)).unwrap();
    cli.set_setting("media.relay", "always").unwrap();
    assert_eq!(pbx.get("201").unwrap().name, "Reception");
    assert_eq!(pbx.get("202").unwrap().number, "202");
    assert_eq!(pbx.setting("media.relay").unwrap(), "always");
    // And this connection's own configuration writes.
    pbx.set_setting("media.relay", "never").unwrap();
    assert_eq!(pbx.setting("media.relay").unwrap(), "never");
    // Inside at_once the configuration is checked once: another connection's change made
    // meanwhile shows from the next read after it, this connection's own at once.
    pbx.at_once(|db| {
        assert_eq!(db.setting("media.relay").unwrap(), "never");
        cli.set_setting("media.relay", "auto").unwrap();
        assert_eq!(db.setting("media.relay").unwrap(), "never");
        db.set_setting("sip.min_expires", "120").unwrap();
        assert_eq!(db.setting("sip.min_expires").unwrap(), "120");
    });
    assert_eq!(pbx.setting("media.relay").unwrap(), "auto");
}

#[test]
fn parks_and_voicemail_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("office.db");
    {
        let db = Db::open(&path).unwrap();
        db.save_park(&stations::db::ParkRecord {
            slot: "201".into(),
            parked: "202".into(),
            by: "201".into(),
            since: 1,
            dialog: "{}".into(),
        })
        .unwrap();
        for (caller, at) in [("203", 10), ("204", 5)] {
            db.add_message(&stations::db::Message {
                mailbox: "201".into(),
                caller: caller.into(),
                at,
                path: format!("/vm/{caller}.wav"),
                ..Default::default()
            })
            .unwrap();
        }
    }
    let db = Db::open(&path).unwrap();
    assert_eq!(db.parks().unwrap()[0].parked, "202");
    db.delete_park("201").unwrap();
    assert!(db.parks().unwrap().is_empty());
    let m = db.messages("201").unwrap();
    assert_eq!(
        m.iter().map(|m| m.caller.as_str()).collect::<Vec<_>>(),
        ["204", "203"],
        "oldest first"
    );
    db.mark_heard(m[0].id).unwrap();
    assert_eq!(db.message_counts().unwrap(), vec![("201".into(), 1, 1)]);
    assert_eq!(db.messages("201").unwrap()[0].caller, "203", "new first");
    db.delete_message(m[1].id).unwrap();
    assert_eq!(db.message_counts().unwrap(), vec![("201".into(), 0, 1)]);
}
