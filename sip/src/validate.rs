//! The validation step: what ezk's lenient parser lets through but RFC 3261 forbids.
//!
//! Checked here (each failure names the header and the value): mandatory headers present,
//! single-valued headers not repeated, CSeq number below 2^31 and its method equal to the
//! request method, Max-Forwards 0–255, Expires/Retry-After within 32 bits, Content-Length a
//! plain non-negative number, every Via/From/To/Contact/Route value well-formed (balanced
//! quotes, token display names, no whitespace inside `<>`, no `?` in a bare addr-spec),
//! Warning codes of three digits and Date in GMT. RFC 4475 §3.1.2 is the checklist.

use crate::error::ParseError;
use crate::headers::CSeq;
use crate::message::Message;
use crate::method::is_token_char;
use ezk_sip_types::header::HeaderParse;
use ezk_sip_types::header::typed::Via;
use ezk_sip_types::{Headers, Name};

/// The headers validation looks at. They are found in one pass over the message
/// ([`Seen`]): ezk's lookups walk every header comparing names as strings, and validation
/// asks for two dozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Via,
    From,
    To,
    CallId,
    CSeq,
    MaxForwards,
    ContentLength,
    ContentType,
    Expires,
    MinExpires,
    Contact,
    Route,
    RecordRoute,
    Date,
    RetryAfter,
    Warning,
}

/// Each slot with the name it has in messages (compact forms are expanded by the parser).
const SLOTS: &[(&str, Slot)] = &[
    ("Via", Slot::Via),
    ("From", Slot::From),
    ("To", Slot::To),
    ("Call-ID", Slot::CallId),
    ("CSeq", Slot::CSeq),
    ("Max-Forwards", Slot::MaxForwards),
    ("Content-Length", Slot::ContentLength),
    ("Content-Type", Slot::ContentType),
    ("Expires", Slot::Expires),
    ("Min-Expires", Slot::MinExpires),
    ("Contact", Slot::Contact),
    ("Route", Slot::Route),
    ("Record-Route", Slot::RecordRoute),
    ("Date", Slot::Date),
    ("Retry-After", Slot::RetryAfter),
    ("Warning", Slot::Warning),
];

impl Slot {
    fn of(name: &Name) -> Option<Slot> {
        let name = name.as_print_str();
        SLOTS
            .iter()
            .find(|(label, _)| label.eq_ignore_ascii_case(name))
            .map(|(_, slot)| *slot)
    }

    fn label(self) -> &'static str {
        SLOTS
            .iter()
            .find(|(_, slot)| *slot == self)
            .map_or("", |(label, _)| label)
    }
}

/// The values of the headers validation looks at, in message order, each with its slot.
struct Seen<'a>(Vec<(Slot, &'a str)>);

impl<'a> Seen<'a> {
    fn of(headers: &'a Headers) -> Self {
        let mut found = Vec::with_capacity(16);
        for (name, value) in headers.iter() {
            if let Some(slot) = Slot::of(name) {
                found.push((slot, value.as_str()));
            }
        }
        Seen(found)
    }

    /// Every value (header line) of `slot`.
    fn get(&self, slot: Slot) -> impl Iterator<Item = &'a str> + '_ {
        self.0
            .iter()
            .filter(move |(s, _)| *s == slot)
            .map(|(_, v)| *v)
    }
}

/// Headers every request and response must carry (RFC 3261 §8.1.1).
const MANDATORY: &[Slot] = &[Slot::Via, Slot::From, Slot::To, Slot::CallId, Slot::CSeq];

/// Headers that may appear once only.
const SINGLE: &[Slot] = &[
    Slot::From,
    Slot::To,
    Slot::CallId,
    Slot::CSeq,
    Slot::MaxForwards,
    Slot::ContentLength,
    Slot::ContentType,
    Slot::Expires,
    Slot::MinExpires,
];

