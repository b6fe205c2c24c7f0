//! Building out-of-dialog requests: fresh branch, tags and Call-ID, the mandatory headers.

use crate::ParseError;
use crate::message::Request;
use crate::method::Method;
use crate::transaction::TransportKind;
use crate::transaction::key::MAGIC_COOKIE;
use crate::uri::Uri;
use ezk_sip_types::Name;
use rand::Rng;
use std::net::SocketAddr;

/// A new RFC 3261 branch (magic cookie + 64 random bits).
pub fn new_branch() -> String {
    format!("{MAGIC_COOKIE}{:016x}", rand::thread_rng().r#gen::<u64>())
}

/// A new From/To tag.
pub fn new_tag() -> String {
    format!(
        "{:012x}",
        rand::thread_rng().r#gen::<u64>() & 0xffff_ffff_ffff
    )
}

/// A new Call-ID, unique per `host`.
pub fn new_call_id(host: &str) -> String {
    format!("{:024x}@{host}", rand::thread_rng().r#gen::<u128>() >> 32)
}

/// The Via value a request sent from `local` over `transport` carries (with `rport`).
pub fn via_value(transport: TransportKind, local: SocketAddr, branch: &str) -> String {
    format!(
        "SIP/2.0/{} {local};branch={branch};rport",
        transport.via_name()
    )
}

/// Gives the request's From the display name `name`, as a quoted string (RFC 3261 §25.1);
/// an empty name leaves it as it is.
pub fn set_display_name(request: &mut Request, name: &str) {
    if name.is_empty() {
        return;
    }
    let from = request
        .headers
        .remove(&Name::FROM)
        .and_then(|v| v.into_iter().next())
        .map(|v| v.to_string())
        .unwrap_or_default();
    let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
    request
        .headers
        .insert(Name::FROM, format!("\"{quoted}\" {from}"));
}

/// An out-of-dialog request from `from` to `to` (both URIs, e.g. `sip:201@127.0.0.1`), sent
/// from `local`: Via with a new branch, From with a new tag, To, Call-ID, CSeq 1,
/// Max-Forwards 70 and a Contact at `local`.
pub fn request(
    method: Method,
    target: &str,
    from: &str,
    to: &str,
    transport: TransportKind,
    local: SocketAddr,
) -> Result<Request, ParseError> {
    let mut r = Request::new(method.clone(), Uri::parse_request_uri(target)?);
    let h = &mut r.headers;
    h.insert(Name::VIA, via_value(transport, local, &new_branch()));
    h.insert(Name::MAX_FORWARDS, "70");
    h.insert(Name::FROM, format!("<{from}>;tag={}", new_tag()));
    h.insert(Name::TO, format!("<{to}>"));
    h.insert(Name::CALL_ID, new_call_id(&local.ip().to_string()));
    h.insert(Name::CSEQ, format!("1 {method}"));
    let user = from
        .split_once(':')
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    h.insert(
        Name::CONTACT,
        format!("<sip:{user}{local}{}>", transport_param(transport)),
    );
    Ok(r)
}

/// The URI parameter that names `transport` in a Contact (none for UDP, the default).
pub fn transport_param(transport: TransportKind) -> &'static str {
    match transport {
        TransportKind::Udp => "",
        TransportKind::Tcp => ";transport=tcp",
        TransportKind::Tls => ";transport=tls",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_display_name_is_quoted_and_escaped() {
        let local: SocketAddr = "10.0.0.5:5060".parse().unwrap_or_else(|_| unreachable!());
        let mut r = request(
            Method::Invite,
            "sip:202@10.0.0.1",
            "sip:201@10.0.0.1",
            "sip:202@10.0.0.1",
            TransportKind::Udp,
            local,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        set_display_name(&mut r, "");
        let plain = r.headers.get_raw(&Name::FROM).next().map(|v| v.to_string());
        assert!(
            plain.as_deref().is_some_and(|f| f.starts_with("<sip:201@")),
            "{plain:?}"
        );
        set_display_name(&mut r, r#"Sales "East" \ 2"#);
        let from = r.headers.get_raw(&Name::FROM).next().map(|v| v.to_string());
        assert!(
            from.as_deref()
                .is_some_and(|f| f.starts_with(r#""Sales \"East\" \\ 2" <sip:201@"#)),
            "{from:?}"
        );
    }
}
