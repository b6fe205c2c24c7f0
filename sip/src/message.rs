//! The message model: [`Request`], [`Response`] and [`Message`], parsed from datagrams or
//! from a stream (framing by Content-Length) and printed back to bytes.
//!
//! Headers live in ezk's [`Headers`] container (raw values, decoded to typed headers on
//! demand, compact names understood). Every parsed message passes [`crate::validate`]
//! before it is handed out, so code above this layer never sees what RFC 3261 forbids.

use crate::error::ParseError;
use crate::headers::CSeq;
use crate::method::{Method, is_token_char};
use crate::uri::Uri;
use crate::validate;
use bytes::{Bytes, BytesMut};
use bytesstr::BytesStr;
use ezk_sip_types::header::ExtendValues;
use ezk_sip_types::header::headers::OneOrMore;
use ezk_sip_types::header::typed::{CallID, FromTo, Via};
use ezk_sip_types::print::PrintCtx;
use ezk_sip_types::{Headers, Name};
use std::fmt::Write as _;

/// Largest message accepted from any transport (RFC 3261 §18.1.1 lets UDP grow to 65,535).
pub const MAX_MESSAGE_SIZE: usize = 65_535;

/// Most header lines in one message. Real messages have a few dozen (a Via and a
/// Record-Route per proxy on the way); thousands are an attack: the header container looks a
/// name up among those it holds, so parsing time grows with the square of the count.
pub const MAX_HEADER_LINES: usize = 256;

/// A SIP request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Bytes,
}

