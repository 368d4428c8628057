#![no_main]
//! The ext4 reader (through domboot-bootdisk's filesystem probe) on arbitrary bytes: no
//! panic, no hang, no read beyond its limit, whatever the directories and files claim.
use libfuzzer_sys::fuzz_target;

#[path = "bootdisk_walk.rs"]
mod walk;

fuzz_target!(|data: &[u8]| walk::open_and_walk(data));
