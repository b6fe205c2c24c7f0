//! The web admin's pages: each reads or changes the database as the CLI does (the same
//! [`stations`](mod@stations) calls, so the same checks and messages) and renders a template.

use super::session::{self, Session};
use super::{BODY_LIMIT, Web, lock};
use axum::Extension;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use stations::station::{FIELDS, MODELS, Station};
use stations::transfer::{self, Format};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

type Fields = Form<HashMap<String, String>>;

fn field<'a>(f: &'a HashMap<String, String>, k: &str) -> &'a str {
    f.get(k).map_or("", |v| v.as_str())
}

#[derive(Deserialize, Default)]
pub(super) struct Search {
    #[serde(default)]
    q: String,
}

fn matches(q: &str, values: &[&str]) -> bool {
    let q = q.trim().to_lowercase();
    q.is_empty() || values.iter().any(|v| v.to_lowercase().contains(&q))
}

/// A page that says what went wrong with a request, with the status given.
fn refused(web: &Web, session: &Session, status: StatusCode, message: String) -> Response {
    let mut r = web.page(
        "layout.html",
        Some(session),
        context! { error => message, title => "Refused" },
    );
    *r.status_mut() = status;
    r
}

// ---- login ----

pub(super) async fn login_form(State(web): State<Arc<Web>>) -> Response {
    web.page("login.html", None, context! {})
}

pub(super) async fn login(
    State(web): State<Arc<Web>>,
    Extension(ConnectInfo(peer)): Extension<ConnectInfo<SocketAddr>>,
    Form(f): Fields,
) -> Response {
    let (name, password) = (
        field(&f, "name").to_string(),
        field(&f, "password").to_string(),
    );
    let ip = peer.ip().to_canonical();
    let t = web.now();
    let fail = |status: StatusCode, message: &str| {
        let mut r = web.page(
            "login.html",
            None,
            context! { error => message, name => name },
        );
        *r.status_mut() = status;
        r
    };
    if lock(&web.throttle).blocked(t, ip, &name) {
        return fail(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong passwords from this address: wait and try again later.",
        );
    }
    let stored = web.db().admin_hash(&name).ok().flatten();
    let ok =
        tokio::task::spawn_blocking(move || session::verify_password(stored.as_deref(), &password))
            .await
            .unwrap_or(false);
    if !ok {
        let (limit, block) = {
            let policy = crate::server::policy(&web.db());
            (policy.retry_limit, policy.block_seconds)
        };
        let blocked = lock(&web.throttle).failed(t, ip, &name, limit, block);
        let _ = web.db().log_access(&stations::db::Access {
            at: t,
            address: ip.to_string(),
            caller: format!("admin:{name}"),
            reason: if blocked {
                "web admin: wrong name or password; retry limit reached, blocked".into()
            } else {
                "web admin: wrong name or password".into()
            },
        });
        return fail(StatusCode::FORBIDDEN, "Wrong name or password.");
    }
    lock(&web.throttle).succeeded(ip);
    let id = lock(&web.sessions).open(&name, t);
    let cookie = format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Strict{}",
        session::COOKIE,
        if web.secure { "; Secure" } else { "" }
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

pub(super) async fn logout(
    State(web): State<Arc<Web>>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(id) = session::cookie_of(&headers) {
        lock(&web.sessions).close(&id);
    }
    let cookie = format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
        session::COOKIE
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

// ---- dashboard ----

/// What the dashboard shows: every station's registration, the calls under way, the trunks.
fn snapshot(web: &Web) -> serde_json::Value {
    let db = web.db();
    let t = web.now();
    let names: HashMap<String, String> = db
        .list()
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.number.clone(), s.name.clone()))
        .collect();
    let phones: Vec<serde_json::Value> = crate::status::stations(&db)
        .unwrap_or_default()
        .into_iter()
        .map(|mut r| {
            let n = r["number"].as_str().unwrap_or_default().to_string();
            r["name"] = names.get(&n).cloned().unwrap_or_default().into();
            r
        })
        .collect();
    let calls: Vec<serde_json::Value> = web
        .board
        .borrow()
        .iter()
        .map(|c| {
            serde_json::json!({
                "caller": c.caller, "dialled": c.dialled, "callee": c.callee, "state": c.state,
                "since": stations::db::readable_time(c.started).replace('T', " "),
                "seconds": t - c.answered.unwrap_or(c.started),
                "media": if c.relayed { "relayed" } else { "direct" },
                "encrypted": if c.encrypted { "SRTP" } else { "no" },
            })
        })
        .collect();
    let trunks: Vec<serde_json::Value> = db
        .trunks()
        .unwrap_or_default()
        .iter()
        .map(|tr| {
            serde_json::json!({"name": tr.name, "state": crate::trunks::cli::state_line(&db, tr)})
        })
        .collect();
    let registered = phones.iter().filter(|p| p["registered"] == true).count();
    serde_json::json!({
        "phones": phones, "calls": calls, "trunks": trunks,
        "registered": registered, "stations": names.len(),
    })
}

