//! A switch to a tree that already holds mail (no copy) must not let an IMAP session's UIDs
//! name the other tree's messages: a session notices a new UIDVALIDITY and ends, but only
//! if the value differs. Values are seconds at creation, so two trees made in the same second
//! could share one. Before such a switch, under the pause:
//!
//! - each account's UIDVALIDITY record in the target (`ics-uidvalidity-last`) is raised to
//!   the largest value the account has in the old tree, so folders the target has no index
//!   for yet (mail from another server) get larger ones when they are first opened;
//! - target folders without a UIDVALIDITY (mail from another server) get one now, above
//!   that record;
//! - a target folder whose UIDVALIDITY equals its old-tree twin's has its index set aside
//!   (`ics-index.replaced-by-move`), so it starts over under a new, larger value. Its flags
//!   are lost; this takes two folders created in the same second in two trees.

use std::fs;
use std::io;
use std::path::Path;

use tracing::warn;

use crate::store::atomic::write_atomically;
use crate::store::indexfile::INDEX_FILE;
use crate::store::root::{folders, mailboxes};
use crate::store::uidvalidity::{self, LAST_FILE};

/// Raises the target's UIDVALIDITY records above the source's, account by account.
pub fn keep_uidvalidities_apart(source: &Path, target: &Path) -> io::Result<()> {
    for mailbox in mailboxes(target)? {
        let Ok(account) = mailbox.strip_prefix(target) else {
            continue;
        };
        let old = source.join(account);
        let old_folders = folders(&old)?;
        let old_largest = old_folders
            .iter()
            .filter_map(|folder| uidvalidity::read(folder).ok())
            .chain(read_last(&old))
            .max();
        let Some(old_largest) = old_largest else {
            continue; // an account the old tree never had
        };
        for folder in folders(&mailbox)? {
            let Some(relative) = folder.strip_prefix(&mailbox).ok() else {
                continue;
            };
            let twin = old.join(relative);
            let (Ok(mine), Ok(theirs)) = (uidvalidity::read(&folder), uidvalidity::read(&twin))
            else {
                continue;
            };
            if mine == theirs && folder.join(INDEX_FILE).exists() {
                warn!(
                    folder = %folder.display(),
                    uid_validity = mine,
                    "storage move: the same UIDVALIDITY as the old tree's folder; \
                     the index starts over"
                );
                fs::rename(
                    folder.join(INDEX_FILE),
                    folder.join(format!("{INDEX_FILE}.replaced-by-move")),
                )?;
            }
        }
        let last = read_last(&mailbox).unwrap_or(0).max(old_largest);
        write_atomically(&mailbox, LAST_FILE, format!("{last}\n").as_bytes())?;
        // Folders from another server have none yet: theirs now, above the record, so a
        // session of the old tree sees the change at its next command.
        for folder in folders(&mailbox)? {
            if folder.join("cur").is_dir() && uidvalidity::read(&folder).is_err() {
                let validity = uidvalidity::allocate(&mailbox)?;
                uidvalidity::write(&folder, u64::from(validity))?;
            }
        }
    }
    Ok(())
}

/// The account's recorded last UIDVALIDITY, if readable.
fn read_last(mailbox: &Path) -> Option<u32> {
    fs::read_to_string(mailbox.join(LAST_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_gets_larger_uidvalidities_than_the_old_tree() {
        let base = crate::test_support::fresh_dir("apart");
        let (old, new) = (
            base.join("old/example.org/alice"),
            base.join("new/example.org/alice"),
        );
        for dir in [&old, &new, &old.join(".Sent"), &new.join(".Sent")] {
            fs::create_dir_all(dir).unwrap();
        }
        uidvalidity::write(&old, 1000).unwrap();
        uidvalidity::write(&old.join(".Sent"), 1500).unwrap();
        uidvalidity::write(&new, 900).unwrap();
        fs::write(new.join(INDEX_FILE), "x").unwrap();
        uidvalidity::write(&new.join(".Sent"), 1500).unwrap();
        fs::write(new.join(".Sent").join(INDEX_FILE), "x").unwrap();
        keep_uidvalidities_apart(&base.join("old"), &base.join("new")).unwrap();
        fs::create_dir_all(new.join(".Foreign/cur")).unwrap();
        keep_uidvalidities_apart(&base.join("old"), &base.join("new")).unwrap();
        assert!(uidvalidity::read(&new.join(".Foreign")).unwrap() > 1500);
        assert!(read_last(&new).unwrap() > 1500);
        assert!(
            new.join(INDEX_FILE).exists(),
            "a different value keeps its index"
        );
        assert!(
            !new.join(".Sent").join(INDEX_FILE).exists(),
            "the same value starts over"
        );
        assert!(new
            .join(".Sent")
            .join(format!("{INDEX_FILE}.replaced-by-move"))
            .exists());
        fs::remove_dir_all(base).unwrap();
    }
}
