//! Dialogs (RFC 3261 §12): identity (Call-ID and tags), route set, CSeq in both directions
//! and the remote target, created from a 1xx/2xx with a To tag (UAC) or from the request we
//! answer (UAS), refreshed by target-refresh requests and their 2xx.
//!
//! The dialog builds in-dialog requests with the right Request-URI and Route headers for
//! both loose and strict routers (§12.2.1.1); the caller supplies the Via and sends it to
//! [`Dialog::next_hop`].

use crate::headers::CSeq;
use crate::message::{Request, Response};
use crate::method::Method;
use crate::uri::Uri;
use crate::validate::split_list;
use ezk_sip_types::Name;
use ezk_sip_types::header::typed::{Contact, FromTo};

/// Call-ID, local tag, remote tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog a received request belongs to, seen from us (the UAS side of it).
    pub fn of_request(request: &Request) -> Option<Self> {
        Some(DialogId {
            call_id: call_id(request)?,
            local_tag: request.to_tag()?.to_string(),
            remote_tag: request
                .from_tag()
                .map(|t| t.to_string())
                .unwrap_or_default(),
        })
    }
}

/// Why a request was refused inside a dialog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error("CSeq {got} is not above {last}: out of order (answer 500)")]
    OutOfOrder { last: u32, got: u32 },
    #[error("the message does not belong to this dialog")]
    Mismatch,
}

/// One dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub id: DialogId,
    /// Our From/To value (without tag) and the peer's.
    pub local_uri: String,
    pub remote_uri: String,
    pub remote_target: Uri,
    /// Route set, in the order requests carry it.
    pub route_set: Vec<String>,
    pub local_seq: u32,
    pub remote_seq: Option<u32>,
    /// Established by a 2xx (false while early).
    pub confirmed: bool,
}

fn call_id(r: &Request) -> Option<String> {
    r.headers
        .get_raw(&Name::CALL_ID)
        .next()
        .map(|c| c.to_string())
}

fn uri_only(ft: &FromTo) -> String {
    let mut bare = ft.clone();
    bare.tag = None;
    crate::message::to_value(&bare)
}

fn contact_target(headers: &ezk_sip_types::Headers) -> Option<Uri> {
    let contact: Contact = headers.get(Name::CONTACT).ok()?;
    Some(Uri::Sip(contact.uri.uri))
}

fn record_routes(headers: &ezk_sip_types::Headers) -> Vec<String> {
    headers
        .get_raw(&Name::RECORD_ROUTE)
        .flat_map(|v| split_list(v).into_iter().map(|s| s.trim().to_string()))
        .collect()
}

impl Dialog {
    /// The UAC's dialog from the request it sent and a 101–299 response with a To tag.
    pub fn from_uac(request: &Request, response: &Response) -> Option<Self> {
        if !(101..300).contains(&response.status) {
            return None;
        }
        let from: FromTo = request.headers.get(Name::FROM).ok()?;
        let to: FromTo = response.headers.get(Name::TO).ok()?;
        let mut route_set = record_routes(&response.headers);
        route_set.reverse();
        Some(Dialog {
            id: DialogId {
                call_id: call_id(request)?,
                local_tag: from.tag.as_ref()?.to_string(),
                remote_tag: to.tag.as_ref()?.to_string(),
            },
            local_uri: uri_only(&from),
            remote_uri: uri_only(&to),
            remote_target: contact_target(&response.headers)?,
            route_set,
            local_seq: request.cseq()?.seq,
            remote_seq: None,
            confirmed: response.status >= 200,
        })
    }

    /// The UAS's dialog from the request it answers with To tag `local_tag`.
    pub fn from_uas(request: &Request, local_tag: &str) -> Option<Self> {
        let from: FromTo = request.headers.get(Name::FROM).ok()?;
        let to: FromTo = request.headers.get(Name::TO).ok()?;
        Some(Dialog {
            id: DialogId {
                call_id: call_id(request)?,
                local_tag: local_tag.to_string(),
                remote_tag: from.tag.as_ref().map(|t| t.to_string()).unwrap_or_default(),
            },
            local_uri: uri_only(&to),
            remote_uri: uri_only(&from),
            remote_target: contact_target(&request.headers)?,
            route_set: record_routes(&request.headers),
            local_seq: rand_seq(),
            remote_seq: Some(request.cseq()?.seq),
            confirmed: false,
        })
    }