pub(super) async fn dashboard(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
) -> Response {
    let snap = snapshot(&web);
    web.page(
        "dashboard.html",
        Some(&s),
        context! { title => "Dashboard", live => snap },
    )
}

/// The dashboard's live feed: the snapshot whenever it changes (looked at twice a second).
pub(super) async fn events(
    State(web): State<Arc<Web>>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold((web, String::new()), |(web, last)| async move {
        loop {
            let snap = snapshot(&web).to_string();
            if snap != last {
                return Some((Ok(Event::default().data(snap.clone())), (web, snap)));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

// ---- stations ----

fn station_row(s: &Station) -> serde_json::Value {
    serde_json::json!({
        "number": s.number, "user_id": s.user_id, "name": s.name, "mac": s.get("mac"),
        "model": s.model.name(), "line": s.line,
    })
}

pub(super) async fn stations(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Query(q): Query<Search>,
) -> Response {
    let rows: Vec<_> = web
        .db()
        .list()
        .unwrap_or_default()
        .iter()
        .filter(|st| {
            matches(
                &q.q,
                &[
                    &st.number,
                    &st.user_id,
                    &st.name,
                    &st.get("mac"),
                    st.model.name(),
                ],
            )
        })
        .map(station_row)
        .collect();
    web.page(
        "stations.html",
        Some(&s),
        context! { title => "Stations", rows => rows, q => q.q },
    )
}

fn models() -> Vec<&'static str> {
    MODELS.iter().map(|(n, ..)| *n).collect()
}

pub(super) async fn new_station(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
) -> Response {
    web.page(
        "station.html",
        Some(&s),
        context! { title => "New station", new => true, models => models(),
        values => HashMap::from([("model", "softphone")]) },
    )
}

/// A station from a form's fields; the password only when given (or new).
fn apply_fields(st: &mut Station, f: &HashMap<String, String>) -> Result<(), String> {
    for name in FIELDS {
        let Some(v) = f.get(*name) else { continue };
        if *name == "password" && v.is_empty() {
            continue;
        }
        if st.get(name) != *v {
            st.set(name, v).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

pub(super) async fn add_station(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Form(f): Fields,
) -> Response {
    let mut st = Station::new_unchecked();
    let result = apply_fields(&mut st, &f).and_then(|()| {
        if st.password.is_empty() {
            return Err("password: must be given".to_string());
        }
        web.db().add(&st).map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => Redirect::to(&format!("/stations/{}", urlencode(&st.number))).into_response(),
        Err(e) => {
            let mut r = web.page(
                "station.html",
                Some(&s),
                context! { title => "New station", new => true, models => models(),
                values => without_password(&f), error => e },
            );
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    }
}

fn without_password(f: &HashMap<String, String>) -> HashMap<String, String> {
    let mut v = f.clone();
    v.remove("password");
    v.remove("csrf");
    v
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn station_values(st: &Station) -> HashMap<String, String> {
    FIELDS
        .iter()
        .filter(|f| **f != "password")
        .map(|f| (f.to_string(), st.get(f)))
        .collect()
}

fn station_page(
    web: &Web,
    s: &Session,
    number: &str,
    values: Option<HashMap<String, String>>,
    error: Option<String>,
    notice: Option<String>,
) -> Response {
    let Ok(st) = web.db().get(number) else {
        return refused(
            web,
            s,
            StatusCode::NOT_FOUND,
            format!("station {number}: no such station"),
        );
    };
    let status = crate::status::stations(&web.db())
        .unwrap_or_default()
        .into_iter()
        .find(|r| r["number"] == number);
    let fields: Vec<&str> = FIELDS
        .iter()
        .copied()
        .filter(|f| *f != "password")
        .collect();
    web.page(
        "station.html",
        Some(s),
        context! {
            title => format!("Station {number}"), number => number, models => models(),
            fields => fields, values => values.unwrap_or_else(|| station_values(&st)),
            status => status, error => error, notice => notice,
        },
    )
}

pub(super) async fn station(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Path(number): Path<String>,
) -> Response {
    station_page(&web, &s, &number, None, None, None)
}

pub(super) async fn edit_station(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Path(number): Path<String>,
    Form(f): Fields,
) -> Response {
    let Ok(mut st) = web.db().get(&number) else {
        return refused(
            &web,
            &s,
            StatusCode::NOT_FOUND,
            format!("station {number}: no such station"),
        );
    };
    let result = apply_fields(&mut st, &f)
        .and_then(|()| web.db().update(&number, &st).map_err(|e| e.to_string()));
    match result {
        Ok(()) => Redirect::to(&format!("/stations/{}", urlencode(&st.number))).into_response(),
        Err(e) => {
            let mut r = station_page(&web, &s, &number, Some(without_password(&f)), Some(e), None);
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    }
}

pub(super) async fn delete_station(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Path(number): Path<String>,
) -> Response {
    let done = web.db().remove(&number);
    match done {
        Ok(()) => Redirect::to("/stations").into_response(),
        Err(e) => refused(&web, &s, StatusCode::BAD_REQUEST, e.to_string()),
    }
}

pub(super) async fn resync(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Path(number): Path<String>,
) -> Response {
    let done = web.db().queue_phone_action(&number, "resync", web.now());
    match done {
        Ok(()) => station_page(
            &web,
            &s,
            &number,
            None,
            None,
            Some(format!(
                "Resync sent to {number}: a Cisco phone reboots with its new configuration."
            )),
        ),
        Err(e) => refused(&web, &s, StatusCode::BAD_REQUEST, e.to_string()),
    }
}

pub(super) async fn import_form(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
) -> Response {
    web.page(
        "import.html",
        Some(&s),
        context! { title => "Import stations", format => "csv" },
    )
}

pub(super) async fn import(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Form(f): Fields,
) -> Response {
    let text = field(&f, "text");
    let format = if field(&f, "format") == "toml" {
        Format::Toml
    } else {
        Format::Csv
    };
    let result = transfer::import(&web.db(), text, format);
    let (status, ctx) = match result {
        Ok(n) => (StatusCode::OK, context! { imported => n }),
        Err(stations::StationError::Import(lines)) => {
            let lines: Vec<_> = lines
                .into_iter()
                .map(|(line, why)| context! { line => line, why => why })
                .collect();
            (
                StatusCode::BAD_REQUEST,
                context! { lines => lines, text => text },
            )
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            context! { error => e.to_string(), text => text },
        ),
    };
    let mut r = web.page(
        "import.html",
        Some(&s),
        context! { title => "Import stations", format => field(&f, "format"), ..ctx },
    );
    *r.status_mut() = status;
    r
}

#[derive(Deserialize)]
pub(super) struct ExportQuery {
    #[serde(default)]
    format: String,
}

pub(super) async fn export(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Query(q): Query<ExportQuery>,
) -> Response {
    let (format, kind, ext) = match q.format.as_str() {
        "toml" => (Format::Toml, "application/toml", "toml"),
        _ => (Format::Csv, "text/csv", "csv"),
    };
    match transfer::export(&web.db(), format) {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, kind.to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"stations.{ext}\""),
                ),
            ],
            text,
        )
            .into_response(),
        Err(e) => refused(&web, &s, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

// ---- unknown phones ----

fn unknown_page(web: &Web, s: &Session, error: Option<String>, notice: Option<String>) -> Response {
    let db = web.db();
    let phones: Vec<_> = db
        .unknown_phones()
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            context! { mac => p.mac, address => p.address, file => p.file, count => p.count,
            last_seen => p.last_seen, first_seen => p.first_seen }
        })
        .collect();
    let numbers: Vec<String> = db
        .list()
        .unwrap_or_default()
        .into_iter()
        .map(|st| st.number)
        .collect();
    drop(db);
    web.page(
        "unknown.html",
        Some(s),
        context! { title => "Unknown phones", phones => phones, numbers => numbers,
        models => models(), error => error, notice => notice },
    )
}

pub(super) async fn unknown(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
) -> Response {
    unknown_page(&web, &s, None, None)
}

/// Gives an unknown phone's MAC to an existing station, or to a new one.
pub(super) async fn assign(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Form(f): Fields,
) -> Response {
    let mac = field(&f, "mac");
    let existing = field(&f, "station");
    let result = if existing.is_empty() {
        let mut st = Station::new_unchecked();
        let mut fields = f.clone();
        fields.insert("mac".into(), mac.to_string());
        apply_fields(&mut st, &fields).and_then(|()| {
            if st.password.is_empty() {
                return Err("password: must be given".to_string());
            }
            web.db()
                .add(&st)
                .map_err(|e| e.to_string())
                .map(|()| st.number.clone())
        })
    } else {
        let db = web.db();
        db.get(existing)
            .and_then(|mut st| {
                st.set("mac", mac)?;
                db.update(existing, &st)?;
                Ok(st.number)
            })
            .map_err(|e| e.to_string())
    };
    match result {
        Ok(n) => unknown_page(
            &web,
            &s,
            None,
            Some(format!("{mac} is now station {n}'s phone.")),
        ),
        Err(e) => {
            let mut r = unknown_page(&web, &s, Some(e), None);
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    }
}

// ---- settings ----

fn settings_page(
    web: &Web,
    s: &Session,
    error: Option<(String, String)>,
    notice: Option<String>,
) -> Response {
    let mut groups: Vec<(String, Vec<minijinja::Value>)> = Vec::new();
    for (k, v) in web.db().settings().unwrap_or_default() {
        let doc = stations::settings::lookup(&k)
            .map(|(_, _, _, d)| *d)
            .unwrap_or_default();
        let group = k.split_once('.').map_or(k.as_str(), |(g, _)| g).to_string();
        let row = context! { key => k, value => v, doc => doc };
        match groups.last_mut() {
            Some((g, rows)) if *g == group => rows.push(row),
            _ => groups.push((group, vec![row])),
        }
    }
    let groups: Vec<_> = groups
        .into_iter()
        .map(|(g, rows)| context! { name => g, rows => rows })
        .collect();
    let (error_key, error) = error.unzip();
    web.page(
        "settings.html",
        Some(s),
        context! { title => "Settings", groups => groups, error => error, error_key => error_key,
        notice => notice },
    )
}

pub(super) async fn settings(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
) -> Response {
    settings_page(&web, &s, None, None)
}

pub(super) async fn set_setting(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Form(f): Fields,
) -> Response {
    let (key, value) = (field(&f, "key"), field(&f, "value"));
    let result = web.db().set_setting(key, value);
    match result {
        Ok(v) => settings_page(&web, &s, None, Some(format!("{key} = {v}"))),
        Err(e) => {
            let mut r = settings_page(&web, &s, Some((key.to_string(), e.to_string())), None);
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    }
}

// ---- ring groups ----

fn groups_page(web: &Web, s: &Session, error: Option<String>) -> Response {
    let groups: Vec<_> = web
        .db()
        .ring_groups()
        .unwrap_or_default()
        .into_iter()
        .map(|(n, m)| context! { number => n, members => m.join(", ") })
        .collect();
    web.page(
        "groups.html",
        Some(s),
        context! { title => "Ring groups", groups => groups, error => error },
    )
}

pub(super) async fn groups(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
) -> Response {
    groups_page(&web, &s, None)
}

pub(super) async fn set_group(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Form(f): Fields,
) -> Response {
    let members: Vec<String> = field(&f, "members")
        .split(',')
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    let result = web.db().set_ring_group(field(&f, "number"), &members);
    match result {
        Ok(()) => Redirect::to("/groups").into_response(),
        Err(e) => {
            let mut r = groups_page(&web, &s, Some(e.to_string()));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    }
}

pub(super) async fn delete_group(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Path(number): Path<String>,
) -> Response {
    let done = web.db().delete_ring_group(&number);
    match done {
        Ok(true) => Redirect::to("/groups").into_response(),
        Ok(false) => refused(
            &web,
            &s,
            StatusCode::NOT_FOUND,
            format!("group {number}: no such group"),
        ),
        Err(e) => refused(&web, &s, StatusCode::BAD_REQUEST, e.to_string()),
    }
}

// ---- voicemail ----

pub(super) async fn voicemail(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
) -> Response {
    let db = web.db();
    let boxes: Vec<_> = db
        .message_counts()
        .unwrap_or_default()
        .into_iter()
        .map(|(mailbox, new, old)| {
            let messages: Vec<_> = db
                .messages(&mailbox)
                .unwrap_or_default()
                .into_iter()
                .map(|m| context! { id => m.id, caller => m.caller, at => m.at, heard => m.heard })
                .collect();
            context! { mailbox => mailbox, new => new, old => old, messages => messages }
        })
        .collect();
    drop(db);
    web.page(
        "voicemail.html",
        Some(&s),
        context! { title => "Voicemail", boxes => boxes },
    )
}

/// The message's file, if it is one under the voicemail directory.
fn message_file(web: &Web, id: i64) -> Option<(stations::db::Message, std::path::PathBuf)> {
    let m = web.db().message(id).ok().flatten()?;
    let root = web.voicemail.canonicalize().ok()?;
    let file = std::path::Path::new(&m.path).canonicalize().ok()?;
    file.starts_with(&root).then_some((m, file))
}

#[derive(Deserialize)]
pub(super) struct Download {
    #[serde(default)]
    download: bool,
}

pub(super) async fn message_audio(
    State(web): State<Arc<Web>>,
    Path(id): Path<i64>,
    Query(d): Query<Download>,
) -> Response {
    let Some((m, file)) = message_file(&web, id) else {
        return (StatusCode::NOT_FOUND, "no such message\n").into_response();
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) if bytes.len() <= 64 * BODY_LIMIT => {
            let disposition = format!(
                "{}; filename=\"{}-{}.wav\"",
                if d.download { "attachment" } else { "inline" },
                m.mailbox.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
                m.id
            );
            (
                [
                    (header::CONTENT_TYPE, "audio/wav".to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                bytes,
            )
                .into_response()
        }
        _ => (StatusCode::NOT_FOUND, "the message's file is gone\n").into_response(),
    }
}

/// Deletes a message (the file, then its row); the PBX's next MWI tick tells the phones.
pub(super) async fn delete_message(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    let Some(m) = web.db().message(id).ok().flatten() else {
        return refused(
            &web,
            &s,
            StatusCode::NOT_FOUND,
            format!("message {id}: no such message"),
        );
    };
    if let Some((_, file)) = message_file(&web, id) {
        let _ = std::fs::remove_file(file);
    }
    let done = web.db().delete_message(m.id);
    match done {
        Ok(()) => Redirect::to("/voicemail").into_response(),
        Err(e) => refused(&web, &s, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

// ---- logs and call records ----

pub(super) async fn logs(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Query(q): Query<Search>,
) -> Response {
    let db = web.db();
    let access: Vec<_> = db
        .access_log(1000)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| matches(&q.q, &[&a.last.address, &a.last.caller, &a.last.reason]))
        .map(|a| {
            context! { at => a.last.at, first_at => a.first_at, count => a.count,
            address => a.last.address, caller => a.last.caller, reason => a.last.reason }
        })
        .collect();
    let provisioning: Vec<_> = db
        .log_tail(1000)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| matches(&q.q, &[&e.address, &e.protocol, &e.file, &e.result]))
        .map(|e| {
            context! { at => e.at, address => e.address, protocol => e.protocol, file => e.file,
            bytes => e.bytes, result => e.result }
        })
        .collect();
    drop(db);
    web.page(
        "logs.html",
        Some(&s),
        context! { title => "Logs", access => access, provisioning => provisioning, q => q.q },
    )
}

fn call_rows(web: &Web, q: &str) -> Vec<stations::db::CallRecord> {
    web.db()
        .call_records(10_000)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| matches(q, &[&c.caller, &c.dialled, &c.callee, &c.disposition]))
        .collect()
}

pub(super) async fn calls(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Query(q): Query<Search>,
) -> Response {
    let rows: Vec<_> = call_rows(&web, &q.q)
        .into_iter()
        .take(1000)
        .map(|c| {
            context! { started => c.started, answered => c.answered, ended => c.ended,
            caller => c.caller, dialled => c.dialled, callee => c.callee,
            disposition => c.disposition, status => c.status, duration => c.duration() }
        })
        .collect();
    web.page(
        "calls.html",
        Some(&s),
        context! { title => "Call records", rows => rows, q => q.q },
    )
}

pub(super) async fn export_calls(
    State(web): State<Arc<Web>>,
    Extension(s): Extension<Session>,
    Query(q): Query<Search>,
) -> Response {
    let write = || -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "started",
            "answered",
            "ended",
            "caller",
            "dialled",
            "callee",
            "disposition",
            "status",
            "seconds",
        ])?;
        for c in call_rows(&web, &q.q) {
            w.write_record([
                stations::db::readable_time(c.started),
                c.answered
                    .map(stations::db::readable_time)
                    .unwrap_or_default(),
                stations::db::readable_time(c.ended),
                csv_safe(&c.caller),
                csv_safe(&c.dialled),
                csv_safe(&c.callee),
                c.disposition.clone(),
                c.status.to_string(),
                c.duration().to_string(),
            ])?;
        }
        Ok(w.into_inner()?)
    };
    match write() {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/csv"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"calls.csv\"",
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => refused(&web, &s, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A value a spreadsheet will not run as a formula (an outside caller's number is whatever
/// the provider says).
fn csv_safe(v: &str) -> String {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_string()
    }
}
