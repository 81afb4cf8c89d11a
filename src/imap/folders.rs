//! An account's folders as IMAP sees them: names (UTF-8, `.` as hierarchy delimiter, `INBOX`
//! for the Maildir root), their directories (Maildir++ `.Name`), SPECIAL-USE roles and
//! subscriptions. Blocking; sessions call it through `spawn_blocking`.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;

use crate::config::model::SpecialUse;
use crate::store::{folder_dir_name, folder_name_problem, FolderMeta, FOLDERS_FILE};

/// The hierarchy delimiter of folder names (Maildir++).
pub const DELIMITER: char = '.';
const SUBSCRIPTIONS_FILE: &str = "ics-subscriptions";

/// Why a folder operation was refused; each maps to an IMAP `NO` with a response code.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("no such folder")]
    NotFound,
    #[error("folder already exists")]
    AlreadyExists,
    #[error("invalid folder name: {0}")]
    BadName(&'static str),
    #[error("INBOX cannot be deleted")]
    InboxForbidden,
    #[error("folder has subfolders; delete them first")]
    HasChildren,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One folder of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderInfo {
    /// The IMAP name (UTF-8; `INBOX` for the root).
    pub name: String,
    pub special_use: Option<SpecialUse>,
    pub has_children: bool,
    /// Only a level of the hierarchy: no folder of its own, but folders below it (what DELETE
    /// of a folder with subfolders leaves; LIST says `\Noselect`, RFC 3501 §6.3.4).
    pub noselect: bool,
}

/// The folders of one mailbox root.
#[derive(Debug, Clone)]
pub struct Folders {
    root: PathBuf,
}

impl Folders {
    pub fn new(root: PathBuf) -> Folders {
        Folders { root }
    }

    /// Case-insensitive `INBOX` is the INBOX (RFC 3501 §5.1); other names are used as given.
    pub fn canonical(name: &str) -> String {
        if name.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_string()
        } else {
            name.to_string()
        }
    }

    /// The directory of folder `name`, which must exist.
    pub fn dir(&self, name: &str) -> Result<PathBuf, FolderError> {
        let dir = self.dir_unchecked(name)?;
        if dir.join("cur").is_dir() {
            Ok(dir)
        } else {
            Err(FolderError::NotFound)
        }
    }

    fn dir_unchecked(&self, name: &str) -> Result<PathBuf, FolderError> {
        let name = Self::canonical(name);
        if name == "INBOX" {
            return Ok(self.root.clone());
        }
        folder_name_problem(&name).map_err(FolderError::BadName)?;
        Ok(self.root.join(folder_dir_name(&name)))
    }

    /// Every folder, INBOX first, then by name.
    pub fn list(&self) -> io::Result<Vec<FolderInfo>> {
        let roles = self.roles();
        let mut names = BTreeSet::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_prefix('.')) else {
                continue;
            };
            if name.is_empty() || folder_name_problem(name).is_err() {
                continue;
            }
            if entry.path().join("cur").is_dir() {
                names.insert(name.to_string());
            }
        }
        // Levels above existing folders that have no folder of their own.
        let mut levels = BTreeSet::new();
        for name in &names {
            for (at, _) in name.match_indices(DELIMITER) {
                if !names.contains(&name[..at]) && !name[..at].eq_ignore_ascii_case("INBOX") {
                    levels.insert(name[..at].to_string());
                }
            }
        }
        let has_children = |name: &str| {
            let prefix = format!("{name}{DELIMITER}");
            names.iter().any(|n| n.starts_with(&prefix))
        };
        let mut folders = vec![FolderInfo {
            name: "INBOX".into(),
            special_use: None,
            has_children: has_children("INBOX"),
            noselect: false,
        }];
        let all: BTreeSet<(&String, bool)> = names
            .iter()
            .map(|n| (n, false))
            .chain(levels.iter().map(|n| (n, true)))
            .collect();
        for (name, noselect) in all {
            folders.push(FolderInfo {
                name: name.clone(),
                special_use: roles
                    .iter()
                    .find(|m| &m.name == name)
                    .and_then(|m| m.special_use)
                    .filter(|_| !noselect),
                has_children: has_children(name),
                noselect,
            });
        }
        Ok(folders)
    }

    /// Roles recorded when the mailbox was made (`storage.defaultFolders`).
    fn roles(&self) -> Vec<FolderMeta> {
        fs::read(self.root.join(FOLDERS_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Creates `name` and any missing parents (RFC 3501 §6.3.3). A trailing delimiter only says
    /// the client intends to create children under it.
    pub fn create(&self, name: &str) -> Result<(), FolderError> {
        // A storage move's last pass waits for this change (docs/storage.md).
        let _gate = crate::store::gate::enter()?;
        let name = name.strip_suffix(DELIMITER).unwrap_or(name);
        if Self::canonical(name) == "INBOX" {
            return Err(FolderError::AlreadyExists);
        }
        let dir = self.dir_unchecked(name)?;
        if dir.join("cur").is_dir() {
            return Err(FolderError::AlreadyExists);
        }
        let mut parent = String::new();
        for level in name.split(DELIMITER) {
            if !parent.is_empty() {
                parent.push(DELIMITER);
            }
            parent.push_str(level);
            let dir = self.dir_unchecked(&parent)?;
            if !dir.join("cur").is_dir() {
                crate::store::ensure_mailbox(&dir, &[])?;
            }
        }
        fs::File::open(&self.root)?.sync_all()?;
        Ok(())
    }

    /// [`Folders::create`] with a SPECIAL-USE role (CREATE-SPECIAL-USE, RFC 6154 §3): the
    /// role is recorded before the folder is made, so it never exists without it.
    pub fn create_with_role(&self, name: &str, role: SpecialUse) -> Result<(), FolderError> {
        let name = name.strip_suffix(DELIMITER).unwrap_or(name);
        if Self::canonical(name) == "INBOX" || self.dir(name).is_ok() {
            return Err(FolderError::AlreadyExists);
        }
        folder_name_problem(name).map_err(FolderError::BadName)?;
        crate::store::update_folder_roles(
            &self.root,
            |other| Some(other.to_string()),
            Some(FolderMeta {
                name: name.to_string(),
                special_use: Some(role),
            }),
        )?;
        self.create(name)
    }

    /// Deletes `name` with its messages. A folder with subfolders goes the same way: in
    /// Maildir++ its subfolders are directories of their own (`.A.B` beside `.A`), so they
    /// stay, and `name` remains as a level of the hierarchy, `\Noselect` (RFC 3501 §6.3.4).
    /// Deleting such a level is refused while it has subfolders.
    pub fn delete(&self, name: &str) -> Result<(), FolderError> {
        // A storage move's last pass waits for this change (docs/storage.md).
        let _gate = crate::store::gate::enter()?;
        if Self::canonical(name) == "INBOX" {
            return Err(FolderError::InboxForbidden);
        }
        let dir = match self.dir(name) {
            Ok(dir) => dir,
            Err(FolderError::NotFound) => {
                let level = self
                    .list()?
                    .into_iter()
                    .any(|f| f.noselect && f.name == name);
                return Err(if level {
                    FolderError::HasChildren
                } else {
                    FolderError::NotFound
                });
            }
            Err(err) => return Err(err),
        };
        // Rename first so that the folder vanishes at once, then remove what it held.
        let doomed = self.root.join(format!(".deleting-{}", std::process::id()));
        fs::rename(&dir, &doomed)?;
        fs::File::open(&self.root)?.sync_all()?;
        fs::remove_dir_all(&doomed)?;
        // Its messages no longer count against the quota.
        crate::store::quota::invalidate(&self.root);
        // Nor does its role stay for a folder made later under the name.
        if self.roles().iter().any(|m| m.name == name) {
            crate::store::update_folder_roles(
                &self.root,
                |other| (other != name).then(|| other.to_string()),
                None,
            )?;
        }
        Ok(())
    }

    /// Renames `from` (and its subfolders) to `to`. Renaming INBOX moves its messages into a
    /// new folder `to` and leaves INBOX empty (RFC 3501 §6.3.5); the caller does that part.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), FolderError> {
        // A storage move's last pass waits for this change (docs/storage.md).
        let _gate = crate::store::gate::enter()?;
        let source = self.dir(from)?;
        let target = self.dir_unchecked(to)?;
        if Self::canonical(to) == "INBOX" || target.join("cur").is_dir() {
            return Err(FolderError::AlreadyExists);
        }
        // Parents of the new name must exist.
        if let Some((parent, _)) = to.rsplit_once(DELIMITER) {
            if self.dir(parent).is_err() {
                self.create(parent)?;
            }
        }
        let prefix = format!("{from}{DELIMITER}");
        let children: Vec<String> = self
            .list()?
            .into_iter()
            // Levels without a folder of their own have no directory to move.
            .filter(|f| !f.noselect)
            .filter_map(|f| f.name.strip_prefix(&prefix).map(str::to_string))
            .collect();
        fs::rename(&source, &target)?;
        for child in children {
            let old = self.dir_unchecked(&format!("{from}{DELIMITER}{child}"))?;
            let new = self.dir_unchecked(&format!("{to}{DELIMITER}{child}"))?;
            fs::rename(old, new)?;
        }
        fs::File::open(&self.root)?.sync_all()?;
        let mut subscribed = self.subscriptions()?;
        let renamed: Vec<String> = subscribed
            .iter()
            .filter(|s| *s == from || s.starts_with(&prefix))
            .cloned()
            .collect();
        for old in renamed {
            subscribed.remove(&old);
            let below = old.strip_prefix(from).unwrap_or_default();
            subscribed.insert(format!("{to}{below}"));
        }
        self.write_subscriptions(&subscribed)?;
        // Roles move with their folders.
        let moved = |old: &str| -> Option<String> {
            if old == from || old.starts_with(&prefix) {
                let below = old.strip_prefix(from).unwrap_or_default();
                Some(format!("{to}{below}"))
            } else {
                Some(old.to_string())
            }
        };
        if self
            .roles()
            .iter()
            .any(|m| moved(&m.name).as_deref() != Some(&m.name))
        {
            crate::store::update_folder_roles(&self.root, moved, None)?;
        }
        Ok(())
    }

    /// Subscribed names. Before the first SUBSCRIBE, every existing folder counts as
    /// subscribed, so clients that only look at LSUB see the default folders.
    pub fn subscriptions(&self) -> io::Result<BTreeSet<String>> {
        match fs::read_to_string(self.root.join(SUBSCRIPTIONS_FILE)) {
            Ok(text) => Ok(text.lines().map(str::to_string).collect()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(self
                .list()?
                .into_iter()
                .filter(|f| !f.noselect)
                .map(|f| f.name)
                .collect()),
            Err(err) => Err(err),
        }
    }

    pub fn subscribe(&self, name: &str, on: bool) -> Result<(), FolderError> {
        // A storage move's last pass waits for this change (docs/storage.md).
        let _gate = crate::store::gate::enter()?;
        let name = Self::canonical(name);
        if on {
            // RFC 3501 allows subscribing to names that don't exist; refuse only bad ones.
            if name != "INBOX" {
                folder_name_problem(&name).map_err(FolderError::BadName)?;
            }
        }
        let mut subscribed = self.subscriptions()?;
        let changed = if on {
            subscribed.insert(name)
        } else {
            subscribed.remove(&name)
        };
        if changed || !self.root.join(SUBSCRIPTIONS_FILE).exists() {
            self.write_subscriptions(&subscribed)?;
        }
        Ok(())
    }

    fn write_subscriptions(&self, names: &BTreeSet<String>) -> io::Result<()> {
        let mut text = String::new();
        for name in names {
            text.push_str(name);
            text.push('\n');
        }
        let tmp = self.root.join(format!(".{SUBSCRIPTIONS_FILE}.tmp"));
        let mut file = fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, self.root.join(SUBSCRIPTIONS_FILE))
    }
}

/// IMAP LIST pattern matching (RFC 3501 §6.3.8): `*` matches anything, `%` anything but the
/// delimiter; a leading `INBOX` is matched case-insensitively. Patterns come from the client:
/// they are compared as bytes, never sliced as text (a multi-byte character may sit anywhere).
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.as_bytes();
    let normalised;
    let pattern = match pattern.split_at_checked(5) {
        Some((head, rest)) if head.eq_ignore_ascii_case(b"INBOX") => {
            normalised = [b"INBOX".as_slice(), rest].concat();
            &normalised[..]
        }
        _ => pattern,
    };
    matches(pattern, name.as_bytes())
}

