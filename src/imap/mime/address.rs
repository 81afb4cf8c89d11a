//! Address lists for ENVELOPE (RFC 5322 §3.4, RFC 3501 §7.4.2), parsed leniently like
//! Dovecot's message_address_parse: names and mailboxes are unquoted but not decoded
//! (encoded-words stay as sent), a comment stands in for a missing display name, and
//! broken addresses come out with Dovecot's placeholders instead of being dropped.

use imap_codec::imap_types::envelope::Address;

use super::params::Lexer;
use super::strings::nstring_opt;

const MISSING_MAILBOX: &[u8] = b"MISSING_MAILBOX";
const MISSING_DOMAIN: &[u8] = b"MISSING_DOMAIN";
const SYNTAX_ERROR: &[u8] = b"SYNTAX_ERROR";

/// Parses a raw (possibly folded) address-list header value.
pub(crate) fn parse_list(value: &[u8]) -> Vec<Address<'static>> {
    let mut lx = Lexer::new(value);
    let mut out = Vec::new();
    let mut element_seen = false;
    loop {
        lx.skip_cfws();
        match lx.peek() {
            None => return out,
            Some(b',') => {
                lx.pos += 1;
                if !element_seen {
                    out.push(address(
                        None,
                        None,
                        Some(MISSING_MAILBOX),
                        Some(MISSING_DOMAIN),
                    ));
                }
                element_seen = false;
            }
            Some(_) => {
                let before = lx.pos;
                element(&mut lx, &mut out, false);
                if lx.pos == before {
                    lx.pos += 1; // a stray special: skip it rather than loop
                }
                element_seen = true;
            }
        }
    }
}

/// One mailbox or group at the cursor; appends what it found to `out`.
fn element(lx: &mut Lexer<'_>, out: &mut Vec<Address<'static>>, in_group: bool) {
    let words = words(lx);
    lx.skip_cfws();
    match lx.peek() {
        Some(b':') if !in_group => {
            lx.pos += 1;
            out.push(address(None, None, Some(&words.phrase()), None));
            group_members(lx, out);
            out.push(address(None, None, None, None));
        }
        Some(b'<') => {
            lx.pos += 1;
            angle_addr(lx, out, words.phrase_opt());
        }
        Some(b'@') => {
            lx.pos += 1;
            let local = words.joined();
            let (domain, comment) = domain(lx);
            let host = if domain.is_empty() {
                MISSING_DOMAIN.to_vec()
            } else {
                domain
            };
            out.push(address(comment.as_deref(), None, Some(&local), Some(&host)));
        }
        _ if !words.is_empty() => {
            out.push(address(
                words.comment.as_deref(),
                None,
                Some(&words.joined()),
                Some(MISSING_DOMAIN),
            ));
        }
        _ => {}
    }
}

/// Members of a group up to `;` (or the end).
fn group_members(lx: &mut Lexer<'_>, out: &mut Vec<Address<'static>>) {
    loop {
        lx.skip_cfws();
        match lx.peek() {
            None => return,
            Some(b';') => {
                lx.pos += 1;
                return;
            }
            Some(b',') => lx.pos += 1,
            Some(_) => {
                let before = lx.pos;
                element(lx, out, true);
                if lx.pos == before {
                    lx.pos += 1;
                }
            }
        }
    }
}

