#![no_main]
//! The lzop loader on arbitrary bytes, and on the same bytes behind a valid header (so the fuzzer
//! reaches the decoder without first guessing magic numbers and header checksums): never a panic,
//! never more output than the limit, details consistent with the output.
use bytes::Bytes;
use domboot_formats::compression::LzoLoader;
use domboot_formats::{Details, LoadContext, Loader};
use libfuzzer_sys::fuzz_target;

/// Small enough that bombs stop quickly, large enough for real streams.
const LIMIT: u64 = 16 << 20;

/// A complete lzop 1.04 header (lzo1x_999, adler32_d, valid checksum).
const PREFIX_0: &[u8] = &[
    0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a, 0x10, 0x40, 0x20, 0xa0, 0x09, 0x40, 0x03,
    0x09, 0x03, 0x00, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x6b, 0x02, 0x66, 0xf8, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x2c, 0x37, 0x03, 0x41,
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
        let _ = LzoLoader.probe(&input);
        if let Ok(loaded) = LzoLoader.load(&Bytes::from(input), &ctx) {
            let inner = loaded.inner.expect("a compressed layer wraps its output");
            assert!(inner.len() as u64 <= LIMIT, "output beyond the limit");
            let Details::Compressed(info) = &loaded.details else {
                panic!("the lzo loader returned non-compression details");
            };
            assert_eq!(info.decompressed_size, inner.len() as u64);
            let _ = serde_json::to_string(info);
        }
    }
});
