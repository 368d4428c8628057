#![no_main]
//! The lz4 (legacy and frame) loader on arbitrary bytes, and on the same bytes behind a valid
//! header (so the fuzzer reaches the decoder without first guessing magic numbers and header
//! checksums): never a panic, never more output than the limit, details consistent with the output.
use bytes::Bytes;
use domboot_formats::compression::Lz4Loader;
use domboot_formats::{Details, LoadContext, Loader};
use libfuzzer_sys::fuzz_target;

/// Small enough that bombs stop quickly, large enough for real streams.
const LIMIT: u64 = 16 << 20;

/// The legacy magic.
const PREFIX_0: &[u8] = &[0x02, 0x21, 0x4c, 0x18];
/// An LZ4 frame descriptor (independent 64 KiB blocks, content checksum).
const PREFIX_1: &[u8] = &[0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7];

fuzz_target!(|data: &[u8]| {
    let ctx = LoadContext {
        max_output: LIMIT,
        max_output_reason: "the fuzz target's limit",
    };
    let mut inputs = vec![data.to_vec()];
    for prefix in [PREFIX_0, PREFIX_1] {
        inputs.push([prefix, data].concat());
    }
    for input in inputs {
        let _ = Lz4Loader.probe(&input);
        if let Ok(loaded) = Lz4Loader.load(&Bytes::from(input), &ctx) {
            let inner = loaded.inner.expect("a compressed layer wraps its output");
            assert!(inner.len() as u64 <= LIMIT, "output beyond the limit");
            let Details::Compressed(info) = &loaded.details else {
                panic!("the lz4 loader returned non-compression details");
            };
            assert_eq!(info.decompressed_size, inner.len() as u64);
            let _ = serde_json::to_string(info);
        }
    }
});
