//! What several test modules share: the repository root and running the `twin` binary.

use std::path::PathBuf;
use std::process::Command;

/// The repository root, where fixtures and scenarios live.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `twin ARGS` from the repository root: its exit code, standard output and error.
pub fn twin(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_twin"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the twin binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
