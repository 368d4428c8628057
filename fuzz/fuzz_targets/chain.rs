#![no_main]
//! The whole probe chain on arbitrary bytes, with a decompression limit small enough that
//! the fuzzer explores structure rather than allocating.
use bytes::Bytes;
use domboot_formats::{ChainOptions, unwrap_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = ChainOptions {
        max_decompressed: Some(16 << 20),
        ..Default::default()
    };
    if let Ok(chain) = unwrap_bytes(Bytes::copy_from_slice(data), &opts) {
        // `inspect --json` renders every layer of hostile files too.
        for layer in &chain.layers {
            let _ = serde_json::to_string(layer);
        }
    }
});
