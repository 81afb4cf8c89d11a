//! Connection and message ids: short, unique, safe in headers, file names and logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// 12 characters of base32 (Crockford alphabet) mixing time, process and a counter.
pub fn new_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut value = now.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (u64::from(std::process::id()) << 40)
        ^ count.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut id = String::with_capacity(12);
    for _ in 0..12 {
        id.push(ALPHABET[(value & 31) as usize] as char);
        value >>= 5;
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_differ() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| super::new_id()).collect();
        assert_eq!(ids.len(), 1000);
    }
}