    /// Where an in-dialog request goes first: the first route, or the remote target.
    pub fn next_hop(&self) -> String {
        match self.route_set.first() {
            Some(r) => r
                .trim()
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or_default()
                .to_string(),
            None => self.remote_target.to_string(),
        }
    }

    fn loose_first(&self) -> bool {
        self.route_set
            .first()
            .is_none_or(|r| r.contains(";lr") || r.contains(";LR"))
    }

    /// A new in-dialog request (§12.2.1.1). `via` is the full Via value with a new branch.
    /// ACK and CANCEL reuse the current CSeq; every other method takes the next one.
    pub fn request(&mut self, method: Method, via: &str) -> Request {
        let seq = match method {
            Method::Ack | Method::Cancel => self.local_seq,
            _ => {
                self.local_seq += 1;
                self.local_seq
            }
        };
        self.build(method, seq, via)
    }

    /// The ACK to a 2xx for the INVITE with CSeq `invite_seq` (§13.2.2.4).
    pub fn ack(&self, invite_seq: u32, via: &str) -> Request {
        self.build(Method::Ack, invite_seq, via)
    }

    fn build(&self, method: Method, seq: u32, via: &str) -> Request {
        let (uri, routes) = if self.loose_first() {
            (self.remote_target.clone(), self.route_set.clone())
        } else {
            let first = self.next_hop();
            let mut rest: Vec<String> = self.route_set[1..].to_vec();
            rest.push(format!("<{}>", self.remote_target));
            let uri = Uri::parse_request_uri(&first).unwrap_or(self.remote_target.clone());
            (uri, rest)
        };
        let mut r = Request::new(method.clone(), uri);
        let h = &mut r.headers;
        h.insert(Name::VIA, via.to_string());
        for route in routes {
            h.insert(Name::ROUTE, route);
        }
        h.insert(Name::MAX_FORWARDS, "70");
        h.insert(
            Name::FROM,
            format!("{};tag={}", self.local_uri, self.id.local_tag),
        );
        let to = if self.id.remote_tag.is_empty() {
            self.remote_uri.clone()
        } else {
            format!("{};tag={}", self.remote_uri, self.id.remote_tag)
        };
        h.insert(Name::TO, to);
        h.insert(Name::CALL_ID, self.id.call_id.clone());
        h.insert(Name::CSEQ, CSeq::new(seq, method).to_string());
        r
    }

    /// A request received in this dialog: checks CSeq order (§12.2.2) and refreshes the
    /// remote target on INVITE/UPDATE with a Contact.
    pub fn handle_request(&mut self, request: &Request) -> Result<(), DialogError> {
        let id = DialogId::of_request(request).ok_or(DialogError::Mismatch)?;
        if id != self.id {
            return Err(DialogError::Mismatch);
        }
        let seq = request.cseq().ok_or(DialogError::Mismatch)?.seq;
        if !matches!(request.method, Method::Ack | Method::Cancel) {
            if let Some(last) = self.remote_seq
                && seq <= last
            {
                return Err(DialogError::OutOfOrder { last, got: seq });
            }
            self.remote_seq = Some(seq);
        }
        if is_target_refresh(&request.method)
            && let Some(target) = contact_target(&request.headers)
        {
            self.remote_target = target;
        }
        Ok(())
    }

    /// A response to a request we sent in this dialog: a 2xx confirms an early dialog and a
    /// 2xx to a target refresh updates the remote target.
    pub fn handle_response(&mut self, response: &Response) {
        if !(200..300).contains(&response.status) {
            return;
        }
        self.confirmed = true;
        let refresh = response
            .cseq()
            .is_some_and(|c| is_target_refresh(&c.method));
        if refresh && let Some(target) = contact_target(&response.headers) {
            self.remote_target = target;
        }
    }
}

