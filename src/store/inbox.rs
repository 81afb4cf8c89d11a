//! The message files of a folder: listing them with stable ids and sizes (for the index),
//! reading them in wire form, deleting them durably.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::mailtext::blank_line_end;

/// One message file of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub path: PathBuf,
    /// The Maildir base name (file name without `:2,flags`): unique and stable across the
    /// new/ → cur/ move and flag changes.
    pub base: String,
    /// Size in CRLF form (what POP3 and IMAP report) when the name says it (`W=`).
    size_in_name: Option<u64>,
}

impl StoredMessage {
    /// The message file at `path`, with the Maildir base name `base` (as listed, or as this
    /// server just placed it: then the folder needn't be listed to find it).
    pub fn at(path: PathBuf, base: String) -> StoredMessage {
        StoredMessage {
            path,
            size_in_name: size_from_name(&base),
            base,
        }
    }

    /// Size in CRLF form: from the name, else counted in the file (read whole). Asked only of
    /// messages new to the index: listing a folder reads no file, so re-listing a folder of
    /// mail from another delivery agent (no `W=`) costs no more than one of ours.
    pub fn wire_size(&self) -> io::Result<u64> {
        match self.size_in_name {
            Some(size) => Ok(size),
            None => wire_size_of(&self.path),
        }
    }
}

/// Messages of the folder at `dir` (its `new/` and `cur/`), in no particular order (sort
/// what needs it with [`in_delivery_order`]): the directories are read, no message file is
/// opened.
pub fn list_messages(dir: &Path) -> io::Result<Vec<StoredMessage>> {
    let mut messages = Vec::new();
    for sub in ["cur", "new"] {
        let entries = match fs::read_dir(dir.join(sub)) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let base = name.split(':').next().unwrap_or(&name).to_string();
            messages.push(StoredMessage::at(entry.path(), base));
        }
    }
    Ok(messages)
}

/// Sorts `messages` oldest first (see [`delivery_order`]).
pub fn in_delivery_order(messages: &mut [&StoredMessage]) {
    messages.sort_by_cached_key(|message| delivery_order(&message.base));
}

/// Sorts messages in delivery order: seconds, microseconds, the whole name.
pub type DeliveryOrder = (u64, u64, String);

/// The delivery order key of a Maildir base name `<seconds>.M<microseconds>P<pid>...` (as
/// this server and Dovecot write them): the numbers compared as numbers, since `M9876` was
/// written before `M38143`; a part that isn't there counts as 0, then the name decides.
pub fn delivery_order(base: &str) -> DeliveryOrder {
    let mut parts = base.splitn(3, '.');
    let seconds = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let micros = parts
        .next()
        .and_then(|unique| unique.strip_prefix('M'))
        .map(|rest| {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            rest[..digits].parse().unwrap_or(0)
        })
        .unwrap_or(0);
    (seconds, micros, base.to_string())
}

/// The `W=` (CRLF size) field of a name written by this server or Dovecot.
fn size_from_name(base: &str) -> Option<u64> {
    base.split(',')
        .find_map(|field| field.strip_prefix("W="))
        .and_then(|size| size.parse().ok())
}

/// CRLF size of a file from elsewhere: every LF becomes CRLF on the wire.
fn wire_size_of(path: &Path) -> io::Result<u64> {
    let bytes = fs::read(path)?;
    Ok((bytes.len() + bytes.iter().filter(|&&b| b == b'\n').count()) as u64)
}

/// The stored form (LF line ends) to the wire form: every LF becomes CRLF. Exactly inverts the
/// CRLF → LF conversion done at delivery, so sizes match the `W=` field. (On every FETCH and
/// SEARCH path, so it copies whole lines rather than bytes.)
pub fn to_wire_form(stored: &[u8]) -> Vec<u8> {
    let lines = memchr::memchr_iter(b'\n', stored).count();
    let mut out = Vec::with_capacity(stored.len() + lines);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', stored) {
        out.extend_from_slice(&stored[start..end]);
        out.extend_from_slice(b"\r\n");
        start = end + 1;
    }
    out.extend_from_slice(&stored[start..]);
    out
}

/// Bytes of a message file read at a time while looking for the end of its header.
const HEADER_READ: usize = 8 * 1024;

/// The header block of a stored message in wire form: what [`crate::mailtext::header_end`] finds in the wire
/// form of the whole file, reading no more of the file than that takes.
pub fn read_header_block(path: &Path) -> io::Result<Vec<u8>> {
    read_header_block_in(path, HEADER_READ)
}

fn read_header_block_in(path: &Path, chunk: usize) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    let mut stored = vec![0; chunk];
    let mut wire = Vec::with_capacity(chunk + chunk / 16);
    // Where the line the last read ended in starts: the blank line may straddle two reads.
    let mut line_start = 0;
    loop {
        let read = file.read(&mut stored)?;
        if read == 0 {
            return Ok(wire);
        }
        // Wire form as it comes (LF → CRLF needs no look-ahead).
        wire.extend_from_slice(&to_wire_form(&stored[..read]));
        if let Some(end) = blank_line_end(&wire[line_start..]) {
            wire.truncate(line_start + end);
            return Ok(wire);
        }
        line_start = memchr::memrchr(b'\n', &wire).map_or(0, |lf| lf + 1);
    }
}

