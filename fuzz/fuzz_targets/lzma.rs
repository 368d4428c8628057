#![no_main]
//! The LZMA-alone loader on arbitrary bytes, and on the same bytes behind a valid header (so the
//! fuzzer reaches the decoder without first guessing magic numbers and header checksums): never a
//! panic, never more output than the limit, details consistent with the output.
use bytes::Bytes;
use domboot_formats::compression::LzmaLoader;
use domboot_formats::{Details, LoadContext, Loader};
use libfuzzer_sys::fuzz_target;

/// Small enough that bombs stop quickly, large enough for real streams.
const LIMIT: u64 = 16 << 20;

/// An LZMA-alone header (lc3 lp0 pb2, 8 MiB dictionary, size unknown).
const PREFIX_0: &[u8] = &[
    0x5d, 0x00, 0x00, 0x80, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

fuzz_target!(|data: &[u8]| {
    let ctx = LoadContext {
        max_output: LIMIT,
        max_output_reason: "the fuzz target's limit",
    };
    let mut inputs = vec![data.to_vec()];
    for prefix in [PREFIX_0] {
        inputs.push([prefix, data].concat());
    }
    for input in inputs {
        let _ = LzmaLoader.probe(&input);
        if let Ok(loaded) = LzmaLoader.load(&Bytes::from(input), &ctx) {
            let inner = loaded.inner.expect("a compressed layer wraps its output");
            assert!(inner.len() as u64 <= LIMIT, "output beyond the limit");
            let Details::Compressed(info) = &loaded.details else {
                panic!("the lzma loader returned non-compression details");
            };
            assert_eq!(info.decompressed_size, inner.len() as u64);
            let _ = serde_json::to_string(info);
        }
    }
});
