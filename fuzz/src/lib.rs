//! Checks shared by the fuzz targets.

use bytes::Bytes;
use domboot_formats::{Details, LoadContext, Loader};

/// Small enough that bombs stop quickly, large enough for real streams.
pub const LIMIT: u64 = 16 << 20;

/// Runs a compression loader on `data` and on `data` behind each valid header in
/// `prefixes` (so the fuzzer reaches the decoder without first guessing magic numbers and
/// header checksums): never a panic, never more output than the limit, details consistent
/// with the output.
pub fn decoder(loader: &dyn Loader, data: &[u8], prefixes: &[&[u8]]) {
    let ctx = LoadContext {
        max_output: LIMIT,
        max_output_reason: "the fuzz target's limit",
    };
    let mut inputs = vec![data.to_vec()];
    for prefix in prefixes {
        inputs.push([prefix, data].concat());
    }
    for input in inputs {
        let _ = loader.probe(&input);
        if let Ok(loaded) = loader.load(&Bytes::from(input), &ctx) {
            let inner = loaded.inner.expect("a compressed layer wraps its output");
            assert!(inner.len() as u64 <= LIMIT, "output beyond the limit");
            let Details::Compressed(info) = &loaded.details else {
                panic!("the {} loader returned non-compression details", loader.name());
            };
            assert_eq!(info.decompressed_size, inner.len() as u64);
            let _ = serde_json::to_string(info);
        }
    }
}
