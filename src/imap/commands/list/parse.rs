//! The LIST command with RFC 5258's extended syntax (LIST-EXTENDED), RFC 6154's SPECIAL-USE
//! options and RFC 5819's `RETURN (STATUS (...))`, none of which imap-codec parses (its
//! `ext_list_extended` feature has response types only, no command grammar). The input guard
//! hands the whole command over (its literals inline, as they came), and this parses it:
//!
//! ```abnf
//! list             = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat
//!                    [SP list-return-opts]
//! list-select-opts = "(" [list-select-opt *(SP list-select-opt)] ")"
//! mbox-or-pat      = list-mailbox / "(" list-mailbox *(SP list-mailbox) ")"
//! list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")"
//! return-option    = "SUBSCRIBED" / "CHILDREN" / "SPECIAL-USE"
//!                    / "STATUS" SP "(" status-att *(SP status-att) ")"
//! ```
//!
//! Unknown options are `BAD` (RFC 5258 §3: a server must refuse what it doesn't know).

use imap_codec::imap_types::status::StatusDataItemName;

/// The selection options (RFC 5258 §3.1, RFC 6154 §5.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    pub subscribed: bool,
    pub remote: bool,
    pub recursive: bool,
    pub special_use: bool,
}

/// The return options (RFC 5258 §3.2, RFC 6154 §5.2, RFC 5819).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Returns {
    pub subscribed: bool,
    pub children: bool,
    pub special_use: bool,
    /// `STATUS (...)`: the items, and whether APPENDLIMIT (RFC 7889) was among them.
    pub status: Option<(Vec<StatusDataItemName>, bool)>,
}

/// A parsed LIST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    pub selection: Selection,
    /// The reference, as sent (modified UTF-7, or UTF-8 after UTF8=ACCEPT).
    pub reference: String,
    pub patterns: Vec<String>,
    pub returns: Returns,
    /// Any part of the extended syntax was used (selection or return options, a pattern
    /// list): the answer then carries only what was asked for (RFC 5258 §3).
    pub extended: bool,
}

/// Why a LIST can't be parsed: the text of the `BAD`.
pub type ParseError = String;

/// The tag of a command (the first word), if it can answer.
pub fn tag(command: &[u8]) -> Option<&str> {
    let end = command.iter().position(|&b| b == b' ')?;
    std::str::from_utf8(&command[..end]).ok()
}

/// Parses a whole LIST command, `tag LIST ... CRLF`.
pub fn parse(command: &[u8]) -> Result<ListRequest, ParseError> {
    let mut p = Parser {
        input: command,
        at: 0,
    };
    p.word()?; // the tag
    p.space()?;
    let verb = p.word()?;
    if !verb.eq_ignore_ascii_case(b"LIST") {
        return Err("Not a LIST command".into());
    }
    p.space()?;
    let mut extended = false;
    let mut selection = Selection::default();
    if p.peek() == Some(b'(') {
        extended = true;
        for option in p.atom_list()? {
            match option.to_ascii_uppercase().as_str() {
                "SUBSCRIBED" => selection.subscribed = true,
                "REMOTE" => selection.remote = true,
                "RECURSIVEMATCH" => selection.recursive = true,
                "SPECIAL-USE" => selection.special_use = true,
                other => return Err(format!("Unknown selection option {other}")),
            }
        }
        p.space()?;
    }
    let reference = p.astring()?;
    p.space()?;
    let mut patterns = Vec::new();
    if p.peek() == Some(b'(') {
        extended = true;
        p.at += 1;
        loop {
            patterns.push(p.list_mailbox()?);
            match p.peek() {
                Some(b' ') => p.at += 1,
                Some(b')') => {
                    p.at += 1;
                    break;
                }
                _ => return Err("Expected ) after the patterns".into()),
            }
        }
    } else {
        patterns.push(p.list_mailbox()?);
    }
    let mut returns = Returns::default();
    if p.peek() == Some(b' ') {
        p.at += 1;
        let word = p.word()?;
        if !word.eq_ignore_ascii_case(b"RETURN") {
            return Err("Expected RETURN".into());
        }
        extended = true;
        p.space()?;
        p.expect(b'(')?;
        while p.peek() != Some(b')') {
            let option = String::from_utf8_lossy(p.word()?).to_ascii_uppercase();
            match option.as_str() {
                "SUBSCRIBED" => returns.subscribed = true,
                "CHILDREN" => returns.children = true,
                "SPECIAL-USE" => returns.special_use = true,
                "STATUS" => {
                    p.space()?;
                    returns.status = Some(status_items(&p.atom_list()?)?);
                }
                other => return Err(format!("Unknown return option {other}")),
            }
            match p.peek() {
                Some(b' ') => p.at += 1,
                Some(b')') => {}
                _ => return Err("Expected ) after the return options".into()),
            }
        }
        p.at += 1;
    }
    if &p.input[p.at..] != b"\r\n" {
        return Err("Unexpected text at the end of LIST".into());
    }
    Ok(ListRequest {
        selection,
        reference,
        patterns,
        returns,
        extended,
    })
}

