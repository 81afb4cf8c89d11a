//! Counters of what the daemons did (docs/dbus.md, "Statistics"): connections per service,
//! messages received, delivered, queued and bounced, refusals by reply code, failed logins.
//! Each process counts in memory (a map under a mutex: a few nanoseconds per event) and adds
//! what it counted to `<stateDir>/statistics.json` every few seconds and when it stops, under
//! a lock file, so the smtpd, imapd, pop3d, queue-runner and admin processes all add to one set
//! of numbers that survives restarts. The admin service reads that file.
//!
//! The file is written by rename but not fsync'd: a crash may lose the last seconds of
//! counts, never mail, and statistics do not deserve a disk flush per update.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The counters' file in `stateDir`.
pub const STATISTICS_FILE: &str = "statistics.json";
const LOCK_FILE: &str = ".statistics.lock";
/// How often a daemon adds its counts to the file.
pub const PERSIST_EVERY: Duration = Duration::from_secs(5);

/// What one counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A connection accepted by the service of this name (`smtp`, `submission`, `imap`, …).
    Connection(&'a str),
    /// A message the SMTP server answered `250` to at the end of its data.
    Received,
    /// A message stored in a local mailbox (once per mailbox).
    Delivered,
    /// A message spooled for remote recipients.
    Queued,
    /// A recipient delivered by the queue to a remote server.
    Relayed,
    /// A delivery status notification sent to a sender.
    Bounced,
    /// A refused command: the reply's code and enhanced code (`rcpt 451 4.7.1`).
    Refused {
        code: u16,
        enhanced: Option<[u8; 3]>,
    },
    /// A login that failed (any protocol).
    AuthFailure,
}

impl Event<'_> {
    /// The counter's name; the fixed ones are not allocated (they are counted per message).
    fn key(&self) -> Cow<'static, str> {
        match self {
            Event::Connection(service) => format!("connections.{service}").into(),
            Event::Received => "messages.received".into(),
            Event::Delivered => "messages.delivered".into(),
            Event::Queued => "messages.queued".into(),
            Event::Relayed => "messages.relayed".into(),
            Event::Bounced => "messages.bounced".into(),
            Event::Refused { code, enhanced } => match enhanced {
                Some([a, b, c]) => format!("refusals.{code} {a}.{b}.{c}").into(),
                None => format!("refusals.{code}").into(),
            },
            Event::AuthFailure => "auth.failures".into(),
        }
    }
}

/// Counts not yet added to the file.
pub struct Counters {
    pending: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    pub const fn new() -> Counters {
        Counters {
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn count(&self, event: Event<'_>) {
        let key = event.key();
        let mut pending = self.lock();
        match pending.get_mut(key.as_ref()) {
            Some(slot) => *slot = slot.saturating_add(1),
            None => {
                pending.insert(key.into_owned(), 1);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds the counts to the file in `state_dir`. On failure they are kept for the next try.
    pub fn persist(&self, state_dir: &Path) -> io::Result<()> {
        let counted = std::mem::take(&mut *self.lock());
        if counted.is_empty() {
            return Ok(());
        }
        let result = with_lock(state_dir, |totals| {
            for (key, value) in &counted {
                add(&mut totals.counters, key.clone(), *value);
            }
        });
        if result.is_err() {
            let mut pending = self.lock();
            for (key, value) in counted {
                add(&mut pending, key, value);
            }
        }
        result
    }
}

impl Default for Counters {
    fn default() -> Counters {
        Counters::new()
    }
}

fn add(map: &mut BTreeMap<String, u64>, key: String, value: u64) {
    let slot = map.entry(key).or_insert(0);
    *slot = slot.saturating_add(value);
}

/// What this process counted since it last added to the file.
static PROCESS: Counters = Counters::new();

/// Counts one event of this process.
pub fn count(event: Event<'_>) {
    PROCESS.count(event);
}

/// Adds what this process counted to the file in `state_dir`.
pub fn persist(state_dir: &Path) -> io::Result<()> {
    PROCESS.persist(state_dir)
}

/// The file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// When counting began (the first count, or the last reset), RFC 3339.
    pub since: String,
    pub counters: BTreeMap<String, u64>,
}

impl Totals {
    pub fn get(&self, key: &str) -> u64 {
        self.counters.get(key).copied().unwrap_or(0)
    }

    /// The counters under `prefix.` keyed by the rest of their name.
    pub fn group(&self, prefix: &str) -> BTreeMap<String, u64> {
        let prefix = format!("{prefix}.");
        self.counters
            .iter()
            .filter_map(|(key, value)| Some((key.strip_prefix(&prefix)?.to_string(), *value)))
            .collect()
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The totals in `state_dir` (empty when nothing was counted yet).
pub fn read(state_dir: &Path) -> io::Result<Totals> {
    match fs::read(state_dir.join(STATISTICS_FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Totals::default()),
        Err(err) => Err(err),
    }
}

/// Sets every counter of the file to zero, counting from now.
pub fn reset(state_dir: &Path) -> io::Result<()> {
    with_lock(state_dir, |totals| {
        *totals = Totals {
            since: now_rfc3339(),
            counters: BTreeMap::new(),
        }
    })
}

/// Reads, changes and writes the file under the lock file's `flock`.
fn with_lock(state_dir: &Path, change: impl FnOnce(&mut Totals)) -> io::Result<()> {
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state_dir.join(LOCK_FILE))?;
    // Released when `lock` is closed.
    lock.lock()?;
    let mut totals = read(state_dir).unwrap_or_default();
    if totals.since.is_empty() {
        totals.since = now_rfc3339();
    }
    change(&mut totals);
    let temp = state_dir.join(format!(".{STATISTICS_FILE}.{}", std::process::id()));
    let mut file = fs::File::create(&temp)?;
    file.write_all(&serde_json::to_vec_pretty(&totals).map_err(io::Error::other)?)?;
    drop(file);
    fs::rename(&temp, state_dir.join(STATISTICS_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_added_to_the_file_and_reset() {
        let dir = std::env::temp_dir().join(format!("ics-stats-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let counters = Counters::new();
        counters.count(Event::Connection("smtp"));
        counters.count(Event::Connection("smtp"));
        counters.count(Event::Received);
        counters.count(Event::Refused {
            code: 451,
            enhanced: Some([4, 7, 1]),
        });
        counters.persist(&dir).unwrap();
        counters.count(Event::Received);
        counters.persist(&dir).unwrap();
        let totals = read(&dir).unwrap();
        assert_eq!(totals.get("connections.smtp"), 2);
        assert_eq!(totals.get("messages.received"), 2);
        assert_eq!(totals.group("refusals").get("451 4.7.1"), Some(&1));
        assert!(!totals.since.is_empty());
        reset(&dir).unwrap();
        assert_eq!(read(&dir).unwrap().counters.len(), 0);
        let _ = fs::remove_dir_all(dir);
    }
}
