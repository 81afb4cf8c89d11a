//! A folder's UIDVALIDITY file, `ics-uidvalidity`: written when the folder is created and
//! again only when its index is lost and its UIDs start over (see `index`).

use std::fs;
use std::io;
use std::path::Path;

use super::atomic::write_atomically;

/// Per-folder file holding its UIDVALIDITY (decimal).
pub const UIDVALIDITY_FILE: &str = "ics-uidvalidity";

/// The folder's UIDVALIDITY: a non-zero 32-bit number (RFC 3501); creation stores seconds
/// since 1970, so a larger stored number is clamped.
pub fn read(dir: &Path) -> io::Result<u32> {
    let path = dir.join(UIDVALIDITY_FILE);
    let text = fs::read_to_string(&path)?;
    let value: u64 = text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a number", path.display()),
        )
    })?;
    Ok(u32::try_from(value).unwrap_or(u32::MAX).max(1))
}

/// Stores `validity` durably.
pub fn write(dir: &Path, validity: u64) -> io::Result<()> {
    write_atomically(dir, UIDVALIDITY_FILE, format!("{validity}\n").as_bytes())
}
