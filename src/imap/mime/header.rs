//! Splitting a header block into fields, the way Dovecot's header parser does.
//!
//! A field is its first line plus any continuation lines (starting with SP or HTAB). A line
//! without a colon is still a field (its whole text is the name), so it neither ends the
//! header nor disappears from HEADER.FIELDS.NOT. The header ends at the first empty line.

use std::ops::Range;

/// One header field, as ranges into the raw message.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// The field name, without the colon and trailing whitespace.
    pub name: Range<usize>,
    /// The raw value after the colon (folding kept), without the final line end.
    pub value: Range<usize>,
    /// The whole field including continuation lines and the final line end, if any.
    pub line: Range<usize>,
}

/// The fields of a header block, and whether it ended with an empty line.
pub(crate) struct Header {
    pub fields: Vec<Field>,
    pub blank_line: bool,
}

impl Header {
    /// Parses the header block `range` of `raw`.
    pub fn parse(raw: &[u8], range: Range<usize>) -> Header {
        let end = range.end.min(raw.len());
        let mut p = range.start.min(end);
        let mut fields = Vec::new();
        while p < end {
            let first_end = line_end(raw, p, end);
            if is_empty_line(&raw[p..first_end]) {
                return Header {
                    fields,
                    blank_line: true,
                };
            }
            let mut next = first_end;
            while next < end && matches!(raw[next], b' ' | b'\t') {
                next = line_end(raw, next, end);
            }
            let content_end = trim_line_end(raw, p, next);
            let first = &raw[p..trim_line_end(raw, p, first_end)];
            let (name, value) = match first.iter().position(|&b| b == b':') {
                Some(colon) => {
                    let name_len = trim_end_ws(&first[..colon]).len();
                    (p..p + name_len, p + colon + 1..content_end)
                }
                None => (p..p + trim_end_ws(first).len(), content_end..content_end),
            };
            fields.push(Field {
                name,
                value,
                line: p..next,
            });
            p = next;
        }
        Header {
            fields,
            blank_line: false,
        }
    }

    /// The fields called `name` (case-insensitive), in order.
    pub fn all<'h>(&'h self, raw: &'h [u8], name: &'h str) -> impl Iterator<Item = &'h Field> + 'h {
        self.fields
            .iter()
            .filter(move |f| raw[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The raw value of the first field called `name`; MIME fields use the first.
    pub fn first<'r>(&self, raw: &'r [u8], name: &str) -> Option<&'r [u8]> {
        self.all(raw, name).next().map(|f| &raw[f.value.clone()])
    }

    /// The raw value of the last field called `name`; Dovecot's ENVELOPE uses the last.
    pub fn last<'r>(&self, raw: &'r [u8], name: &str) -> Option<&'r [u8]> {
        self.all(raw, name).last().map(|f| &raw[f.value.clone()])
    }
}

/// The position after the LF ending the line at `p`, or `end`.
pub(crate) fn line_end(raw: &[u8], p: usize, end: usize) -> usize {
    match raw[p..end].iter().position(|&b| b == b'\n') {
        Some(i) => p + i + 1,
        None => end,
    }
}

/// The end of the line content in `p..next`, without its CRLF or LF.
fn trim_line_end(raw: &[u8], p: usize, next: usize) -> usize {
    let mut e = next;
    if e > p && raw[e - 1] == b'\n' {
        e -= 1;
    }
    if e > p && raw[e - 1] == b'\r' {
        e -= 1;
    }
    e
}

/// An empty line: CRLF, LF, or a lone CR at the end of the data.
pub(crate) fn is_empty_line(line: &[u8]) -> bool {
    matches!(line, b"\r\n" | b"\n" | b"\r")
}

fn trim_end_ws(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    &s[..n]
}

/// A value as Dovecot hands it to BODYSTRUCTURE: whitespace after the colon dropped, line
/// breaks of folded lines removed, everything else (tabs, trailing blanks) kept.
pub(crate) fn unfold(value: &[u8]) -> Vec<u8> {
    let start = value
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(value.len());
    value[start..]
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect()
}

/// A value as Dovecot puts it in ENVELOPE: unfolded, and tabs turned into spaces.
pub(crate) fn unfold_envelope(value: &[u8]) -> Vec<u8> {
    let mut v = unfold(value);
    for b in &mut v {
        if *b == b'\t' {
            *b = b' ';
        }
    }
    v
}
