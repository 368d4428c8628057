#![no_main]
//! GRUB legacy menu.lst on arbitrary text: no panic, a valid default.
use domboot_bootdisk::entries::menulst;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(menu) = menulst::parse(&text) {
        assert!(menu.default.is_none_or(|d| d < menu.entries.len()));
    }
});
