#![no_main]
//! The lzop loader on arbitrary bytes, and on the same bytes behind a valid header (so the fuzzer
//! reaches the decoder without first guessing magic numbers and header checksums): never a panic,
//! never more output than the limit, details consistent with the output.
use domboot_formats::compression::LzoLoader;
use libfuzzer_sys::fuzz_target;

/// A complete lzop 1.04 header (lzo1x_999, adler32_d, valid checksum).
const PREFIX_0: &[u8] = &[
    0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a, 0x10, 0x40, 0x20, 0xa0, 0x09, 0x40, 0x03,
    0x09, 0x03, 0x00, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x6b, 0x02, 0x66, 0xf8, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x2c, 0x37, 0x03, 0x41,
];

fuzz_target!(|data: &[u8]| {
    domboot_fuzz::decoder(&LzoLoader, data, &[PREFIX_0]);
});
