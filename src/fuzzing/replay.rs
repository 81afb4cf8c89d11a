//! Every seed and every kept crash input of every fuzz target, through the same code the
//! fuzzer runs (`cargo test` runs this; the fuzz build is not needed for it). A new finding
//! goes into `fuzz/regressions/<target>/` with the fix.

use std::path::Path;

use super::TARGETS;

#[test]
fn seeds_and_regressions_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let mut inputs = 0;
        for folder in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(folder).join(name)) else {
                continue;
            };
            let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name}: {path:?} fails");
                inputs += 1;
            }
        }
        assert!(inputs > 0, "{name} has no seeds in fuzz/seeds/{name}/");
        replayed += inputs;
    }
    assert!(replayed >= TARGETS.len());
}

/// The fuzz crate has a target file for every entry of `TARGETS`, and no other.
#[test]
fn every_target_has_its_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".rs")
                .map(String::from)
        })
        .collect();
    files.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(files, names);
}
