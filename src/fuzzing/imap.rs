//! IMAP: the input guard that frames what clients send, imap-codec's command parser with
//! SEARCH evaluated on a message, and mailbox names (modified UTF-7, LIST patterns).

use std::io;

use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::CommandCodec;

use super::alphabet::{spell, Feed};
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
    let whole = run_guard(Feed::whole(&input), setup);
    let pieces = run_guard(Feed::new(&input, setup), setup);
    assert_eq!(
        whole, pieces,
        "the guard's steps depend on the read boundaries"
    );
}

/// One step of the guard as the comparison sees it.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// Bytes for imap-next, and message bytes: merged with the step before of the same kind,
    /// as only the bytes count, not where the reads cut them.
    Pass(Vec<u8>),
    Message(Vec<u8>),
    Other(String),
}

/// The guard's steps for the input `feed` gives.
fn run_guard(mut feed: Feed<'_>, setup: u8) -> Vec<Seen> {
    let mut guard = InputGuard::new();
    if setup & 1 == 1 {
        guard.logged_in();
    }
    let accept = setup & 2 == 2;
    let mut steps: Vec<Seen> = Vec::new();
    while let Some(chunk) = feed.next_read() {
        let mut at = 0;
        loop {
            feed.step();
            let (used, step) = guard.next(&chunk[at..]);
            assert!(
                used <= chunk.len() - at,
                "the guard took more than it was given"
            );
            let taken = &chunk[at..at + used];
            at += used;
            let seen = match step {
                Step::NeedInput => break,
                Step::Pass(bytes) => Seen::Pass(bytes),
                Step::Message(n) => {
                    assert!(n <= taken.len(), "more message bytes than taken");
                    Seen::Message(taken[taken.len() - n..].to_vec())
                }
                Step::Refuse(refusal) => {
                    let close = refusal.close;
                    steps.push(Seen::Other(format!("refuse {refusal:?}")));
                    if close {
                        return steps;
                    }
                    continue;
                }
                Step::Append(command) => {
                    decide(&mut guard, accept || command.size < 100);
                    Seen::Other(format!("append {command:?}"))
                }
                Step::CatenateUrl(url) => {
                    decide(&mut guard, accept);
                    Seen::Other(format!("url {url}"))
                }
                Step::CatenateText { size, sync, utf8 } => {
                    decide(&mut guard, accept || size < 100);
                    Seen::Other(format!("text {size} {sync} {utf8}"))
                }
                other => Seen::Other(format!("{other:?}")),
            };
            match (steps.last_mut(), seen) {
                (Some(Seen::Pass(last)), Seen::Pass(more))
                | (Some(Seen::Message(last)), Seen::Message(more)) => last.extend(more),
                (_, seen) => steps.push(seen),
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
