//! Unit tests of the note walk and the note decoding.

use super::*;
use crate::elf::ElfClass;

fn note(owner: &str, n_type: u32, desc: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let name = [owner.as_bytes(), b"\0"].concat();
    v.extend((name.len() as u32).to_le_bytes());
    v.extend((desc.len() as u32).to_le_bytes());
    v.extend(n_type.to_le_bytes());
    v.extend(&name);
    v.resize(v.len().next_multiple_of(4), 0);
    v.extend(desc);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

fn collect(data: &[u8]) -> Result<(Vec<Note>, XenNotes, Vec<String>), FormatError> {
    let rd = Rd {
        data,
        big: false,
        class: ElfClass::Elf64,
    };
    let mut c = NoteCollector::new(rd);
    c.parse_region(&NoteRegion {
        start: 0,
        size: data.len() as u64,
        align: 4,
        source: NoteSource::Segment(0),
    })?;
    Ok(c.finish())
}

#[test]
fn decodes_xen_gnu_and_linux_notes() {
    let mut data = Vec::new();
    data.extend(note("GNU", 3, &[0xde, 0xad, 0xbe, 0xef]));
    data.extend(note("Linux", 0x101, &0u32.to_le_bytes()));
    data.extend(note("Linux", 0x100, b"\0"));
    data.extend(note("Xen", 18, &0x1000480u64.to_le_bytes()));
    data.extend(note("Xen", 6, b"linux\0"));
    data.extend(note("Xen", 17, &0x801u32.to_le_bytes()));
    data.extend(note(
        "Xen",
        13,
        &[1u64.to_le_bytes(), 1u64.to_le_bytes()].concat(),
    ));
    data.extend(note(
        "Xen",
        19,
        &[0x20_0000u32, 0x100_0000, 0xffff_ffff]
            .map(u32::to_le_bytes)
            .concat(),
    ));
    data.extend(note("Xen", 1, &0xffff_ffff_8100_0000u64.to_le_bytes()));
    data.extend(note("Xen", 0x200_0000, &[]));
    let (notes, xen, warnings) = collect(&data).unwrap();
    assert_eq!(notes.len(), 10);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(notes[0].value, Some(NoteValue::Text("deadbeef".into())));
    assert_eq!(notes[0].type_name, Some("NT_GNU_BUILD_ID"));
    assert_eq!(notes[1].type_name, Some("LINUX_ELFNOTE_LTO_INFO"));
    assert_eq!(notes[1].value, Some(NoteValue::Number(0)));
    assert_eq!(notes[2].value, Some(NoteValue::Text(String::new())));
    assert_eq!(xen.phys32_entry, Some(0x1000480));
    assert_eq!(xen.guest_os.as_deref(), Some("linux"));
    assert_eq!(xen.supported_features, Some(0x801));
    assert_eq!(xen.l1_mfn_valid, Some(vec![1, 1]));
    assert_eq!(
        xen.phys32_reloc,
        Some(Phys32Reloc {
            align: Some(0x20_0000),
            min: Some(0x100_0000),
            max: Some(0xffff_ffff)
        })
    );
    assert_eq!(xen.entry, Some(0xffff_ffff_8100_0000));
    assert_eq!(notes[9].type_name, Some("XEN_ELFNOTE_DUMPCORE_NONE"));
    assert_eq!(notes[9].value, None);
    let json = serde_json::to_value(&xen).unwrap();
    assert_eq!(json["phys32_entry"], 0x1000480);
    assert!(json.get("info").is_none());
}

#[test]
fn bad_numeric_xen_notes() {
    let data = note("Xen", 18, &[1, 2, 3]);
    assert!(matches!(
        collect(&data),
        Err(FormatError::Field {
            field: "n_descsz",
            offset: 4,
            value: 3,
            ..
        })
    ));
    let data = note("Xen", 18, &0x1_0000_0000u64.to_le_bytes());
    assert!(matches!(
        collect(&data),
        Err(FormatError::Field {
            field: "XEN_ELFNOTE_PHYS32_ENTRY",
            offset: 16,
            ..
        })
    ));
    let data = [
        note("Xen", 18, &1u32.to_le_bytes()),
        note("Xen", 18, &2u32.to_le_bytes()),
    ]
    .concat();
    assert!(matches!(collect(&data), Err(FormatError::Invalid(_))));
    let data = [note("Xen", 6, b"a\0"), note("Xen", 6, b"b\0")].concat();
    let (_, xen, warnings) = collect(&data).unwrap();
    assert_eq!(xen.guest_os.as_deref(), Some("a"));
    assert_eq!(warnings.len(), 1);
}

#[test]
fn note_bounds() {
    let mut data = note("GNU", 3, &[0; 20]);
    // descsz past the region.
    data[4] = 0xff;
    assert!(matches!(
        collect(&data),
        Err(FormatError::Field {
            field: "n_descsz",
            ..
        })
    ));
    // namesz overflowing.
    let mut data = note("GNU", 3, &[0; 20]);
    data[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        collect(&data),
        Err(FormatError::Field {
            field: "n_namesz",
            ..
        })
    ));
    // A cut-off header; zero padding is fine.
    let mut data = note("GNU", 3, &[0; 4]);
    data.extend([0; 8]);
    assert_eq!(collect(&data).unwrap().0.len(), 1);
    data.extend([1]);
    assert!(matches!(
        collect(&data),
        Err(FormatError::Truncated {
            what: "note header",
            ..
        })
    ));
    // Too many notes.
    let data = note("X", 1, &[]).repeat(MAX_NOTES + 1);
    assert!(matches!(
        collect(&data),
        Err(FormatError::Field {
            field: "note count",
            ..
        })
    ));
}
