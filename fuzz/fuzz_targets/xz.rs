#![no_main]
//! The xz loader on arbitrary bytes, and on the same bytes behind a valid header (so the fuzzer
//! reaches the decoder without first guessing magic numbers and header checksums): never a panic,
//! never more output than the limit, details consistent with the output.
use domboot_formats::compression::XzLoader;
use libfuzzer_sys::fuzz_target;

/// An xz stream header (CRC32 check).
const PREFIX_0: &[u8] = &[
    0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x01, 0x69, 0x22, 0xde, 0x36,
];

fuzz_target!(|data: &[u8]| {
    domboot_fuzz::decoder(&XzLoader, data, &[PREFIX_0]);
});
