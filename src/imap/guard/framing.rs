//! How IMAP input splits into lines and literals, exactly as imap-next frames it (imap-codec's
//! `Fragmentizer`): a line ends at the first LF; it announces a literal when it ends with
//! `{n}` or `{n+}` before its LF (a CR before the LF allowed), `n` being decimal digits whose
//! value fits a `u32`. Agreeing byte for byte matters: the guard decides which bytes are
//! command text and which are literal payload, and imap-next must never see it otherwise
//! (`tests::framing_agrees_with_imap_codec`).

/// A literal announced at the end of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    pub length: u32,
    /// `{n}`: the client waits for a `+` before sending it; `{n+}` (LITERAL+) it doesn't.
    pub sync: bool,
    /// Where the `{` is in the line.
    pub start: usize,
}

/// The literal `line` (a complete line, its LF included) announces, if any.
pub fn literal_announcement(line: &[u8]) -> Option<Announcement> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let (digits_end, sync) = match inner.strip_suffix(b"+") {
        Some(rest) => (rest.len(), false),
        None => (inner.len(), true),
    };
    let digits_start = inner[..digits_end]
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |at| at + 1);
    let digits = &inner[digits_start..digits_end];
    if digits.is_empty() || digits_start == 0 || inner[digits_start - 1] != b'{' {
        return None;
    }
    // Checked at every digit, as the fragmentizer does: an overflow means no announcement.
    let length = digits.iter().try_fold(0u32, |n, d| {
        n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })?;
    Some(Announcement {
        length,
        sync,
        start: digits_start - 1,
    })
}

/// Longest tag we remember for a reply.
pub const MAX_TAG: usize = 64;

/// The first word of a command line, when it is a valid tag (RFC 3501 `tag`).
pub fn tag_of(line: &[u8]) -> Option<String> {
    let end = line.iter().position(|&b| b == b' ')?;
    let tag = std::str::from_utf8(line.get(..end)?).ok()?;
    let valid = !tag.is_empty()
        && tag.len() <= MAX_TAG
        && tag
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\+]".contains(&b));
    valid.then(|| tag.to_string())
}

/// Whether a command's first line is an APPEND (its second word, in any case).
pub fn is_append(line: &[u8]) -> bool {
    let mut words = line.splitn(3, |&b| b == b' ');
    let (Some(_tag), Some(name)) = (words.next(), words.next()) else {
        return false;
    };
    let name = name.strip_suffix(b"\n").unwrap_or(name);
    let name = name.strip_suffix(b"\r").unwrap_or(name);
    name.eq_ignore_ascii_case(b"APPEND")
}

/// Whether a command's first line is a LIST (its second word, in any case; `LIST (` or
/// `LIST "` and the like, so the word ends at a space).
pub fn is_list(line: &[u8]) -> bool {
    let mut words = line.splitn(3, |&b| b == b' ');
    let (Some(_tag), Some(name), Some(_rest)) = (words.next(), words.next(), words.next()) else {
        return false;
    };
    name.eq_ignore_ascii_case(b"LIST")
}
