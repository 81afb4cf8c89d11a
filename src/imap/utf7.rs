//! Modified UTF-7 folder names on the wire (RFC 3501 §5.1.3).
//!
//! Hand-written rather than taken from a crate: the one candidate (`utf7-imap`) panics on bad
//! base64 and accepts non-canonical input, and a server must refuse both, because two wire
//! spellings of one name would let a client create folders that collide on disk.

/// The modified base64 alphabet: RFC 2045 base64 with ',' in place of '/'.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Folder name from the wire (modified UTF-7) to UTF-8; Err with a short reason for invalid
/// input. Only the canonical spelling is accepted (what [`encode`] produces), so that every
/// folder has exactly one wire name.
pub fn decode(wire: &str) -> Result<String, &'static str> {
    let bytes = wire.as_bytes();
    let mut out = String::with_capacity(wire.len());
    let mut i = 0;
    // Set right after a base64 run: another '&' run straight after it should have been merged.
    let mut after_run = false;
    while i < bytes.len() {
        let b = bytes[i];
        if !(0x20..=0x7e).contains(&b) {
            return Err("byte outside printable US-ASCII");
        }
        if b != b'&' {
            out.push(char::from(b));
            i += 1;
            after_run = false;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'-') => {
                out.push('&');
                i += 2;
                after_run = false;
            }
            Some(c) if sextet(*c).is_some() => {
                if after_run {
                    return Err("adjacent base64 runs");
                }
                let start = i + 1;
                let len = bytes[start..]
                    .iter()
                    .position(|c| sextet(*c).is_none())
                    .unwrap_or(bytes.len() - start);
                if bytes.get(start + len) != Some(&b'-') {
                    return Err("unterminated base64 run");
                }
                decode_run(&bytes[start..start + len], &mut out)?;
                i = start + len + 1;
                after_run = true;
            }
            _ => return Err("'&' not followed by '-' or base64"),
        }
    }
    Ok(out)
}

/// Decodes one base64 run (between '&' and '-') as UTF-16BE into `out`.
fn decode_run(run: &[u8], out: &mut String) -> Result<(), &'static str> {
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut units = Vec::with_capacity(run.len() * 6 / 16);
    for &c in run {
        let v = sextet(c).ok_or("bad base64")?;
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 16 {
            bits -= 16;
            // Masked to 16 bits, so the cast cannot lose anything.
            units.push(((acc >> bits) & 0xffff) as u16);
        }
    }
    // What is left over is padding: fewer than 6 bits, all zero.
    if bits >= 6 || acc & ((1 << bits) - 1) != 0 {
        return Err("bad base64 length or padding");
    }
    for decoded in char::decode_utf16(units) {
        let c = decoded.map_err(|_| "unpaired UTF-16 surrogate")?;
        if (' '..='~').contains(&c) {
            return Err("printable ASCII encoded in base64");
        }
        out.push(c);
    }
    Ok(())
}

/// The value of a modified base64 character, or None.
fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b',' => Some(63),
        _ => None,
    }
}

/// UTF-8 to modified UTF-7 (always valid). Printable ASCII stands for itself, '&' becomes
/// "&-", and each run of other characters becomes one "&<base64 of UTF-16BE>-".
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush_run(&mut pending, &mut out);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush_run(&mut pending, &mut out);
    out
}

/// Writes the pending UTF-16 units as one base64 run and empties them.
fn flush_run(units: &mut Vec<u16>, out: &mut String) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut acc: u32 = 0;
    let mut bits = 0;
    for unit in units.drain(..) {
        acc = (acc << 16) | u32::from(unit);
        bits += 16;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 0x3f) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize]));
    }
    out.push('-');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_decodes_and_encodes() {
        let wire = "~peter/mail/&U,BTFw-/&ZeVnLIqe-";
        let name = "~peter/mail/台北/日本語";
        assert_eq!(decode(wire).as_deref(), Ok(name));
        assert_eq!(encode(name), wire);
    }

    #[test]
    fn ampersand() {
        assert_eq!(decode("&-").as_deref(), Ok("&"));
        assert_eq!(encode("&"), "&-");
        assert_eq!(decode("Tom &- Jerry").as_deref(), Ok("Tom & Jerry"));
        assert_eq!(encode("a&b&"), "a&-b&-");
    }

    #[test]
    fn plain_ascii_passes_through() {
        assert_eq!(
            decode("INBOX/Sent Items").as_deref(),
            Ok("INBOX/Sent Items")
        );
        assert_eq!(encode("INBOX/Sent Items"), "INBOX/Sent Items");
        assert_eq!(decode("").as_deref(), Ok(""));
        assert_eq!(encode(""), "");
    }

    #[test]
    fn known_encodings() {
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(encode("théâtre"), "th&AOkA4g-tre");
        assert_eq!(encode("Отправленные"), "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-");
        // Outside the BMP: a surrogate pair.
        assert_eq!(encode("😀"), "&2D3eAA-");
        assert_eq!(decode("&2D3eAA-").as_deref(), Ok("😀"));
        // A control character is not printable, so it is encoded.
        assert_eq!(encode("a\tb"), "a&AAk-b");
        assert_eq!(decode("a&AAk-b").as_deref(), Ok("a\tb"));
    }

    #[test]
    fn round_trips() {
        for name in [
            "台北",
            "a&b",
            "Ü&ü",
            "&&&",
            "x😀y😀",
            "日本語/Entwürfe/&-",
            "ÿ",
            "\u{7f}",
            "\u{10ffff}",
            "mixed ASCII ä and 中文 & more",
        ] {
            let wire = encode(name);
            assert!(wire.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{wire}");
            assert_eq!(decode(&wire).as_deref(), Ok(name), "via {wire}");
        }
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "&",                  // '&' at the end
            "&U,BTFw",            // unterminated
            "a&*-",               // '&' followed by neither '-' nor base64
            "&AGE-",              // "a" encoded although it stands for itself
            "&ACY-",              // '&' encoded instead of "&-"
            "&2D0-",              // lone high surrogate
            "&3gA-",              // lone low surrogate
            "&U,BTFw-&ZeVnLIqe-", // two runs that should be one
            "&APx-",              // padding bits not zero
            "&A-",                // too short for one UTF-16 unit
            "&APwA-",             // leftover base64 character
            "Entwürfe",           // raw 8-bit
            "a\u{7f}",            // DEL
            "a\tb",               // control character
        ] {
            assert!(decode(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn consecutive_runs_separated_by_ascii_are_fine() {
        assert_eq!(
            decode("&AWA-iuk&AWE-liad&ARcBfgEX-").as_deref(),
            Ok("Šiukšliadėžė")
        );
        assert_eq!(decode("&AOk-&-&AOk-").as_deref(), Ok("é&é"));
    }
}
