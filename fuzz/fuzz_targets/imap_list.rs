#![no_main]
// src/fuzzing/ holds what this runs (and `cargo test` replays its seeds and findings).
libfuzzer_sys::fuzz_target!(|data: &[u8]| icsmail::fuzzing::imap_list::list(data));
