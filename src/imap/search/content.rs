//! What the string and SENT* keys look at, taken out of the raw message once per message:
//! decoded header fields, the text of the body, the date of the Date: header.
//!
//! Everything is decoded (RFC 2047 encoded-words, Content-Transfer-Encoding, charsets) and
//! case-folded here, so that a client searching for "Müller" finds it whether the sender wrote
//! `=?UTF-8?Q?M=C3=BCller?=`, base64 or Latin-1. mail-parser does the MIME work; it never
//! panics and bounds its own nesting.

use chrono::NaiveDate;
use mail_parser::{parsers::MessageStream, HeaderValue, Message, MessageParser, PartType};

/// Nested message/rfc822 parts deeper than this are not searched: a bound on work for
/// hostile messages (mail-parser bounds nesting too; this does not rely on it).
const MAX_NESTING: usize = 8;

/// One header field of the top-level header.
#[derive(Debug)]
pub(super) struct Field {
    /// As spelled in the message; compare with `eq_ignore_ascii_case`.
    pub name: String,
    /// Unfolded, encoded-words decoded, case-folded.
    pub value: String,
    /// Address fields only: the value without its RFC 5322 comments and the spaces around
    /// `@`, so that `<user (comment)@ (comment) domain.org>` is found as `user@domain.org`.
    pub address: Option<String>,
}

impl Field {
    /// Whether the field contains `needle` (case-folded), as written or, for addresses, as
    /// the address it names.
    pub fn contains(&self, needle: &str) -> bool {
        self.value.contains(needle) || self.address.as_ref().is_some_and(|a| a.contains(needle))
    }
}

/// Fields whose value is a list of addresses (RFC 5322 §3.6.2, §3.6.3).
const ADDRESS_FIELDS: [&str; 7] = [
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "resent-from",
];

/// `value` without comments (`(...)`, nested, `\` escapes; not inside quoted strings) and
/// without the spaces next to `@` that comments and folding leave in an addr-spec.
pub(super) fn address_form(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(' ');
                }
            }
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    // Spaces around `@` (outside quoted strings they are never part of the address).
    let mut joined = String::with_capacity(out.len());
    let mut chars = out.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            let mut run = String::from(c);
            while let Some(&next) = chars.peek() {
                if !next.is_whitespace() {
                    break;
                }
                run.push(next);
                chars.next();
            }
            let before_at = chars.peek() == Some(&'@');
            if !before_at && !joined.ends_with('@') {
                joined.push_str(&run);
            }
            continue;
        }
        joined.push(c);
    }
    joined
}

/// The top-level header of a message.
#[derive(Debug, Default)]
pub(super) struct Header {
    pub fields: Vec<Field>,
    /// The calendar date of the Date: header in the header's own timezone, when it parses.
    pub sent_date: Option<NaiveDate>,
}

impl Header {
    /// The header as one text for TEXT: "name: value" lines, case-folded.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for field in &self.fields {
            text.push_str(&fold(&field.name));
            text.push_str(": ");
            text.push_str(&field.value);
            text.push('\n');
        }
        text
    }
}

/// Unicode case folding for substring matching (ü and Ü are the same letter to a searcher).
pub(super) fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// Parses only the header section; a message mail-parser cannot make sense of has no fields.
pub(super) fn header(raw: &[u8]) -> Header {
    match MessageParser::new().parse_headers(raw) {
        Some(message) => header_of(&message),
        None => Header::default(),
    }
}

/// The decoded text of every text/* part of the body, case-folded, parts separated by a
/// newline so that a match never spans two parts. A message mail-parser cannot parse at all
/// is searched as plain (lossy UTF-8) text rather than never matching.
pub(super) fn body_text(raw: &[u8]) -> String {
    let mut text = String::new();
    match MessageParser::new().parse(raw) {
        Some(message) => collect_body(&message, 0, &mut text),
        None => text.push_str(&String::from_utf8_lossy(raw)),
    }
    fold(&text)
}

fn header_of(message: &Message<'_>) -> Header {
    let raw = message.raw_message();
    let fields = message
        .headers()
        .iter()
        .map(|h| {
            let name = h.name().to_string();
            let value = raw
                .get(h.offset_start as usize..h.offset_end as usize)
                .map(decode_value)
                .unwrap_or_default();
            let address = ADDRESS_FIELDS
                .iter()
                .any(|a| name.eq_ignore_ascii_case(a))
                .then(|| address_form(&value));
            Field {
                name,
                value,
                address,
            }
        })
        .collect();
    let sent_date = message
        .date()
        .filter(|d| d.is_valid())
        .and_then(|d| NaiveDate::from_ymd_opt(i32::from(d.year), d.month.into(), d.day.into()));
    Header { fields, sent_date }
}

/// Every field as unstructured text, whatever its kind: address fields keep their display
/// names and addresses, Content-Type keeps its parameters, and encoded-words anywhere are
/// decoded (what a person reading the header would see).
fn decode_value(raw_value: &[u8]) -> String {
    // parse_unstructured stops at the first line end not followed by whitespace; the last
    // field of a header-only message may have none.
    let mut bytes = raw_value.to_vec();
    bytes.push(b'\n');
    match MessageStream::new(&bytes).parse_unstructured() {
        HeaderValue::Text(text) => fold(&text),
        _ => String::new(),
    }
}

fn collect_body(message: &Message<'_>, depth: usize, out: &mut String) {
    for part in &message.parts {
        match &part.body {
            PartType::Text(text) => push_part(out, text),
            // Rendered, so that a phrase split by markup still matches and "div" does not
            // match every HTML mail.
            PartType::Html(html) => {
                push_part(out, &mail_parser::decoders::html::html_to_text(html))
            }
            // An attached message is part of the body: its header and its text.
            PartType::Message(inner) if depth < MAX_NESTING => {
                push_part(out, &header(inner.raw_message()).text());
                collect_body(inner, depth + 1, out);
            }
            PartType::Message(_)
            | PartType::Binary(_)
            | PartType::InlineBinary(_)
            | PartType::Multipart(_) => {}
        }
    }
}

fn push_part(out: &mut String, text: &str) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(text);
}
