//! Support for end-to-end tests: locating the real `tandem-el` / `tandem-cl` binaries and running
//! them as child processes that are always cleaned up.

use std::{
    path::PathBuf,
    process::{Child, Command},
};

/// The binary could not be found.
#[derive(Debug, thiserror::Error)]
#[error(
    "binary {name} not found at {path}: run `cargo build --workspace --bins` first (scripts/test does)"
)]
pub struct BinaryMissing {
    /// Binary name.
    pub name: String,
    /// Where it was expected.
    pub path: String,
}

/// Path of a workspace binary built in the same profile as the running test.
///
/// Test executables live in `<target>/<profile>/deps/`, this package's own binaries (the load
/// and fault benchmarks) in `<target>/<profile>/` beside the node binaries; either way this
/// honours `CARGO_TARGET_DIR` and the profile without guessing.
pub fn binary(name: &str) -> Result<PathBuf, BinaryMissing> {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    let profile_dir = if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(PathBuf::from).unwrap_or_default()
    } else {
        dir
    };
    let path = profile_dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(BinaryMissing { name: name.to_string(), path: path.display().to_string() })
    }
}

/// A child process killed (SIGKILL) when dropped, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Spawns `command` under the guard.
    pub fn spawn(command: &mut Command) -> std::io::Result<Self> {
        command.spawn().map(Self)
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub mod delay;
pub mod loadgen;
pub mod netns;
pub mod testnet;
