//! The queue on disk: `<stateDir>/queue/<id>.eml` (the message, CRLF wire form, trace headers
//! included) and `<id>.json` (its [`Envelope`]). The JSON's presence is what makes a message
//! queued: it is written last, after the message file is on disk.
//!
//! Durability: both files are fsync'd and the directory is fsync'd (coalesced between
//! concurrent writers) before [`Spool::enqueue`] returns, so a `250` is never given for mail a
//! crash could lose. Envelope updates are written to `tmp/` and renamed over the old one.
//! A runner holds an exclusive `flock` on the message file while it delivers it, so two runners
//! never deliver the same message at once.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;

use super::envelope::Envelope;
use crate::store::DirSyncer;

/// A message file without envelope older than this is a leftover of a crash before the
/// `250` (never acknowledged): it is removed.
pub const ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// Queue ids are made by the server; anything else in the directory is ignored.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
        && !id.starts_with('.')
}

#[derive(Clone)]
pub struct Spool {
    dir: PathBuf,
    syncer: DirSyncer,
}

/// A message locked for delivery: the lock lasts as long as this value.
pub struct Locked {
    pub id: String,
    file: File,
}

impl Locked {
    /// The whole message.
    pub fn read_message(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut file = &self.file;
        std::io::Seek::rewind(&mut file)?;
        file.read_to_end(&mut out)?;
        Ok(out)
    }
}

impl Spool {
    /// The queue of `<stateDir>`, i.e. `<stateDir>/queue`.
    pub fn new(state_dir: &Path) -> Spool {
        Spool {
            dir: state_dir.join("queue"),
            syncer: DirSyncer::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ensure_dirs(&self) -> anyhow::Result<()> {
        fs::create_dir_all(self.dir.join("tmp"))
            .with_context(|| format!("creating the queue directory {}", self.dir.display()))
    }

    fn message_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.eml"))
    }

    fn envelope_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Queues a message durably (blocking). On error nothing is queued.
    pub fn enqueue(&self, envelope: &Envelope, message: &[u8]) -> anyhow::Result<()> {
        let id = &envelope.id;
        anyhow::ensure!(valid_id(id), "invalid queue id {id:?}");
        self.ensure_dirs()?;
        let message_path = self.message_path(id);
        // An existing id is refused before anything of the other message can be touched.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&message_path)
            .with_context(|| format!("creating {}", message_path.display()))?;
        let result = (|| -> anyhow::Result<()> {
            file.write_all(message)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", message_path.display()))?;
            self.write_envelope(envelope, false)
        })();
        if result.is_err() {
            let _ = fs::remove_file(self.envelope_path(id));
            let _ = fs::remove_file(&message_path);
        }
        result
    }

    /// Writes the envelope atomically (tmp file, fsync, rename, directory fsync).
    pub fn save(&self, envelope: &Envelope) -> anyhow::Result<()> {
        self.write_envelope(envelope, true)
    }

    fn write_envelope(&self, envelope: &Envelope, must_exist: bool) -> anyhow::Result<()> {
        let id = &envelope.id;
        let target = self.envelope_path(id);
        if must_exist && !target.exists() {
            anyhow::bail!("{id}: no longer in the queue");
        }
        let tmp = self
            .dir
            .join("tmp")
            .join(format!("{id}.{}.json", std::process::id()));
        let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(&envelope.to_json())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &target).with_context(|| format!("renaming to {}", target.display()))?;
        self.syncer
            .sync(&self.dir)
            .with_context(|| format!("syncing {}", self.dir.display()))
    }

