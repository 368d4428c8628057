#![no_main]
//! grub.cfg on arbitrary text, with every `source` reading the same text again (so the
//! include bound is exercised): no panic, entries with absolute kernels, a valid default.
use domboot_bootdisk::entries::grub;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut include = |_: &str| Some(text.to_string());
    if let Ok(menu) = grub::parse(&text, &mut include) {
        assert!(menu.entries.iter().all(|e| e.kernel.starts_with('/')));
        assert!(menu.default.is_none_or(|d| d < menu.entries.len()));
    }
});
