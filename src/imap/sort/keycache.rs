//! This process's memory of the sort keys of each message, per Maildir base name (message
//! files never change, so an entry stays true; only memory bounds it): a repeated SORT or
//! THREAD reads no file and parses no header. Two generations as in `imap::cache`; entries
//! used from the older one move back.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::keys::{extract, SortKeys};

/// Memory the keys may use (estimated), per generation; at most twice this in all. About
/// 40,000 messages' keys each.
const GENERATION_BYTES: usize = 16 * 1024 * 1024;

#[derive(Default)]
struct Generations {
    current: HashMap<String, Arc<SortKeys>>,
    current_bytes: usize,
    previous: HashMap<String, Arc<SortKeys>>,
}

impl Generations {
    fn get(&mut self, key: &str) -> Option<Arc<SortKeys>> {
        if let Some(keys) = self.current.get(key) {
            return Some(keys.clone());
        }
        let keys = self.previous.remove(key)?;
        self.put(key, keys.clone());
        Some(keys)
    }

    fn put(&mut self, key: &str, keys: Arc<SortKeys>) {
        let size = keys.size() + key.len();
        if self.current_bytes + size > GENERATION_BYTES {
            self.previous = std::mem::take(&mut self.current);
            self.current_bytes = 0;
        }
        if self.current.insert(key.to_string(), keys).is_none() {
            self.current_bytes += size;
        }
    }
}

fn generations() -> &'static Mutex<Generations> {
    static CACHE: OnceLock<Mutex<Generations>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Generations::default()))
}

/// The Maildir base name of a message file (its name before `:2,`).
fn key_of(path: &Path) -> &str {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.split(':').next().unwrap_or(name)
}

/// The sort keys of the message at `path`; `header` gives its header block when they must be
/// extracted.
pub fn keys(
    path: &Path,
    header: impl FnOnce() -> io::Result<Arc<Vec<u8>>>,
) -> io::Result<Arc<SortKeys>> {
    let key = key_of(path);
    let cached = generations()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(key);
    if let Some(keys) = cached {
        return Ok(keys);
    }
    let keys = Arc::new(extract(&header()?));
    generations()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .put(key, keys.clone());
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_extracted_once_per_base_name() {
        let name = format!("{}.keycache-test.host", std::process::id());
        let path = Path::new("/nonexistent/cur").join(format!("{name}:2,S"));
        let first = keys(&path, || Ok(Arc::new(b"Subject: Re: one\r\n\r\n".to_vec()))).unwrap();
        assert_eq!(first.subject.text, "ONE");
        // Flags changed (another name after `:2,`): the same entry, the header not read.
        let renamed = Path::new("/nonexistent/cur").join(format!("{name}:2,RS"));
        let again = keys(&renamed, || Err(io::Error::other("must not be read"))).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
    }
}
