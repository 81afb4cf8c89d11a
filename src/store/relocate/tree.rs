//! One pass of a store move: make the target tree a copy of the source tree as it is now.
//! A first pass copies everything; later passes copy only what changed since (a file whose
//! size or modification time differs, or that is new) and remove from the target what left
//! the source (messages expunged, moved from `new/` to `cur/`, folders deleted).
//!
//! What is copied and what is not:
//! - regular files, with their permissions and modification time (INTERNALDATE of a message
//!   not indexed yet is its mtime); files linked into several mailboxes (one delivery to
//!   several recipients) stay one file with several links;
//! - not the contents of `tmp/` directories: those are deliveries in progress, which reach
//!   `new/` (and a later pass) or are never acknowledged;
//! - not symbolic links or other special files (the store has none of its own);
//! - at the top of the target, entries the source does not have are left alone (such as a
//!   fresh file system's `lost+found` and the move's own markers); below it, the target
//!   mirrors the source exactly.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::store::root::{INCOMPLETE_MARKER, MOVED_MARKER};

/// What stays at the top of a mirrored old tree: a file system's own directory and the
/// move's markers.
const KEPT_AT_TOP: [&str; 3] = ["lost+found", INCOMPLETE_MARKER, MOVED_MARKER];

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassCounts {
    pub files_copied: u64,
    pub bytes_copied: u64,
    pub removed: u64,
}

/// Bytes and files a first pass will copy (the move's `BytesTotal` to start with).
pub fn measure(source: &Path) -> io::Result<(u64, u64)> {
    let mut bytes = 0u64;
    let mut files = 0u64;
    walk(source, &mut |_, meta| {
        bytes = bytes.saturating_add(meta.len());
        files += 1;
    })?;
    Ok((files, bytes))
}

/// The walk of the source tree: `visit(relative path, metadata)` for every regular file
/// outside `tmp/`.
fn walk(source: &Path, visit: &mut dyn FnMut(&Path, &fs::Metadata)) -> io::Result<()> {
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let entries = match fs::read_dir(source.join(&relative)) {
            Ok(entries) => entries,
            // Gone since it was listed (a folder deleted meanwhile): nothing to copy.
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        let in_tmp = is_maildir_tmp(&relative);
        for entry in entries {
            let entry = entry?;
            let path = relative.join(entry.file_name());
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() && !in_tmp {
                visit(&path, &meta);
            }
        }
    }
    Ok(())
}

/// A source file as last seen: its inode and its stamp. A file replaced by rename (the
/// index) has a new inode even when its size and time tick the same.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Seen {
    inode: (u64, u64),
    len: u64,
    mtime: (i64, i64),
}

impl Seen {
    fn of(meta: &fs::Metadata) -> Seen {
        Seen {
            inode: (meta.dev(), meta.ino()),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }
}

/// Copies what a pass copies. Remembers across passes what each copied file was, and which
/// source inodes it copied where, so that further links of one file become links in the
/// target too.
#[derive(Default)]
pub struct Mirror {
    /// Mirror the top level too (a tree this store left earlier: domains removed since must
    /// not come back), keeping only [`KEPT_AT_TOP`].
    pub mirror_top: bool,
    seen: HashMap<PathBuf, Seen>,
    /// Source inode → the copy made of it, and the source as it was then: an inode freed
    /// by an expunge and reused by a new delivery must not be linked to the old copy.
    links: HashMap<(u64, u64), (PathBuf, Seen)>,
}

impl Mirror {
    /// A mirror for a move; `mirror_top` for a tree this store left earlier.
    pub fn new(mirror_top: bool) -> Mirror {
        Mirror {
            mirror_top,
            ..Mirror::default()
        }
    }

