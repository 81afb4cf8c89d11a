//! Distinguished names, compared the way this book needs: attribute types and values without
//! regard to case, spaces around `=` and `,` ignored, backslash escapes (RFC 4514) decoded.
//! Every attribute this server names in a DN (`dc`, `ou`, `o`, `uid`, `cn`, …) matches
//! case-insensitively, so a lowercase form is a faithful key.

/// A DN in comparable form: its RDNs from the leftmost (the entry's own) to the root, each
/// `type=value` lowercased. The empty DN (the RootDSE) has no RDN.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dn(Vec<String>);

/// A DN that does not parse (RFC 4514: every RDN is `type=value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDn;

impl Dn {
    pub fn root() -> Dn {
        Dn(Vec::new())
    }

    pub fn parse(text: &str) -> Result<Dn, BadDn> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Dn::root());
        }
        let mut rdns = Vec::new();
        for part in split_unescaped(text, ',') {
            let (kind, value) = part.split_once('=').ok_or(BadDn)?;
            let kind = kind.trim().to_lowercase();
            let value = unescape(value.trim())?.to_lowercase();
            if kind.is_empty()
                || !kind
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(BadDn);
            }
            rdns.push(format!("{kind}={value}"));
        }
        Ok(Dn(rdns))
    }

    /// `child`'s DN: `type=value` (value escaped as RFC 4514 wants) under this one, and its
    /// text as the server shows it.
    pub fn child(&self, kind: &str, value: &str, parent_text: &str) -> (Dn, String) {
        let mut rdns = vec![format!("{}={}", kind.to_lowercase(), value.to_lowercase())];
        rdns.extend(self.0.iter().cloned());
        let text = match parent_text.is_empty() {
            true => format!("{kind}={}", escape(value)),
            false => format!("{kind}={},{parent_text}", escape(value)),
        };
        (Dn(rdns), text)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn depth(&self) -> usize {
        self.0.len()
    }

    /// The leftmost RDN's type and value (lowercased), e.g. `("uid", "alice@example.org")`.
    pub fn first(&self) -> Option<(&str, &str)> {
        self.0.first().and_then(|rdn| rdn.split_once('='))
    }

    /// True when this DN is `ancestor` or lies below it.
    pub fn is_within(&self, ancestor: &Dn) -> bool {
        self.0.len() >= ancestor.0.len() && self.0.ends_with(&ancestor.0)
    }

    /// True when `parent` is this DN's immediate superior.
    pub fn is_child_of(&self, parent: &Dn) -> bool {
        self.0.len() == parent.0.len() + 1 && self.0.ends_with(&parent.0)
    }
}

/// Splits at `sep` where it is not escaped by a backslash.
fn split_unescaped(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == sep => {
                parts.push(&text[start..at]);
                start = at + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// RFC 4514 §3: `\` followed by a special character, or by two hex digits (a UTF-8 byte).
fn unescape(value: &str) -> Result<String, BadDn> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first != b'\\' {
            bytes.push(first);
            rest = tail;
            continue;
        }
        match tail {
            [a, b, more @ ..] if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {
                let hex = [*a, *b];
                let text = std::str::from_utf8(&hex).map_err(|_| BadDn)?;
                bytes.push(u8::from_str_radix(text, 16).map_err(|_| BadDn)?);
                rest = more;
            }
            [c, more @ ..] => {
                bytes.push(*c);
                rest = more;
            }
            [] => return Err(BadDn),
        }
    }
    String::from_utf8(bytes).map_err(|_| BadDn)
}

/// RFC 4514 §2.4: the characters a value must escape.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (index, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (index == 0 && matches!(c, ' ' | '#'))
            || (index == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The leftmost RDN of `text` as written (case kept, escapes decoded): `("dc", "Example")`
/// for `dc=Example,dc=org`. None when it does not parse.
pub fn first_rdn_as_written(text: &str) -> Option<(String, String)> {
    let first = *split_unescaped(text.trim(), ',').first()?;
    let (kind, value) = first.split_once('=')?;
    Some((kind.trim().to_string(), unescape(value.trim()).ok()?))
}
