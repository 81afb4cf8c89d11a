//! Content-Type, Content-Disposition and Content-Language values (RFC 2045, 2183, 2231, 3282).
//!
//! The parser is lenient like Dovecot's: comments and folding are skipped, a parameter that
//! does not parse is dropped up to the next `;`, and nothing here fails.

/// A parsed `type/subtype; params` (or `disposition; params`) value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MimeValue {
    pub kind: Vec<u8>,
    pub subtype: Vec<u8>,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
}

impl MimeValue {
    /// The first parameter called `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }

    /// Whether this is `kind/subtype`, case-insensitive.
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind.as_bytes())
            && self.subtype.eq_ignore_ascii_case(subtype.as_bytes())
    }
}

/// Parses a Content-Type value. Without a `/` the subtype is empty (as Dovecot reports it).
pub(crate) fn content_type(value: &[u8]) -> MimeValue {
    let mut lx = Lexer::new(value);
    let kind = lx.token().unwrap_or_default().to_vec();
    let subtype = if lx.eat(b'/') {
        lx.token().unwrap_or_default().to_vec()
    } else {
        Vec::new()
    };
    MimeValue {
        kind,
        subtype,
        params: parameters(&mut lx),
    }
}

/// Parses a Content-Disposition value: a token and parameters.
pub(crate) fn disposition(value: &[u8]) -> MimeValue {
    let mut lx = Lexer::new(value);
    let kind = lx.token().unwrap_or_default().to_vec();
    MimeValue {
        kind,
        subtype: Vec::new(),
        params: parameters(&mut lx),
    }
}

/// Parses a Content-Language value: language tags separated by commas and whitespace.
pub(crate) fn languages(value: &[u8]) -> Vec<Vec<u8>> {
    let mut lx = Lexer::new(value);
    let mut out = Vec::new();
    loop {
        lx.skip_cfws();
        match lx.peek() {
            None => return out,
            Some(b',') => lx.pos += 1,
            Some(_) => match lx.token() {
                Some(t) => out.push(t.to_vec()),
                None => lx.pos += 1,
            },
        }
    }
}

/// `*(";" attribute "=" value)`, with RFC 2231 continuations (`name*0`, `name*1*`) joined.
/// Joined parameters follow the plain ones, as in Dovecot; an extended (`*`-suffixed) one
/// keeps its `name*` and its raw `charset'lang'%XX` value.
fn parameters(lx: &mut Lexer<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut plain = Vec::new();
    let mut split: Vec<Continued> = Vec::new();
    loop {
        lx.skip_cfws();
        match lx.peek() {
            None => break,
            Some(b';') => {
                lx.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let Some((name, value)) = parameter(lx) else {
            lx.skip_past(b';');
            continue;
        };
        match rfc2231_name(&name) {
            Some((base, index, extended)) => {
                let pos = split
                    .iter()
                    .position(|(b, _, _)| b.eq_ignore_ascii_case(base));
                let entry = match pos {
                    Some(i) => &mut split[i],
                    None => {
                        split.push((base.to_vec(), false, Vec::new()));
                        let last = split.len() - 1;
                        &mut split[last]
                    }
                };
                entry.1 |= extended && index == 0;
                entry.2.push((index, value));
            }
            None => plain.push((name, value)),
        }
    }
    for (base, extended, mut pieces) in split {
        pieces.sort_by_key(|(i, _)| *i);
        let mut name = base;
        if extended {
            name.push(b'*');
        }
        plain.push((name, pieces.into_iter().flat_map(|(_, v)| v).collect()));
    }
    plain
}

/// An RFC 2231 parameter being assembled: base name, extended (`name*0*`), numbered pieces.
type Continued = (Vec<u8>, bool, Vec<(u32, Vec<u8>)>);

/// One `attribute = value`, or None when it does not parse.
fn parameter(lx: &mut Lexer<'_>) -> Option<(Vec<u8>, Vec<u8>)> {
    let name = lx.token()?.to_vec();
    if !lx.eat(b'=') {
        return None;
    }
    lx.skip_cfws();
    let value = if lx.peek() == Some(b'"') {
        lx.quoted()
    } else {
        lx.token()?.to_vec()
    };
    Some((name, value))
}

/// `name*N`, `name*N*` or `name*` → (name, N, extended). None for a plain name.
fn rfc2231_name(name: &[u8]) -> Option<(&[u8], u32, bool)> {
    let star = name.iter().position(|&b| b == b'*')?;
    let (base, rest) = (&name[..star], &name[star + 1..]);
    if base.is_empty() {
        return None;
    }
    if rest.is_empty() {
        return Some((base, 0, true));
    }
    let (digits, extended) = match rest.strip_suffix(b"*") {
        Some(d) => (d, true),
        None => (rest, false),
    };
    if digits.is_empty() || digits.len() > 4 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let index = digits
        .iter()
        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    Some((base, index, extended))
}

/// A small cursor over a structured header value (RFC 2045 tokens, RFC 5322 comments).
pub(crate) struct Lexer<'a> {
    pub s: &'a [u8],
    pub pos: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(s: &'a [u8]) -> Self {
        Lexer { s, pos: 0 }
    }

    pub fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Skips whitespace (incl. line breaks) and comments; returns the last comment's text.
    pub fn skip_cfws(&mut self) -> Option<Vec<u8>> {
        let mut comment = None;
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'(' => comment = Some(self.comment()),
                _ => break,
            }
        }
        comment
    }

    /// A nested comment starting at `(`; returns its text with escapes removed.
    fn comment(&mut self) -> Vec<u8> {
        let mut depth = 0usize;
        let mut text = Vec::new();
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'(' => {
                    if depth > 0 {
                        text.push(b);
                    }
                    depth += 1;
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return text;
                    }
                    text.push(b);
                }
                b'\\' => {
                    if let Some(c) = self.peek() {
                        text.push(c);
                        self.pos += 1;
                    }
                }
                b'\r' | b'\n' => {}
                _ => text.push(b),
            }
        }
        text
    }

    /// After optional CFWS, consumes `c` if it is next.
    pub fn eat(&mut self, c: u8) -> bool {
        self.skip_cfws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// After optional CFWS, an RFC 2045 token (8-bit bytes allowed, as Dovecot does).
    pub fn token(&mut self) -> Option<&'a [u8]> {
        self.skip_cfws();
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b <= b' ' || b == 0x7f || b"()<>@,;:\\\"/[]?=".contains(&b) {
                break;
            }
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.s[start..self.pos])
    }

    /// A quoted string at `"`, unescaped, line breaks removed; unterminated runs to the end.
    pub fn quoted(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.pos += 1;
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(c) = self.peek() {
                        out.push(c);
                        self.pos += 1;
                    }
                }
                b'\r' | b'\n' => {}
                _ => out.push(b),
            }
        }
        out
    }

    /// Skips to just after the next `c` (or the end).
    fn skip_past(&mut self, c: u8) {
        while let Some(b) = self.peek() {
            self.pos += 1;
            if b == c {
                break;
            }
        }
    }
}
