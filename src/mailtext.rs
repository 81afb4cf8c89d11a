//! Message text on the wire: line ends, dot-stuffing and where the header ends, shared by the
//! SMTP server (reception), the queue (relaying, bounces), the store and the IMAP and POP3
//! servers.
//!
//! Internet mail ends every line with CRLF (RFC 5321 §2.3.8); a lone CR or LF is not a line
//! end, and next hops disagree on what they mean, which is what SMTP smuggling exploits.
//! [`LineEnds`] turns each bare CR and bare LF into CRLF as bytes stream through (a CR at the
//! end of one piece waits for the next); [`dot_stuff_into`] is the one dot-stuffer (RFC 5321
//! §4.5.2, RFC 1939 §3), with or without that normalisation; [`header_end`] is the one place
//! that decides where a message's header block ends.

/// Turns every bare CR and bare LF into CRLF, across piece boundaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineEnds {
    /// The last byte seen was a CR: CRLF if an LF follows, a bare CR otherwise.
    pending_cr: bool,
}

impl LineEnds {
    /// Normalises `input`, handing the output to `out` in pieces (borrowed from `input` where
    /// nothing changes).
    pub fn push(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) {
        let mut rest = input;
        while !rest.is_empty() {
            if self.pending_cr {
                self.pending_cr = false;
                // A CR with its LF, or a bare CR (then the byte after it is handled below).
                out(b"\r\n");
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            match memchr::memchr2(b'\r', b'\n', rest) {
                None => {
                    out(rest);
                    return;
                }
                Some(pos) => {
                    out(&rest[..pos]);
                    if rest[pos] == b'\r' {
                        self.pending_cr = true;
                    } else {
                        out(b"\r\n");
                    }
                    rest = &rest[pos + 1..];
                }
            }
        }
    }

    /// The end of the text: a CR still waiting is a bare one.
    pub fn finish(&mut self, out: &mut impl FnMut(&[u8])) {
        if std::mem::take(&mut self.pending_cr) {
            out(b"\r\n");
        }
    }

    /// `input` normalised in one go.
    pub fn normalise(input: &[u8]) -> Vec<u8> {
        let mut normalised = Vec::with_capacity(input.len());
        let mut line_ends = LineEnds::default();
        let mut sink = |piece: &[u8]| normalised.extend_from_slice(piece);
        line_ends.push(input, &mut sink);
        line_ends.finish(&mut sink);
        normalised
    }
}

/// What [`dot_stuff_into`] does with bare CR and LF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEndPolicy {
    /// Bare CR and bare LF become CRLF (what we relay: the next hop must not see them).
    Normalise,
    /// The bytes stay as they are and a line starts after each LF. POP3 uses this: its LIST
    /// and STAT sizes are those of the message as stored, and RETR must send exactly that many
    /// octets (before stuffing).
    Keep,
}

/// Appends `body` to `out` with a dot doubled at the start of every line, then a final CRLF if
/// the body does not end with one (the caller appends the `.CRLF` terminator).
pub fn dot_stuff_into(body: &[u8], policy: LineEndPolicy, out: &mut Vec<u8>) {
    out.reserve(body.len() + body.len() / 64 + 2);
    let mut at_line_start = true;
    let mut stuff = |piece: &[u8]| {
        let mut rest = piece;
        while !rest.is_empty() {
            if at_line_start && rest[0] == b'.' {
                out.push(b'.');
            }
            match memchr::memchr(b'\n', rest) {
                Some(pos) => {
                    out.extend_from_slice(&rest[..=pos]);
                    at_line_start = true;
                    rest = &rest[pos + 1..];
                }
                None => {
                    out.extend_from_slice(rest);
                    at_line_start = false;
                    rest = &[];
                }
            }
        }
    };
    match policy {
        LineEndPolicy::Normalise => {
            let mut line_ends = LineEnds::default();
            line_ends.push(body, &mut stuff);
            line_ends.finish(&mut stuff);
        }
        LineEndPolicy::Keep => stuff(body),
    }
    if !body.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
}

/// Header fields with their continuation lines, each with its line ends (the blank line that
/// ends the header is a field of its own).
pub fn header_fields(header: &[u8]) -> Vec<&[u8]> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    while pos < header.len() {
        let end = header[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| pos + p + 1)
            .unwrap_or(header.len());
        let continuation = pos > start && matches!(header.get(pos), Some(b' ' | b'\t'));
        if pos > start && !continuation {
            fields.push(&header[start..pos]);
            start = pos;
        }
        pos = end;
    }
    if start < header.len() {
        fields.push(&header[start..]);
    }
    fields
}

/// The length of a message's header block: through the blank line that ends it (RFC 5322
/// §2.1), or the whole message when it has none.
pub fn header_end(message: &[u8]) -> usize {
    blank_line_end(message).unwrap_or(message.len())
}