/// After `<`: `[route ":"] addr-spec ">"`.
fn angle_addr(lx: &mut Lexer<'_>, out: &mut Vec<Address<'static>>, name: Option<Vec<u8>>) {
    let name = name.as_deref();
    lx.skip_cfws();
    let mut adl = None;
    if lx.peek() == Some(b'@') {
        let start = lx.pos;
        while lx.peek().is_some_and(|b| b != b':' && b != b'>') {
            lx.pos += 1;
        }
        let route: Vec<u8> = lx.s[start..lx.pos]
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        adl = Some(route);
        if lx.peek() == Some(b':') {
            lx.pos += 1;
        }
    }
    let local = words(lx);
    lx.skip_cfws();
    let (mailbox, host) = match lx.peek() {
        None => {
            let mailbox = if local.is_empty() {
                MISSING_MAILBOX.to_vec()
            } else {
                local.joined()
            };
            (mailbox, SYNTAX_ERROR.to_vec())
        }
        Some(b'>') if local.is_empty() => (MISSING_MAILBOX.to_vec(), MISSING_DOMAIN.to_vec()),
        Some(b'@') => {
            lx.pos += 1;
            let (domain, _) = domain(lx);
            let host = if domain.is_empty() {
                MISSING_DOMAIN.to_vec()
            } else {
                domain
            };
            let mailbox = if local.is_empty() {
                MISSING_MAILBOX.to_vec()
            } else {
                local.joined()
            };
            (mailbox, host)
        }
        _ => (local.joined(), MISSING_DOMAIN.to_vec()),
    };
    // Skip whatever is left up to the closing `>`.
    while let Some(b) = lx.peek() {
        lx.pos += 1;
        if b == b'>' {
            break;
        }
    }
    out.push(address(name, adl.as_deref(), Some(&mailbox), Some(&host)));
}

/// A domain: dot-atoms or a `[literal]`, whitespace and comments dropped. Also returns the
/// last comment seen, which names an address that has no display name.
fn domain(lx: &mut Lexer<'_>) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut out = Vec::new();
    let mut comment = None;
    loop {
        if let Some(c) = lx.skip_cfws() {
            comment = Some(c);
        }
        match lx.peek() {
            Some(b'[') => {
                let start = lx.pos;
                while let Some(b) = lx.peek() {
                    lx.pos += 1;
                    if b == b']' {
                        break;
                    }
                }
                out.extend_from_slice(&lx.s[start..lx.pos]);
            }
            Some(b) if is_atext(b) || b == b'.' => {
                while lx.peek().is_some_and(|b| is_atext(b) || b == b'.') {
                    out.push(lx.s[lx.pos]);
                    lx.pos += 1;
                }
            }
            _ => return (out, comment.filter(|c| !c.is_empty())),
        }
    }
}

/// Words of a phrase or local part: atoms (with dots) and quoted strings.
struct Words {
    words: Vec<Vec<u8>>,
    /// The last comment among them, used as a name when there is nothing better.
    comment: Option<Vec<u8>>,
}

impl Words {
    fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
    /// As a display name: words separated by single spaces.
    fn phrase(&self) -> Vec<u8> {
        self.words.join(&b' ')
    }
    /// The display name, or None when empty (`"" <a@b>` has no name).
    fn phrase_opt(&self) -> Option<Vec<u8>> {
        Some(self.phrase()).filter(|p| !p.is_empty())
    }
    /// As a local part: words run together (dots are inside the atoms).
    fn joined(&self) -> Vec<u8> {
        self.words.concat()
    }
}

fn words(lx: &mut Lexer<'_>) -> Words {
    let mut words = Vec::new();
    let mut comment = None;
    loop {
        if let Some(c) = lx.skip_cfws() {
            comment = Some(c);
        }
        match lx.peek() {
            Some(b'"') => words.push(lx.quoted()),
            Some(b) if is_atext(b) || b == b'.' => {
                let start = lx.pos;
                while lx.peek().is_some_and(|b| is_atext(b) || b == b'.') {
                    lx.pos += 1;
                }
                words.push(lx.s[start..lx.pos].to_vec());
            }
            _ => {
                return Words {
                    words,
                    comment: comment.filter(|c| !c.is_empty()),
                }
            }
        }
    }
}

/// RFC 5322 atext, plus 8-bit bytes (raw UTF-8 names) and `?`/`=` for encoded-words.
fn is_atext(b: u8) -> bool {
    b >= 0x80 || b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

fn address(
    name: Option<&[u8]>,
    adl: Option<&[u8]>,
    mailbox: Option<&[u8]>,
    host: Option<&[u8]>,
) -> Address<'static> {
    Address {
        name: nstring_opt(name),
        adl: nstring_opt(adl),
        mailbox: nstring_opt(mailbox),
        host: nstring_opt(host),
    }
}