/// The STATUS items of `RETURN (STATUS (...))` (RFC 5819 §2): what STATUS itself takes.
fn status_items(names: &[String]) -> Result<(Vec<StatusDataItemName>, bool), ParseError> {
    if names.is_empty() {
        return Err("Empty STATUS list".into());
    }
    let mut items = Vec::new();
    let mut appendlimit = false;
    for name in names {
        items.push(match name.to_ascii_uppercase().as_str() {
            "MESSAGES" => StatusDataItemName::Messages,
            "RECENT" => StatusDataItemName::Recent,
            "UIDNEXT" => StatusDataItemName::UidNext,
            "UIDVALIDITY" => StatusDataItemName::UidValidity,
            "UNSEEN" => StatusDataItemName::Unseen,
            "DELETED" => StatusDataItemName::Deleted,
            "DELETED-STORAGE" => StatusDataItemName::DeletedStorage,
            "SIZE" => StatusDataItemName::Size,
            "HIGHESTMODSEQ" => StatusDataItemName::HighestModSeq,
            "APPENDLIMIT" => {
                appendlimit = true;
                continue;
            }
            other => return Err(format!("Unknown STATUS item {other}")),
        });
    }
    Ok((items, appendlimit))
}

struct Parser<'a> {
    input: &'a [u8],
    at: usize,
}

