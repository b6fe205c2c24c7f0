//! The provisioning web server: every file name TFTP serves, per-user files behind that
//! user's own credentials (HTTP basic auth), the Cisco IP Phone XML directory built from the
//! station database, and the Bria provisioning endpoint.

use crate::office::{Asker, Fetch, Office};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Entries per CiscoIPPhoneDirectory object (Cisco's limit).
pub const PAGE: usize = 32;

/// The routes, for [`crate::listener::serve`] (which gives them the connect info).
pub fn router(office: Arc<Office>) -> Router {
    Router::new()
        .route("/directory.xml", get(directory))
        .route("/bria", get(bria_get).post(bria_post))
        .route("/{*name}", get(file))
        .with_state(office)
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn local_host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| match h.strip_prefix('[') {
            // An IPv6 literal, with or without a port: [fd00::1]:8080.
            Some(v6) => v6.split(']').next().unwrap_or_default().to_string(),
            None => h.split(':').next().unwrap_or_default().to_string(),
        })
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// Was the server asked for by an address, or by the name `pbx.host` gives it? A web page
/// that rebinds its own domain name to the PBX's address (DNS rebinding) sends its own name,
/// and must not read the phones' files (with their passwords) through a browser on the LAN.
fn known_host(office: &Office, headers: &HeaderMap) -> bool {
    let host = local_host(headers);
    host.parse::<std::net::IpAddr>().is_ok()
        || office
            .db()
            .setting("pbx.host")
            .is_ok_and(|h| h.eq_ignore_ascii_case(&host))
}

fn content_type(name: &str) -> &'static str {
    let n = name.to_ascii_lowercase();
    if n.ends_with(".xml") || n.ends_with(".cps") {
        "text/xml"
    } else {
        "text/plain; charset=utf-8"
    }
}

async fn file(
    State(office): State<Arc<Office>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if name.split(['/', '\\']).any(|p| p == "..") || name.len() > crate::tftp::MAX_NAME {
        return (StatusCode::FORBIDDEN, "refused\n").into_response();
    }
    if !known_host(&office, &headers) {
        return (StatusCode::FORBIDDEN, "unknown Host\n").into_response();
    }
    let asker = Asker {
        protocol: "http",
        address: peer.ip().to_string(),
        local_host: local_host(&headers),
        credentials: basic_auth(&headers),
    };
    let (year, now) = crate::clock();
    let n = name.clone();
    let fetch = tokio::task::spawn_blocking(move || office.fetch(&n, &asker, year, now)).await;
    match fetch {
        Ok(Fetch::Found(body)) => (
            [(header::CONTENT_TYPE, content_type(&name))],
            Bytes::from(body),
        )
            .into_response(),
        Ok(Fetch::Forbidden) => unauthorized(),
        _ => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// 401 with the basic-auth challenge of the office's phones.
fn unauthorized() -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, "credentials required\n").into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"office-phones\""),
    );
    r
}

