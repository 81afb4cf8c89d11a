//! Creating a mailbox with its default folders (idempotent).

use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::Path;

use super::atomic::write_atomically;
use super::indexfile::create_empty;
use super::names::folder_dir_name;
use super::quota::mailbox_root;
use super::uidvalidity::{self, UIDVALIDITY_FILE};
use crate::config::model::{DefaultFolder, SpecialUse};
/// Mailbox-root file listing the folders created with the mailbox and their SPECIAL-USE roles.
pub const FOLDERS_FILE: &str = "ics-folders.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FolderMeta {
    pub name: String,
    pub special_use: Option<SpecialUse>,
}

/// Makes sure `root` is a Maildir++ mailbox with every folder of `folders`. Existing folders and
/// their UIDVALIDITY are left as they are; roles of existing entries in the folder file are kept.
pub fn ensure_mailbox(root: &Path, folders: &[DefaultFolder]) -> io::Result<()> {
    ensure_folder(root)?;
    let meta_path = root.join(FOLDERS_FILE);
    let mut meta: Vec<FolderMeta> = match fs::read(&meta_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {err}", meta_path.display()),
            )
        })?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(err) => return Err(err),
    };
    let mut changed = !meta_path.exists();
    for folder in folders {
        ensure_folder(&root.join(folder_dir_name(&folder.name)))?;
        if !meta.iter().any(|m| m.name == folder.name) {
            meta.push(FolderMeta {
                name: folder.name.clone(),
                special_use: folder.special_use,
            });
            changed = true;
        }
    }
    if changed {
        let json = serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?;
        write_atomically(root, FOLDERS_FILE, &json)?;
    }
    Ok(())
}

/// The folder file of the mailbox at `root` (empty when there is none).
fn read_meta(root: &Path) -> io::Result<Vec<FolderMeta>> {
    let path = root.join(FOLDERS_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {err}", path.display()),
            )
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}

/// Changes the SPECIAL-USE roles of the folder file: every entry is given to `rename` (name,
/// role), which returns the new name, or None to drop it; `add` is added after (CREATE with
/// USE, RFC 6154). Durable.
pub fn update_folder_roles(
    root: &Path,
    rename: impl Fn(&str) -> Option<String>,
    add: Option<FolderMeta>,
) -> io::Result<()> {
    let mut meta: Vec<FolderMeta> = read_meta(root)?
        .into_iter()
        .filter_map(|m| {
            rename(&m.name).map(|name| FolderMeta {
                name,
                special_use: m.special_use,
            })
        })
        .collect();
    if let Some(added) = add {
        meta.retain(|m| m.name != added.name);
        meta.push(added);
    }
    let json = serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?;
    write_atomically(root, FOLDERS_FILE, &json)
}

/// Files left in `tmp/` longer than this are from deliveries that died (Maildir's rule).
pub const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(36 * 3600);

/// Removes what crashed deliveries left in the mailbox's `tmp/` (never a message that was
/// acknowledged: those are in `new/` or `cur/`). Returns how many files went.
pub fn clean_stale_tmp(root: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(root.join("tmp"))? {
        let entry = entry?;
        let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
        if age > STALE_TMP && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// `cur/ new/ tmp/` and the UIDVALIDITY file of one folder.
fn ensure_folder(dir: &Path) -> io::Result<()> {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    if !dir.join(UIDVALIDITY_FILE).exists() {
        // Larger than any the account handed out before (a folder deleted and made again
        // never gets its old one back).
        let validity = uidvalidity::allocate(&mailbox_root(dir))?;
        uidvalidity::write(dir, u64::from(validity))?;
        // An empty index from the start: a folder whose index is missing later has lost it,
        // and gets a new UIDVALIDITY instead of reused UIDs (see `index`).
        create_empty(dir, validity)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_folders_and_keeps_uidvalidity() {
        let root = std::env::temp_dir().join(format!("icsmail-create-{}", std::process::id()));
        let folders = crate::config::model::Storage::default().default_folders;
        ensure_mailbox(&root, &folders).unwrap();
        let validity = fs::read_to_string(root.join(".Sent").join(UIDVALIDITY_FILE)).unwrap();
        ensure_mailbox(&root, &folders).unwrap();
        assert_eq!(
            validity,
            fs::read_to_string(root.join(".Sent").join(UIDVALIDITY_FILE)).unwrap()
        );
        let meta: Vec<FolderMeta> =
            serde_json::from_slice(&fs::read(root.join(FOLDERS_FILE)).unwrap()).unwrap();
        assert_eq!(meta.len(), 4);
        assert_eq!(meta[1].special_use, Some(SpecialUse::Sent));
        for sub in ["cur", "new", "tmp"] {
            assert!(root.join(".Junk").join(sub).is_dir());
        }
        let fresh = root.join("tmp").join("fresh");
        fs::write(&fresh, b"x").unwrap();
        let stale = root.join("tmp").join("stale");
        fs::write(&stale, b"x").unwrap();
        let old = std::time::SystemTime::now() - STALE_TMP - std::time::Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(clean_stale_tmp(&root).unwrap(), 1);
        assert!(fresh.exists() && !stale.exists());
        fs::remove_dir_all(root).unwrap();
    }
}
