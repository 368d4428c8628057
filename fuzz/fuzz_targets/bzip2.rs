#![no_main]
//! The bzip2 loader on arbitrary bytes, and on the same bytes behind a valid header (so the fuzzer
//! reaches the decoder without first guessing magic numbers and header checksums): never a panic,
//! never more output than the limit, details consistent with the output.
use domboot_formats::compression::Bzip2Loader;
use libfuzzer_sys::fuzz_target;

/// A bzip2 stream and block header.
const PREFIX_0: &[u8] = &[b'B', b'Z', b'h', b'9', 0x31, 0x41, 0x59, 0x26, 0x53, 0x59];

fuzz_target!(|data: &[u8]| {
    domboot_fuzz::decoder(&Bzip2Loader, data, &[PREFIX_0]);
});
