//! What SORT and THREAD need from one message's header, taken out once (and kept by
//! `keycache`): the sent date, the base subject, the first From/To/Cc addresses and display
//! names, and the Message-ID, References and In-Reply-To ids.

use mail_parser::{Address, MessageParser};

use super::subject::{base_subject, casemap, BaseSubject};

/// Only the last this many bytes of a References field are read: the nearest ancestors are
/// at its end, and a hostile message can't make the id table big (RFC 5322 has no limit; real
/// ones are a few KiB at most).
pub const MAX_REFERENCES_BYTES: usize = 16 * 1024;
/// At most this many ids of a References field are used (its last ones).
pub const MAX_REFERENCES: usize = 256;
/// A Message-ID longer than this is no id (it is treated as missing).
pub const MAX_ID_BYTES: usize = 998;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortKeys {
    /// The Date: field as seconds since the epoch (its own timezone taken into account);
    /// None when it is missing or doesn't parse (then INTERNALDATE stands in, RFC 5256 §2.2).
    pub sent: Option<i64>,
    pub subject: BaseSubject,
    /// The addr-mailbox (local part) of the first address of From/To/Cc, case-mapped; empty
    /// when there is none (RFC 5256 §3).
    pub from: String,
    pub to: String,
    pub cc: String,
    /// RFC 5957: the display name of the first From/To address, else its addr-spec,
    /// case-mapped.
    pub display_from: String,
    pub display_to: String,
    /// The Message-ID without its brackets, when there is a valid one.
    pub message_id: Option<String>,
    /// The parents, oldest first: References (its last [`MAX_REFERENCES`] ids) or, without
    /// any, the first id of In-Reply-To.
    pub references: Vec<String>,
}

impl SortKeys {
    /// Rough heap size, for the cache's bound.
    pub fn size(&self) -> usize {
        self.subject.text.len()
            + self.from.len()
            + self.to.len()
            + self.cc.len()
            + self.display_from.len()
            + self.display_to.len()
            + self.message_id.as_ref().map_or(0, String::len)
            + self.references.iter().map(|r| r.len() + 24).sum::<usize>()
            + 256
    }
}

/// The keys of a message from its header block (wire form). A header mail-parser can't read
/// gives empty keys.
pub fn extract(header: &[u8]) -> SortKeys {
    let Some(message) = MessageParser::new().parse_headers(header) else {
        return SortKeys::default();
    };
    let sent = message
        .date()
        .filter(|d| d.is_valid())
        .map(|d| d.to_timestamp());
    let subject = base_subject(message.subject().unwrap_or(""));
    let first = |address: Option<&Address<'_>>| -> (String, String) {
        let Some(addr) = address.and_then(Address::first) else {
            return (String::new(), String::new());
        };
        let spec = addr.address().unwrap_or("");
        let mailbox = spec.rsplit_once('@').map_or(spec, |(local, _)| local);
        let display = match addr.name() {
            Some(name) if !name.trim().is_empty() => name.trim(),
            _ => spec,
        };
        (casemap(mailbox), casemap(display))
    };
    let (from, display_from) = first(message.from());
    let (to, display_to) = first(message.to());
    let (cc, _) = first(message.cc());
    let message_id = message
        .header_raw("Message-ID")
        .and_then(|v| ids(v.as_bytes()).next());
    let mut references: Vec<String> = match message.header_raw("References") {
        Some(value) => {
            let bytes = value.as_bytes();
            let tail = &bytes[bytes.len().saturating_sub(MAX_REFERENCES_BYTES)..];
            ids(tail).collect()
        }
        None => Vec::new(),
    };
    if references.len() > MAX_REFERENCES {
        references.drain(..references.len() - MAX_REFERENCES);
    }
    if references.is_empty() {
        if let Some(id) = message
            .header_raw("In-Reply-To")
            .and_then(|v| ids(v.as_bytes()).next())
        {
            references.push(id);
        }
    }
    SortKeys {
        sent,
        subject,
        from,
        to,
        cc,
        display_from,
        display_to,
        message_id,
        references,
    }
}

