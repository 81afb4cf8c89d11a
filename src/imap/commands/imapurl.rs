//! The IMAP URLs (RFC 5092) a CATENATE part may name: a message, or a section of one, in a
//! folder of the logged-in user. Relative (`/INBOX;UIDVALIDITY=5/;UID=3/;SECTION=1.2`) or
//! absolute for this server (`imap://user@host/...`, the session's user and host name);
//! `;PARTIAL=o.l` cuts the result. Anything else — another user or host, no UID, URLAUTH
//! parts, a UIDVALIDITY that is not the folder's, a message that isn't there — is
//! `NO [BADURL url]` (RFC 4469 §5).

use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName, Section};
use imap_codec::imap_types::response::{Code, CodeOther};
use imap_codec::imap_types::IntoStatic;
use imap_codec::CommandCodec;

use super::super::error::server_error;
use super::super::mime;
use super::super::state::{Done, Session};
use crate::store::{to_wire_form, Folder};

/// A parsed IMAP URL naming a message or a part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapUrl {
    /// The folder name (UTF-8, percent-decoded).
    pub mailbox: String,
    pub uid_validity: Option<u32>,
    pub uid: u32,
    /// The section as in BODY[...], percent-decoded.
    pub section: Option<String>,
    pub partial: Option<(u32, Option<u32>)>,
}

/// Parses `url`; `user` and `host` are this session's (an absolute URL must name them).
pub fn parse(url: &str, user: &str, host: &str) -> Option<ImapUrl> {
    let path = match strip_prefix_ci(url, "imap://") {
        Some(rest) => {
            let slash = rest.find('/')?;
            let (authority, path) = rest.split_at(slash);
            let (userinfo, hostport) = authority.rsplit_once('@')?;
            // `;AUTH=<mechanism>` is how the URL says to log in: not our business here.
            let url_user = decode(userinfo.split(';').next()?)?;
            let url_host = hostport.split(':').next()?;
            if !url_user.eq_ignore_ascii_case(user) || !url_host.eq_ignore_ascii_case(host) {
                return None;
            }
            path
        }
        None => url,
    };
    let path = path.strip_prefix('/')?;
    let at = find_ci(path, "/;UID=")?;
    let (folder, rest) = (&path[..at], &path[at + 6..]);
    let (mailbox, uid_validity) = match find_ci(folder, ";UIDVALIDITY=") {
        Some(v) => (&folder[..v], Some(folder[v + 13..].parse().ok()?)),
        None => (folder, None),
    };
    let mut pieces = rest.split("/;");
    let uid: u32 = pieces.next()?.parse().ok()?;
    let (mut section, mut partial) = (None, None);
    for piece in pieces {
        if let Some(value) = strip_prefix_ci(piece, "SECTION=") {
            section = Some(decode(value)?);
        } else if let Some(value) = strip_prefix_ci(piece, "PARTIAL=") {
            let (offset, length) = match value.split_once('.') {
                Some((o, l)) => (o.parse().ok()?, Some(l.parse().ok()?)),
                None => (value.parse().ok()?, None),
            };
            partial = Some((offset, length));
        } else {
            // URLAUTH (;EXPIRE=, ;URLAUTH=) and anything unknown.
            return None;
        }
    }
    if uid == 0 || mailbox.is_empty() {
        return None;
    }
    Some(ImapUrl {
        mailbox: decode(mailbox)?,
        uid_validity,
        uid,
        section,
        partial,
    })
}

/// The bytes (wire form) the URL names, from the session's own folders; an `Err` is the
/// answer to the APPEND.
pub async fn content(session: &Session<'_>, url: &str) -> Result<Vec<u8>, Done> {
    let bad = |why: &str| bad_url(url, why);
    let Some((address, folders)) = session.account.clone() else {
        return Err(Done::bad("Log in first"));
    };
    let Some(parsed) = parse(url, &address.to_string(), &session.settings.hostname) else {
        return Err(bad("Not an IMAP URL of this server and user"));
    };
    let section = match &parsed.section {
        Some(text) => Some(section(text).ok_or_else(|| bad("Invalid section"))?),
        None => None,
    };
    let name = if parsed.mailbox.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_string()
    } else {
        parsed.mailbox.clone()
    };
    let Ok(dir) = folders.dir(&name) else {
        return Err(bad("No such folder"));
    };
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Option<Vec<u8>>> {
        let index = Folder::at(dir).sync()?;
        if parsed.uid_validity.is_some_and(|v| v != index.uid_validity) {
            return Ok(None);
        }
        let Some(at) = index.position(parsed.uid) else {
            return Ok(None);
        };
        let stored = match std::fs::read(&index.messages[at].path) {
            Ok(stored) => stored,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let raw = to_wire_form(&stored);
        let data = mime::section_as_stored(&raw, section.as_ref());
        Ok(Some(match parsed.partial {
            Some((offset, length)) => {
                let start = (offset as usize).min(data.len());
                let end = length.map_or(data.len(), |l| {
                    start.saturating_add(l as usize).min(data.len())
                });
                data[start..end].to_vec()
            }
            None => data,
        }))
    })
    .await;
    match read {
        Ok(Ok(Some(data))) => Ok(data),
        Ok(Ok(None)) => Err(bad("No such message")),
        Ok(Err(err)) => Err(server_error("APPEND", err)),
        Err(err) => Err(server_error("APPEND", err)),
    }
}

