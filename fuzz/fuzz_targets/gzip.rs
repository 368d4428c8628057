#![no_main]
//! The gzip loader on arbitrary bytes, and on the same bytes behind a valid header (so the fuzzer
//! reaches the decoder without first guessing magic numbers and header checksums): never a panic,
//! never more output than the limit, details consistent with the output.
use domboot_formats::compression::GzipLoader;
use libfuzzer_sys::fuzz_target;

/// A gzip member header.
const PREFIX_0: &[u8] = &[0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03];

fuzz_target!(|data: &[u8]| {
    domboot_fuzz::decoder(&GzipLoader, data, &[PREFIX_0]);
});