/// The message ids `<local@domain>` in a field value, without brackets, whitespace and
/// comments inside them taken out; text outside brackets (phrases in In-Reply-To, a piece of
/// an id cut off at the front) is skipped. An id needs an `@` with something on both sides.
pub fn ids(value: &[u8]) -> impl Iterator<Item = String> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || loop {
        let open = at + value.get(at..)?.iter().position(|&b| b == b'<')?;
        let close = match value[open + 1..]
            .iter()
            .position(|&b| b == b'>' || b == b'<')
        {
            Some(n) if value[open + 1 + n] == b'>' => open + 1 + n,
            Some(n) => {
                // Another `<` first: this one was unterminated.
                at = open + 1 + n;
                continue;
            }
            None => return None,
        };
        at = close + 1;
        let id = clean_id(&value[open + 1..close]);
        if let Some(id) = id {
            return Some(id);
        }
    })
}

/// An id's inside without whitespace and (unnested) comments, if it is valid.
fn clean_id(inside: &[u8]) -> Option<String> {
    if inside.len() > MAX_ID_BYTES {
        return None;
    }
    let mut out = Vec::with_capacity(inside.len());
    let mut depth = 0usize;
    for &b in inside {
        match b {
            b'(' => depth += 1,
            b')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => out.push(b),
        }
    }
    let text = String::from_utf8(out).ok()?;
    let (local, domain) = text.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_header() {
        let keys = extract(
            b"From: \"Zed Alpha\" <zed@b.example>\r\n\
              To: bob@a.example, carol@c.example\r\n\
              Cc: Dan <dan@d.example>\r\n\
              Subject: =?UTF-8?Q?Re:_gr=C3=BC=C3=9Fe?= (fwd)\r\n\
              Date: Tue, 01 Dec 2026 10:00:00 +0100\r\n\
              Message-ID: <m1 (comment) @x.example>\r\n\
              References: <a@x.example> junk <b@x.example\r\n <c@x.example>\r\n\
              In-Reply-To: <ignored@x.example>\r\n\r\n",
        );
        assert_eq!(keys.from, "ZED");
        assert_eq!(keys.display_from, "ZED ALPHA");
        assert_eq!(keys.to, "BOB");
        assert_eq!(keys.display_to, "BOB@A.EXAMPLE");
        assert_eq!(keys.cc, "DAN");
        assert_eq!(keys.subject.text, "GRU\u{308}SSE");
        assert!(keys.subject.reply);
        assert_eq!(keys.sent, Some(1_796_115_600));
        assert_eq!(keys.message_id.as_deref(), Some("m1@x.example"));
        // `<b@x.example` is unterminated before the next `<`: skipped.
        assert_eq!(keys.references, ["a@x.example", "c@x.example"]);
    }

    #[test]
    fn in_reply_to_stands_in_and_bad_ids_are_none() {
        let keys = extract(
            b"Subject: x\r\nMessage-ID: no-brackets@x\r\nIn-Reply-To: Your mail <p@x> of Monday\r\n\r\n",
        );
        assert_eq!(keys.message_id, None);
        assert_eq!(keys.references, ["p@x"]);
        assert_eq!(keys.sent, None);
        assert_eq!(keys.from, "");
        assert_eq!(extract(b"Message-ID: <noat>\r\n\r\n").message_id, None);
    }

    #[test]
    fn references_are_capped() {
        let mut field = b"References:".to_vec();
        for i in 0..100_000 {
            field.extend_from_slice(format!(" <r{i}@x.example>").as_bytes());
        }
        field.extend_from_slice(b"\r\n\r\n");
        let keys = extract(&field);
        assert_eq!(keys.references.len(), MAX_REFERENCES);
        assert_eq!(
            keys.references.last().map(String::as_str),
            Some("r99999@x.example")
        );
    }
}
