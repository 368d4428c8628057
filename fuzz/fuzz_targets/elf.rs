#![no_main]
//! The ELF loader on arbitrary bytes: never a panic, every PT_LOAD it accepts lies in the
//! input.
use bytes::Bytes;
use domboot_formats::elf::ElfLoader;
use domboot_formats::{Details, LoadContext, Loader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ElfLoader.probe(data);
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(loaded) = ElfLoader.load(&bytes, &LoadContext::default()) {
        let Details::Elf(image) = loaded.details else {
            panic!("the ELF loader returned non-ELF details");
        };
        for (segment, file_bytes) in image
            .load_segments(data)
            .expect("accepted PT_LOADs lie in the input")
        {
            assert_eq!(file_bytes.len() as u64, segment.filesz);
            assert!(segment.filesz <= segment.memsz);
        }
        let _ = serde_json::to_string(&image);
    }
});
