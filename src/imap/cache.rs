//! This process's memory of what was parsed out of message files: the header block (for
//! header searches and header fetches) and ENVELOPE / BODY / BODYSTRUCTURE. Message files
//! never change once delivered, so an entry keyed by the Maildir base name stays true; only
//! memory bounds it. Mail clients open a folder with `FETCH 1:* (ENVELOPE BODYSTRUCTURE)` and
//! search headers often: without this, each time means opening and parsing every message.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use imap_codec::imap_types::body::BodyStructure;
use imap_codec::imap_types::envelope::Envelope;

use super::mime;
use crate::store::read_header_block;

/// Memory the cache may use (estimated), per generation; at most twice this in all.
const GENERATION_BYTES: usize = 32 * 1024 * 1024;
/// Estimated size of a parsed structure beyond the header bytes.
const STRUCTURE_ESTIMATE: usize = 2048;

#[derive(Default, Clone)]
struct Entry {
    header: Option<Arc<Vec<u8>>>,
    envelope: Option<Arc<Envelope<'static>>>,
    body: Option<Arc<BodyStructure<'static>>>,
    body_structure: Option<Arc<BodyStructure<'static>>>,
}

impl Entry {
    fn size(&self) -> usize {
        self.header.as_ref().map_or(0, |h| h.len())
            + [
                self.envelope.is_some(),
                self.body.is_some(),
                self.body_structure.is_some(),
            ]
            .iter()
            .filter(|&&set| set)
            .count()
                * STRUCTURE_ESTIMATE
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

pub fn envelope(path: &Path) -> io::Result<Arc<Envelope<'static>>> {
    let (key, entry) = lookup(path);
    if let Some(envelope) = entry.envelope {
        return Ok(envelope);
    }
    let envelope = Arc::new(mime::envelope(&header_block(path)?));
    store(&key, |e| e.envelope = Some(envelope.clone()));
    Ok(envelope)
}

/// BODYSTRUCTURE (`extended`) or BODY; `raw` is the whole message (wire form) when the caller
/// has it, else it is read.
pub fn structure(
    path: &Path,
    extended: bool,
    raw: &mut dyn FnMut() -> io::Result<Arc<Vec<u8>>>,
) -> io::Result<Arc<BodyStructure<'static>>> {
    let (key, entry) = lookup(path);
    let cached = if extended {
        entry.body_structure
    } else {
        entry.body
    };
    if let Some(structure) = cached {
        return Ok(structure);
    }
    let structure = Arc::new(mime::body_structure(&raw()?, extended));
    store(&key, |e| {
        if extended {
            e.body_structure = Some(structure.clone());
        } else {
            e.body = Some(structure.clone());
        }
    });
    Ok(structure)
}
