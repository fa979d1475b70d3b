//! Replays the committed corpus (`fuzz/corpus/<target>/*`) through every target: each input
//! once, on every `cargo test`. What the fuzzer once found stays found without the fuzzer; a
//! crash file added to a target's folder is a regression test.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_passes_its_target() {
    for (target, run) in wgxdp_fuzz::TARGETS {
        let files = corpus(target);
        assert!(!files.is_empty(), "{target}: no corpus");
        for file in files {
            let data = std::fs::read(&file).expect("corpus file");
            // The file's name in the panic message, so a failure says which input it was.
            if let Err(e) = std::panic::catch_unwind(|| run(&data)) {
                let msg = e
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| e.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                panic!("{}: {msg}", file.display());
            }
        }
    }
}

#[test]
fn the_seeds_are_committed() {
    for (target, name, data) in wgxdp_fuzz::seeds::all() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target)
            .join(&name);
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == data,
            "{}: differs from the seed (cargo run -p wgxdp-fuzz --example write-seeds)",
            path.display()
        );
    }
}
