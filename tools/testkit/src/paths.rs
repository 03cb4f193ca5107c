//! Where things are: the repository root, the shared speech set beside it, the converted model, binaries built beside a test's own.

use std::path::{Path, PathBuf};

/// The workspace root (this crate is `tools/testkit`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// The converted tiny.en model; `make model` (run by `make test`) puts it
/// there. `STENO_TEST_MODEL` points elsewhere.
pub fn model_path() -> PathBuf {
    let path = std::env::var_os("STENO_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models/ggml-tiny.en-q8_0.bin"));
    assert!(
        path.is_file(),
        "model {} is missing: run `make model` (make test does it)",
        path.display()
    );
    path
}

/// The shared speech test set beside the checkout, or None (the caller then
/// skips, and this says so); under CI (`CI` set) a missing set is a failure.
pub fn shared_speech_dir() -> Option<PathBuf> {
    let dir = repo_root().join("../shared/data/speech");
    if dir.join("manifest.tsv").is_file() {
        Some(dir)
    } else {
        // CI always has the set beside the clone: a test skipped there would
        // pass without checking anything.
        assert!(
            std::env::var_os("CI").is_none(),
            "{} not found, and CI needs it (clone with ../shared beside it)",
            dir.display()
        );
        eprintln!(
            "SKIPPED: {} not found; the shared speech set is not beside this checkout",
            dir.display()
        );
        None
    }
}

/// Another binary of the workspace, built into the same folder as `exe`
/// (an `env!("CARGO_BIN_EXE_...")` path): `cargo test --workspace` builds
/// every package's binaries there before any test runs.
pub fn bin_beside(exe: &str, name: &str) -> PathBuf {
    let path = Path::new(exe)
        .parent()
        .expect("a binary lives in a folder")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first (`cargo build --bin {name}`; make test does)",
        path.display()
    );
    path
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
