//! libFuzzer target `gossip_batch`: the body `tests/fuzz_targets::gossip_batch` (also replayed by `cargo test`).
#![no_main]

#[path = "../../tests/fuzz_targets/mod.rs"]
mod fuzz_targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz_targets::gossip_batch(data);
});
