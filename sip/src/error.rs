//! Errors of the message layer: why a message was refused.

use thiserror::Error;

/// Why bytes could not be accepted as a SIP message.
///
/// Every variant names what is wrong so that a `400` reason phrase, a log line or
/// `sip-parse` output tells the sender exactly which part was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("message head is not complete")]
    Incomplete,
    #[error("message exceeds the size limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("more than {limit} header lines")]
    TooManyHeaders { limit: usize },
    #[error("message head is not valid UTF-8")]
    NotUtf8,
    #[error("bad start line: {0}")]
    StartLine(String),
    #[error("unsupported SIP version {0:?}")]
    Version(String),
    #[error("malformed header line {0:?}")]
    HeaderLine(String),
    #[error("bad {name} header: {reason}")]
    Header { name: String, reason: String },
    #[error("missing mandatory header {0}")]
    Missing(&'static str),
    #[error("Content-Length {declared} is larger than the {available} body bytes")]
    BodyTruncated { declared: usize, available: usize },
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMismatch { method: String, cseq: String },
}

impl ParseError {
    pub(crate) fn header(name: impl Into<String>, reason: impl Into<String>) -> Self {
        ParseError::Header {
            name: name.into(),
            reason: reason.into(),
        }
    }
}
