//! Where the official Ethereum test fixtures live: the team folder beside the repository.

use std::path::{Path, PathBuf};

/// Environment variable that overrides the fixtures folder.
pub const FIXTURES_ENV: &str = "TANDEM_FIXTURES";

/// The fixtures folder is missing.
#[derive(Debug, thiserror::Error)]
#[error(
    "Ethereum fixtures not found at {path} (set {FIXTURES_ENV} to the folder holding blockchain_tests/ and state_tests/)"
)]
pub struct FixturesMissing {
    /// Where we looked.
    pub path: String,
}

/// `$TANDEM_FIXTURES`, else `<repo>/../shared/fixtures/ethereum`, given a crate's manifest dir.
pub fn fixtures_dir(crate_manifest_dir: &Path) -> Result<PathBuf, FixturesMissing> {
    let path = match std::env::var_os(FIXTURES_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => {
            // Every crate of the workspace sits one level below the repository root.
            let repo = crate_manifest_dir.parent().unwrap_or(crate_manifest_dir);
            repo.join("..").join("shared").join("fixtures").join("ethereum")
        }
    };
    if path.join("blockchain_tests").is_dir() || path.join("state_tests").is_dir() {
        Ok(path)
    } else {
        Err(FixturesMissing { path: path.display().to_string() })
    }
}

/// All `.json` files below `dir`, sorted, for deterministic runs.
pub fn json_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.is_file() {
            out.push(d);
            continue;
        }
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}
