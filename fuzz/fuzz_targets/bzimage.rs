#![no_main]
//! The bzImage loader on arbitrary bytes: parse, validate, slice the payload.
use bytes::Bytes;
use domboot_formats::{LoadContext, Loader, bzimage::BzImageLoader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = BzImageLoader.load(&Bytes::copy_from_slice(data), &LoadContext::default());
});
