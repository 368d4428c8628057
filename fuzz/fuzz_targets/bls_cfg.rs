#![no_main]
//! Boot Loader Spec entry files and loader.conf on arbitrary text: each line of the input
//! is also an entry of its own, they are sorted and the default picked by the input's
//! `default` pattern: no panic, a total order, a valid default.
use domboot_bootdisk::entries::bls;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut entries: Vec<bls::BlsEntry> = std::iter::once(text.as_ref())
        .chain(text.split("\n\n"))
        .enumerate()
        .filter_map(|(i, t)| bls::parse_entry(&format!("{i}-{}", t.len()), t))
        .collect();
    bls::sort(&mut entries);
    let ids: Vec<&str> = entries
        .iter()
        .map(|e| e.entry.id.as_deref().unwrap_or(""))
        .collect();
    let pattern = bls::loader_default(&text);
    let default = bls::default_index(&ids, pattern.as_deref());
    assert_eq!(default.is_some(), !entries.is_empty());
    assert!(default.is_none_or(|d| d < entries.len()));
});
