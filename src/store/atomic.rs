//! Replacing a small store file durably: readers see the old or the new content, never a torn
//! one, and the new content survives a crash once this returns.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Writes `dir/name` through a temporary file, fsyncs file and directory.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    fs::File::open(dir)?.sync_all()
}
