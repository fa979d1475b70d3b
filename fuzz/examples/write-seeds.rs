//! Writes the seed corpus (`wgxdp_fuzz::seeds`) into `fuzz/corpus/<target>/seed-*`, replacing
//! older seeds and leaving what the fuzzer found beside them.
//!
//!     cargo run -p wgxdp-fuzz --example write-seeds

use std::path::Path;

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, _) in wgxdp_fuzz::TARGETS {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
            {
                std::fs::remove_file(path)?;
            }
        }
    }
    let seeds = wgxdp_fuzz::seeds::all();
    for (target, name, data) in &seeds {
        std::fs::write(corpus.join(target).join(name), data)?;
    }
    println!("{} seeds written under {}", seeds.len(), corpus.display());
    Ok(())
}
