//! SEARCHRES (RFC 5182): `$`, the result a `SEARCH RETURN (SAVE ...)` saved, used as a
//! sequence set. imap-codec can't parse `$`, so before imap-next sees a command line the
//! session replaces each `$` that stands where a sequence set goes with the saved messages,
//! written out:
//!
//! - `[UID] FETCH|STORE|COPY|MOVE $` and `UID EXPUNGE $`: the saved messages that are still
//!   in the session's view, as UIDs in a UID command and as message numbers in the others
//!   (RFC 5182 §2.1: `$` names messages, whichever numbering the command uses). When none is
//!   left, a non-UID command becomes its UID form with a UID above the view's highest, which
//!   names nothing (the answer is the same: nothing fetched, stored or copied).
//! - in the criteria of `[UID] SEARCH`, `[UID] SORT` and `[UID] THREAD`, `$` as a key becomes
//!   `UID <set>`, and `$` after the `UID` key the UID set (both mean the same messages); with
//!   none left, a UID above the highest.
//!
//! The scan knows where sequence sets stand: after the command word, and in the criteria at a
//! key's place (SORT's after its criteria list and charset, THREAD's after its algorithm and
//! charset) (it counts the arguments each key takes, so `SUBJECT $` and `KEYWORD $` — a string and
//! a keyword — stay as they are). Quoted strings are skipped whole, a keyword such as
//! `$Forwarded` is not `$`, and literals never reach it: the guard passes their bytes apart
//! from the lines (`guard::InputGuard::passed_line`), and the scan keeps its place across the
//! lines of one command ([`Scan`]).
//!
//! Saved UIDs of messages expunged since simply aren't in the view any more, so `$` follows
//! expunges; SELECT and EXAMINE reset the saved result (RFC 5182 §2.1).

use super::sequence::uid_ranges;

/// Where the scan of one command stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scan {
    /// At the start of a command (its tag next).
    #[default]
    Tag,
    Command {
        uid: bool,
    },
    /// The next token is a sequence set.
    Set {
        uid: bool,
    },
    /// SORT's criteria list, `(` seen when `open`; the charset follows it.
    SortCriteria {
        open: bool,
    },
    /// `tokens` more arguments before the search criteria (THREAD's algorithm and charset,
    /// SORT's charset).
    Before {
        tokens: u8,
    },
    /// In SEARCH criteria, `args` tokens still belong to the last key; `set` when the next is
    /// the UID key's set; `modseq` right after MODSEQ (its optional entry name and type).
    Keys {
        args: u8,
        set: bool,
        modseq: bool,
    },
    /// Nothing more to replace in this command.
    Done,
}

/// The saved result as the session sees it now: the saved UIDs still in the view (ascending),
/// their message numbers, and a UID above every UID of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub uids: Vec<u32>,
    pub seqs: Vec<u32>,
    pub beyond: u32,
}

/// A set of numbers (ascending) in IMAP form, `1:3,7`.
fn set_text(numbers: &[u32]) -> String {
    let parts: Vec<String> = uid_ranges(numbers)
        .into_iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}:{b}")
            }
        })
        .collect();
    parts.join(",")
}

/// The arguments a SEARCH key takes (RFC 3501 §6.4.4, RFC 7162's MODSEQ apart).
fn key_args(key: &str) -> u8 {
    match key {
        "HEADER" => 2,
        "BCC" | "BEFORE" | "BODY" | "CC" | "FROM" | "KEYWORD" | "LARGER" | "ON" | "SENTBEFORE"
        | "SENTON" | "SENTSINCE" | "SINCE" | "SMALLER" | "SUBJECT" | "TEXT" | "TO"
        | "UNKEYWORD" | "CHARSET" | "OLDER" | "YOUNGER" => 1,
        _ => 0,
    }
}

/// One token of a line: its byte range and whether it is a quoted string or a parenthesis.
struct Token {
    start: usize,
    end: usize,
    quoted: bool,
    paren: bool,
}

