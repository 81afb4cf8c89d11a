//! Message data after DATA (RFC 5321 §4.1.1.4, §4.5.2), sans-I/O and bounded.
//!
//! Only `<CRLF>.<CRLF>` ends the data: a CR or LF that is not part of a CRLF is never a line end
//! for that purpose, so `<LF>.<LF>`, `<CR>.<CR>`, `<CRLF>.<CR><CRLF>` and the like are message
//! text (SMTP smuggling). In the text, every bare CR and bare LF becomes CRLF (RFC 5321 §2.3.8;
//! the same rule as [`crate::mailtext::LineEnds`]), so what we store and relay has only CRLF
//! line ends. A dot that starts a line after a CRLF (or the very first line) is the client's
//! dot-stuffing and is removed; after a bare CR or LF nothing was stuffed, so the dot stays.
//!
//! The size bound is inside the receiver: past `smtp.maxMessageSize` nothing more is stored
//! (and what was is freed), but the data is still read to its end marker so the session stays
//! in step; then the message is refused.

/// How far a message buffer grows beyond what it needs at most, in one step (it never grows
/// past the message size limit either): a client's claims never allocate ahead of its bytes.
pub const MAX_GROWTH_STEP: usize = 1024 * 1024;

/// Where the receiver stands in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// At the start of a line; `clean` when the previous line ended with a real CRLF (or the
    /// data just began): only then may this line be the end marker or carry a stuffed dot.
    LineStart { clean: bool },
    /// A clean line began with a dot (removed).
    Dot,
    /// ... and a CR followed: an LF now ends the data.
    DotCr,
    /// Inside a line.
    Text,
    /// Inside a line, just after a CR.
    TextCr,
}

/// How the data ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataEnd {
    /// The message is in the body.
    Complete,
    /// It was longer than the limit; the body is empty.
    TooBig,
}

/// Reads the data of one DATA command.
#[derive(Debug)]
pub struct DataReceiver {
    scan: Scan,
    limit: usize,
    too_big: bool,
}

impl DataReceiver {
    /// A receiver right after the `354` (the CRLF of the DATA command counts as a line end, so
    /// `.<CRLF>` at once is an empty message).
    pub fn new(limit: usize) -> DataReceiver {
        DataReceiver {
            scan: Scan::LineStart { clean: true },
            limit,
            too_big: false,
        }
    }

    /// Reads from `input` into `body`, up to and including the end marker. Returns how many
    /// bytes were consumed and, once the marker was seen, how the message ended (the bytes after
    /// the marker are the next commands).
    pub fn ingest(&mut self, input: &[u8], body: &mut Vec<u8>) -> (usize, Option<DataEnd>) {
        let mut sink = Bounded {
            body,
            limit: self.limit,
            too_big: &mut self.too_big,
        };
        let mut scan = self.scan;
        let mut i = 0;
        while i < input.len() {
            let byte = input[i];
            match scan {
                Scan::Text => {
                    // The common case: copy up to the next CR or LF at once.
                    let rest = &input[i..];
                    let Some(pos) = memchr::memchr2(b'\r', b'\n', rest) else {
                        sink.put(rest);
                        i = input.len();
                        continue;
                    };
                    sink.put(&rest[..pos]);
                    scan = if rest[pos] == b'\r' {
                        Scan::TextCr
                    } else {
                        sink.put(b"\r\n");
                        Scan::LineStart { clean: false }
                    };
                    i += pos;
                }
                Scan::LineStart { clean } => match byte {
                    b'.' if clean => scan = Scan::Dot,
                    b'\r' => scan = Scan::TextCr,
                    b'\n' => {
                        sink.put(b"\r\n");
                        scan = Scan::LineStart { clean: false };
                    }
                    // Text takes this byte.
                    _ => {
                        scan = Scan::Text;
                        continue;
                    }
                },
                Scan::Dot => match byte {
                    b'\r' => scan = Scan::DotCr,
                    b'\n' => {
                        sink.put(b"\r\n");
                        scan = Scan::LineStart { clean: false };
                    }
                    _ => {
                        scan = Scan::Text;
                        continue;
                    }
                },
                Scan::DotCr => {
                    if byte == b'\n' {
                        self.scan = Scan::LineStart { clean: true };
                        let end = if *sink.too_big {
                            DataEnd::TooBig
                        } else {
                            DataEnd::Complete
                        };
                        return (i + 1, Some(end));
                    }
                    // "<CRLF>.<CR>" and something else: the CR was bare, the dot was stuffing.
                    sink.put(b"\r\n");
                    scan = Scan::LineStart { clean: false };
                    continue;
                }
                Scan::TextCr => {
                    sink.put(b"\r\n");
                    if byte == b'\n' {
                        scan = Scan::LineStart { clean: true };
                    } else {
                        // A bare CR; the byte after it starts the next line.
                        scan = Scan::LineStart { clean: false };
                        continue;
                    }
                }
            }
            i += 1;
        }
        self.scan = scan;
        (input.len(), None)
    }
}

