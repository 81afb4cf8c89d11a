//! This process's memory of what was parsed out of message files: the header block (for
//! header searches and header fetches) and ENVELOPE / BODY / BODYSTRUCTURE. Message files
//! never change once delivered, so an entry keyed by the Maildir base name stays true; only
//! memory bounds it. Mail clients open a folder with `FETCH 1:* (ENVELOPE BODYSTRUCTURE)` and
//! search headers often: without this, each time means opening and parsing every message.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::response::Data;

use super::mime;
use super::response::{encode_data, nz};
use crate::store::read_header_block;

/// Memory the cache may use (estimated), per generation; at most twice this in all.
const GENERATION_BYTES: usize = 64 * 1024 * 1024;

#[derive(Default, Clone)]
struct Entry {
    header: Option<Arc<Vec<u8>>>,
    /// The encoded FETCH items `ENVELOPE (...)`, `BODY (...)`, `BODYSTRUCTURE (...)`.
    envelope: Option<Arc<Vec<u8>>>,
    body: Option<Arc<Vec<u8>>>,
    body_structure: Option<Arc<Vec<u8>>>,
}

impl Entry {
    fn size(&self) -> usize {
        [
            &self.header,
            &self.envelope,
            &self.body,
            &self.body_structure,
        ]
        .iter()
        .map(|part| part.as_ref().map_or(0, |bytes| bytes.len()))
        .sum::<usize>()
            + 128
    }
}

/// Two generations: new entries go into `current`; when it is full it becomes `previous`
/// and the old `previous` is dropped. Entries used from `previous` move back: LRU-like at
/// O(1) cost.
#[derive(Default)]
struct Generations {
    current: HashMap<String, Entry>,
    current_bytes: usize,
    previous: HashMap<String, Entry>,
}

impl Generations {
    fn get(&mut self, key: &str) -> Entry {
        if let Some(entry) = self.current.get(key) {
            return entry.clone();
        }
        match self.previous.remove(key) {
            Some(entry) => {
                self.put(key, entry.clone());
                entry
            }
            None => Entry::default(),
        }
    }

    fn put(&mut self, key: &str, entry: Entry) {
        let size = entry.size();
        if self.current_bytes + size > GENERATION_BYTES {
            self.previous = std::mem::take(&mut self.current);
            self.current_bytes = 0;
        }
        if let Some(old) = self.current.insert(key.to_string(), entry) {
            self.current_bytes = self.current_bytes.saturating_sub(old.size());
        }
        self.current_bytes += size;
    }
}

fn generations() -> &'static Mutex<Generations> {
    static CACHE: OnceLock<Mutex<Generations>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Generations::default()))
}

/// The Maildir base name of a message file (its name before `:2,`).
fn key_of(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.split(':').next().unwrap_or(name).to_string()
}

fn lookup(path: &Path) -> (String, Entry) {
    let key = key_of(path);
    let entry = generations()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key);
    (key, entry)
}

fn store(key: &str, update: impl FnOnce(&mut Entry)) {
    let mut cache = generations().lock().unwrap_or_else(PoisonError::into_inner);
    let mut entry = cache.get(key);
    update(&mut entry);
    cache.put(key, entry);
}

/// The message's header block in wire form (through the blank line).
pub fn header_block(path: &Path) -> io::Result<Arc<Vec<u8>>> {
    let (key, entry) = lookup(path);
    if let Some(header) = entry.header {
        return Ok(header);
    }
    let header = Arc::new(read_header_block(path)?);
    store(&key, |e| e.header = Some(header.clone()));
    Ok(header)
}

/// The wire form of one FETCH item (what goes between the parentheses of `* n FETCH (...)`).
pub fn encode_item(item: MessageDataItem<'static>) -> Vec<u8> {
    let wire = encode_data(Data::Fetch {
        seq: nz(1),
        items: Vec1::from(item),
    });
    let inner = wire
        .strip_prefix(b"* 1 FETCH (")
        .and_then(|rest| rest.strip_suffix(b")\r\n"));
    inner.map(<[u8]>::to_vec).unwrap_or_default()
}

/// `ENVELOPE (...)`, encoded.
pub fn envelope(path: &Path) -> io::Result<Arc<Vec<u8>>> {
    let (key, entry) = lookup(path);
    if let Some(envelope) = entry.envelope {
        return Ok(envelope);
    }
    let item = MessageDataItem::Envelope(mime::envelope(&header_block(path)?));
    let envelope = Arc::new(encode_item(item));
    store(&key, |e| e.envelope = Some(envelope.clone()));
    Ok(envelope)
}

/// `BODYSTRUCTURE (...)` (`extended`) or `BODY (...)`, encoded; `raw` gives the whole message
/// (wire form) when it must be parsed.
pub fn structure(
    path: &Path,
    extended: bool,
    raw: &mut dyn FnMut() -> io::Result<Arc<Vec<u8>>>,
) -> io::Result<Arc<Vec<u8>>> {
    let (key, entry) = lookup(path);
    let cached = if extended {
        entry.body_structure
    } else {
        entry.body
    };
    if let Some(structure) = cached {
        return Ok(structure);
    }
    let parsed = mime::body_structure(&raw()?, extended);
    let item = if extended {
        MessageDataItem::BodyStructure(parsed)
    } else {
        MessageDataItem::Body(parsed)
    };
    let structure = Arc::new(encode_item(item));
    store(&key, |e| {
        if extended {
            e.body_structure = Some(structure.clone());
        } else {
            e.body = Some(structure.clone());
        }
    });
    Ok(structure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_encode_without_their_frame() {
        assert_eq!(encode_item(MessageDataItem::Uid(nz(7))), b"UID 7");
        assert_eq!(
            encode_item(MessageDataItem::Rfc822Size(42)),
            b"RFC822.SIZE 42"
        );
    }
}
