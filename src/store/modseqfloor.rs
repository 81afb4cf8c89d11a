//! A folder's durable modification-sequence ceiling, `ics-modseq`: `<ceiling> <boot id>`.
//!
//! Index writes that only change flags are not fsync'd (docs/storage.md), so a machine crash
//! can bring back an older index with a lower HIGHESTMODSEQ, and a client that saw the lost
//! changes would then miss later ones (RFC 7162 §3.1 wants mod-sequences never to go back).
//! Instead of an fsync per change, the index hands out mod-sequences only up to a ceiling
//! stored durably here, reserved a batch at a time: every mod-sequence ever handed out is at
//! most the stored ceiling. The boot id of the kernel that reserved it tells a reader that the
//! machine restarted since; only then can an index write have been lost (a process crash
//! loses nothing that was written), and the index is carried past the ceiling (see
//! `index::carry_past_crash`).

use std::fs;
use std::io;
use std::path::Path;
use std::sync::OnceLock;

use super::atomic::write_atomically;

pub const MODSEQ_FILE: &str = "ics-modseq";

/// Mod-sequences reserved per durable write of the ceiling: one fsync per this many changes.
pub const BATCH: u64 = 1000;

/// The stored ceiling and the boot it was reserved in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Floor {
    pub ceiling: u64,
    pub boot: String,
}

/// The stored ceiling, None when the folder has none yet (made by an older version, or never
/// changed). A damaged file counts as none: the next change reserves again.
pub fn read(dir: &Path) -> io::Result<Option<Floor>> {
    let text = match fs::read_to_string(dir.join(MODSEQ_FILE)) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let mut words = text.split_whitespace();
    let ceiling = words.next().and_then(|w| w.parse().ok());
    let boot = words.next().map(str::to_string);
    Ok(ceiling
        .zip(boot)
        .map(|(ceiling, boot)| Floor { ceiling, boot }))
}

/// Stores `ceiling` for this boot, durably (before any mod-sequence up to it is used).
pub fn write(dir: &Path, ceiling: u64) -> io::Result<()> {
    write_atomically(
        dir,
        MODSEQ_FILE,
        format!("{ceiling} {}\n", current_boot()).as_bytes(),
    )
}

/// The running kernel's boot id; "unknown" where there is none to read (then a restart of the
/// machine goes unnoticed and HIGHESTMODSEQ may step back after a crash, as without a floor).
pub fn current_boot() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|id| id.trim().to_string())
            .ok()
            .filter(|id| !id.is_empty() && !id.contains(char::is_whitespace))
            .unwrap_or_else(|| "unknown".to_string())
    })
}