/// Runs every check on a parsed message.
pub fn validate(msg: &Message) -> Result<(), ParseError> {
    let headers = Seen::of(msg.headers());
    for slot in MANDATORY {
        if headers.get(*slot).next().is_none() {
            return Err(ParseError::Missing(slot.label()));
        }
    }
    for slot in [Slot::From, Slot::To] {
        for value in headers.get(slot) {
            check_name_addr(value).map_err(|r| ParseError::header(slot.label(), r))?;
        }
    }
    for slot in SINGLE {
        let values: Vec<_> = headers.get(*slot).collect();
        let count: usize = values.iter().map(|v| split_list(v).len()).sum();
        if count > 1 && *slot != Slot::ContentType || values.len() > 1 {
            return Err(ParseError::header(slot.label(), "appears more than once"));
        }
    }
    let cseq = check_cseq(&headers)?;
    if let Message::Request(req) = msg
        && cseq.method != req.method
    {
        return Err(ParseError::CSeqMismatch {
            method: req.method.to_string(),
            cseq: cseq.method.to_string(),
        });
    }
    check_numeric(&headers, Slot::MaxForwards, 255)?;
    check_numeric(&headers, Slot::Expires, u64::from(u32::MAX))?;
    check_numeric(&headers, Slot::MinExpires, u64::from(u32::MAX))?;
    check_vias(&headers)?;
    check_contacts(&headers)?;
    for slot in [Slot::Route, Slot::RecordRoute] {
        for value in headers.get(slot) {
            for element in split_list(value) {
                if !element.trim_start().starts_with('<') {
                    return Err(ParseError::header(
                        slot.label(),
                        format!("{element:?} is not in <>"),
                    ));
                }
                check_name_addr(element).map_err(|r| ParseError::header(slot.label(), r))?;
            }
        }
    }
    check_misc(&headers)
}

/// The Content-Length, if present: digits only, one value.
pub(crate) fn content_length(headers: &Headers) -> Result<Option<usize>, ParseError> {
    let mut values = headers.get_raw(&Name::CONTENT_LENGTH);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ParseError::header(
            "Content-Length",
            "appears more than once",
        ));
    }
    let v = first.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::header(
            "Content-Length",
            format!("{v:?} is not a non-negative number"),
        ));
    }
    v.parse()
        .map(Some)
        .map_err(|_| ParseError::header("Content-Length", format!("{v:?} is too large")))
}

fn check_cseq(headers: &Seen<'_>) -> Result<CSeq, ParseError> {
    let value = headers
        .get(Slot::CSeq)
        .next()
        .ok_or(ParseError::Missing("CSeq"))?;
    value.parse().map_err(|e| ParseError::header("CSeq", e))
}

fn check_numeric(headers: &Seen<'_>, slot: Slot, max: u64) -> Result<(), ParseError> {
    for value in headers.get(slot) {
        let v = value.trim();
        let ok = !v.is_empty()
            && v.bytes().all(|b| b.is_ascii_digit())
            && v.parse::<u64>().is_ok_and(|n| n <= max);
        if !ok {
            return Err(ParseError::header(
                slot.label(),
                format!("{v:?} is not a number in 0..={max}"),
            ));
        }
    }
    Ok(())
}

fn check_vias(headers: &Seen<'_>) -> Result<(), ParseError> {
    for value in headers.get(Slot::Via) {
        for element in split_list(value) {
            let element = element.trim();
            let bad = |why: &str| ParseError::header("Via", format!("{why}: {element:?}"));
            let protocol = element.split('/').take(2).collect::<Vec<_>>();
            if protocol.len() != 2
                || !protocol[0].trim().eq_ignore_ascii_case("SIP")
                || protocol[1].trim() != "2.0"
            {
                return Err(bad("not SIP/2.0"));
            }
            let src = bytesstr::BytesStr::from(element);
            match Via::parse(src.as_ref(), src.as_str()) {
                Ok((rest, _)) if rest.trim().is_empty() => {}
                _ => return Err(bad("malformed")),
            }
            if element.contains(";;") || element.ends_with(';') {
                return Err(bad("empty parameter"));
            }
        }
    }
    Ok(())
}

fn check_contacts(headers: &Seen<'_>) -> Result<(), ParseError> {
    for value in headers.get(Slot::Contact) {
        if value.trim() == "*" {
            continue;
        }
        for element in split_list(value) {
            check_name_addr(element).map_err(|r| ParseError::header("Contact", r))?;
        }
    }
    Ok(())
}

