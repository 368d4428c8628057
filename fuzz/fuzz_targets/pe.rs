#![no_main]
//! The PE / UKI loader on arbitrary bytes.
use bytes::Bytes;
use domboot_formats::{LoadContext, Loader, pe::PeLoader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = PeLoader.probe(data);
    let _ = PeLoader.load(&Bytes::copy_from_slice(data), &LoadContext::default());
});