/// `CiscoIPPhoneDirectory` of every station, 32 entries a page, with paging soft keys.
async fn directory(
    State(office): State<Arc<Office>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let asker = Asker {
        protocol: "http",
        address: peer.ip().to_string(),
        local_host: local_host(&headers),
        credentials: basic_auth(&headers),
    };
    let (_, now) = crate::clock();
    let o = office.clone();
    let allowed = tokio::task::spawn_blocking(move || o.may_read_directory(&asker, now)).await;
    if !allowed.unwrap_or(false) {
        return unauthorized();
    }
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let (stations, title, base) = {
        let db = office.db();
        let settings = Office::settings(&db).unwrap_or_default();
        let server = Office::server(&settings, &local_host(&headers));
        (
            db.list().unwrap_or_default(),
            settings.get("directory.title").cloned().unwrap_or_default(),
            server.http,
        )
    };
    let pages = stations.len().div_ceil(PAGE).max(1);
    let page = page.min(pages);
    let entries = stations.iter().skip((page - 1) * PAGE).take(PAGE);
    let mut w = quick_xml::Writer::new(Vec::new());
    let text = |w: &mut quick_xml::Writer<Vec<u8>>, tag: &str, value: &str| {
        let _ = w.write_event(Event::Start(BytesStart::new(tag)));
        let _ = w.write_event(Event::Text(BytesText::new(value)));
        let _ = w.write_event(Event::End(BytesEnd::new(tag)));
    };
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("ISO-8859-1"), None)));
    let _ = w.write_event(Event::Start(BytesStart::new("CiscoIPPhoneDirectory")));
    text(&mut w, "Title", &title);
    text(&mut w, "Prompt", &format!("Page {page} of {pages}"));
    for s in entries {
        let _ = w.write_event(Event::Start(BytesStart::new("DirectoryEntry")));
        text(
            &mut w,
            "Name",
            if s.name.is_empty() {
                &s.number
            } else {
                &s.name
            },
        );
        text(&mut w, "Telephone", &s.number);
        let _ = w.write_event(Event::End(BytesEnd::new("DirectoryEntry")));
    }
    let mut keys = vec![("Dial", "SoftKey:Dial".to_string(), 1)];
    if page > 1 {
        keys.push(("Prev", format!("{base}/directory.xml?page={}", page - 1), 2));
    }
    keys.push(("Exit", "SoftKey:Exit".into(), 3));
    if page < pages {
        keys.push(("Next", format!("{base}/directory.xml?page={}", page + 1), 4));
    }
    for (name, url, pos) in keys {
        let _ = w.write_event(Event::Start(BytesStart::new("SoftKeyItem")));
        text(&mut w, "Name", name);
        text(&mut w, "URL", &url);
        text(&mut w, "Position", &pos.to_string());
        let _ = w.write_event(Event::End(BytesEnd::new("SoftKeyItem")));
    }
    let _ = w.write_event(Event::End(BytesEnd::new("CiscoIPPhoneDirectory")));
    ([(header::CONTENT_TYPE, "text/xml")], w.into_inner()).into_response()
}

/// Bria logs in with its user name and password: the reply is the station's INI, or
/// `Success=0` — the same for an unknown user as for a wrong password.
async fn bria(
    office: Arc<Office>,
    peer: SocketAddr,
    headers: HeaderMap,
    form: HashMap<String, String>,
) -> Response {
    let user = form.get("Username").cloned().unwrap_or_default();
    let password = form.get("Password").cloned().unwrap_or_default();
    let asker = Asker {
        protocol: "http",
        address: peer.ip().to_string(),
        local_host: local_host(&headers),
        credentials: Some((user, password)),
    };
    let (year, now) = crate::clock();
    let fetch = tokio::task::spawn_blocking(move || {
        let station = office.login(&asker, now)?;
        Some(office.fetch(&format!("bria-{}.ini", station.number), &asker, year, now))
    })
    .await
    .ok()
    .flatten();
    let body = match fetch {
        Some(Fetch::Found(b)) => b,
        _ => b"[DATA]\r\nSuccess=0\r\nFailure=\"Login failed\"\r\n".to_vec(),
    };
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn bria_get(
    State(o): State<Arc<Office>>,
    ConnectInfo(p): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    bria(o, p, h, q).await
}

async fn bria_post(
    State(o): State<Arc<Office>>,
    ConnectInfo(p): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    axum::Form(f): axum::Form<HashMap<String, String>>,
) -> Response {
    bria(o, p, h, f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_the_phone_asked_for() {
        let host = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, h.parse().unwrap());
            local_host(&m)
        };
        assert_eq!(host("192.168.1.10"), "192.168.1.10");
        assert_eq!(host("192.168.1.10:8080"), "192.168.1.10");
        assert_eq!(host("[fd00:77::1]"), "fd00:77::1");
        assert_eq!(host("[fd00:77::1]:8080"), "fd00:77::1");
        assert_eq!(local_host(&HeaderMap::new()), "127.0.0.1");
    }
}
