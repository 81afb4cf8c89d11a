//! IMAP: the input guard that frames what clients send, imap-codec's command parser with
//! SEARCH evaluated on a message, and mailbox names (modified UTF-7, LIST patterns).

use std::io;

use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::CommandCodec;

use super::alphabet::{spell, Reads};
use crate::imap::folders::pattern_matches;
use crate::imap::guard::{InputGuard, Step};
use crate::imap::message::MessageMeta;
use crate::imap::search::{matches, SearchScope, SearchSubject};
use crate::imap::utf7;
use crate::store::FlagSet;

const WORDS: &[&[u8]] = &[
    b"a LOGIN alice pw\r\n",
    b"b SELECT INBOX\r\n",
    b"c APPEND INBOX ",
    b"(\\Seen) ",
    b"CATENATE (",
    b"TEXT ",
    b"URL \"/INBOX/;UID=1\"",
    b"UTF8 (",
    b"{5}\r\n",
    b"{3+}\r\n",
    b"~{4+}\r\n",
    b"{70000+}\r\n",
    b"{4294967296}\r\n",
    b"d LIST \"\" \"*\" RETURN (STATUS (MESSAGES))\r\n",
    b"e SEARCH RETURN (SAVE) ",
    b"f UID FETCH 1:* (BODY.PEEK[1.2.MIME])\r\n",
    b"g IDLE\r\n",
    b"DONE\r\n",
    b"h STATUS INBOX (APPENDLIMIT)\r\n",
    b"i CREATE x (USE (\\Drafts))\r\n",
    b")",
    b"\r\n",
    b" ",
    b"\"",
];

/// The guard, logged in or not (`data[1]` bit 0), with APPENDs and CATENATE parts accepted or
/// refused as bits of `data[1]` say, in reads cut by `data[1]`. Property: the steps are the
/// same whether the input comes in those reads or all at once (what the guard promises: its
/// answers never depend on how the network cut the bytes).
pub fn guard(data: &[u8]) {
    let Some((&setup, rest)) = data.split_first() else {
        return;
    };
    let input = spell(rest, WORDS);
    let whole = run_guard(&input, setup, None);
    let mut reads = Reads::new(setup);
    let pieces = run_guard(&input, setup, Some(&mut reads));
    assert_eq!(
        whole, pieces,
        "the guard's steps depend on the read boundaries"
    );
}

/// The guard's steps for `input`, message data merged; `reads` cuts it (None: at once).
fn run_guard(input: &[u8], setup: u8, mut reads: Option<&mut Reads>) -> Vec<String> {
    let mut guard = InputGuard::new();
    if setup & 1 == 1 {
        guard.logged_in();
    }
    let accept = setup & 2 == 2;
    let mut steps: Vec<String> = Vec::new();
    let mut rest = input;
    let mut budget = 64 + input.len() * 4;
    while !rest.is_empty() {
        let cut = reads
            .as_mut()
            .map_or(rest.len(), |r| r.next_len())
            .min(rest.len());
        let (chunk, tail) = rest.split_at(cut);
        rest = tail;
        let mut at = 0;
        loop {
            budget = budget
                .checked_sub(1)
                .unwrap_or_else(|| panic!("no progress: the guard is stuck"));
            let (used, step) = guard.next(&chunk[at..]);
            assert!(
                used <= chunk.len() - at,
                "the guard took more than it was given"
            );
            let taken = &chunk[at..at + used];
            at += used;
            let shown = match step {
                Step::NeedInput => break,
                Step::Pass(bytes) => format!("pass {}", String::from_utf8_lossy(&bytes)),
                Step::Message(n) => {
                    assert!(n <= taken.len(), "more message bytes than taken");
                    format!(
                        "message {}",
                        String::from_utf8_lossy(&taken[taken.len() - n..])
                    )
                }
                Step::Refuse(refusal) => {
                    let close = refusal.close;
                    steps.push(format!("refuse {refusal:?}"));
                    if close {
                        return steps;
                    }
                    continue;
                }
                Step::Append(command) => {
                    decide(&mut guard, accept || command.size < 100);
                    format!("append {command:?}")
                }
                Step::CatenateUrl(url) => {
                    decide(&mut guard, accept);
                    format!("url {url}")
                }
                Step::CatenateText { size, sync, utf8 } => {
                    decide(&mut guard, accept || size < 100);
                    format!("text {size} {sync} {utf8}")
                }
                other => format!("{other:?}"),
            };
            // Passed lines and message data are merged: only the bytes count, not the cuts.
            match (steps.last_mut(), shown) {
                (Some(last), shown)
                    if (last.starts_with("pass ") && shown.starts_with("pass "))
                        || (last.starts_with("message ") && shown.starts_with("message ")) =>
                {
                    let body = shown.split_once(' ').map_or("", |(_, b)| b).to_string();
                    last.push_str(&body);
                }
                (_, shown) => steps.push(shown),
            }
        }
    }
    steps
}

fn decide(guard: &mut InputGuard, accept: bool) {
    if accept {
        guard.accept_message();
    } else {
        guard.refuse_message();
    }
}

/// A message in memory, for SEARCH.
struct Message<'a> {
    meta: MessageMeta,
    raw: &'a [u8],
}

impl SearchSubject for Message<'_> {
    fn seq(&self) -> u32 {
        3
    }
    fn meta(&self) -> &MessageMeta {
        &self.meta
    }
    fn recent(&self) -> bool {
        false
    }
    fn raw(&mut self) -> io::Result<&[u8]> {
        Ok(self.raw)
    }
}

/// imap-codec's command parser on the text before the first NUL (the alphabet's words
/// help), and a SEARCH it yields evaluated on the message after it (any key: header,
/// body and text keys decode the message's MIME parts).
pub fn command(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (text, message) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let mut line = spell(text, WORDS);
    if !line.ends_with(b"\r\n") {
        line.extend_from_slice(b"\r\n");
    }
    let Ok((_, command)) = CommandCodec::default().decode(&line) else {
        return;
    };
    if let CommandBody::Search { criteria, .. } = command.body {
        let mut subject = Message {
            meta: MessageMeta {
                uid: 7,
                modseq: 9,
                flags: FlagSet::default(),
                internal_date: 1_710_545_400,
                size: message.len() as u64,
            },
            raw: message,
        };
        let scope = SearchScope {
            max_seq: 5,
            max_uid: 10,
        };
        let _ = matches(criteria.as_ref(), &mut subject, &scope);
    }
}

/// Mailbox names: modified UTF-7 decodes only in its one canonical spelling, so what decodes
/// encodes back to the same text, and what is encoded decodes back to the name; the wire
/// forms both ways; LIST patterns (`*`, `%`) against names, bounded in time by the input.
pub fn names(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(decoded) = utf7::decode(&text) {
        assert_eq!(
            utf7::encode(&decoded),
            text,
            "decoded modified UTF-7 re-encodes otherwise"
        );
    }
    let encoded = utf7::encode(&text);
    assert_eq!(
        utf7::decode(&encoded).as_deref(),
        Ok(&*text),
        "an encoded name does not decode back"
    );
    for utf8 in [false, true] {
        let _ = crate::imap::wire_text(&text, utf8);
        let _ = crate::imap::wire_mailbox(&text, utf8);
    }
    if let Some((pattern, name)) = text.split_once('\n') {
        let _ = pattern_matches(pattern, name);
    }
}