/// A message body that refuses to pass `limit`: once it would, it is emptied and `too_big` set.
pub(super) struct Bounded<'a> {
    pub body: &'a mut Vec<u8>,
    pub limit: usize,
    pub too_big: &'a mut bool,
}

impl Bounded<'_> {
    pub fn put(&mut self, bytes: &[u8]) {
        if *self.too_big || bytes.is_empty() {
            return;
        }
        let Some(needed) = self
            .body
            .len()
            .checked_add(bytes.len())
            .filter(|&needed| needed <= self.limit)
        else {
            *self.too_big = true;
            // Nothing of it will be used: give the memory back now, not at the end marker.
            *self.body = Vec::new();
            return;
        };
        if needed > self.body.capacity() {
            let step = self.body.len().min(MAX_GROWTH_STEP);
            let target = needed.saturating_add(step).min(self.limit);
            self.body.reserve_exact(target - self.body.len());
        }
        self.body.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `piece` bytes; the body and what followed the end marker.
    fn receive(input: &[u8], piece: usize, limit: usize) -> (Vec<u8>, Option<DataEnd>, Vec<u8>) {
        let mut receiver = DataReceiver::new(limit);
        let mut body = Vec::new();
        let mut offset = 0;
        while offset < input.len() {
            let end = offset.saturating_add(piece).min(input.len());
            let (consumed, done) = receiver.ingest(&input[offset..end], &mut body);
            offset += consumed;
            if done.is_some() {
                return (body, done, input[offset..].to_vec());
            }
        }
        (body, None, Vec::new())
    }

    fn whole_and_byte_by_byte(input: &[u8], limit: usize) -> (Vec<u8>, Option<DataEnd>, Vec<u8>) {
        let whole = receive(input, usize::MAX, limit);
        for piece in [1, 2, 3, 7] {
            assert_eq!(receive(input, piece, limit), whole, "pieces of {piece}");
        }
        whole
    }

    #[test]
    fn crlf_dot_crlf_ends_and_dots_are_unstuffed() {
        let (body, end, rest) =
            whole_and_byte_by_byte(b"hi\r\n..\r\n.a\r\n\r\n.\r\nQUIT\r\n", 1000);
        assert_eq!(end, Some(DataEnd::Complete));
        assert_eq!(body, b"hi\r\n.\r\na\r\n\r\n");
        assert_eq!(rest, b"QUIT\r\n");
        // An empty message.
        let (body, end, rest) = whole_and_byte_by_byte(b".\r\nNOOP\r\n", 1000);
        assert_eq!((body.as_slice(), end), (&b""[..], Some(DataEnd::Complete)));
        assert_eq!(rest, b"NOOP\r\n");
    }

    /// Issue 10: none of these ends the data, fed whole or byte by byte; the text after them
    /// stays message text and the real end marker ends it.
    #[test]
    fn fake_end_markers_are_text() {
        let fakes: [&[u8]; 10] = [
            b"\n.\n",
            b"\r.\r",
            b"\n.\r\n",
            b"\r\n.\r",
            b"\r\n.\n",
            b"\r.\r\n",
            b"\n.\r\r\n",
            b"\r\n.\r\r\n",
            b"\r\n.\r\r\r\n",
            b"\r\n.\x00\r\n",
        ];
        for fake in fakes {
            let mut input = b"before".to_vec();
            input.extend_from_slice(fake);
            input.extend_from_slice(b"MAIL FROM:<a@b.test>\r\n.\r\nNEXT");
            let (body, end, rest) = whole_and_byte_by_byte(&input, 1000);
            assert_eq!(end, Some(DataEnd::Complete), "{fake:?}");
            assert_eq!(rest, b"NEXT", "{fake:?}");
            assert!(body.ends_with(b"MAIL FROM:<a@b.test>\r\n"), "{fake:?}");
            assert_only_crlf(&body);
            // Without the real end marker the data goes on.
            let mut open = b"before".to_vec();
            open.extend_from_slice(fake);
            assert_eq!(receive(&open, usize::MAX, 1000).1, None, "{fake:?}");
            assert_eq!(receive(&open, 1, 1000).1, None, "{fake:?}");
        }
    }

    fn assert_only_crlf(body: &[u8]) {
        for (i, &byte) in body.iter().enumerate() {
            match byte {
                b'\r' => assert_eq!(body.get(i + 1), Some(&b'\n'), "bare CR in {body:?}"),
                b'\n' => assert!(i > 0 && body[i - 1] == b'\r', "bare LF in {body:?}"),
                _ => {}
            }
        }
    }

    #[test]
    fn bare_line_ends_become_crlf_and_keep_their_dot() {
        let cases: [(&[u8], &[u8]); 7] = [
            (b"a\nb", b"a\r\nb"),
            (b"a\rb", b"a\r\nb"),
            (b"a\r\r\nb", b"a\r\n\r\nb"),
            // After a bare line end the dot is text; after CRLF it is stuffing.
            (b"A\r.\rX", b"A\r\n.\r\nX"),
            (b"A\r.\r\nX", b"A\r\n.\r\nX"),
            (b"a\n.b", b"a\r\n.b"),
            (b"a\r\n.\rb", b"a\r\n\r\nb"),
        ];
        for (text, expected) in cases {
            let mut input = text.to_vec();
            input.extend_from_slice(b"\r\n.\r\n");
            let (body, end, _) = whole_and_byte_by_byte(&input, 1000);
            assert_eq!(end, Some(DataEnd::Complete));
            let mut expected = expected.to_vec();
            expected.extend_from_slice(b"\r\n");
            assert_eq!(body, expected, "{text:?}");
        }
    }

    #[test]
    fn the_limit_stops_storing_and_the_data_is_drained() {
        // 998 + CRLF = 1000: exactly the limit.
        let exact = [vec![b'y'; 998], b"\r\n.\r\n".to_vec()].concat();
        let (body, end, _) = whole_and_byte_by_byte(&exact, 1000);
        assert_eq!((body.len(), end), (1000, Some(DataEnd::Complete)));
        // One byte more (limit + 1).
        let over = [vec![b'y'; 999], b"\r\n.\r\nNOOP\r\n".to_vec()].concat();
        let (body, end, rest) = whole_and_byte_by_byte(&over, 1000);
        assert_eq!(end, Some(DataEnd::TooBig));
        assert!(body.is_empty() && body.capacity() == 0);
        assert_eq!(rest, b"NOOP\r\n");
        // A bare LF that becomes CRLF counts with its CR.
        let grown = [vec![b'y'; 998], b"\n.\r\n\r\n.\r\n".to_vec()].concat();
        assert_eq!(receive(&grown, 5, 1000).1, Some(DataEnd::TooBig));
    }

    #[test]
    fn memory_grows_with_the_data_never_past_the_limit() {
        let limit = 5 * MAX_GROWTH_STEP;
        let mut receiver = DataReceiver::new(limit);
        let mut body = Vec::new();
        let line = [vec![b'x'; 1022], b"\r\n".to_vec()].concat();
        for _ in 0..(limit / line.len()) {
            let (consumed, end) = receiver.ingest(&line, &mut body);
            assert_eq!((consumed, end), (line.len(), None));
            assert!(body.capacity() <= limit);
            assert!(body.capacity() - body.len() <= MAX_GROWTH_STEP.max(line.len()));
        }
    }

    /// Random text over the characters that matter: the result never depends on how the input
    /// is cut, and a body never holds a bare CR or LF.
    #[test]
    fn random_text_any_cut() {
        let alphabet = b"\r\n.ax\x00";
        let mut next = crate::test_support::xorshift(0x5eed_0010);
        for _ in 0..2000 {
            let len = (next() % 40) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let whole = receive(&input, usize::MAX, 30);
            let piece = (next() % 5 + 1) as usize;
            assert_eq!(receive(&input, piece, 30), whole, "{input:?} in {piece}s");
            if whole.1 != Some(DataEnd::TooBig) {
                assert_only_crlf(&whole.0);
            }
        }
    }
}