/// RFC 3501 `atom-specials` (with the CTLs and SP): what ends an atom.
fn atom_special(b: u8) -> bool {
    b <= b' ' || b >= 0x7f || b"(){%*\"\\]".contains(&b)
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), ParseError> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("Expected {:?}", byte as char))
        }
    }

    fn space(&mut self) -> Result<(), ParseError> {
        self.expect(b' ')
    }

    /// Bytes up to the next SP, `(`, `)` or CR (an atom-like word; may be empty → error).
    fn word(&mut self) -> Result<&'a [u8], ParseError> {
        let start = self.at;
        while let Some(b) = self.peek() {
            if matches!(b, b' ' | b'(' | b')' | b'\r' | b'\n') {
                break;
            }
            self.at += 1;
        }
        if self.at == start {
            return Err("Expected a word".into());
        }
        Ok(&self.input[start..self.at])
    }

    /// `"(" [atom *(SP atom)] ")"`.
    fn atom_list(&mut self) -> Result<Vec<String>, ParseError> {
        self.expect(b'(')?;
        let mut atoms = Vec::new();
        while self.peek() != Some(b')') {
            let start = self.at;
            while self.peek().is_some_and(|b| !atom_special(b)) {
                self.at += 1;
            }
            if self.at == start {
                return Err("Expected an option".into());
            }
            atoms.push(String::from_utf8_lossy(&self.input[start..self.at]).into_owned());
            match self.peek() {
                Some(b' ') => self.at += 1,
                Some(b')') => {}
                _ => return Err("Expected ) after the options".into()),
            }
        }
        self.at += 1;
        Ok(atoms)
    }

    /// A quoted string or a literal (`{n}` / `{n+}` CRLF and n bytes, as the guard passed it).
    fn string(&mut self) -> Result<Option<Vec<u8>>, ParseError> {
        match self.peek() {
            Some(b'"') => {
                self.at += 1;
                let mut out = Vec::new();
                loop {
                    match self.peek() {
                        Some(b'"') => {
                            self.at += 1;
                            return Ok(Some(out));
                        }
                        Some(b'\\') => {
                            let escaped = self.input.get(self.at + 1).copied();
                            match escaped {
                                Some(c @ (b'"' | b'\\')) => out.push(c),
                                _ => return Err("Bad escape in a quoted string".into()),
                            }
                            self.at += 2;
                        }
                        Some(b'\r' | b'\n') | None => {
                            return Err("Unterminated quoted string".into())
                        }
                        Some(c) => {
                            out.push(c);
                            self.at += 1;
                        }
                    }
                }
            }
            Some(b'{') => {
                let close = self.input[self.at..]
                    .iter()
                    .position(|&b| b == b'}')
                    .ok_or("Bad literal")?
                    + self.at;
                let digits = &self.input[self.at + 1..close];
                let digits = digits.strip_suffix(b"+").unwrap_or(digits);
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err("Bad literal".into());
                }
                let length: usize = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .ok_or("Bad literal")?;
                let start = close + 1;
                if self.input.get(start..start + 2) != Some(b"\r\n") {
                    return Err("Bad literal".into());
                }
                let data_start = start + 2;
                let end = data_start.checked_add(length).ok_or("Bad literal")?;
                let data = self.input.get(data_start..end).ok_or("Short literal")?;
                self.at = end;
                Ok(Some(data.to_vec()))
            }
            _ => Ok(None),
        }
    }

    /// RFC 3501 `astring` (the reference): an atom (`]` allowed) or a string.
    fn astring(&mut self) -> Result<String, ParseError> {
        let bytes = match self.string()? {
            Some(bytes) => bytes,
            None => {
                let start = self.at;
                while self.peek().is_some_and(|b| b == b']' || !atom_special(b)) {
                    self.at += 1;
                }
                if self.at == start {
                    return Err("Expected a mailbox name".into());
                }
                self.input[start..self.at].to_vec()
            }
        };
        String::from_utf8(bytes).map_err(|_| "Mailbox name is not valid".into())
    }

    /// RFC 3501 `list-mailbox`: list-chars (atom chars, `%`, `*`, `]`) or a string.
    fn list_mailbox(&mut self) -> Result<String, ParseError> {
        let bytes = match self.string()? {
            Some(bytes) => bytes,
            None => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|b| matches!(b, b'%' | b'*' | b']') || !atom_special(b))
                {
                    self.at += 1;
                }
                if self.at == start {
                    return Err("Expected a pattern".into());
                }
                self.input[start..self.at].to_vec()
            }
        };
        String::from_utf8(bytes).map_err(|_| "Pattern is not valid".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> ListRequest {
        parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    #[test]
    fn basic_and_extended_forms() {
        let plain = ok("a LIST \"\" *\r\n");
        assert!(!plain.extended);
        assert_eq!(plain.patterns, ["*"]);
        assert_eq!(plain.reference, "");
        let plain = ok("a list Work %.]x\r\n");
        assert_eq!(
            (plain.reference.as_str(), plain.patterns[0].as_str()),
            ("Work", "%.]x")
        );
        let r = ok(
            "a LIST (SUBSCRIBED RecursiveMatch) \"\" (\"INBOX\" Sent* {3}\r\na\"b) \
                    RETURN (CHILDREN STATUS (MESSAGES appendlimit) SPECIAL-USE)\r\n",
        );
        assert!(r.extended && r.selection.subscribed && r.selection.recursive);
        assert!(!r.selection.remote && !r.selection.special_use);
        assert_eq!(r.patterns, ["INBOX", "Sent*", "a\"b"]);
        assert!(r.returns.children && r.returns.special_use && !r.returns.subscribed);
        assert_eq!(
            r.returns.status,
            Some((vec![StatusDataItemName::Messages], true))
        );
        assert!(ok("a LIST () \"\" \"\"\r\n").extended);
        assert!(ok("a LIST \"\" % RETURN ()\r\n").extended);
        let quoted = ok("a LIST \"a\\\\b\" \"x\\\"y\"\r\n");
        assert_eq!(
            (quoted.reference.as_str(), quoted.patterns[0].as_str()),
            ("a\\b", "x\"y")
        );
    }

    #[test]
    fn refusals() {
        for bad in [
            "a LIST (BOGUS) \"\" *\r\n",
            "a LIST \"\" * RETURN (BOGUS)\r\n",
            "a LIST \"\" * RETURN (STATUS ())\r\n",
            "a LIST \"\" * RETURN (STATUS (NOPE))\r\n",
            "a LIST \"\" ()\r\n",
            "a LIST \"\"\r\n",
            "a LIST \"\" * extra\r\n",
            "a LIST \"\" {5}\r\nab\r\n",
            "a LIST \"\" {99999999999999999999}\r\n",
            "a LIST \"unterminated *\r\n",
            "a LIST \"\" (a b\r\n",
            "a LIST (SUBSCRIBED \"\" *\r\n",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
