//! The HTTP admin endpoint: the SIP Phone Status table and the access information as JSON,
//! for dashboards and monitoring. Every request must carry the admin token
//! (`Authorization: Bearer …`), kept in a file beside the database (mode 0600, created by the
//! first `serve`); the listener is on loopback unless told otherwise.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use stations::Db;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// The token file that belongs to a database: `office.db` → `office.db.admin-token`.
pub fn token_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".admin-token");
    PathBuf::from(p)
}

/// Reads the admin token, creating a random one (mode 0600) the first time.
pub fn load_or_create_token(path: &Path) -> std::io::Result<String> {
    if let Ok(t) = std::fs::read_to_string(path) {
        let t = t.trim().to_string();
        if t.len() >= 32 {
            return Ok(t);
        }
        return Err(std::io::Error::other(format!(
            "{}: the admin token is shorter than 32 characters",
            path.display()
        )));
    }
    let token = hex::encode(rand::random::<[u8; 24]>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    writeln!(f, "{token}")?;
    Ok(token)
}

#[derive(Clone)]
struct Admin {
    db: Arc<Mutex<Db>>,
    token: Arc<str>,
}

/// `GET /status` and `GET /access-log?tail=N`, both JSON.
pub fn router(db: Arc<Mutex<Db>>, token: String) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/access-log", get(access_log))
        .with_state(Admin {
            db,
            token: token.into(),
        })
}

fn authorized(admin: &Admin, headers: &HeaderMap) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or_default();
    given.len() == admin.token.len() && bool::from(given.as_bytes().ct_eq(admin.token.as_bytes()))
}

/// The token of an `Authorization: Bearer TOKEN` value; the scheme is case-insensitive
/// (RFC 9110 §11.1), so `bearer` and `BEARER` are accepted too.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn json(
    admin: &Admin,
    headers: &HeaderMap,
    rows: impl FnOnce(&Db) -> anyhow::Result<Vec<serde_json::Value>>,
) -> Response {
    if !authorized(admin, headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"pbx-lite admin\"")],
            "admin token required\n",
        )
            .into_response();
    }
    let db = admin.db.lock().unwrap_or_else(|e| e.into_inner());
    match rows(&db) {
        Ok(v) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::Value::Array(v).to_string(),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n")).into_response(),
    }
}

async fn status(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    json(&admin, &headers, crate::status::stations)
}

#[derive(serde::Deserialize)]
struct Tail {
    tail: Option<i64>,
}

async fn access_log(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Query(q): Query<Tail>,
) -> Response {
    json(&admin, &headers, |db| {
        crate::status::access(db, q.tail.unwrap_or(100).clamp(1, 10_000))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_in_any_case() {
        for v in ["Bearer abc", "bearer abc", "BEARER  abc", " Bearer abc "] {
            assert_eq!(bearer_token(v), Some("abc"), "{v:?}");
        }
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
