//! What the scanners answer: an ICAP response head and chunked body (c-icap and the like),
//! clamd's reply line.

use super::alphabet::Reads;
use crate::scan::clamd;
use crate::scan::icap::{dechunk, parse_head, Dechunker};

/// The body limit of the fuzzed dechunking: small, so it is reached.
const LIMIT: usize = 4096;

/// An ICAP response: the head (then its threat header), and the bytes after it as a chunked
/// body. Property: decoding the body at once and as it arrives, in reads cut by `data[0]`,
/// agrees.
pub fn icap_reply(data: &[u8]) {
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    let body = match parse_head(rest) {
        Ok(Some((head, used))) => {
            let _ = head.threat();
            &rest[used.min(rest.len())..]
        }
        Ok(None) | Err(_) => rest,
    };
    let whole = dechunk(body, LIMIT).ok().flatten();
    let mut dechunker = Dechunker::new(LIMIT);
    let mut buffer = Vec::new();
    let mut reads = Reads::new(seed);
    let mut left = body;
    let mut pieces = None;
    while !left.is_empty() {
        let (now, later) = left.split_at(reads.next_len().min(left.len()));
        left = later;
        buffer.extend_from_slice(now);
        match dechunker.feed(&mut buffer) {
            Ok(true) => {
                pieces = Some(dechunker.into_body());
                break;
            }
            Ok(false) => {}
            Err(_) => break,
        }
    }
    if let (Some(whole), Some(pieces)) = (&whole, &pieces) {
        assert_eq!(
            whole, pieces,
            "the chunked body depends on the read boundaries"
        );
    }
    if let Some(body) = whole.as_ref().or(pieces.as_ref()) {
        assert!(body.len() <= LIMIT, "a body over the limit");
    }
}

/// clamd's reply to INSTREAM (`stream: OK`, `stream: Eicar FOUND`, errors).
pub fn clamd_reply(data: &[u8]) {
    let _ = clamd::parse_reply(data);
}