/// `NO [BADURL url] why`.
pub fn bad_url(url: &str, why: &str) -> Done {
    // A response code can't hold `]` or line breaks: such a URL is named without them.
    let shown: String = url
        .chars()
        .filter(|c| !matches!(c, ']' | '\r' | '\n') && !c.is_control())
        .collect();
    Done::no_code(
        Code::Other(CodeOther::unvalidated(
            format!("BADURL {shown}").into_bytes(),
        )),
        why,
    )
}

/// A section spec as in `BODY[...]`, read by imap-codec.
fn section(text: &str) -> Option<Section<'static>> {
    let command = format!("x FETCH 1 BODY[{text}]\r\n");
    let (rest, command) = CommandCodec::default().decode(command.as_bytes()).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let CommandBody::Fetch {
        macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
        ..
    } = command.body
    else {
        return None;
    };
    match names.into_iter().next()? {
        MessageDataItemName::BodyExt {
            section: Some(section),
            ..
        } => Some(section.into_static()),
        _ => None,
    }
}

/// Percent-decoding (RFC 3986), to UTF-8.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn find_ci(text: &str, needle: &str) -> Option<usize> {
    text.to_ascii_lowercase().find(&needle.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(mailbox: &str, uid: u32) -> ImapUrl {
        ImapUrl {
            mailbox: mailbox.into(),
            uid_validity: None,
            uid,
            section: None,
            partial: None,
        }
    }

    #[test]
    fn relative_and_absolute_urls_of_this_server() {
        let (user, host) = ("alice@example.test", "mail.example.test");
        assert_eq!(parse("/INBOX/;UID=3", user, host), Some(url("INBOX", 3)));
        let full = parse(
            "/Sent%20Items;UIDVALIDITY=77/;uid=20/;SECTION=1.2/;PARTIAL=5.10",
            user,
            host,
        );
        assert_eq!(
            full,
            Some(ImapUrl {
                uid_validity: Some(77),
                section: Some("1.2".into()),
                partial: Some((5, Some(10))),
                ..url("Sent Items", 20)
            })
        );
        assert_eq!(
            parse(
                "imap://alice%40example.test;AUTH=*@Mail.Example.Test:143/INBOX/;UID=1",
                user,
                host
            ),
            Some(url("INBOX", 1))
        );
        for other in [
            "imap://bob%40example.test@mail.example.test/INBOX/;UID=1",
            "imap://alice%40example.test@elsewhere/INBOX/;UID=1",
            "imap://mail.example.test/INBOX/;UID=1",
            "/INBOX",
            "/INBOX/;UID=0",
            "/INBOX/;UID=x",
            "/INBOX/;UID=1/;URLAUTH=anonymous:internal:abc",
            "INBOX/;UID=1",
            "/INBOX%zz/;UID=1",
        ] {
            assert_eq!(parse(other, user, host), None, "{other}");
        }
    }

    #[test]
    fn sections_are_read_as_fetch_reads_them() {
        assert_eq!(section("TEXT"), Some(Section::Text(None)));
        assert!(matches!(section("1.2.MIME"), Some(Section::Mime(_))));
        assert!(matches!(
            section("HEADER.FIELDS (Subject)"),
            Some(Section::HeaderFields(None, _))
        ));
        assert_eq!(section("BOGUS"), None);
        assert_eq!(section("1]x"), None);
    }

    #[test]
    fn bad_urls_are_named_safely() {
        let done = bad_url("/x]\r\n", "why");
        let Some(Code::Other(code)) = &done.code else {
            panic!("no BADURL code");
        };
        assert_eq!(code.inner(), b"BADURL /x");
    }
}
