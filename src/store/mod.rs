//! The mail store: one Maildir++ per account under `storage.path`.
//!
//! Layout (docs/storage.md): `<storage.path>/<domain>/<local part>/` is the INBOX
//! (`cur/ new/ tmp/`); sub-folders are `.<Name>/` beside it (Maildir++). Each folder holds
//! `ics-uidvalidity` (its UIDVALIDITY, fixed at creation) and `ics-index` (UIDs, flags and
//! modification sequences for IMAP, see `index`); the mailbox root holds
//! `ics-folders.json` (folders and their SPECIAL-USE roles). Messages are stored with LF line
//! ends, and their file names carry `,S=<bytes on disk>,W=<bytes in CRLF form>`.

mod atomic;
mod create;
mod deliver;
mod dirsync;
mod expungelog;
mod filekey;
mod flags;
mod folder;
pub mod gate;
mod inbox;
mod incoming;
mod index;
mod indexcache;
mod indexfile;
mod modseqfloor;
mod names;
pub mod quota;
pub mod relocate;
pub mod root;
pub mod space;
mod uidvalidity;

pub use create::{ensure_mailbox, update_folder_roles, FolderMeta, FOLDERS_FILE};
pub use deliver::{mailbox_dir, to_maildir_form, MailStore};
pub use dirsync::DirSyncer;
pub use expungelog::UidRanges;
pub use flags::{FlagChange, FlagSet, MAX_KEYWORDS, MAX_KEYWORD_LENGTH};
pub use folder::{Appended, Copied, CopySource, FlagUpdate, FlagsStored, Folder};
pub use inbox::{delivery_order, read_header_block, to_wire_form};
pub use incoming::{IncomingMessage, LfConverter, SealedMessage};
pub use indexfile::{FolderIndex, IndexEntry, Recent, Stamp, INDEX_FILE};
pub use names::{folder_dir_name, folder_name_problem};
pub use uidvalidity::UIDVALIDITY_FILE;
