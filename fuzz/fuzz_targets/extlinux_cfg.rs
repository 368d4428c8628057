#![no_main]
//! extlinux/syslinux/isolinux configurations on arbitrary text, INCLUDE reading the same
//! text again: no panic, entries with kernels, a valid default.
use domboot_bootdisk::entries::extlinux;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut include = |_: &str| Some(text.to_string());
    if let Ok(menu) = extlinux::parse(&text, &mut include) {
        assert!(menu.entries.iter().all(|e| !e.kernel.is_empty()));
        assert!(menu.default.is_none_or(|d| d < menu.entries.len()));
    }
});
