#![no_main]
//! The lz4 (legacy and frame) loader on arbitrary bytes, and on the same bytes behind a valid
//! header (so the fuzzer reaches the decoder without first guessing magic numbers and header
//! checksums): never a panic, never more output than the limit, details consistent with the output.
use domboot_formats::compression::Lz4Loader;
use libfuzzer_sys::fuzz_target;

/// The legacy magic.
const PREFIX_0: &[u8] = &[0x02, 0x21, 0x4c, 0x18];
/// An LZ4 frame descriptor (independent 64 KiB blocks, content checksum).
const PREFIX_1: &[u8] = &[0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7];

fuzz_target!(|data: &[u8]| {
    domboot_fuzz::decoder(&Lz4Loader, data, &[PREFIX_0, PREFIX_1]);
});
