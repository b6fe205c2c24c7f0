//! Transaction identifiers: how a message finds its transaction.
//!
//! - Client side (§17.1.3): the top Via branch and the CSeq method.
//! - Server side (§17.2.3): branch, sent-by and method when the branch carries the RFC 3261
//!   magic cookie `z9hG4bK`, with ACK counted as INVITE — and the Call-ID and CSeq number,
//!   which never differ for a true retransmission, ACK or CANCEL but tell apart new requests
//!   from clients that reuse a branch (RFC 4475's cparam01/cparam02 do); otherwise the RFC 2543
//!   fallback of Request-URI, From tag, Call-ID, CSeq number and top Via.

use crate::message::{Request, Response};
use crate::method::Method;
use ezk_sip_types::Name;
use std::sync::Arc;

/// The RFC 3261 branch prefix.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Identifies one transaction of an endpoint. Shared, not copied: the layer's table, its
/// timers, the TU's events and the merged-request index all hold the same key, and a busy
/// server has hundreds of thousands of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TsxKey(Arc<Kind>);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Client {
        branch: String,
        method: Method,
    },
    Server {
        branch: String,
        sent_by: String,
        method: Method,
        /// Not part of RFC 3261's rule, but equal in every retransmission, ACK and CANCEL of
        /// a request: keeps clients that reuse a branch for new requests from colliding.
        call_id: String,
        cseq: u32,
    },
    /// A server transaction for a request without the magic cookie (RFC 2543 peers).
    Server2543 {
        request_uri: String,
        from_tag: String,
        call_id: String,
        cseq: u32,
        via: String,
        method: Method,
    },
}

/// ACK belongs to the INVITE's server transaction.
fn server_method(m: &Method) -> Method {
    if *m == Method::Ack {
        Method::Invite
    } else {
        m.clone()
    }
}

impl TsxKey {
    fn of(kind: Kind) -> Self {
        TsxKey(Arc::new(kind))
    }

    /// The client transaction of a request to be sent with top Via branch `branch`.
    pub fn client_with(branch: String, method: Method) -> Self {
        TsxKey::of(Kind::Client { branch, method })
    }

    /// The client transaction a request starts.
    pub fn client(request: &Request) -> Option<Self> {
        let via = request.top_via()?;
        Some(TsxKey::client_with(
            via.params.get_val("branch")?.to_string(),
            request.cseq()?.method,
        ))
    }

    /// The client transaction a response belongs to.
    pub fn for_response(response: &Response) -> Option<Self> {
        let via = response.top_via()?;
        Some(TsxKey::client_with(
            via.params.get_val("branch")?.to_string(),
            response.cseq()?.method,
        ))
    }

    /// The server transaction a received request belongs to.
    pub fn server(request: &Request) -> Option<Self> {
        let via = request.top_via()?;
        let method = server_method(&request.method);
        match via.params.get_val("branch") {
            Some(branch) if branch.starts_with(MAGIC_COOKIE) => Some(TsxKey::of(Kind::Server {
                branch: branch.to_string(),
                sent_by: format!("{}:{}", via.sent_by.host, via.sent_by.port.unwrap_or(0))
                    .to_ascii_lowercase(),
                method,
                call_id: request.headers.get_raw(&Name::CALL_ID).next()?.to_string(),
                cseq: request.cseq()?.seq,
            })),
            _ => {
                request.headers.get_raw(&Name::FROM).next()?;
                Some(TsxKey::of(Kind::Server2543 {
                    request_uri: request.uri.to_string(),
                    from_tag: request
                        .from_tag()
                        .map(|t| t.to_string())
                        .unwrap_or_default(),
                    call_id: request.headers.get_raw(&Name::CALL_ID).next()?.to_string(),
                    cseq: request.cseq()?.seq,
                    via: request.headers.get_raw(&Name::VIA).next()?.to_string(),
                    method,
                }))
            }
        }
    }

    /// The same transaction identity for another method (CANCEL → its INVITE).
    pub fn with_method(&self, m: Method) -> Self {
        let mut k = Kind::clone(&self.0);
        match &mut k {
            Kind::Client { method, .. }
            | Kind::Server { method, .. }
            | Kind::Server2543 { method, .. } => *method = m,
        }
        TsxKey::of(k)
    }

    pub fn method(&self) -> &Method {
        match &*self.0 {
            Kind::Client { method, .. }
            | Kind::Server { method, .. }
            | Kind::Server2543 { method, .. } => method,
        }
    }
}
