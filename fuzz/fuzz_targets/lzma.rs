#![no_main]
//! The LZMA-alone loader on arbitrary bytes, and on the same bytes behind a valid header (so the
//! fuzzer reaches the decoder without first guessing magic numbers and header checksums): never a
//! panic, never more output than the limit, details consistent with the output.
use domboot_formats::compression::LzmaLoader;
use libfuzzer_sys::fuzz_target;

/// An LZMA-alone header (lc3 lp0 pb2, 8 MiB dictionary, size unknown).
const PREFIX_0: &[u8] = &[
    0x5d, 0x00, 0x00, 0x80, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

fuzz_target!(|data: &[u8]| {
    domboot_fuzz::decoder(&LzmaLoader, data, &[PREFIX_0]);
});
