//! # sip — the signalling core
//!
//! Layer: signalling, below every application (pbx-lite, softphone). Knows nothing of
//! media, the PBX or the softphone.
//!
//! ## Brief overview
//! - [`message`]: [`Message`], [`Request`], [`Response`] over ezk-sip-types' header model,
//!   parsed from datagrams or streams and printed back; [`validate`] refuses what RFC 3261
//!   forbids; [`ParseError`] says why.
//! - [`uri`], [`method`], [`headers`]: Request-URIs (sip, sips, tel), exact methods, and the
//!   typed headers ezk lacks.
//! - [`registration`]: a client registration (a phone's line, the PBX's trunk) as a pure
//!   state machine told the time: digest, 423, refresh, backoff, a stop after 403.
pub mod auth;
pub mod build;
pub mod clock;
pub mod dialog;
pub mod endpoint;
pub mod error;
pub mod headers;
pub mod message;
pub mod method;
pub mod rate;
pub mod refer;
pub mod registration;
pub mod sdp;
pub mod sim;
pub mod throttle;
pub mod transaction;
pub mod transport;
pub mod uri;
pub mod validate;

pub use error::ParseError;
pub use ezk_sip_types as types;
pub use message::{Message, Request, Response};
pub use method::Method;
pub use uri::Uri;
