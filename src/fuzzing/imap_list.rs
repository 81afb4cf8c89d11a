//! The LIST command's own parser (LIST-EXTENDED, SPECIAL-USE, LIST-STATUS; imap-codec has no
//! grammar for them, so the session parses the whole command itself: `imap::commands::list`).

use super::alphabet::spell;
use crate::imap::list_parse::{parse, ListRequest};
use imap_codec::imap_types::status::StatusDataItemName;

const WORDS: &[&[u8]] = &[
    b"t LIST ",
    b"(SUBSCRIBED RECURSIVEMATCH) ",
    b"(SPECIAL-USE REMOTE) ",
    b"() ",
    b"\"\" ",
    b"\"*\"",
    b"%",
    b"(\"*\" \"%\" INBOX.*)",
    b" RETURN (",
    b"CHILDREN SUBSCRIBED",
    b"SPECIAL-USE",
    b"STATUS (MESSAGES UNSEEN SIZE APPENDLIMIT HIGHESTMODSEQ)",
    b"{5}\r\n",
    b"{3+}\r\n",
    b"{18446744073709551616}\r\n",
    b"\"Entw&APw-rfe\"",
    b"\"caf\xc3\xa9\"",
    b"\\\"",
    b")",
    b"(",
    b" ",
    b"\r\n",
];

/// `data[0]`: the alphabet mode; the rest: the command (a CRLF added when it has none).
/// Property: what parses, written again in another spelling (every string a LITERAL+ literal,
/// then every string quoted), parses to the same request.
pub fn list(data: &[u8]) {
    let mut command = spell(data, WORDS);
    if !command.ends_with(b"\r\n") {
        command.extend_from_slice(b"\r\n");
    }
    let Ok(request) = parse(&command) else {
        return;
    };
    assert!(!request.patterns.is_empty(), "a LIST without a pattern");
    // (A quoted string holds no CR or LF.)
    let quotable = request
        .patterns
        .iter()
        .chain([&request.reference])
        .all(|s| !s.contains(['\r', '\n']));
    for literal in [true, false] {
        if !literal && !quotable {
            continue;
        }
        let again = render(&request, literal);
        assert_eq!(
            parse(&again).as_ref(),
            Ok(&request),
            "{:?} parses otherwise than {:?}",
            String::from_utf8_lossy(&again),
            String::from_utf8_lossy(&command)
        );
    }
}

/// The request as a LIST command, its strings as literals or quoted.
fn render(request: &ListRequest, literal: bool) -> Vec<u8> {
    let string = |out: &mut Vec<u8>, text: &str| {
        if literal {
            out.extend_from_slice(format!("{{{}+}}\r\n", text.len()).as_bytes());
            out.extend_from_slice(text.as_bytes());
        } else {
            out.push(b'"');
            for &b in text.as_bytes() {
                if b == b'"' || b == b'\\' {
                    out.push(b'\\');
                }
                out.push(b);
            }
            out.push(b'"');
        }
    };
    let mut out = b"t LIST ".to_vec();
    if request.extended {
        let s = request.selection;
        let names: Vec<&str> = [
            (s.subscribed, "SUBSCRIBED"),
            (s.remote, "REMOTE"),
            (s.recursive, "RECURSIVEMATCH"),
            (s.special_use, "SPECIAL-USE"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        out.extend_from_slice(format!("({}) ", names.join(" ")).as_bytes());
    }
    string(&mut out, &request.reference);
    out.push(b' ');
    if request.extended {
        out.push(b'(');
        for (i, pattern) in request.patterns.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            string(&mut out, pattern);
        }
        out.push(b')');
        let r = &request.returns;
        let mut options: Vec<String> = [
            (r.subscribed, "SUBSCRIBED"),
            (r.children, "CHILDREN"),
            (r.special_use, "SPECIAL-USE"),
        ]
        .into_iter()
        .filter(|&(on, _)| on)
        .map(|(_, name)| name.to_string())
        .collect();
        if let Some((items, appendlimit)) = &r.status {
            let mut names: Vec<&str> = items.iter().map(status_name).collect();
            if *appendlimit {
                names.push("APPENDLIMIT");
            }
            options.push(format!("STATUS ({})", names.join(" ")));
        }
        out.extend_from_slice(format!(" RETURN ({})", options.join(" ")).as_bytes());
    } else {
        string(&mut out, &request.patterns[0]);
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn status_name(item: &StatusDataItemName) -> &'static str {
    match item {
        StatusDataItemName::Messages => "MESSAGES",
        StatusDataItemName::Recent => "RECENT",
        StatusDataItemName::UidNext => "UIDNEXT",
        StatusDataItemName::UidValidity => "UIDVALIDITY",
        StatusDataItemName::Unseen => "UNSEEN",
        StatusDataItemName::Deleted => "DELETED",
        StatusDataItemName::DeletedStorage => "DELETED-STORAGE",
        StatusDataItemName::Size => "SIZE",
        StatusDataItemName::HighestModSeq => "HIGHESTMODSEQ",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds' commands parse (the property is then checked on them, not skipped).
    #[test]
    fn the_extended_forms_parse_and_render_back() {
        let command =
            b"t LIST (SUBSCRIBED) \"\" (\"*\" %) RETURN (STATUS (MESSAGES APPENDLIMIT))\r\n";
        let request = parse(command).expect("parses");
        assert!(request.extended && request.patterns.len() == 2);
        assert_eq!(
            render(&request, false),
            b"t LIST (SUBSCRIBED) \"\" (\"*\" \"%\") RETURN (STATUS (MESSAGES APPENDLIMIT))\r\n"
        );
        list(&[1, b'x']); // no LIST: nothing to check
        list(&[&[1][..], command].concat());
    }
}