/// Requests whose Contact moves the dialog's remote target: INVITE and UPDATE (RFC 3261
/// §12.2, RFC 3311), SUBSCRIBE and NOTIFY (RFC 6665 §4.1.2.1, §4.2.2).
fn is_target_refresh(method: &Method) -> bool {
    matches!(
        method,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify
    )
}

/// A random initial CSeq below 2^31 (§8.1.1.5), small enough to leave room to count up.
fn rand_seq() -> u32 {
    use rand::Rng;
    rand::thread_rng().gen_range(1..1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    const INVITE: &str = "INVITE sip:202@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
Record-Route: <sip:p1.test;lr>, <sip:p2.test;lr>\r\n\
From: \"A\" <sip:201@127.0.0.1>;tag=a1\r\nTo: <sip:202@127.0.0.1>\r\n\
Call-ID: d1\r\nCSeq: 7 INVITE\r\nContact: <sip:201@127.0.0.1:5070>\r\n\r\n";

    fn invite() -> Request {
        Message::parse_datagram(INVITE.as_bytes())
            .unwrap()
            .as_request()
            .unwrap()
            .clone()
    }

    #[test]
    fn uas_and_uac_see_mirrored_dialogs() {
        let req = invite();
        let mut uas = Dialog::from_uas(&req, "b1").unwrap();
        let mut ok = req.make_response(200, "OK");
        ok.set_to_tag("b1");
        ok.headers.insert(Name::CONTACT, "<sip:202@127.0.0.1:5080>");
        let mut uac = Dialog::from_uac(&req, &ok).unwrap();
        assert_eq!(uac.id.local_tag, uas.id.remote_tag);
        assert_eq!(uac.id.remote_tag, uas.id.local_tag);
        // UAC sees the route set reversed; both use loose routing.
        assert_eq!(uac.route_set, vec!["<sip:p2.test;lr>", "<sip:p1.test;lr>"]);
        assert_eq!(uac.next_hop(), "sip:p2.test;lr");
        let bye = uac.request(Method::Bye, "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK2");
        assert_eq!(bye.cseq().unwrap(), CSeq::new(8, Method::Bye));
        assert_eq!(bye.uri.to_string(), "sip:202@127.0.0.1:5080");
        assert_eq!(bye.headers.get_raw(&Name::ROUTE).count(), 2);
        uas.handle_request(&bye).unwrap();
        assert_eq!(
            uas.handle_request(&bye),
            Err(DialogError::OutOfOrder { last: 8, got: 8 })
        );
        let ack = uac.ack(7, "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK3");
        assert_eq!(ack.cseq().unwrap(), CSeq::new(7, Method::Ack));
    }

    #[test]
    fn strict_router_goes_in_the_request_uri() {
        let mut d = Dialog::from_uas(&invite(), "b1").unwrap();
        d.route_set = vec!["<sip:strict.test>".into()];
        let r = d.request(Method::Info, "SIP/2.0/UDP h;branch=z9hG4bK9");
        assert_eq!(r.uri.to_string(), "sip:strict.test");
        let routes: Vec<_> = r.headers.get_raw(&Name::ROUTE).collect();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].as_str(), "<sip:201@127.0.0.1:5070>");
    }

    #[test]
    fn reinvite_refreshes_the_target() {
        let req = invite();
        let mut uas = Dialog::from_uas(&req, "b1").unwrap();
        let mut re = req.clone();
        re.headers.remove(&Name::TO);
        re.headers.insert(Name::TO, "<sip:202@127.0.0.1>;tag=b1");
        re.headers.remove(&Name::CSEQ);
        re.headers.insert(Name::CSEQ, "8 INVITE");
        re.headers.remove(&Name::CONTACT);
        re.headers.insert(Name::CONTACT, "<sip:201@127.0.0.2:5090>");
        uas.handle_request(&re).unwrap();
        assert_eq!(uas.remote_target.to_string(), "sip:201@127.0.0.2:5090");
    }
}
