//! Whether a storage failure is the disk (or the file system quota) being full: a temporary
//! condition the client is told about as such (`452 4.3.1`, `NO [OVERQUOTA]`), not a fault of
//! ours.

use std::io;

/// `ENOSPC` or `EDQUOT`.
pub fn is_out_of_space(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// The same, anywhere in an error's chain of causes.
pub fn is_out_of_space_anywhere(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(is_out_of_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart_from_other_failures() {
        let full = io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(is_out_of_space(&full));
        assert!(is_out_of_space(&io::Error::from_raw_os_error(libc::EDQUOT)));
        assert!(!is_out_of_space(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(!is_out_of_space(&io::Error::other("no space left")));
        let wrapped = anyhow::Error::from(full).context("writing the message");
        assert!(is_out_of_space_anywhere(&wrapped));
        assert!(!is_out_of_space_anywhere(&anyhow::anyhow!("other")));
    }
}
