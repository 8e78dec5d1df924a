//! libFuzzer target `engine_payload`: the body `tests/fuzz_targets::engine_payload` (also replayed by `cargo test`).
#![no_main]

#[path = "../../tests/fuzz_targets/mod.rs"]
mod fuzz_targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz_targets::engine_payload(data);
});
