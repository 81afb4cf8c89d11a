//! `recodeSubjectUtf8`: the `Subject:` of an outgoing message rewritten as UTF-8 encoded-words
//! (RFC 2047), whatever it was written in — encoded-words in another charset (koi8-r,
//! windows-1251, iso-8859-x, shift_jis, gb2312, …), or raw 8-bit text in the charset the
//! message declares (its top-level `Content-Type` charset) or, undeclared, the one
//! `chardetng` guesses. The receiving side then needs no charset but UTF-8 to show it.
//!
//! Left untouched: a subject that is plain ASCII, one whose encoded-words are all UTF-8
//! already, and one with an encoded-word in a charset `encoding_rs` does not know (rewriting it
//! would lose text). Only the first `Subject:` field is looked at (RFC 5322 allows one).

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use chardetng::{EncodingDetector, Iso2022JpDetection, Utf8Detection};
use encoding_rs::{Encoding, UTF_8};

use crate::mailtext::{header_end, header_fields};

/// Bytes of UTF-8 per encoded-word: 48 base64 characters, a 60-character word, so that
/// `Subject: ` and one word stay within RFC 2047's 76-character line.
const WORD_BYTES: usize = 36;

/// Base64 as senders write it: padding or not, stray trailing bits.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The message with its subject recoded, or `None` when nothing needs to change.
pub fn recode_subject(message: &[u8]) -> Option<Vec<u8>> {
    let header_len = header_end(message);
    let fields = header_fields(&message[..header_len]);
    let position = fields
        .iter()
        .position(|field| field_name_is(field, b"subject"))?;
    let field = fields[position];
    let colon = field.iter().position(|&b| b == b':')?;
    let value = unfold(&field[colon + 1..]);
    let text = decode_subject(value.trim_ascii(), || declared_charset(&fields))?;
    let mut out = Vec::with_capacity(message.len() + text.len());
    for (i, field) in fields.iter().enumerate() {
        if i == position {
            out.extend_from_slice(b"Subject: ");
            out.extend_from_slice(encode_words(&text).as_bytes());
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(field);
        }
    }
    out.extend_from_slice(&message[header_len..]);
    Some(out)
}

/// The subject as text, or `None` when it is fine as it is (or cannot be read safely).
fn decode_subject(
    raw: &[u8],
    declared: impl FnOnce() -> Option<&'static Encoding>,
) -> Option<String> {
    let needs_recoding;
    let text = if raw.is_ascii() {
        // ASCII: only its encoded-words may be in another charset.
        let text = std::str::from_utf8(raw).ok()?;
        let words = decode_words(text)?;
        needs_recoding = words.foreign;
        words.text
    } else {
        // Raw 8-bit (RFC 6532 UTF-8, or a legacy charset sent without encoding).
        let text = match std::str::from_utf8(raw) {
            Ok(utf8) => utf8.to_owned(),
            Err(_) => {
                let encoding = declared()
                    .filter(|e| *e != UTF_8)
                    .unwrap_or_else(|| guess(raw));
                encoding.decode_without_bom_handling(raw).0.into_owned()
            }
        };
        needs_recoding = true;
        decode_words(&text).map_or(text, |words| words.text)
    };
    needs_recoding.then_some(text)
}

/// The charset chardetng finds most likely for `raw` (not UTF-8: that was tried first).
fn guess(raw: &[u8]) -> &'static Encoding {
    // ISO-2022-JP is 7-bit: it never reaches here (raw is not ASCII).
    let mut detector = EncodingDetector::new(Iso2022JpDetection::Deny);
    detector.feed(raw, true);
    detector.guess(None, Utf8Detection::Deny)
}

/// A text with its encoded-words decoded.
struct Words {
    text: String,
    /// Some word was in a charset other than UTF-8 or US-ASCII.
    foreign: bool,
}

