#![no_main]
//! MBR (with extended partitions) and GPT on arbitrary bytes: no panic; every partition
//! found lies inside the image.
use domboot_bootdisk::DiskImage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    if let Ok(image) = DiskImage::from_bytes("fuzz.img".as_ref(), data.to_vec()) {
        for p in image.partitions() {
            assert!(
                p.start.checked_add(p.size).is_some_and(|end| end <= len),
                "partition {} outside the image",
                p.number
            );
        }
    }
});
