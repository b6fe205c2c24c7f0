//! The office's web admin, served by `pbx-lite serve` on the admin address: server-rendered
//! pages (minijinja templates, autoescaped) for the dashboard, stations, unknown phones,
//! settings, ring groups, voicemail, logs and call records, with one small script of our own
//! for the dashboard's live updates (Server-Sent Events) — no inline script, no CDN.
//!
//! Safe first: every page but the login needs a session (admin accounts from
//! `pbx-lite admin add`), every change needs the session's CSRF token (checked here, in one
//! place, before any handler runs), logins are throttled as SIP registrations are, every
//! response carries a Content-Security-Policy without inline script, and database access goes
//! through [`stations::Db`]'s bound parameters. The token endpoints of [`crate::admin`] stay
//! for scripts.

mod pages;
pub mod session;

use crate::calls::LiveCall;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use session::{LoginThrottle, Session, Sessions};
use stations::Db;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// The largest form the admin takes (a station import).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What the pages share.
pub struct Web {
    db: Arc<Mutex<Db>>,
    board: tokio::sync::watch::Receiver<Vec<LiveCall>>,
    sessions: Mutex<Sessions>,
    throttle: Mutex<LoginThrottle>,
    /// Served over HTTPS: the session cookie is `Secure`, and HSTS is sent.
    secure: bool,
    templates: minijinja::Environment<'static>,
    voicemail: PathBuf,
    /// Unix seconds now (sessions, the login throttle, queued actions).
    clock: fn() -> i64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

const TEMPLATES: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../web/templates/layout.html"),
    ),
    ("login.html", include_str!("../../web/templates/login.html")),
    (
        "dashboard.html",
        include_str!("../../web/templates/dashboard.html"),
    ),
    (
        "stations.html",
        include_str!("../../web/templates/stations.html"),
    ),
    (
        "station.html",
        include_str!("../../web/templates/station.html"),
    ),
    (
        "import.html",
        include_str!("../../web/templates/import.html"),
    ),
    (
        "unknown.html",
        include_str!("../../web/templates/unknown.html"),
    ),
    (
        "settings.html",
        include_str!("../../web/templates/settings.html"),
    ),
    (
        "groups.html",
        include_str!("../../web/templates/groups.html"),
    ),
    (
        "voicemail.html",
        include_str!("../../web/templates/voicemail.html"),
    ),
    ("logs.html", include_str!("../../web/templates/logs.html")),
    ("calls.html", include_str!("../../web/templates/calls.html")),
];

impl Web {
    /// The admin over `db`, showing the calls on `board`; `secure` when served over HTTPS.
    pub fn new(
        db: Arc<Mutex<Db>>,
        board: tokio::sync::watch::Receiver<Vec<LiveCall>>,
        secure: bool,
        voicemail: PathBuf,
        clock: fn() -> i64,
    ) -> anyhow::Result<Arc<Web>> {
        let mut templates = minijinja::Environment::new();
        for (name, source) in TEMPLATES {
            templates.add_template(name, source)?;
        }
        templates.add_filter("time", |t: i64| {
            stations::db::readable_time(t).replace('T', " ")
        });
        Ok(Arc::new(Web {
            db,
            board,
            sessions: Mutex::default(),
            throttle: Mutex::default(),
            secure,
            templates,
            voicemail,
            clock,
        }))
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn db(&self) -> MutexGuard<'_, Db> {
        lock(&self.db)
    }

    /// Renders `name` with `ctx` and the session's name and CSRF token.
    fn page(&self, name: &str, session: Option<&Session>, ctx: minijinja::Value) -> Response {
        let ctx = minijinja::context! {
            admin => session.map(|s| s.admin.clone()),
            csrf => session.map(|s| s.csrf.clone()),
            ..ctx
        };
        match self
            .templates
            .get_template(name)
            .and_then(|t| t.render(ctx))
        {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::warn!("web admin: {name}: {e:#}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be made\n",
                )
                    .into_response()
            }
        }
    }
}

/// The pages, the script and style, the live events, and `token_api` (the bearer-token
/// endpoints, which check their own token).
pub fn router(web: Arc<Web>, token_api: Router) -> Router {
    let secure = web.secure;
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/events", get(pages::events))
        .route("/logout", post(pages::logout))
        .route("/stations", get(pages::stations).post(pages::add_station))
        .route("/stations/new", get(pages::new_station))
        .route(
            "/stations/import",
            get(pages::import_form).post(pages::import),
        )
        .route("/stations/export", get(pages::export))
        .route(
            "/stations/{number}",
            get(pages::station).post(pages::edit_station),
        )
        .route("/stations/{number}/delete", post(pages::delete_station))
        .route("/stations/{number}/resync", post(pages::resync))
        .route("/unknown", get(pages::unknown).post(pages::assign))
        .route("/settings", get(pages::settings).post(pages::set_setting))
        .route("/groups", get(pages::groups).post(pages::set_group))
        .route("/groups/{number}/delete", post(pages::delete_group))
        .route("/voicemail", get(pages::voicemail))
        .route("/voicemail/{id}/audio", get(pages::message_audio))
        .route("/voicemail/{id}/delete", post(pages::delete_message))
        .route("/logs", get(pages::logs))
        .route("/calls", get(pages::calls))
        .route("/calls/export", get(pages::export_calls))
        .route_layer(middleware::from_fn_with_state(web.clone(), guard))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/static/{file}", get(static_file))
        .with_state(web)
        .merge(token_api)
        .layer(middleware::from_fn(move |req, next| {
            headers(secure, req, next)
        }))
}

/// Every page but the login: a live session, and on a change its CSRF token in the form.
async fn guard(State(web): State<Arc<Web>>, req: Request, next: Next) -> Response {
    let t = web.now();
    let session = session::cookie_of(req.headers()).and_then(|id| lock(&web.sessions).get(&id, t));
    let Some(session) = session else {
        return if req.method() == Method::GET {
            Redirect::to("/login").into_response()
        } else {
            (StatusCode::UNAUTHORIZED, "log in first\n").into_response()
        };
    };
    let mut req = req;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "the form is too large\n").into_response();
        };
        let fields: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        let given = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map_or("", |(_, v)| v.as_str());
        if !session.csrf_ok(given) {
            return (
                StatusCode::FORBIDDEN,
                "refused: the form's CSRF token is missing or wrong (reload the page)\n",
            )
                .into_response();
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}

/// The headers every response carries: no inline script or style, nothing from elsewhere,
/// no framing, no caching of pages that hold the office's details.
async fn headers(secure: bool, req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
             base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if secure {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    r
}

async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "admin.js" => (include_str!("../../web/static/admin.js"), "text/javascript"),
        "admin.css" => (include_str!("../../web/static/admin.css"), "text/css"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response()
}