/// Decodes the RFC 2047 encoded-words of `text`; `None` if one names an unknown charset or
/// cannot be decoded. Adjacent words in one charset are decoded together, since senders
/// split multi-byte characters across words; whitespace between words is dropped (§6.2).
fn decode_words(text: &str) -> Option<Words> {
    let mut out = String::with_capacity(text.len());
    let mut foreign = false;
    // Bytes of the run of adjacent words in one charset, not yet decoded.
    let mut run: Option<(&'static Encoding, Vec<u8>)> = None;
    let mut rest = text;
    loop {
        match next_word(rest) {
            Some((before, word, after)) => {
                let between = if run.is_some() && before.trim().is_empty() {
                    ""
                } else {
                    before
                };
                let (encoding, bytes) = decode_word(word)?;
                foreign |= encoding != UTF_8 && !word_is_ascii_charset(word);
                match &mut run {
                    Some((current, pending)) if *current == encoding && between.is_empty() => {
                        pending.extend_from_slice(&bytes)
                    }
                    _ => {
                        flush(&mut run, &mut out);
                        out.push_str(between);
                        run = Some((encoding, bytes));
                    }
                }
                rest = after;
            }
            None => {
                flush(&mut run, &mut out);
                out.push_str(rest);
                return Some(Words { text: out, foreign });
            }
        }
    }
}

fn flush(run: &mut Option<(&'static Encoding, Vec<u8>)>, out: &mut String) {
    if let Some((encoding, bytes)) = run.take() {
        out.push_str(&encoding.decode_without_bom_handling(&bytes).0);
    }
}

/// The first `=?charset?e?text?=` in `text`: (before it, the word, after it).
fn next_word(text: &str) -> Option<(&str, &str, &str)> {
    let mut from = 0;
    while let Some(offset) = text[from..].find("=?") {
        let start = from + offset;
        if let Some(len) = word_length(&text[start..]) {
            return Some((
                &text[..start],
                &text[start..start + len],
                &text[start + len..],
            ));
        }
        from = start + 2;
    }
    None
}

/// The length of the encoded-word `text` starts with, if it starts with one.
fn word_length(text: &str) -> Option<usize> {
    let inner = text.strip_prefix("=?")?;
    let charset_end = inner.find('?')?;
    let after_charset = &inner[charset_end + 1..];
    let mut chars = after_charset.chars();
    let encoding = chars.next()?;
    if !matches!(encoding, 'B' | 'b' | 'Q' | 'q') || chars.next()? != '?' {
        return None;
    }
    let encoded = &after_charset[2..];
    let end = encoded.find("?=")?;
    if encoded[..end].contains(|c: char| c.is_ascii_whitespace() || c == '?') {
        return None;
    }
    // "=?" + charset + "?" + e + "?" + text + "?="
    Some(2 + charset_end + 1 + 2 + end + 2)
}

/// The charset and the bytes of one encoded-word.
fn decode_word(word: &str) -> Option<(&'static Encoding, Vec<u8>)> {
    let inner = word.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut parts = inner.splitn(3, '?');
    let charset = parts.next()?;
    let kind = parts.next()?;
    let encoded = parts.next()?;
    // RFC 2231 §5: a language may follow the charset after '*'.
    let label = charset.split('*').next()?;
    let encoding = Encoding::for_label(label.as_bytes())?;
    let bytes = if kind.eq_ignore_ascii_case("b") {
        LENIENT.decode(encoded).ok()?
    } else {
        decode_q(encoded)?
    };
    Some((encoding, bytes))
}

fn word_is_ascii_charset(word: &str) -> bool {
    let charset = word[2..].split(['?', '*']).next().unwrap_or("");
    charset.eq_ignore_ascii_case("us-ascii")
}

/// RFC 2047 §4.2: `_` is a space, `=XX` a byte.
fn decode_q(encoded: &str) -> Option<Vec<u8>> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    Some(out)
}

/// `text` as UTF-8 B encoded-words, folded one per line (RFC 2047 §2: words of at most 75
/// characters, never splitting a character).
fn encode_words(text: &str) -> String {
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + WORD_BYTES).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!(
            "=?UTF-8?B?{}?=",
            STANDARD.encode(&text[start..end])
        ));
        start = end;
    }
    words.join("\r\n ")
}

/// A header field value with its folding line breaks removed (RFC 5322 §2.2.3).
fn unfold(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect()
}

fn field_name_is(field: &[u8], name: &[u8]) -> bool {
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return false;
    };
    field[..colon].trim_ascii().eq_ignore_ascii_case(name)
}

/// The charset the top-level `Content-Type` declares, when `encoding_rs` knows it.
fn declared_charset(fields: &[&[u8]]) -> Option<&'static Encoding> {
    let field = fields.iter().find(|f| field_name_is(f, b"content-type"))?;
    let value = String::from_utf8_lossy(&unfold(field)).to_ascii_lowercase();
    let after = &value[value.find("charset")? + "charset".len()..];
    let after = after.trim_start().strip_prefix('=')?.trim_start();
    let label: String = match after.strip_prefix('"') {
        Some(quoted) => quoted.chars().take_while(|&c| c != '"').collect(),
        None => after
            .chars()
            .take_while(|c| !c.is_ascii_whitespace() && *c != ';')
            .collect(),
    };
    Encoding::for_label(label.as_bytes())
}

#[cfg(test)]
mod tests;
