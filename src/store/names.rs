//! Folder names on disk.

/// Why `name` cannot be a folder name (used for `storage.defaultFolders` and later IMAP CREATE).
/// Names are stored as UTF-8; `.` is the Maildir++ hierarchy separator, so `a.b` is `b` inside
/// `a`.
pub fn folder_name_problem(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("is empty")
    } else if name.len() > 200 {
        Err("is longer than 200 bytes")
    } else if name.eq_ignore_ascii_case("inbox") {
        Err("is reserved (INBOX)")
    } else if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        Err("has an empty hierarchy level (leading, trailing or double '.')")
    } else if name.contains('/') || name.chars().any(char::is_control) {
        Err("contains '/' or a control character")
    } else {
        Ok(())
    }
}

/// The directory (beside the INBOX's `cur/new/tmp`) that holds folder `name`.
pub fn folder_dir_name(name: &str) -> String {
    format!(".{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unsafe_names() {
        for bad in [
            "", "INBOX", "inbox", ".hidden", "a..b", "a/b", "x\n", "end.",
        ] {
            assert!(folder_name_problem(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["Sent", "Archive.2024", "Entwürfe", "Sent Items"] {
            assert!(folder_name_problem(good).is_ok(), "{good:?} refused");
        }
    }
}