/// The offset just past the first blank line of `text`, which must start at the start of a
/// line. Lines end at LF; a blank line is an LF alone or CRLF, so this finds the `\r\n\r\n` of
/// the wire form, the `\n\n` of the stored (LF) form and either in a mix, and a text starting
/// with a blank line has an empty header. A CR not followed by LF is an ordinary byte.
pub fn blank_line_end(text: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for lf in memchr::memchr_iter(b'\n', text) {
        if matches!(&text[line_start..lf], b"" | b"\r") {
            return Some(lf + 1);
        }
        line_start = lf + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_end_in_every_line_end_form() {
        let cases: [(&[u8], usize); 14] = [
            // CRLF (wire form)
            (b"Subject: x\r\nTo: y\r\n\r\nbody\r\n", 21),
            (b"\r\nbody", 2),
            (b"Subject: x\r\n\r\n", 14),
            // LF (stored form)
            (b"Subject: x\nTo: y\n\nbody\n", 18),
            (b"\nbody", 1),
            (b"Subject: x\n\n\n", 12),
            // Mixed: the first blank line of either kind ends the header.
            (b"A: 1\r\nB: 2\n\nbody", 12),
            (b"A: 1\n\r\nbody\r\n\r\n", 7),
            // A bare CR is no line end: `\r\r\n` is not a blank line.
            (b"A: 1\r\r\n\r\r\nbody", 14),
            (b"A: 1\r\rbody", 10),
            // No blank line: all of it is header.
            (b"Subject: x\r\nTo: y\r\n", 19),
            (b"Subject: x", 10),
            (b"A: 1\r\n\r", 7),
            (b"", 0),
        ];
        for (message, end) in cases {
            assert_eq!(
                header_end(message),
                end,
                "{:?}",
                String::from_utf8_lossy(message)
            );
        }
        assert_eq!(blank_line_end(b"A: 1\r\n"), None);
        assert_eq!(blank_line_end(b"A: 1\r\n\r\n"), Some(8));
    }

    /// On CRLF text (all the queue handles) the finder is the old `\r\n\r\n` search, with a
    /// leading blank line meaning an empty header.
    #[test]
    fn header_end_on_crlf_text_is_the_crlf_search() {
        let mut next = crate::test_support::xorshift(0x5EED_0000_4EAD_0E2D);
        for _ in 0..3000 {
            let text: Vec<u8> = (0..next() % 30)
                .map(|_| [&b"\r\n"[..], b"a", b": "][(next() % 3) as usize].to_vec())
                .collect::<Vec<_>>()
                .concat();
            let expected = if text.starts_with(b"\r\n") {
                2
            } else {
                text.windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(text.len(), |p| p + 4)
            };
            assert_eq!(header_end(&text), expected, "{text:?}");
        }
    }

    fn stuffed(body: &[u8], policy: LineEndPolicy) -> Vec<u8> {
        let mut out = Vec::new();
        dot_stuff_into(body, policy, &mut out);
        out
    }

    #[test]
    fn bare_cr_and_lf_become_crlf() {
        let cases: [(&[u8], &[u8]); 8] = [
            (b"a\rb", b"a\r\nb"),
            (b"a\nb", b"a\r\nb"),
            (b"a\r\nb", b"a\r\nb"),
            (b"a\r\r\nb", b"a\r\n\r\nb"),
            (b"a\n\rb", b"a\r\n\r\nb"),
            (b"\r", b"\r\n"),
            (b"\n\n", b"\r\n\r\n"),
            (b"A\r.\rX", b"A\r\n.\r\nX"),
        ];
        for (input, expected) in cases {
            assert_eq!(LineEnds::normalise(input), expected, "{input:?}");
        }
    }

    #[test]
    fn normalising_does_not_depend_on_piece_boundaries() {
        let input = b"x\r\ry\n\r\n.\r\r\n\rz\r";
        let whole = LineEnds::normalise(input);
        for size in 1..input.len() {
            let mut out = Vec::new();
            let mut line_ends = LineEnds::default();
            let mut sink = |piece: &[u8]| out.extend_from_slice(piece);
            for piece in input.chunks(size) {
                line_ends.push(piece, &mut sink);
            }
            line_ends.finish(&mut sink);
            assert_eq!(out, whole, "pieces of {size}");
        }
    }

    #[test]
    fn stuffing_with_normalisation() {
        assert_eq!(
            stuffed(b".a\r\nb\r\n..c\r\n", LineEndPolicy::Normalise),
            b"..a\r\nb\r\n...c\r\n"
        );
        assert_eq!(
            stuffed(b"x\r\n.\r\ny", LineEndPolicy::Normalise),
            b"x\r\n..\r\ny\r\n"
        );
        // The smuggling bodies of issue 10: no bare CR left, the dot line stuffed.
        assert_eq!(
            stuffed(b"A\r.\rX", LineEndPolicy::Normalise),
            b"A\r\n..\r\nX\r\n"
        );
        assert_eq!(
            stuffed(b"A\r.\r\nX", LineEndPolicy::Normalise),
            b"A\r\n..\r\nX\r\n"
        );
        assert_eq!(
            stuffed(b"a\n.\nb\r", LineEndPolicy::Normalise),
            b"a\r\n..\r\nb\r\n"
        );
        assert_eq!(stuffed(b"", LineEndPolicy::Normalise), b"");
    }

    #[test]
    fn stuffing_that_keeps_the_bytes() {
        assert_eq!(
            stuffed(b"a\r\n.b\r\n..\r\nend", LineEndPolicy::Keep),
            b"a\r\n..b\r\n...\r\nend\r\n"
        );
        // A bare CR stays (the octet count must not change); a line starts only after LF.
        assert_eq!(stuffed(b"a\r.b\r\n", LineEndPolicy::Keep), b"a\r.b\r\n");
        assert_eq!(stuffed(b"a\r", LineEndPolicy::Keep), b"a\r\r\n");
    }
}
