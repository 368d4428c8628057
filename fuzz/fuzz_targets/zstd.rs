#![no_main]
//! The zstd loader on arbitrary bytes, and on the same bytes behind a valid header (so the fuzzer
//! reaches the decoder without first guessing magic numbers and header checksums): never a panic,
//! never more output than the limit, details consistent with the output.
use domboot_formats::compression::ZstdLoader;
use libfuzzer_sys::fuzz_target;

/// A zstd frame header (checksum, 2 MiB window).
const PREFIX_0: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58];

fuzz_target!(|data: &[u8]| {
    domboot_fuzz::decoder(&ZstdLoader, data, &[PREFIX_0]);
});
