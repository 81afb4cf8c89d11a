//! Which tree is the store: the link `<stateDir>/mail-root` names the tree in force, and
//! every daemon reaches mail through it (docs/storage.md, "Moving the store").
//!
//! Paths the daemons hold (an IMAP session's folder, a mailbox known to exist) start with
//! the link, so a move's switch is one atomic rename of the link: the next open of any path
//! goes to the new tree, in every process, with no message passed between them. The tree a
//! move left gets a marker naming where the store went; a tree a move is still filling has
//! a marker saying so. Neither counts as "holding mail" when a move looks for a tree to
//! switch to.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The link in `stateDir` naming the tree in force.
pub const ROOT_LINK: &str = "mail-root";
/// In a tree a move is filling (removed when the move switches to it).
pub const INCOMPLETE_MARKER: &str = ".ics-move-incomplete";
/// In a tree a move left: its text is the tree the store moved to.
pub const MOVED_MARKER: &str = ".ics-moved-to";

/// `<stateDir>/mail-root`, the path every store user starts from.
pub fn link_path(state_dir: &Path) -> PathBuf {
    state_dir.join(ROOT_LINK)
}

/// The tree the link names now; `None` when there is no link yet.
pub fn in_force(state_dir: &Path) -> io::Result<Option<PathBuf>> {
    match fs::read_link(link_path(state_dir)) {
        Ok(target) => Ok(Some(target)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// For a program that writes to the live store (the daemons, the admin service, the queue
/// runner): its writes go through the store gate from now on, and the link exists. Logs a
/// move still to be made when `storage.path` names another tree than the one in force.
pub fn attach(state_dir: &Path, configured: &Path) -> io::Result<()> {
    super::gate::install(state_dir);
    let in_force = ensure_link(state_dir, configured)?;
    note_pending_move(&in_force, configured);
    Ok(())
}

/// The log line of a move still to be made (at start and at every reload).
pub fn note_pending_move(in_force: &Path, configured: &Path) {
    let real = |path: &Path| fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if real(in_force) != real(configured) {
        tracing::warn!(
            configured = %configured.display(),
            in_force = %in_force.display(),
            "storage.path names another tree than the store in force; the mail stays where it \
             is until a storage move switches (D-Bus Storage.Move or `icsmail storage-move`)"
        );
    }
}

/// Makes the link at start when there is none, naming `configured` (`storage.path`), and
/// returns the tree in force. An existing link is kept, even when `storage.path` now names
/// another tree: that is a move still to be made (the caller logs it), and until it is made,
/// mail stays where it is.
pub fn ensure_link(state_dir: &Path, configured: &Path) -> io::Result<PathBuf> {
    if let Some(target) = in_force(state_dir)? {
        return Ok(target);
    }
    fs::create_dir_all(configured)?;
    // The link names the tree absolutely: a relative storage.path (the demo's) would
    // otherwise be taken relative to stateDir.
    let tree = fs::canonicalize(configured)?;
    switch_link(state_dir, &tree)?;
    Ok(tree)
}

/// Points the link at `target` atomically (a new link renamed over the old) and makes the
/// change durable.
pub fn switch_link(state_dir: &Path, target: &Path) -> io::Result<()> {
    let staging = state_dir.join(format!(".{ROOT_LINK}.{}", std::process::id()));
    let _ = fs::remove_file(&staging);
    std::os::unix::fs::symlink(target, &staging)?;
    fs::rename(&staging, link_path(state_dir))?;
    fs::File::open(state_dir)?.sync_all()
}

/// Whether `tree` holds mail a move may switch to instead of copying: a message file in the
/// `cur/` or `new/` of a mailbox (`<tree>/<domain>/<local part>/`) or of one of its folders,
/// and no marker of an unfinished or a past move.
pub fn holds_mail(tree: &Path) -> io::Result<bool> {
    if tree.join(INCOMPLETE_MARKER).exists() || tree.join(MOVED_MARKER).exists() {
        return Ok(false);
    }
    for mailbox in mailboxes(tree)? {
        for folder in folders(&mailbox)? {
            if has_messages(&folder)? {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The mailboxes of `tree`: its `<domain>/<local part>/` directories.
pub fn mailboxes(tree: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for domain in subdirs(tree)? {
        found.extend(subdirs(&domain)?);
    }
    Ok(found)
}

/// A mailbox's folders: its root (the INBOX) and every `.<name>` directory in it.
pub fn folders(mailbox: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = vec![mailbox.to_path_buf()];
    found.extend(subdirs(mailbox)?.into_iter().filter(|dir| {
        dir.file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'))
    }));
    Ok(found)
}

/// The directories in `dir` (none when it is missing or not a directory).
fn subdirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(entries) = read_dir_if_exists(dir)? else {
        return Ok(Vec::new());
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

fn has_messages(folder: &Path) -> io::Result<bool> {
    for sub in ["cur", "new"] {
        if let Some(mut files) = read_dir_if_exists(&folder.join(sub))? {
            if files.next().transpose()?.is_some() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// A directory's entries; `None` when it is missing or not a directory.
fn read_dir_if_exists(dir: &Path) -> io::Result<Option<fs::ReadDir>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        crate::test_support::fresh_dir(&format!("root-{name}"))
    }

    #[test]
    fn a_message_file_is_what_counts_as_mail() {
        let tree = temp("holds");
        assert!(!holds_mail(&tree).unwrap());
        fs::create_dir_all(tree.join("example.org/alice/.Sent/cur")).unwrap();
        fs::create_dir_all(tree.join("example.org/alice/new")).unwrap();
        assert!(!holds_mail(&tree).unwrap(), "empty folders are no mail");
        fs::write(tree.join("example.org/alice/.Sent/cur/1.M1P1.h,S=5"), "x").unwrap();
        assert!(holds_mail(&tree).unwrap());
        fs::write(tree.join(INCOMPLETE_MARKER), "").unwrap();
        assert!(
            !holds_mail(&tree).unwrap(),
            "a tree being filled is not one to switch to"
        );
        fs::remove_file(tree.join(INCOMPLETE_MARKER)).unwrap();
        fs::write(tree.join(MOVED_MARKER), "/elsewhere").unwrap();
        assert!(!holds_mail(&tree).unwrap(), "a tree a move left is stale");
        assert!(!holds_mail(&tree.join("missing")).unwrap());
        fs::remove_dir_all(tree).unwrap();
    }

    #[test]
    fn the_link_is_made_once_and_then_kept() {
        let state = temp("link");
        let first = state.join("mail");
        assert_eq!(ensure_link(&state, &first).unwrap(), first);
        assert!(first.is_dir());
        let second = state.join("other");
        assert_eq!(
            ensure_link(&state, &second).unwrap(),
            first,
            "a pending move"
        );
        switch_link(&state, &second).unwrap();
        assert_eq!(in_force(&state).unwrap(), Some(second));
        fs::remove_dir_all(state).unwrap();
    }
}
