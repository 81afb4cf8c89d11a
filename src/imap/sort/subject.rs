//! The base subject of RFC 5256 §2.1, which SORT SUBJECT orders by and both THREAD algorithms
//! group by, and the i;unicode-casemap-like key strings are compared with.

/// A subject with its `Re:`/`Fwd:` decorations removed (RFC 5256 §2.1), case-mapped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BaseSubject {
    /// The base subject, case-mapped with [`casemap`]; empty when nothing is left.
    pub text: String,
    /// The subject was a reply or a forward: step 2 removed `(fwd)`, step 3 a `Re:`/`Fw:`/
    /// `Fwd:`, or step 6 a `[fwd: ...]` wrapper (used by REFERENCES' subject merging).
    pub reply: bool,
}

/// The comparison form of a key string, as i;unicode-casemap (RFC 5051) has it: each
/// character mapped to its upper case (for the letters mail uses, the title case), then
/// canonically decomposed (`É` → `E` + U+0301, so it sorts with the other E's, as Dovecot's
/// does). Decompositions are known for U+00C0–U+2FFF (`decompose`); Hangul and the rest stay
/// as they are.
pub fn casemap(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_uppercase) {
        match super::decompose::TABLE.binary_search_by_key(&c, |&(k, _)| k) {
            Ok(at) => out.push_str(super::decompose::TABLE[at].1),
            Err(_) => out.push(c),
        }
    }
    out
}

/// Only the first this many bytes of a subject are looked at. Steps 3–6 rescan what follows
/// each blob they remove, so their cost grows with the square of the length: a hostile
/// subject of 300,000 `[a]` blobs (1 MB, folded) would otherwise pin a core for hours on
/// every SORT. Real subjects are far shorter; two that agree on their first 1 KiB sort and
/// thread as equal.
pub const MAX_SUBJECT_BYTES: usize = 1024;

/// RFC 5256 §2.1 on a subject whose RFC 2047 encoded-words are already decoded (step 1's
/// first half: mail-parser does that when it reads the header), cut to
/// [`MAX_SUBJECT_BYTES`].
pub fn base_subject(decoded: &str) -> BaseSubject {
    let mut end = decoded.len().min(MAX_SUBJECT_BYTES);
    while !decoded.is_char_boundary(end) {
        end -= 1;
    }
    let decoded = &decoded[..end];
    // Step 1: tabs and line breaks become spaces, runs of spaces one space.
    let mut s = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        let c = if matches!(c, '\t' | '\r' | '\n') {
            ' '
        } else {
            c
        };
        if c == ' ' && s.ends_with(' ') {
            continue;
        }
        s.push(c);
    }
    let mut s = casemap(&s);
    let mut reply = false;
    loop {
        // Step 2: trailing "(fwd)" and spaces, repeatedly.
        loop {
            if let Some(rest) = s.strip_suffix(' ') {
                s.truncate(rest.len());
            } else if let Some(rest) = s.strip_suffix("(FWD)") {
                s.truncate(rest.len());
                reply = true;
            } else {
                break;
            }
        }
        // Steps 3–5: leaders and blobs off the front until neither matches.
        let mut start = 0;
        loop {
            let rest = &s[start..];
            if let Some(n) = leader_len(rest) {
                if n.1 {
                    reply = true;
                }
                start += n.0;
                continue;
            }
            if let Some(n) = blob_len(rest) {
                if has_non_space(&rest[n..]) {
                    start += n;
                    continue;
                }
            }
            break;
        }
        s.drain(..start);
        // Step 6: a "[fwd: ... ]" wrapper goes, and everything again from step 2.
        if s.starts_with("[FWD:") && s.ends_with(']') {
            s.truncate(s.len() - 1);
            s.drain(.."[FWD:".len());
            reply = true;
            continue;
        }
        break;
    }
    BaseSubject { text: s, reply }
}