/// Deletes message files and makes the deletion durable (directory fsyncs).
pub fn delete_messages(paths: &[PathBuf]) -> io::Result<()> {
    let mut dirs: Vec<&Path> = Vec::new();
    for path in paths {
        match fs::remove_file(path) {
            Ok(()) => {}
            // Already gone (another client): the goal is reached.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        if let Some(dir) = path.parent() {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    for dir in dirs {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_and_header_block() {
        assert_eq!(to_wire_form(b"a\nb\n\nc"), b"a\r\nb\r\n\r\nc");
        assert_eq!(to_wire_form(b""), b"");
        assert_eq!(to_wire_form(b"\n\n"), b"\r\n\r\n");
        let dir = std::env::temp_dir().join(format!("icsmail-hdr-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m");
        // A header longer than one read, with the blank line right at a read boundary.
        let mut header = b"X: ".to_vec();
        header.resize(8 * 1024 - 1, b'y');
        header.extend_from_slice(b"\n\nbody\n");
        fs::write(&path, &header).unwrap();
        let block = read_header_block(&path).unwrap();
        assert!(block.ends_with(b"y\r\n\r\n"));
        assert_eq!(block.len(), 8 * 1024 - 1 + 4);
        fs::write(&path, b"no blank line\n").unwrap();
        assert_eq!(read_header_block(&path).unwrap(), b"no blank line\r\n");
        fs::write(&path, b"\nbody").unwrap();
        assert_eq!(read_header_block(&path).unwrap(), b"\r\n");
        fs::remove_dir_all(dir).unwrap();
    }

    /// However the file is cut into reads, the block is what the shared finder sees in the
    /// whole wire form, and what the earlier `\n\n` search of the stored form found.
    #[test]
    fn header_block_is_the_shared_finders_on_any_reads() {
        let dir = std::env::temp_dir().join(format!("icsmail-hdr-rnd-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m");
        let mut next = crate::test_support::xorshift(0x4EAD_E4B1_0C4B_0001);
        for _ in 0..500 {
            let stored: Vec<u8> = (0..next() % 40)
                .map(|_| b"\n\nx\r:"[(next() % 5) as usize])
                .collect();
            fs::write(&path, &stored).unwrap();
            let wire = to_wire_form(&stored);
            let expected = &wire[..crate::mailtext::header_end(&wire)];
            let stored_end = if stored.starts_with(b"\n") {
                1
            } else {
                memchr::memmem::find(&stored, b"\n\n").map_or(stored.len(), |at| at + 2)
            };
            assert_eq!(expected, to_wire_form(&stored[..stored_end]), "{stored:?}");
            for chunk in 1..6 {
                assert_eq!(
                    read_header_block_in(&path, chunk).unwrap(),
                    expected,
                    "{stored:?}"
                );
            }
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn wire_form_inverts_delivery_form() {
        let original = b"Subject: x\r\n\r\nline\r\nbare\rcr\r\r\n";
        let stored = crate::store::to_maildir_form("", original);
        assert_eq!(to_wire_form(&stored), original);
    }

    #[test]
    fn delivery_order_compares_numbers_as_numbers() {
        let mut names = vec![
            "1796161397.M38143P25829Q2.vm,S=266,W=275",
            "1796161397.M6529P25829Q1.vm,S=264,W=273",
            "1796161398.M1P1Q3.vm",
            "999.M5P1Q0.vm",
            "1796161397.other-tool-name",
            "junk",
        ];
        names.sort_by_key(|name| delivery_order(name));
        assert_eq!(
            names,
            [
                "junk",
                "999.M5P1Q0.vm",
                "1796161397.other-tool-name",
                "1796161397.M6529P25829Q1.vm,S=264,W=273",
                "1796161397.M38143P25829Q2.vm,S=266,W=275",
                "1796161398.M1P1Q3.vm",
            ]
        );
    }

    #[test]
    fn lists_in_delivery_order_with_sizes() {
        let dir = std::env::temp_dir().join(format!("icsmail-inbox-{}", std::process::id()));
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        fs::write(dir.join("new/200.M1P1Q1.h,S=3,W=5"), b"a\nb\n").unwrap();
        fs::write(dir.join("cur/100.M1P1Q2.h:2,S"), b"x\ny\n").unwrap();
        // A name without `W=` that can't be read (here a directory): listing opens no
        // message file, so it lists it; only its size can't be had.
        fs::create_dir(dir.join("cur/300.M1P1Q3.h:2,")).unwrap();
        let all = list_messages(&dir).unwrap();
        let mut listed: Vec<&StoredMessage> = all.iter().collect();
        in_delivery_order(&mut listed);
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].base, "100.M1P1Q2.h");
        assert_eq!(listed[0].wire_size().unwrap(), 6);
        assert_eq!(listed[1].wire_size().unwrap(), 5);
        assert!(listed[2].wire_size().is_err());
        fs::remove_dir(dir.join("cur/300.M1P1Q3.h:2,")).unwrap();
        delete_messages(&[listed[0].path.clone()]).unwrap();
        assert_eq!(list_messages(&dir).unwrap().len(), 1);
        fs::remove_dir_all(dir).unwrap();
    }
}