fn tokens(line: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < line.len() {
        match line[at] {
            b' ' | b'\r' | b'\n' => at += 1,
            b'(' | b')' => {
                out.push(Token {
                    start: at,
                    end: at + 1,
                    quoted: false,
                    paren: true,
                });
                at += 1;
            }
            b'"' => {
                let start = at;
                at += 1;
                while at < line.len() && line[at] != b'"' {
                    at += if line[at] == b'\\' { 2 } else { 1 };
                }
                at = (at + 1).min(line.len());
                out.push(Token {
                    start,
                    end: at,
                    quoted: true,
                    paren: false,
                });
            }
            _ => {
                let start = at;
                while at < line.len() && !b" ()\r\n".contains(&line[at]) {
                    at += 1;
                }
                out.push(Token {
                    start,
                    end: at,
                    quoted: false,
                    paren: false,
                });
            }
        }
    }
    out
}

/// The line with its `$` replaced (None: nothing to replace); `scan` moves on to where the
/// line leaves the command. `saved` is asked for only when there is a `$` to replace.
pub fn rewrite(line: &[u8], scan: &mut Scan, saved: &dyn Fn() -> Saved) -> Option<Vec<u8>> {
    // (start, end, replacement) for each `$`, and a command word to prefix with `UID `.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for token in tokens(line) {
        let text = &line[token.start..token.end];
        let word = String::from_utf8_lossy(text).to_ascii_uppercase();
        let dollar = text == b"$" && !token.quoted;
        *scan = match *scan {
            Scan::Tag => Scan::Command { uid: false },
            Scan::Command { uid } => match word.as_str() {
                "UID" if !uid => Scan::Command { uid: true },
                "FETCH" | "STORE" | "COPY" | "MOVE" => Scan::Set { uid },
                "EXPUNGE" if uid => Scan::Set { uid },
                "SEARCH" => Scan::Keys {
                    args: 0,
                    set: false,
                    modseq: false,
                },
                // RFC 5182 §2.1: `$` stands wherever a set may in the criteria, also those
                // of SORT and THREAD (RFC 5256: `SORT (criteria) charset keys`, `THREAD
                // algorithm charset keys`; ESORT's RETURN is off the line already).
                "SORT" => Scan::SortCriteria { open: false },
                "THREAD" => Scan::Before { tokens: 2 },
                _ => Scan::Done,
            },
            Scan::SortCriteria { open } => match (open, &line[token.start..token.end]) {
                (false, b"(") => Scan::SortCriteria { open: true },
                (true, b")") => Scan::Before { tokens: 1 },
                (true, _) if !token.paren => Scan::SortCriteria { open: true },
                // Not a criteria list: imap-codec's BAD, nothing to write out.
                _ => Scan::Done,
            },
            Scan::Before { .. } if token.paren => Scan::Done,
            Scan::Before { tokens } => {
                if tokens > 1 {
                    Scan::Before { tokens: tokens - 1 }
                } else {
                    Scan::Keys {
                        args: 0,
                        set: false,
                        modseq: false,
                    }
                }
            }
            Scan::Set { uid } => {
                if dollar {
                    let saved = saved();
                    let replacement = match (uid, saved.uids.is_empty()) {
                        (true, false) => set_text(&saved.uids),
                        (false, false) => set_text(&saved.seqs),
                        (true, true) => saved.beyond.to_string(),
                        (false, true) => {
                            // The command word before `$` turns into its UID form.
                            edits.push((token.start, token.start, String::new()));
                            saved.beyond.to_string()
                        }
                    };
                    edits.push((token.start, token.end, replacement));
                }
                Scan::Done
            }
            Scan::Keys { args, set, modseq } => {
                if token.paren {
                    Scan::Keys { args, set, modseq }
                } else if modseq {
                    // MODSEQ [entry-name entry-type] mod-sequence: a quoted entry name means
                    // two more arguments follow.
                    Scan::Keys {
                        args: if token.quoted { 2 } else { 0 },
                        set: false,
                        modseq: false,
                    }
                } else if args > 0 {
                    Scan::Keys {
                        args: args - 1,
                        set: false,
                        modseq: false,
                    }
                } else if dollar {
                    let saved = saved();
                    let uids = if saved.uids.is_empty() {
                        saved.beyond.to_string()
                    } else {
                        set_text(&saved.uids)
                    };
                    let replacement = if set { uids } else { format!("UID {uids}") };
                    edits.push((token.start, token.end, replacement));
                    Scan::Keys {
                        args: 0,
                        set: false,
                        modseq: false,
                    }
                } else {
                    Scan::Keys {
                        args: if set { 0 } else { key_args(&word) },
                        set: !set && word == "UID",
                        modseq: !set && word == "MODSEQ",
                    }
                }
            }
            Scan::Done => Scan::Done,
        };
    }
    if edits.is_empty() {
        return None;
    }
    // A non-UID command whose `$` names nothing: `UID ` before the command word, which is
    // the token before the set (the tag is the first token).
    let mut out = line.to_vec();
    for (start, end, replacement) in edits.into_iter().rev() {
        if start == end {
            let word_start = line[..start.saturating_sub(1)]
                .iter()
                .rposition(|&b| b == b' ')
                .map_or(0, |at| at + 1);
            out.splice(word_start..word_start, b"UID ".iter().copied());
        } else {
            out.splice(start..end, replacement.into_bytes());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> Saved {
        Saved {
            uids: vec![4, 5, 6, 9],
            seqs: vec![2, 3, 4, 6],
            beyond: 12,
        }
    }

    fn none() -> Saved {
        Saved {
            uids: Vec::new(),
            seqs: Vec::new(),
            beyond: 12,
        }
    }

    /// The rewritten command, its lines given one at a time (as the guard passes them).
    fn run(lines: &[&str], saved: fn() -> Saved) -> String {
        let mut scan = Scan::default();
        let mut out = String::new();
        for line in lines {
            let bytes = line.as_bytes();
            let done = rewrite(bytes, &mut scan, &saved).unwrap_or_else(|| bytes.to_vec());
            out.push_str(&String::from_utf8(done).unwrap());
        }
        out
    }

    #[test]
    fn dollar_as_a_sequence_set() {
        assert_eq!(
            run(&["a FETCH $ (FLAGS)\r\n"], saved),
            "a FETCH 2:4,6 (FLAGS)\r\n"
        );
        assert_eq!(
            run(&["a uid fetch $ FLAGS\r\n"], saved),
            "a uid fetch 4:6,9 FLAGS\r\n"
        );
        assert_eq!(
            run(&["a STORE $ +FLAGS ($)\r\n"], saved),
            "a STORE 2:4,6 +FLAGS ($)\r\n"
        );
        assert_eq!(
            run(&["a UID EXPUNGE $\r\n"], saved),
            "a UID EXPUNGE 4:6,9\r\n"
        );
        assert_eq!(
            run(&["a MOVE $ Trash\r\n"], saved),
            "a MOVE 2:4,6 Trash\r\n"
        );
        assert_eq!(run(&["a COPY $ {5}\r\n"], saved), "a COPY 2:4,6 {5}\r\n");
        // Nothing saved, or all of it expunged: a set that names nothing.
        assert_eq!(
            run(&["a FETCH $ (UID)\r\n"], none),
            "a UID FETCH 12 (UID)\r\n"
        );
        assert_eq!(run(&["a UID COPY $ x\r\n"], none), "a UID COPY 12 x\r\n");
        // Not a result reference: keywords, flags, mailbox names, other commands.
        for line in [
            "a STORE 1 +FLAGS ($Forwarded $)\r\n",
            "a FETCH 1:$ FLAGS\r\n",
            "a COPY 1 $\r\n",
            "a SELECT $\r\n",
            "a EXPUNGE\r\n",
            "a LOGIN $ $\r\n",
            "a FETCH \"$\" FLAGS\r\n",
        ] {
            assert_eq!(run(&[line], saved), line);
        }
    }

    #[test]
    fn dollar_in_search_criteria() {
        assert_eq!(
            run(&["a SEARCH $ SEEN\r\n"], saved),
            "a SEARCH UID 4:6,9 SEEN\r\n"
        );
        assert_eq!(
            run(&["a UID SEARCH OR $ 1 (NOT $)\r\n"], saved),
            "a UID SEARCH OR UID 4:6,9 1 (NOT UID 4:6,9)\r\n"
        );
        assert_eq!(
            run(&["a SEARCH UID $\r\n"], saved),
            "a SEARCH UID 4:6,9\r\n"
        );
        assert_eq!(run(&["a SEARCH $\r\n"], none), "a SEARCH UID 12\r\n");
        // Arguments of keys stay: a string, a keyword, a header name and value, a quoted `$`.
        for line in [
            "a SEARCH SUBJECT $ KEYWORD $ UNKEYWORD $Junk\r\n",
            "a SEARCH HEADER $ $ FROM \"$\"\r\n",
            "a SEARCH CHARSET UTF-8 TEXT \"a $ b\" BODY \"\\\"$\"\r\n",
            "a SEARCH MODSEQ \"/flags/$\" all 5 SEEN\r\n",
        ] {
            assert_eq!(run(&[line], saved), line);
        }
        assert_eq!(
            run(&["a SEARCH MODSEQ 7 $\r\n"], saved),
            "a SEARCH MODSEQ 7 UID 4:6,9\r\n"
        );
        // Across a literal: `{1}` was SUBJECT's argument (its payload, `$`, never scanned);
        // the `$` on the next line is a key.
        assert_eq!(
            run(
                &["a SEARCH SUBJECT {1}\r\n", " $ TO {1}\r\n", "\r\n"],
                saved
            ),
            "a SEARCH SUBJECT {1}\r\n UID 4:6,9 TO {1}\r\n\r\n"
        );
    }

    #[test]
    fn dollar_in_sort_and_thread_criteria() {
        assert_eq!(
            run(&["a SORT (DATE) UTF-8 $\r\n"], saved),
            "a SORT (DATE) UTF-8 UID 4:6,9\r\n"
        );
        assert_eq!(
            run(
                &["a uid sort (REVERSE ARRIVAL) \"UTF-8\" NOT $ SEEN\r\n"],
                saved
            ),
            "a uid sort (REVERSE ARRIVAL) \"UTF-8\" NOT UID 4:6,9 SEEN\r\n"
        );
        assert_eq!(
            run(&["a THREAD REFERENCES UTF-8 $\r\n"], saved),
            "a THREAD REFERENCES UTF-8 UID 4:6,9\r\n"
        );
        assert_eq!(
            run(
                &["a UID THREAD ORDEREDSUBJECT US-ASCII OR UID $ 1\r\n"],
                none
            ),
            "a UID THREAD ORDEREDSUBJECT US-ASCII OR UID 12 1\r\n"
        );
        // A charset sent as a literal is one token; the `$` on the next line is a key.
        assert_eq!(
            run(&["a SORT (SUBJECT) {5}\r\n", " $\r\n"], saved),
            "a SORT (SUBJECT) {5}\r\n UID 4:6,9\r\n"
        );
        // Not result references: a `$` that is a criterion, an algorithm or a charset, a
        // key's argument, a quoted `$`; a malformed SORT is left to imap-codec.
        for line in [
            "a SORT ($) UTF-8 ALL\r\n",
            "a SORT (DATE) $ ALL\r\n",
            "a THREAD $ UTF-8 ALL\r\n",
            "a THREAD REFERENCES $ ALL\r\n",
            "a SORT (SUBJECT) UTF-8 SUBJECT $ \"$\"\r\n",
            "a SORT DATE UTF-8 $\r\n",
            "a THREAD (REFERENCES) UTF-8 $\r\n",
        ] {
            assert_eq!(run(&[line], saved), line);
        }
    }
}