    /// One pass from `source` into `target`. `copied(bytes)` is told after every file, for the
    /// progress; `cancelled()` is asked between files.
    pub fn pass(
        &mut self,
        source: &Path,
        target: &Path,
        copied: &mut dyn FnMut(u64),
        cancelled: &dyn Fn() -> bool,
    ) -> io::Result<PassCounts> {
        let mut counts = PassCounts::default();
        let mut dirs = vec![PathBuf::new()];
        while let Some(relative) = dirs.pop() {
            if cancelled() {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
            }
            let from = source.join(&relative);
            let to = target.join(&relative);
            let listing = match list(&from) {
                Ok(listing) => listing,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            fs::create_dir_all(&to)?;
            copy_permissions(&from, &to)?;
            let in_tmp = is_maildir_tmp(&relative);
            let mut wanted = HashSet::new();
            for (name, meta) in listing {
                let path = relative.join(&name);
                if meta.is_dir() {
                    wanted.insert(name);
                    dirs.push(path);
                } else if meta.is_file() && !in_tmp {
                    wanted.insert(name);
                    if let Some(bytes) = self.copy_if_changed(source, target, &path, &meta)? {
                        counts.files_copied += 1;
                        counts.bytes_copied = counts.bytes_copied.saturating_add(bytes);
                        copied(bytes);
                    }
                }
            }
            // The top of the target may hold what is not the store's (lost+found, markers).
            if relative.as_os_str().is_empty() {
                if self.mirror_top {
                    wanted.extend(KEPT_AT_TOP.iter().map(std::ffi::OsString::from));
                    counts.removed += remove_others(&to, &wanted)?;
                }
            } else {
                counts.removed += remove_others(&to, &wanted)?;
            }
        }
        Ok(counts)
    }

    /// Copies `relative` unless the target has it with the same size and time; the bytes
    /// copied, or `None` when nothing was to do.
    fn copy_if_changed(
        &mut self,
        source: &Path,
        target: &Path,
        relative: &Path,
        meta: &fs::Metadata,
    ) -> io::Result<Option<u64>> {
        let to = target.join(relative);
        let now = Seen::of(meta);
        if let Ok(existing) = fs::symlink_metadata(&to) {
            let unchanged = match self.seen.get(relative) {
                Some(before) => *before == now,
                // Not seen in this move yet (a move resumed after a crash): the stamp decides.
                None => same_content_stamp(meta, &existing),
            };
            if existing.is_file() && unchanged {
                self.seen.insert(relative.to_path_buf(), now);
                return Ok(None);
            }
        }
        let from = source.join(relative);
        let inode = now.inode;
        if meta.nlink() > 1 {
            if let Some((first, _)) = self.links.get(&inode).filter(|(_, then)| *then == now) {
                let _ = fs::remove_file(&to);
                if fs::hard_link(first, &to).is_ok() {
                    self.seen.insert(relative.to_path_buf(), now);
                    return Ok(Some(0));
                }
            }
        }
        let bytes = match copy_file(&from, &to, meta) {
            Ok(bytes) => bytes,
            // Expunged or renamed between the listing and the copy: a later pass sees where.
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        if meta.nlink() > 1 {
            self.links.insert(inode, (to, now));
        }
        self.seen.insert(relative.to_path_buf(), now);
        Ok(Some(bytes))
    }
}

/// Whether `relative` is a Maildir's `tmp/`: `<domain>/<local part>/tmp` or
/// `<domain>/<local part>/.<folder>/tmp`. A mailbox whose local part is `tmp` is not.
fn is_maildir_tmp(relative: &Path) -> bool {
    let depth = relative.components().count();
    let in_folder = relative
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|name| name.to_string_lossy().starts_with('.'));
    relative.file_name().is_some_and(|name| name == "tmp")
        && (depth == 3 || (depth == 4 && in_folder))
}

/// A directory's entries with their metadata (not following links).
fn list(dir: &Path) -> io::Result<Vec<(std::ffi::OsString, fs::Metadata)>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        match fs::symlink_metadata(entry.path()) {
            Ok(meta) => entries.push((entry.file_name(), meta)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(entries)
}

/// Same length and modification time (to the nanosecond): taken as the same file. Message
/// files never change in place.
fn same_content_stamp(source: &fs::Metadata, target: &fs::Metadata) -> bool {
    source.len() == target.len()
        && source.mtime() == target.mtime()
        && source.mtime_nsec() == target.mtime_nsec()
}

/// Copies one file over whatever the target has, with its permissions and time. Not fsync'd
/// here: the move syncs the target file system once before it switches.
fn copy_file(from: &Path, to: &Path, meta: &fs::Metadata) -> io::Result<u64> {
    // A link left by an earlier pass must not be written through into another mailbox.
    let _ = fs::remove_file(to);
    let bytes = fs::copy(from, to)?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    let modified = meta.modified().unwrap_or_else(|_| SystemTime::now());
    fs::File::options()
        .write(true)
        .open(to)?
        .set_modified(modified)?;
    Ok(bytes)
}

fn copy_permissions(from: &Path, to: &Path) -> io::Result<()> {
    match fs::metadata(from) {
        Ok(meta) => fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// Removes the entries of `dir` not in `wanted`; how many.
fn remove_others(dir: &Path, wanted: &HashSet<std::ffi::OsString>) -> io::Result<u64> {
    let mut removed = 0;
    for (name, meta) in list(dir)? {
        if wanted.contains(&name) {
            continue;
        }
        let path = dir.join(&name);
        if meta.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        crate::test_support::fresh_dir(&format!("tree-{name}"))
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn never() -> bool {
        false
    }

    #[test]
    fn passes_converge_on_an_exact_copy() {
        let base = temp("converge");
        let (source, target) = (base.join("a"), base.join("b"));
        let inbox = source.join("example.org/alice");
        write(&inbox.join("new/1.M1P1.h,S=5"), "hello");
        write(&inbox.join("cur/2.M1P1.h,S=3"), "bye");
        write(&inbox.join("tmp/3.M1P1.h"), "partial");
        write(&inbox.join(".Sent/cur/4.M1P1.h,S=4"), "sent");
        write(&inbox.join("ics-index"), "index 1");
        fs::create_dir_all(&target).unwrap();
        write(&target.join("lost+found/keep"), "fs");

        let mut mirror = Mirror::default();
        let mut total = 0;
        let first = mirror
            .pass(&source, &target, &mut |b| total += b, &never)
            .unwrap();
        assert_eq!(first.files_copied, 4);
        assert_eq!(total, 5 + 3 + 4 + 7);
        assert_eq!(measure(&source).unwrap(), (4, 19));
        let copy = target.join("example.org/alice");
        assert!(copy.join("tmp").is_dir());
        assert!(
            !copy.join("tmp/3.M1P1.h").exists(),
            "deliveries in progress are not copied"
        );

        // Meanwhile: a message moves to cur/, one is expunged, a folder goes, the index changes.
        fs::rename(
            inbox.join("new/1.M1P1.h,S=5"),
            inbox.join("cur/1.M1P1.h,S=5"),
        )
        .unwrap();
        fs::remove_file(inbox.join("cur/2.M1P1.h,S=3")).unwrap();
        fs::remove_dir_all(inbox.join(".Sent")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        write(&inbox.join("ics-index"), "index 2");
        let second = mirror.pass(&source, &target, &mut |_| {}, &never).unwrap();
        assert_eq!(second.files_copied, 2, "the renamed message and the index");
        assert_eq!(
            second.removed, 3,
            "the old name, the expunged one, the folder"
        );
        assert_eq!(
            fs::read_to_string(copy.join("ics-index")).unwrap(),
            "index 2"
        );
        assert!(copy.join("cur/1.M1P1.h,S=5").exists());
        assert!(!copy.join("new/1.M1P1.h,S=5").exists());
        assert!(!copy.join(".Sent").exists());
        assert!(
            target.join("lost+found/keep").exists(),
            "the top is left alone"
        );

        let third = mirror.pass(&source, &target, &mut |_| {}, &never).unwrap();
        assert_eq!(
            third,
            PassCounts::default(),
            "nothing changed, nothing copied"
        );
        let modified = |p: &Path| fs::metadata(p).unwrap().modified().unwrap();
        assert_eq!(
            modified(&inbox.join("cur/1.M1P1.h,S=5")),
            modified(&copy.join("cur/1.M1P1.h,S=5"))
        );
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn a_file_in_several_mailboxes_stays_one_file() {
        let base = temp("links");
        let (source, target) = (base.join("a"), base.join("b"));
        let alice = source.join("example.org/alice/new/1.M1P1.h,S=5");
        let bob = source.join("example.org/bob/new/1.M1P1.h,S=5");
        write(&alice, "hello");
        fs::create_dir_all(bob.parent().unwrap()).unwrap();
        fs::hard_link(&alice, &bob).unwrap();
        let mut bytes = 0;
        Mirror::default()
            .pass(&source, &target, &mut |b| bytes += b, &never)
            .unwrap();
        assert_eq!(bytes, 5, "copied once, linked once");
        let copy = fs::metadata(target.join("example.org/bob/new/1.M1P1.h,S=5")).unwrap();
        assert_eq!(copy.nlink(), 2);
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn only_maildir_tmp_directories_are_skipped() {
        assert!(is_maildir_tmp(Path::new("example.org/alice/tmp")));
        assert!(is_maildir_tmp(Path::new("example.org/alice/.Sent/tmp")));
        assert!(
            !is_maildir_tmp(Path::new("example.org/tmp")),
            "the mailbox tmp@"
        );
        assert!(!is_maildir_tmp(Path::new("example.org/alice/cur/tmp")));
        let base = temp("tmp-user");
        write(&base.join("a/example.org/tmp/ics-index"), "index");
        write(&base.join("a/example.org/tmp/cur/1.M1P1.h,S=1"), "x");
        write(&base.join("a/example.org/tmp/tmp/2.M1P1.h"), "partial");
        let counts = Mirror::default()
            .pass(&base.join("a"), &base.join("b"), &mut |_| {}, &never)
            .unwrap();
        assert_eq!(counts.files_copied, 2);
        assert!(base.join("b/example.org/tmp/ics-index").exists());
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn a_reused_inode_is_not_linked_to_the_old_copy() {
        let base = temp("reuse");
        let (source, target) = (base.join("a"), base.join("b"));
        let carol = source.join("example.org/carol/new/2.M1P1.h,S=5");
        write(&carol, "fresh");
        let dave = source.join("example.org/dave/new/2.M1P1.h,S=5");
        fs::create_dir_all(dave.parent().unwrap()).unwrap();
        fs::hard_link(&carol, &dave).unwrap();
        // What an earlier pass remembers of this inode number: a copy of the message that
        // had it before it was expunged.
        // (in a directory the pass lists before it cleans it up)
        let old_copy = target.join("example.org/carol/new/1.M1P1.h,S=3");
        write(&old_copy, "old");
        let meta = fs::metadata(&carol).unwrap();
        let then = Seen {
            len: 3,
            ..Seen::of(&meta)
        };
        let mut mirror = Mirror::default();
        mirror
            .links
            .insert((meta.dev(), meta.ino()), (old_copy.clone(), then));
        mirror.pass(&source, &target, &mut |_| {}, &never).unwrap();
        for copy in ["carol", "dave"] {
            let path = target.join(format!("example.org/{copy}/new/2.M1P1.h,S=5"));
            assert_eq!(fs::read_to_string(path).unwrap(), "fresh", "{copy}");
        }
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn a_cancelled_pass_stops() {
        let base = temp("cancel");
        write(&base.join("a/example.org/alice/new/1"), "x");
        let err = Mirror::default()
            .pass(&base.join("a"), &base.join("b"), &mut |_| {}, &|| true)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
        fs::remove_dir_all(base).unwrap();
    }
}
