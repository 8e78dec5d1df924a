//! libFuzzer target `chainspec`: the body `tests/fuzz_targets::chainspec` (also replayed by `cargo test`).
#![no_main]

#[path = "../../tests/fuzz_targets/mod.rs"]
mod fuzz_targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz_targets::chainspec(data);
});
