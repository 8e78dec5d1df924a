//! The corpus replay of the fuzz bodies on stable: every checked-in input of a target, then a
//! bounded, deterministic set of mutations of each (truncations, bit flips, interesting bytes,
//! huge length fields, inserted and repeated runs), so a plain `cargo test` feeds the decoders
//! malformed input without nightly or libFuzzer. An input that makes a body panic is written to
//! `tandem-fuzz-failures/` in the system's temporary directory, to be added to the corpus once
//! fixed. Test support for both clients' fuzz targets (feature `test-utils`).
//!
//! Corpus files named `valid-*` are encodings made by the code's own encoders and must be
//! accepted; every other file (`malformed-*`, `crash-*`, the fuzzers' finds) must only not break
//! a property.
#![allow(clippy::unwrap_used, reason = "test support: a broken corpus must fail the test")]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// Mutated variants tried per corpus input.
pub const MUTATIONS_PER_INPUT: usize = 160;
/// Fewest inputs a target's corpus may hold (a missing directory must not pass vacuously).
pub const MIN_CORPUS: usize = 8;

/// splitmix64: a small deterministic generator (the replay must be the same on every run).
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `name` (a target and file name), so each input has its own stream.
    pub fn for_name(name: &str) -> Self {
        // FNV-1a of the name.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Self(h)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Values written over length fields: the limits' neighbours and the largest of each width.
const HUGE_U32: [u32; 6] = [u32::MAX, 0x8000_0000, 0x7fff_ffff, 0x0100_0001, 0x0010_0001, 4097];

/// The `i`-th mutation of `input`.
pub fn mutate(input: &[u8], rng: &mut Rng, i: usize) -> Vec<u8> {
    let mut out = input.to_vec();
    if out.is_empty() {
        return (0..=rng.below(16)).map(|_| rng.next_u64() as u8).collect();
    }
    let pos = rng.below(out.len());
    match i % 8 {
        // Truncation.
        0 => out.truncate(pos),
        // One or a few bit flips.
        1 => {
            for _ in 0..=rng.below(3) {
                let p = rng.below(out.len());
                out[p] ^= 1 << rng.below(8);
            }
        }
        // An interesting byte.
        2 => out[pos] = [0x00, 0x01, 0x7f, 0x80, 0x81, 0xb8, 0xf8, 0xff][rng.below(8)],
        // A u32 length field overwritten with a huge value (big-endian, as the binary codec).
        3 => {
            let v = HUGE_U32[rng.below(HUGE_U32.len())].to_be_bytes();
            for (k, b) in v.iter().enumerate() {
                if let Some(slot) = out.get_mut(pos + k) {
                    *slot = *b;
                }
            }
        }
        // An RLP long-string/long-list header claiming a huge payload, or a JSON number.
        4 => {
            let header: &[u8] = match rng.below(4) {
                0 => &[0xbb, 0xff, 0xff, 0xff, 0xff],
                1 => &[0xfb, 0xff, 0xff, 0xff, 0xff],
                2 => &[0xb9, 0xff, 0xff],
                _ => b"99999999999999999999999",
            };
            out.splice(pos..pos, header.iter().copied());
        }
        // Random bytes inserted.
        5 => {
            let run: Vec<u8> = (0..=rng.below(8)).map(|_| rng.next_u64() as u8).collect();
            out.splice(pos..pos, run);
        }
        // A run deleted.
        6 => {
            let end = (pos + 1 + rng.below(16)).min(out.len());
            out.drain(pos..end);
        }
        // A run repeated (lists with more elements, nested values twice).
        _ => {
            let end = (pos + 1 + rng.below(64)).min(out.len());
            let run = out[pos..end].to_vec();
            out.splice(end..end, run);
        }
    }
    out
}

/// The corpus directory of `target` in the crate at `manifest_dir`.
pub fn corpus_dir(manifest_dir: &str, target: &str) -> PathBuf {
    Path::new(manifest_dir).join("tests/fuzz-corpus").join(target)
}

/// The corpus of `target`: (file name, bytes), sorted by name.
pub fn corpus(manifest_dir: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(manifest_dir, target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn run_one<O: Copy>(target: &str, what: &str, body: fn(&[u8]) -> O, input: &[u8]) -> O {
    match catch_unwind(AssertUnwindSafe(|| body(input))) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let dir = std::env::temp_dir().join("tandem-fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{target}-{:016x}", Rng::for_name(&hex(input)).next_u64()));
            let _ = std::fs::write(&file, input);
            let reason = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("?");
            panic!(
                "fuzz target {target}: {what} broke a property: {reason}\n  input ({} bytes) saved to {}",
                input.len(),
                file.display()
            );
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Replays `target`'s corpus and [`MUTATIONS_PER_INPUT`] mutations of each input through
/// `body`; `valid-*` inputs must give `accepted`. Returns how many inputs ran.
pub fn replay<O: Copy + PartialEq + std::fmt::Debug>(
    manifest_dir: &str,
    target: &str,
    body: fn(&[u8]) -> O,
    accepted: O,
) -> usize {
    let files = corpus(manifest_dir, target);
    assert!(
        files.len() >= MIN_CORPUS,
        "fuzz target {target}: {} corpus inputs in {}, expected at least {MIN_CORPUS}",
        files.len(),
        corpus_dir(manifest_dir, target).display()
    );
    let mut runs = 0;
    for (name, input) in &files {
        let outcome = run_one(target, &format!("corpus file {name}"), body, input);
        if name.starts_with("valid-") {
            assert_eq!(outcome, accepted, "fuzz target {target}: corpus file {name} is refused");
        }
        let mut rng = Rng::for_name(&format!("{target}/{name}"));
        for i in 0..MUTATIONS_PER_INPUT {
            let mutated = mutate(input, &mut rng, i);
            run_one(target, &format!("mutation {i} of corpus file {name}"), body, &mutated);
        }
        runs += 1 + MUTATIONS_PER_INPUT;
    }
    runs
}

/// Writes `bytes` as corpus file `name` of `target` (the seed writers).
pub fn write_seed(manifest_dir: &str, target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus_dir(manifest_dir, target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}
