//! The `hookfleet` binary the tools run: the one of this build profile, next to the running
//! executable (`target/release/hookfleet` beside `target/release/hookfleet-bench`). When to
//! build it is each tool's choice; how is here.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use crate::{Error, Result};

/// `hookfleet` next to the running executable, whether or not it exists yet.
pub fn beside_current_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(Error::CurrentExe)?;
    let dir = exe.parent().ok_or(Error::NoDirectory)?;
    Ok(dir.join("hookfleet"))
}

/// Whether `binary` is in a `release` directory (built with `--release`).
pub fn is_release(binary: &Path) -> bool {
    binary
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "release")
}

/// Runs `cargo build [--release] --bin hookfleet` in the workspace root, with the `cargo`
/// that runs this tool when there is one.
pub fn cargo_build(release: bool) -> std::io::Result<ExitStatus> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
    build.arg("build");
    if release {
        build.arg("--release");
    }
    build
        .args(["--bin", "hookfleet"])
        .current_dir(root)
        .status()
}
