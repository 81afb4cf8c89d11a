//! What a client may ask of the server, checked before the work: the size of one request
//! (read from its BER header before the body is waited for, so an oversized one is refused
//! without being buffered), the nesting and the size of a filter, and the caps on results.
//! docs/ldap.md names them.

use std::time::Duration;

use ldap3_proto::proto::LdapFilter;

/// The largest request accepted, header included; a search with a long autocomplete filter
/// takes a few hundred bytes.
pub const MAX_REQUEST: usize = 32 * 1024;
/// BER nesting the decoder follows (a filter's `&`/`|`/`!` nest; everything else is shallow).
pub const MAX_BER_DEPTH: usize = 32;
/// Filter nesting and filter items evaluated against each entry.
pub const MAX_FILTER_DEPTH: usize = 10;
pub const MAX_FILTER_ITEMS: usize = 256;
/// The most entries one search (or one page) returns, whatever the client asks.
pub const MAX_SIZE_LIMIT: usize = 1000;
/// The longest one search may run, whatever the client asks.
pub const MAX_TIME_LIMIT: Duration = Duration::from_secs(10);

/// Why a request is refused before decoding: the connection is closed after either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not an LDAP message (BER SEQUENCE expected)")]
    NotASequence,
    #[error("BER length form not allowed in LDAP (indefinite or over 4 bytes)")]
    BadLength,
    #[error("request of {0} bytes is over the limit of {MAX_REQUEST}")]
    TooLarge(u64),
}

/// The length in bytes of the LDAPMessage at the start of `buf` (header included), once its
/// header is complete; `Ok(None)` while more header bytes are needed. RFC 4511 §5.1: the
/// definite form only.
pub fn frame_length(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    if tag != 0x30 {
        return Err(FrameError::NotASequence);
    }
    let Some(&first) = buf.get(1) else {
        return Ok(None);
    };
    let (header, length) = if first < 0x80 {
        (2usize, u64::from(first))
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return Err(FrameError::BadLength);
        }
        let Some(bytes) = buf.get(2..2 + count) else {
            return Ok(None);
        };
        let length = bytes
            .iter()
            .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte));
        (2 + count, length)
    };
    let total = length.saturating_add(header as u64);
    if total > MAX_REQUEST as u64 {
        return Err(FrameError::TooLarge(total));
    }
    // total ≤ MAX_REQUEST, so it fits.
    Ok(Some(total as usize))
}

/// Why a filter is refused (the search is answered `adminLimitExceeded`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("filter nested deeper than {MAX_FILTER_DEPTH}")]
    TooDeep,
    #[error("filter of more than {MAX_FILTER_ITEMS} items")]
    TooManyItems,
}

/// Checks a filter's nesting and size (its recursion is bounded by [`MAX_BER_DEPTH`]).
pub fn check_filter(filter: &LdapFilter) -> Result<(), FilterError> {
    let mut items = 0usize;
    walk(filter, 1, &mut items)
}

fn walk(filter: &LdapFilter, depth: usize, items: &mut usize) -> Result<(), FilterError> {
    if depth > MAX_FILTER_DEPTH {
        return Err(FilterError::TooDeep);
    }
    *items += 1;
    if *items > MAX_FILTER_ITEMS {
        return Err(FilterError::TooManyItems);
    }
    match filter {
        LdapFilter::And(list) | LdapFilter::Or(list) => {
            list.iter().try_for_each(|f| walk(f, depth + 1, items))
        }
        LdapFilter::Not(inner) => walk(inner, depth + 1, items),
        _ => Ok(()),
    }
}