    /// The ids of every queued message (those with an envelope), oldest file name first.
    pub fn list(&self) -> anyhow::Result<Vec<String>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err).with_context(|| format!("reading {}", self.dir.display())),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", self.dir.display()))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if valid_id(id) {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Reads an envelope without locking (inspection).
    pub fn load(&self, id: &str) -> anyhow::Result<Envelope> {
        anyhow::ensure!(valid_id(id), "invalid queue id {id:?}");
        let path = self.envelope_path(id);
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        Envelope::from_json(&bytes).with_context(|| format!("parsing {}", path.display()))
    }

    /// Locks a message for delivery. `Ok(None)` when another runner holds it or it is gone.
    pub fn try_lock(&self, id: &str) -> anyhow::Result<Option<Locked>> {
        anyhow::ensure!(valid_id(id), "invalid queue id {id:?}");
        let path = self.message_path(id);
        let file = match OpenOptions::new().read(true).open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("opening {}", path.display())),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("locking {}", path.display()))
            }
        }
        // The holder before us may have finished and removed the message.
        if !self.envelope_path(id).exists() {
            return Ok(None);
        }
        Ok(Some(Locked {
            id: id.to_string(),
            file,
        }))
    }

    /// Removes a message (delivered, bounced or deleted). The envelope goes first: a crash in
    /// between leaves an orphan message file, removed later, never a message without body.
    pub fn remove(&self, locked: Locked) -> anyhow::Result<()> {
        let id = &locked.id;
        let envelope = self.envelope_path(id);
        fs::remove_file(&envelope).with_context(|| format!("removing {}", envelope.display()))?;
        let message = self.message_path(id);
        fs::remove_file(&message).with_context(|| format!("removing {}", message.display()))?;
        drop(locked);
        Ok(())
    }

    /// Removes message files that never got an envelope (a crash before the `250`) and
    /// envelopes whose message is missing. Returns what was removed.
    pub fn clean_orphans(&self, now: SystemTime) -> Vec<String> {
        let mut removed = Vec::new();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return removed;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".eml") {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age >= ORPHAN_AGE);
                if old && !self.envelope_path(id).exists() && fs::remove_file(entry.path()).is_ok()
                {
                    removed.push(name);
                }
            } else if let Some(id) = name.strip_suffix(".json") {
                if !self.message_path(id).exists() && fs::remove_file(entry.path()).is_ok() {
                    removed.push(name);
                }
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::envelope::Kind;

    fn temp_spool(name: &str) -> (Spool, PathBuf) {
        let dir = std::env::temp_dir().join(format!("icsmail-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        (Spool::new(&dir), dir)
    }

    fn envelope(id: &str) -> Envelope {
        Envelope::new(
            id.into(),
            Kind::Message,
            "a@b.test".into(),
            vec!["c@d.test".into()],
            5,
            0,
            1,
        )
    }

    #[test]
    fn enqueue_lock_update_remove() {
        let (spool, dir) = temp_spool("cycle");
        spool.enqueue(&envelope("ID1"), b"hello").unwrap();
        assert_eq!(spool.list().unwrap(), ["ID1"]);
        let mut locked = spool.try_lock("ID1").unwrap().expect("lock");
        assert!(
            spool.try_lock("ID1").unwrap().is_none(),
            "second lock refused"
        );
        assert_eq!(locked.read_message().unwrap(), b"hello");
        let mut env = spool.load("ID1").unwrap();
        env.attempts = 3;
        spool.save(&env).unwrap();
        assert_eq!(spool.load("ID1").unwrap().attempts, 3);
        spool.remove(locked).unwrap();
        assert!(spool.list().unwrap().is_empty());
        assert!(spool.try_lock("ID1").unwrap().is_none());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn duplicate_id_is_refused_and_ids_are_checked() {
        let (spool, dir) = temp_spool("dup");
        spool.enqueue(&envelope("ID2"), b"x").unwrap();
        assert!(spool.enqueue(&envelope("ID2"), b"y").is_err());
        assert_eq!(
            spool
                .try_lock("ID2")
                .unwrap()
                .unwrap()
                .read_message()
                .unwrap(),
            b"x"
        );
        assert!(spool.load("../etc/passwd").is_err());
        assert!(!valid_id(".hidden") && !valid_id("a/b") && valid_id("ABC.12"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn orphans_are_cleaned() {
        let (spool, dir) = temp_spool("orphan");
        spool.ensure_dirs().unwrap();
        fs::write(dir.join("queue/LOST.eml"), b"x").unwrap();
        fs::write(dir.join("queue/NOBODY.json"), b"{}").unwrap();
        let later = SystemTime::now() + ORPHAN_AGE + Duration::from_secs(1);
        let mut removed = spool.clean_orphans(later);
        removed.sort();
        assert_eq!(removed, ["LOST.eml", "NOBODY.json"]);
        fs::remove_dir_all(dir).unwrap();
    }
}