/// A request or a response.
#[derive(Debug, Clone)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Message {
    /// Parses one message from a datagram. Leading CRLFs (keep-alives) are skipped, a missing
    /// Content-Length means "the rest of the datagram", and octets past Content-Length are
    /// discarded (RFC 3261 §18.3).
    pub fn parse_datagram(buf: &[u8]) -> Result<Message, ParseError> {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge {
                limit: MAX_MESSAGE_SIZE,
            });
        }
        let src = Bytes::copy_from_slice(buf);
        let start = skip_crlf(&src);
        // A datagram is complete by definition: a head without its blank line ends with it.
        let head_len = head_end(&src[start..]).unwrap_or(src.len() - start);
        let (mut msg, content_length) = parse_head(&src, start, head_len)?;
        let body_start = start + head_len;
        let available = src.len() - body_start;
        let body_len = match content_length {
            Some(declared) if declared > available => {
                return Err(ParseError::BodyTruncated {
                    declared,
                    available,
                });
            }
            Some(declared) => declared,
            None => available,
        };
        msg.set_body(src.slice(body_start..body_start + body_len));
        validate::validate(&msg)?;
        Ok(msg)
    }

    /// Parses the first message from a stream buffer. Returns `Ok(None)` while the message is
    /// incomplete, or the message and how many bytes it used (leading CRLFs included).
    /// A missing Content-Length on a stream counts as zero.
    pub fn parse_stream(buf: &[u8]) -> Result<Option<(Message, usize)>, ParseError> {
        let start = skip_crlf(buf);
        let Some(head_len) = head_end(&buf[start..]) else {
            if buf.len() - start > MAX_MESSAGE_SIZE {
                return Err(ParseError::TooLarge {
                    limit: MAX_MESSAGE_SIZE,
                });
            }
            return Ok(None);
        };
        let src = Bytes::copy_from_slice(&buf[..start + head_len]);
        let (mut msg, content_length) = parse_head(&src, start, head_len)?;
        let body_len = content_length.unwrap_or(0);
        let total = start + head_len + body_len;
        if total - start > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge {
                limit: MAX_MESSAGE_SIZE,
            });
        }
        if buf.len() < total {
            return Ok(None);
        }
        msg.set_body(Bytes::copy_from_slice(&buf[start + head_len..total]));
        validate::validate(&msg)?;
        Ok(Some((msg, total)))
    }

    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }

    pub fn body(&self) -> &Bytes {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    fn set_body(&mut self, body: Bytes) {
        match self {
            Message::Request(r) => r.body = body,
            Message::Response(r) => r.body = body,
        }
    }

    /// Prints the message; Content-Length is always written from the body's real length.
    pub fn to_bytes(&self) -> Bytes {
        let mut head = String::with_capacity(512);
        match self {
            Message::Request(r) => {
                let _ = write!(head, "{} {} SIP/2.0\r\n", r.method, r.uri);
            }
            Message::Response(r) => {
                let _ = write!(head, "SIP/2.0 {} {}\r\n", r.status, r.reason);
            }
        }
        for (name, value) in self.headers().iter() {
            if *name != Name::CONTENT_LENGTH {
                let _ = write!(head, "{}: {}\r\n", name.as_print_str(), value);
            }
        }
        let body = self.body();
        let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
        let mut out = BytesMut::with_capacity(head.len() + body.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(body);
        out.freeze()
    }

    pub fn as_request(&self) -> Option<&Request> {
        match self {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        }
    }

    pub fn as_response(&self) -> Option<&Response> {
        match self {
            Message::Response(r) => Some(r),
            Message::Request(_) => None,
        }
    }

    /// The CSeq header (always present and valid on a parsed message).
    pub fn cseq(&self) -> Option<CSeq> {
        cseq(self.headers())
    }

    /// The topmost Via.
    pub fn top_via(&self) -> Option<Via> {
        top_via(self.headers())
    }

    pub fn call_id(&self) -> Option<BytesStr> {
        self.headers().get_named::<CallID>().ok().map(|c| c.0)
    }

    pub fn from_header(&self) -> Option<FromTo> {
        self.headers().get(Name::FROM).ok()
    }

    pub fn to_header(&self) -> Option<FromTo> {
        self.headers().get(Name::TO).ok()
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Message::Request(r)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Self {
        Message::Response(r)
    }
}

impl Request {
    pub fn new(method: Method, uri: Uri) -> Self {
        Request {
            method,
            uri,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    pub fn cseq(&self) -> Option<CSeq> {
        cseq(&self.headers)
    }

    pub fn top_via(&self) -> Option<Via> {
        top_via(&self.headers)
    }

    pub fn to_bytes(&self) -> Bytes {
        Message::Request(self.clone()).to_bytes()
    }

    /// A response to this request (RFC 3261 §8.2.6.2): Via, From, To, Call-ID and CSeq copied,
    /// Record-Route too for 18x/2xx. The caller adds a To tag where one is needed.
    pub fn make_response(&self, status: u16, reason: &str) -> Response {
        let mut r = Response::new(status, reason);
        let mut copy = |name: Name| {
            for v in self.headers.get_raw(&name) {
                r.headers.insert(name.clone(), v.clone());
            }
        };
        copy(Name::VIA);
        if (101..300).contains(&status) {
            copy(Name::RECORD_ROUTE);
        }
        copy(Name::FROM);
        copy(Name::TO);
        copy(Name::CALL_ID);
        copy(Name::CSEQ);
        r
    }

    /// The To tag, if any.
    pub fn to_tag(&self) -> Option<BytesStr> {
        let raw = self.headers.get_raw(&Name::TO).next()?;
        crate::headers::tag(raw).map(BytesStr::from)
    }

    /// The user part of the URI in the From or To header (`name`): a station number.
    pub fn header_user(&self, name: Name) -> Option<String> {
        let ft: FromTo = self.headers.get(name).ok()?;
        Uri::Sip(ft.uri.uri).user().map(str::to_string)
    }

    /// The From tag, if any.
    pub fn from_tag(&self) -> Option<BytesStr> {
        let raw = self.headers.get_raw(&Name::FROM).next()?;
        crate::headers::tag(raw).map(BytesStr::from)
    }
}

impl Response {
    /// Adds `tag` to the To header unless it already has one.
    pub fn set_to_tag(&mut self, tag: &str) {
        let Ok(mut to) = self.headers.get::<FromTo>(Name::TO) else {
            return;
        };
        if to.tag.is_none() {
            to.tag = Some(tag.into());
            self.headers.remove(&Name::TO);
            let value = to_value(&to);
            self.headers.insert(Name::TO, value);
        }
    }

    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Response {
            status,
            reason: reason.into(),
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    pub fn cseq(&self) -> Option<CSeq> {
        cseq(&self.headers)
    }

    pub fn top_via(&self) -> Option<Via> {
        top_via(&self.headers)
    }

    pub fn to_bytes(&self) -> Bytes {
        Message::Response(self.clone()).to_bytes()
    }
}

/// Prints a From/To header value.
pub(crate) fn to_value(ft: &FromTo) -> String {
    use ezk_sip_types::print::{AppendCtx, PrintCtx, UriContext};
    let ctx = PrintCtx {
        method: None,
        uri: Some(UriContext::FromTo),
    };
    ft.print_ctx(ctx).to_string()
}

fn cseq(headers: &Headers) -> Option<CSeq> {
    headers
        .get_raw(&Name::CSEQ)
        .next()
        .and_then(|v| v.parse().ok())
}

fn top_via(headers: &Headers) -> Option<Via> {
    headers.get(Name::VIA).ok()
}

fn skip_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len())
}

/// Length of the head including its blank line, if the blank line has arrived.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// Parses start line and headers of `src[start..start + len]`; returns the message with an
/// empty body and the declared Content-Length.
fn parse_head(
    src: &Bytes,
    start: usize,
    len: usize,
) -> Result<(Message, Option<usize>), ParseError> {
    let head = std::str::from_utf8(&src[start..start + len]).map_err(|_| ParseError::NotUtf8)?;
    let lines = unfold_lines(head);
    if lines.len() > MAX_HEADER_LINES + 1 {
        return Err(ParseError::TooManyHeaders {
            limit: MAX_HEADER_LINES,
        });
    }
    let mut lines = lines.into_iter();
    let first = lines.next().ok_or(ParseError::Incomplete)?;
    let first = first.text(src);
    let mut msg = parse_start_line(first.as_str())?;
    let headers = msg.headers_mut();
    for line in lines {
        let line = line.text(src);
        let (name, value) = split_header(&line)?;
        headers.insert_type(Name::from(name), &Raw(value));
    }
    let content_length = validate::content_length(msg.headers())?;
    Ok((msg, content_length))
}

/// A header value as it came off the wire, kept as that slice of the datagram
/// (`Headers::insert` would print it into a new string).
struct Raw(BytesStr);

impl ExtendValues for Raw {
    fn extend_values(&self, _: PrintCtx<'_>, values: &mut OneOrMore) {
        values.push(self.0.clone());
    }

    fn create_values(&self, _: PrintCtx<'_>) -> OneOrMore {
        OneOrMore::One(self.0.clone())
    }
}

/// A logical header line: either a slice of the source or, when folded, a joined copy.
enum LogicalLine<'a> {
    Slice(&'a str),
    Folded(String),
}

impl LogicalLine<'_> {
    fn text(&self, src: &Bytes) -> BytesStr {
        match self {
            LogicalLine::Slice(s) => BytesStr::from_parse(src, s),
            LogicalLine::Folded(s) => BytesStr::from(s.as_str()),
        }
    }
}

/// Splits the head into logical lines, joining continuation lines (leading SP/HT) with one SP.
fn unfold_lines(head: &str) -> Vec<LogicalLine<'_>> {
    let mut out: Vec<LogicalLine<'_>> = Vec::with_capacity(16);
    for raw in head.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.is_empty() {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            if let Some(last) = out.pop() {
                let mut joined = match last {
                    LogicalLine::Slice(s) => s.trim_end().to_string(),
                    LogicalLine::Folded(s) => s,
                };
                joined.push(' ');
                joined.push_str(raw.trim_start());
                out.push(LogicalLine::Folded(joined));
                continue;
            }
        }
        out.push(LogicalLine::Slice(raw));
    }
    out
}

