#![no_main]
//! The whole path of `boot-entries` and `--bootloader` on arbitrary bytes: partitions,
//! filesystems, configurations, the default entry and reading its files (small limits).
use domboot_bootdisk::{DiskImage, Selector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut image) = DiskImage::from_bytes("fuzz.img".as_ref(), data.to_vec()) else {
        return;
    };
    image.limits.file = 1 << 20;
    image.limits.dir_entries = 256;
    if let Ok((entries, default)) = image.entries() {
        assert!(!entries.is_empty());
        assert!(default.is_none_or(|d| d < entries.len()));
        if let Ok(entry) = image.select(&Selector::Default) {
            let _ = image.load(&entry);
        }
    }
});