fn has_non_space(s: &str) -> bool {
    s.bytes().any(|b| b != b' ')
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP` at the start of `s`: its length.
fn blob_len(s: &str) -> Option<usize> {
    let inner = s.strip_prefix('[')?;
    let close = inner.find(['[', ']'])?;
    if !inner[close..].starts_with(']') {
        return None;
    }
    let after = 1 + close + 1;
    Some(after + spaces(&s[after..]))
}

fn spaces(s: &str) -> usize {
    s.len() - s.trim_start_matches(' ').len()
}

/// `subj-leader = (*subj-blob subj-refwd) / WSP` at the start of `s` (upper case): its
/// length, and whether it was a `subj-refwd` (a reply or forward).
fn leader_len(s: &str) -> Option<(usize, bool)> {
    if s.starts_with(' ') {
        return Some((1, false));
    }
    let mut at = 0;
    loop {
        if let Some(n) = refwd_len(&s[at..]) {
            return Some((at + n, true));
        }
        at += blob_len(&s[at..])?;
    }
}

/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"` at the start of `s`.
fn refwd_len(s: &str) -> Option<usize> {
    let word = if s.starts_with("RE") || s.starts_with("FW") && !s.starts_with("FWD") {
        2
    } else if s.starts_with("FWD") {
        3
    } else {
        return None;
    };
    let mut at = word + spaces(&s[word..]);
    if let Some(n) = blob_len(&s[at..]) {
        // The blob is optional: `Re [list]:`; without the colon after it this is no refwd.
        if s[at + n..].starts_with(':') {
            at += n;
        }
    }
    s[at..].starts_with(':').then_some(at + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> (String, bool) {
        let b = base_subject(s);
        (b.text, b.reply)
    }

    /// A hostile subject of 300,000 blobs (or nested `[fwd:` wrappers) costs what its first
    /// MAX_SUBJECT_BYTES cost; a multi-byte character at the cut is not split.
    #[test]
    fn a_huge_subject_is_cut_not_scanned_quadratically() {
        let blobs = "[a]".repeat(300_000) + "x";
        let started = std::time::Instant::now();
        let b = base_subject(&blobs);
        assert!(b.text.len() <= MAX_SUBJECT_BYTES, "{}", b.text.len());
        let nested = "[fwd: ".repeat(100_000) + "x" + &"]".repeat(100_000);
        base_subject(&nested);
        let cut = "é".repeat(MAX_SUBJECT_BYTES);
        assert!(base_subject(&cut)
            .text
            .chars()
            .all(|c| c == 'E' || c == '\u{301}'));
        println!("hostile subjects: {:?}", started.elapsed());
    }

    #[test]
    fn leaders_trailers_and_blobs_come_off() {
        assert_eq!(base("Hello"), ("HELLO".into(), false));
        assert_eq!(base("Re: Hello"), ("HELLO".into(), true));
        assert_eq!(base("RE:Hello"), ("HELLO".into(), true));
        assert_eq!(base("re: re: Fwd: hello"), ("HELLO".into(), true));
        assert_eq!(base("Fw: hello"), ("HELLO".into(), true));
        assert_eq!(base("Re [list]: hello"), ("HELLO".into(), true));
        assert_eq!(base("[list] Re: hello"), ("HELLO".into(), true));
        assert_eq!(base("[list] hello"), ("HELLO".into(), false));
        assert_eq!(base("[a][b] Re: [c] hello"), ("HELLO".into(), true));
        assert_eq!(base("hello (fwd)"), ("HELLO".into(), true));
        assert_eq!(base("hello (fwd) (FWD)  "), ("HELLO".into(), true));
        assert_eq!(base("[Fwd: hello]"), ("HELLO".into(), true));
        assert_eq!(base("[fwd: Re: hello (fwd)]"), ("HELLO".into(), true));
        assert_eq!(
            base("  spaced\tout \r\n  words "),
            ("SPACED OUT WORDS".into(), false)
        );
    }

    #[test]
    fn what_must_stay() {
        // A blob that is all there is stays (step 4 needs a non-empty rest).
        assert_eq!(base("[only]"), ("[ONLY]".into(), false));
        assert_eq!(base("Re: [only]"), ("[ONLY]".into(), true));
        // Not leaders: no colon, or a word that merely starts with "re".
        assert_eq!(base("Re hello"), ("RE HELLO".into(), false));
        assert_eq!(base("Reply: x"), ("REPLY: X".into(), false));
        assert_eq!(base("Fwdx: x"), ("FWDX: X".into(), false));
        assert_eq!(base("[unclosed hello"), ("[UNCLOSED HELLO".into(), false));
        assert_eq!(base(""), ("".into(), false));
        assert_eq!(base("Re:"), ("".into(), true));
        assert_eq!(base("(fwd)"), ("".into(), true));
        // "[fwd:" without the closing bracket is no wrapper.
        assert_eq!(base("[fwd: hello"), ("[FWD: HELLO".into(), false));
    }

    #[test]
    fn case_is_mapped_beyond_ascii() {
        assert_eq!(base("Re: größe"), ("GRO\u{308}SSE".into(), true));
        assert_eq!(casemap("Müller"), "MU\u{308}LLER");
        // Decomposed, É sorts among the E's (after EVE, as U+0301 is above V), before F.
        assert!(casemap("Eve") < casemap("Émile") && casemap("Émile") < casemap("Fred"));
    }
}
