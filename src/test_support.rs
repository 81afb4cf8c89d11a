//! Helpers shared by the unit tests.

/// A xorshift64 generator: repeatable pseudo-random numbers for randomised input tests.
pub fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// An empty directory of its own under the system's temp dir, for one test: `label` and the
/// process id name it, so parallel tests and runs do not meet.
pub fn fresh_dir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ics-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("making a test directory");
    dir
}