fn check_misc(headers: &Seen<'_>) -> Result<(), ParseError> {
    for value in headers.get(Slot::Date) {
        if !value.trim_end().ends_with(" GMT") {
            return Err(ParseError::header(
                "Date",
                format!("{value:?} is not in GMT"),
            ));
        }
    }
    for value in headers.get(Slot::RetryAfter) {
        let seconds = value.split(['(', ';', ' ']).next().unwrap_or_default();
        if seconds.parse::<u32>().is_err() {
            return Err(ParseError::header(
                "Retry-After",
                format!("{seconds:?} is not a 32-bit number"),
            ));
        }
    }
    for value in headers.get(Slot::Warning) {
        for element in split_list(value) {
            let code = element.split_whitespace().next().unwrap_or_default();
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::header(
                    "Warning",
                    format!("warn-code {code:?} is not three digits"),
                ));
            }
        }
    }
    Ok(())
}

/// Splits a header value at the commas that separate list elements, ignoring commas inside
/// quoted strings and `<...>`.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

/// Checks one `name-addr / addr-spec` value followed by parameters.
pub(crate) fn check_name_addr(value: &str) -> Result<(), String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("empty value".into());
    }
    let after_uri = if let Some(rest) = value.strip_prefix('"') {
        let close = closing_quote(rest).ok_or("unterminated quoted string")?;
        let rest = rest[close + 1..].trim_start();
        let inner = rest
            .strip_prefix('<')
            .ok_or("quoted display name without <URI>")?;
        check_angle_uri(inner)?
    } else if let Some(lt) = value.find('<') {
        let display = value[..lt].trim();
        if !display
            .split_ascii_whitespace()
            .all(|word| word.chars().all(is_token_char))
        {
            return Err(format!("display name {display:?} must be tokens or quoted"));
        }
        check_angle_uri(&value[lt + 1..])?
    } else {
        let spec_end = value.find(';').unwrap_or(value.len());
        let spec = value[..spec_end].trim_end();
        if spec.contains(['?', ' ', '\t', '"', '>']) {
            return Err(format!("{spec:?} must be enclosed in <>"));
        }
        if !spec.contains(':') {
            return Err(format!("{spec:?} is not a URI"));
        }
        &value[spec_end..]
    };
    check_params(after_uri)
}

fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// `s` starts right after `<`; returns what follows `>`.
fn check_angle_uri(s: &str) -> Result<&str, String> {
    let gt = s.find('>').ok_or("unterminated <URI>")?;
    let uri = &s[..gt];
    if uri.is_empty() || uri.contains(char::is_whitespace) {
        return Err(format!("whitespace or nothing inside <{uri}>"));
    }
    if !uri.contains(':') {
        return Err(format!("{uri:?} is not a URI"));
    }
    Ok(&s[gt + 1..])
}

fn check_params(s: &str) -> Result<(), String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(());
    }
    let Some(params) = s.strip_prefix(';') else {
        return Err(format!("unexpected {s:?} after the URI"));
    };
    for param in params.split(';') {
        let name = param.split('=').next().unwrap_or_default().trim();
        if name.is_empty() || !name.chars().all(is_token_char) {
            return Err(format!("bad parameter {param:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_forms() {
        for ok in [
            "sip:a@b",
            "<sip:a@b>;tag=1",
            "\"Joe \\\"Q\\\" Smith\" <sip:a@b>",
            "Joe Smith <sip:a@b>;expires=60",
            "caller<sip:a@b>",
            "sip:a@b;tag=x",
            "tel:+1555",
        ] {
            assert!(check_name_addr(ok).is_ok(), "{ok}");
        }
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "< sip:a@b >",
            "Bell, Alexander <sip:a@b>",
            "sip:a@b?Route=%3Csip:c%3E",
            "<sip:a@b>;;;;",
            "<sip:a@b",
        ] {
            assert!(check_name_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn list_split_respects_quotes_and_brackets() {
        assert_eq!(split_list("\"a, b\" <sip:x@y>, <sip:z,w@y>").len(), 2);
    }
}
