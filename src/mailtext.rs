//! Message text on the wire: line ends and dot-stuffing, shared by the SMTP server (reception),
//! the queue's SMTP client (relaying) and the POP3 server (RETR/TOP).
//!
//! Internet mail ends every line with CRLF (RFC 5321 §2.3.8); a lone CR or LF is not a line
//! end, and next hops disagree on what they mean, which is what SMTP smuggling exploits.
//! [`LineEnds`] turns each bare CR and bare LF into CRLF as bytes stream through (a CR at the
//! end of one piece waits for the next); [`dot_stuff_into`] is the one dot-stuffer (RFC 5321
//! §4.5.2, RFC 1939 §3), with or without that normalisation.

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

#[cfg(test)]
mod tests {
    use super::*;

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