fn split_header(line: &BytesStr) -> Result<(BytesStr, BytesStr), ParseError> {
    let colon = line
        .find(':')
        .ok_or_else(|| ParseError::HeaderLine(line.to_string()))?;
    let name = line[..colon].trim_end_matches([' ', '\t']);
    if name.is_empty() || !name.chars().all(is_token_char) {
        return Err(ParseError::HeaderLine(line.to_string()));
    }
    let value = line[colon + 1..].trim_matches([' ', '\t']);
    Ok((line.slice_ref(name), line.slice_ref(value)))
}

fn parse_start_line(line: &str) -> Result<Message, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let (version, rest) = rest
            .split_once(' ')
            .ok_or_else(|| ParseError::StartLine(line.to_string()))?;
        if version != "2.0" {
            return Err(ParseError::Version(format!("SIP/{version}")));
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StartLine(format!("bad status code {code:?}")));
        }
        let status: u16 = code
            .parse()
            .map_err(|_| ParseError::StartLine(format!("bad status code {code:?}")))?;
        if !(100..=699).contains(&status) {
            return Err(ParseError::StartLine(format!(
                "status code {status} out of range"
            )));
        }
        return Ok(Message::Response(Response::new(status, reason)));
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::StartLine(format!(
            "request line must be METHOD SP URI SP VERSION: {line:?}"
        )));
    };
    if version != "SIP/2.0" {
        if version.starts_with("SIP/") {
            return Err(ParseError::Version(version.to_string()));
        }
        return Err(ParseError::StartLine(format!("bad version {version:?}")));
    }
    let method: Method = method
        .parse()
        .map_err(|e: crate::method::BadMethod| ParseError::StartLine(e.to_string()))?;
    let uri = Uri::parse_request_uri(uri)?;
    Ok(Message::Request(Request::new(method, uri)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:201@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\n\
f: <sip:202@127.0.0.1>;tag=a\r\n\
t: <sip:201@127.0.0.1>\r\n\
i: abc@host\r\n\
CSeq: 1 OPTIONS\r\n\
l: 4\r\n\r\nbodyEXTRA";

    /// OPTIONS with `n` extra headers of distinct names.
    fn with_headers(n: usize) -> Vec<u8> {
        let head = std::str::from_utf8(OPTIONS)
            .unwrap()
            .split("l: 4")
            .next()
            .unwrap()
            .to_string();
        let extra: String = (0..n).map(|i| format!("X-H{i}: v\r\n")).collect();
        format!("{head}{extra}l: 0\r\n\r\n").into_bytes()
    }

    #[test]
    fn thousands_of_headers_are_refused_before_parsing_them() {
        // The start line, 7 headers and Content-Length, plus the extras.
        assert!(Message::parse_datagram(&with_headers(MAX_HEADER_LINES - 8)).is_ok());
        let e = Message::parse_datagram(&with_headers(5000)).unwrap_err();
        assert_eq!(
            e,
            ParseError::TooManyHeaders {
                limit: MAX_HEADER_LINES
            }
        );
        assert!(e.to_string().contains("header lines"));
    }

    #[test]
    fn datagram_discards_trailing_octets() {
        let m = Message::parse_datagram(OPTIONS).unwrap();
        assert_eq!(&m.body()[..], b"body");
        assert_eq!(m.call_id().unwrap().as_str(), "abc@host");
        assert_eq!(m.cseq().unwrap().method, Method::Options);
    }

    #[test]
    fn print_then_parse_round_trip() {
        let m = Message::parse_datagram(OPTIONS).unwrap();
        let printed = m.to_bytes();
        let again = Message::parse_datagram(&printed).unwrap();
        assert_eq!(printed, again.to_bytes());
        assert!(
            std::str::from_utf8(&printed)
                .unwrap()
                .contains("Content-Length: 4\r\n")
        );
    }

    #[test]
    fn stream_waits_for_the_body_then_frames() {
        let full = &OPTIONS[..OPTIONS.len() - 5];
        assert!(
            Message::parse_stream(&full[..full.len() - 2])
                .unwrap()
                .is_none()
        );
        let mut two = b"\r\n\r\n".to_vec();
        two.extend_from_slice(full);
        two.extend_from_slice(full);
        let (_, used) = Message::parse_stream(&two).unwrap().unwrap();
        assert_eq!(used, 4 + full.len());
        let (_, used2) = Message::parse_stream(&two[used..]).unwrap().unwrap();
        assert_eq!(used2, full.len());
    }

    #[test]
    fn oversized_messages_are_refused() {
        let mut big = OPTIONS.to_vec();
        big.extend(std::iter::repeat_n(b'x', MAX_MESSAGE_SIZE));
        assert_eq!(
            Message::parse_datagram(&big).err(),
            Some(ParseError::TooLarge {
                limit: MAX_MESSAGE_SIZE
            })
        );
        // A stream that never ends its head, or declares a huge body, is refused too.
        let endless = vec![b'a'; MAX_MESSAGE_SIZE + 10];
        assert!(Message::parse_stream(&endless).is_err());
        let huge = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 999999\r\n\r\n";
        assert!(matches!(
            Message::parse_stream(huge),
            Err(ParseError::TooLarge { .. })
        ));
    }

    #[test]
    fn folded_header_is_joined() {
        let msg = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:c@d>\r\n ;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let m = Message::parse_datagram(msg).unwrap();
        assert_eq!(m.from_header().unwrap().tag.unwrap().as_str(), "1");
    }
}
