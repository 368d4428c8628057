//! Property tests of the PE/UKI header parser: hostile section tables never panic, and
//! sections that are accepted always lie inside the file.

use bytes::Bytes;
use domboot_formats::pe::{PeLoader, PeSummary};
use domboot_formats::{Format, Loader};
use proptest::prelude::*;

/// A minimal PE32+ with the given sections (name, file offset, file size, virtual size).
fn pe(sections: &[(&str, u32, u32, u32)], file_len: usize) -> Vec<u8> {
    let mut d = vec![0u8; file_len.max(0x400)];
    d[0..2].copy_from_slice(b"MZ");
    d[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    d[0x80..0x84].copy_from_slice(b"PE\0\0");
    let coff = 0x84;
    d[coff..coff + 2].copy_from_slice(&0x8664u16.to_le_bytes());
    d[coff + 2..coff + 4].copy_from_slice(&(sections.len() as u16).to_le_bytes());
    d[coff + 16..coff + 18].copy_from_slice(&0xF0u16.to_le_bytes());
    let opt = coff + 20;
    d[opt..opt + 2].copy_from_slice(&0x20Bu16.to_le_bytes());
    d[opt + 68..opt + 70].copy_from_slice(&10u16.to_le_bytes());
    let table = opt + 0xF0;
    for (i, (name, off, size, vsize)) in sections.iter().enumerate() {
        let at = table + i * 40;
        if at + 40 > d.len() {
            break;
        }
        let n = name.as_bytes();
        d[at..at + n.len().min(8)].copy_from_slice(&n[..n.len().min(8)]);
        d[at + 8..at + 12].copy_from_slice(&vsize.to_le_bytes());
        d[at + 16..at + 20].copy_from_slice(&size.to_le_bytes());
        d[at + 20..at + 24].copy_from_slice(&off.to_le_bytes());
    }
    d
}

proptest! {
    /// Arbitrary bytes after valid DOS/PE signatures: parse or error, never panic.
    #[test]
    fn parser_never_panics(mut data in proptest::collection::vec(any::<u8>(), 0..0x800)) {
        if data.len() >= 0x90 {
            data[0..2].copy_from_slice(b"MZ");
            data[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
            data[0x80..0x84].copy_from_slice(b"PE\0\0");
        }
        let _ = PeSummary::parse(&data);
        let bytes = Bytes::from(data);
        if PeLoader.probe(&bytes).is_some() {
            let _ = PeLoader.load(&bytes, &Default::default());
        }
    }

    /// A section table is accepted exactly when every section's data is in the file, and
    /// a `.linux` section makes it a UKI whose inner layer is that section's bytes.
    #[test]
    fn sections_are_checked_against_the_file(
        off in 0x400u32..0x3000, size in 1u32..0x2000, vsize in 0u32..0x2000, len in 0x400usize..0x4000,
    ) {
        let d = pe(&[(".linux", off, size, vsize)], len);
        let end = u64::from(off) + u64::from(if vsize == 0 { size } else { vsize.min(size) });
        match PeSummary::parse(&d) {
            Ok(s) => {
                prop_assert!(end <= d.len() as u64);
                prop_assert_eq!(s.sections.len(), 1);
                let loaded = PeLoader.load(&Bytes::from(d.clone()), &Default::default()).unwrap();
                prop_assert_eq!(loaded.format, Format::Uki);
                let inner = loaded.inner.unwrap();
                prop_assert_eq!(&inner[..], &d[off as usize..end as usize]);
            }
            Err(_) => prop_assert!(end > d.len() as u64),
        }
    }
}

#[test]
fn too_many_sections_is_an_error_naming_the_field() {
    let mut d = pe(&[], 0x1000);
    d[0x86..0x88].copy_from_slice(&200u16.to_le_bytes());
    let err = PeSummary::parse(&d).unwrap_err();
    assert!(err.to_string().contains("COFF NumberOfSections"), "{err}");
    assert!(err.to_string().contains("96"), "{err}");
}