/// Wildcard matcher by dynamic programming: O(pattern × name), whatever the pattern (patterns
/// come from the network, so no backtracking).
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    // reach[j]: the pattern prefix seen so far can match name[..j].
    let mut reach = vec![false; name.len() + 1];
    reach[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        match p {
            b'*' | b'%' => {
                for j in 0..=name.len() {
                    next[j] = reach[j]
                        || (j > 0 && next[j - 1] && (p == b'*' || name[j - 1] != DELIMITER as u8));
                }
            }
            c => {
                for j in 1..=name.len() {
                    next[j] = reach[j - 1] && name[j - 1] == c;
                }
            }
        }
        reach = next;
    }
    reach[name.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(name: &str) -> Folders {
        let root =
            std::env::temp_dir().join(format!("icsmail-folders-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        crate::store::ensure_mailbox(&root, &[]).unwrap();
        Folders::new(root)
    }

    fn names(folders: &Folders) -> Vec<String> {
        folders
            .list()
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect()
    }

    #[test]
    fn create_makes_parents_and_rename_moves_children() {
        let f = mailbox("tree");
        f.create("Work.2024.Q1").unwrap();
        assert_eq!(names(&f), ["INBOX", "Work", "Work.2024", "Work.2024.Q1"]);
        assert!(matches!(f.create("Work"), Err(FolderError::AlreadyExists)));
        f.subscribe("Work.2024", true).unwrap();
        f.rename("Work", "Old.Work").unwrap();
        assert_eq!(
            names(&f),
            [
                "INBOX",
                "Old",
                "Old.Work",
                "Old.Work.2024",
                "Old.Work.2024.Q1"
            ]
        );
        assert!(f.subscriptions().unwrap().contains("Old.Work.2024"));
        // A folder with subfolders goes, and stays as a \Noselect level above them.
        f.delete("Old.Work").unwrap();
        let level = f.list().unwrap();
        let level = level.iter().find(|i| i.name == "Old.Work").unwrap();
        assert!(level.noselect && level.has_children);
        assert!(matches!(f.dir("Old.Work"), Err(FolderError::NotFound)));
        // Deleting the level itself is refused while it has subfolders.
        assert!(matches!(
            f.delete("Old.Work"),
            Err(FolderError::HasChildren)
        ));
        // Renaming a tree with a level in it moves the folders below.
        f.rename("Old", "Older").unwrap();
        assert_eq!(
            names(&f),
            [
                "INBOX",
                "Older",
                "Older.Work",
                "Older.Work.2024",
                "Older.Work.2024.Q1"
            ]
        );
        f.rename("Older", "Old").unwrap();
        // CREATE makes the level a folder again.
        f.create("Old.Work").unwrap();
        assert!(f.dir("Old.Work").is_ok());
        f.delete("Old.Work.2024.Q1").unwrap();
        assert!(matches!(
            f.delete("INBOX"),
            Err(FolderError::InboxForbidden)
        ));
        assert!(matches!(f.dir("Nope"), Err(FolderError::NotFound)));
        assert!(matches!(f.create("a..b"), Err(FolderError::BadName(_))));
    }

    #[test]
    fn wildcards() {
        assert!(pattern_matches("*", "Work.2024"));
        assert!(!pattern_matches("%", "Work.2024"));
        assert!(pattern_matches("Work.%", "Work.2024"));
        assert!(pattern_matches("inbox", "INBOX"));
        assert!(pattern_matches("W*4", "Work.2024"));
        assert!(!pattern_matches("W%4", "Work.2024"));
        assert!(pattern_matches(&"*".repeat(5000), "x"));
        assert!(!pattern_matches(&"%a".repeat(2000), &"a".repeat(1999)));
    }

    /// Issue 10 item 2: `pattern[..5]` panicked when byte 5 was inside a character.
    #[test]
    fn non_ascii_patterns_do_not_panic() {
        for pattern in [
            "abcdé",
            "Entwürfe",
            "日本語",
            "INBOé",
            "INBOX",
            "inbox",
            "é",
            "",
        ] {
            for name in ["INBOX", "Entwürfe", "abcdé", "日本語", "INBOé"] {
                let _ = pattern_matches(pattern, name);
                let _ = pattern_matches(&format!("{pattern}.*"), name);
                let _ = pattern_matches(&format!("{pattern}%"), name);
            }
        }
        assert!(pattern_matches("Entwürfe", "Entwürfe"));
        assert!(pattern_matches("Entw%", "Entwürfe"));
        assert!(!pattern_matches("entwürfe", "Entwürfe"));
        assert!(pattern_matches("abcdé", "abcdé"));
        assert!(!pattern_matches("INBOé", "INBOX"));
        assert!(pattern_matches("iNbOx", "INBOX"));
    }
}
