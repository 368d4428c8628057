//! ELF kernels nobody here built: rust-vmm linux-loader's note regression images (in
//! `fixtures/linux-loader`, with their origin) and real kernels with one header field
//! changed. The note walk must agree with linux-loader's and Linux's (`elfnote.h`): notes
//! are 4-byte aligned whatever `p_align` says.

use domboot_formats::FormatError;
use domboot_formats::elf::{ElfImage, NoteValue};
use domboot_testkit as support;
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/linux-loader")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The file offset of `field` (0 = p_type, 48 = p_align) of every PT_NOTE of an ELF64.
fn pt_note_fields(elf: &[u8], field: usize) -> Vec<usize> {
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&at| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 4)
        .map(|at| at + field)
        .collect()
}

#[test]
fn linux_loader_pvh_note_images_read_as_linux_loader_reads_them() {
    for name in ["test_elfnote.bin", "test_elfnote_8byte_align.bin"] {
        let data = fixture(name);
        let image = ElfImage::parse(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(image.pvh_entry, Some(0x1e1fe1f), "{name}");
        let owners: Vec<&str> = image.notes.iter().map(|n| n.owner.as_str()).collect();
        assert_eq!(owners, ["dummy", "Xen", "GNU"], "{name}");
        assert_eq!(
            image.build_id(),
            Some("28cc3d3d89e5bfc607a8cee329cc70d0bf34692b"),
            "{name}"
        );
        assert_eq!(
            image.notes[0].desc_hex.as_deref(),
            Some("fecafeca00000000"),
            "{name}"
        );
    }
    // The 8-byte image differs from the 4-byte one in p_align only.
    let (four, eight) = (
        fixture("test_elfnote.bin"),
        fixture("test_elfnote_8byte_align.bin"),
    );
    let align_at = pt_note_fields(&eight, 48);
    assert_eq!(align_at.len(), 1);
    assert_eq!(eight[align_at[0]], 8);
    assert_eq!(four[align_at[0]], 4);

    let dummy = ElfImage::parse(&fixture("test_dummy_note.bin")).unwrap();
    assert_eq!(dummy.pvh_entry, None, "a type-18 note not owned by Xen");
    assert_eq!(dummy.notes.len(), 1);
}

#[test]
fn a_two_byte_pvh_entry_note_is_an_error_as_in_linux_loader() {
    let data = fixture("test_invalid_pvh_note.bin");
    match ElfImage::parse(&data) {
        Err(FormatError::Field {
            field,
            offset,
            value,
            limit,
        }) => {
            assert_eq!((field, offset, value), ("n_descsz", 0xb4, 2));
            assert!(limit.contains("XEN_ELFNOTE_PHYS32_ENTRY"), "{limit}");
        }
        other => panic!("expected an n_descsz error, got {other:?}"),
    }
}

/// p_align 0xd is not a note alignment at all: the walk ignores it (4 bytes, as always),
/// and the bytes there are no notes, which is the error reported.
#[test]
fn an_odd_p_align_is_ignored_and_the_bytes_judged_as_notes() {
    match ElfImage::parse(&fixture("test_bad_align.bin")) {
        Err(FormatError::Field {
            field,
            offset,
            limit,
            ..
        }) => {
            assert_eq!((field, offset), ("n_namesz", 0x126));
            assert!(limit.contains("PT_NOTE program header 1"), "{limit}");
        }
        other => panic!("expected an n_namesz error, got {other:?}"),
    }
}

#[test]
fn real_kernels_with_pt_note_p_align_8_read_the_same() {
    let debian = support::debian_kernel("cloud").vmlinuz;
    let chain = domboot_formats::open(&debian, &Default::default()).unwrap();
    let debian_elf = chain.kernel_elf().unwrap().data.to_vec();
    let tiny = std::fs::read(support::shared_kernel("vmlinux-x64-pvh-gzip")).unwrap();
    // Debian's kernels are Xen PV and PVH kernels (many Xen notes); the tiny one only PVH.
    for (name, original, min_xen) in [("debian cloud", debian_elf, 5), ("tiny pvh", tiny, 1)] {
        let want = ElfImage::parse(&original).unwrap();
        assert!(want.pvh_entry.is_some(), "{name}");
        let mut patched = original.clone();
        let fields = pt_note_fields(&patched, 48);
        assert!(!fields.is_empty(), "{name}: no PT_NOTE");
        for at in fields {
            patched[at..at + 8].copy_from_slice(&8u64.to_le_bytes());
        }
        let got = ElfImage::parse(&patched).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.notes, want.notes, "{name}");
        assert_eq!(got.xen, want.xen, "{name}");
        assert_eq!(got.pvh_entry, want.pvh_entry, "{name}");
        let xen = got.notes.iter().filter(|n| n.owner == "Xen").count();
        assert!(xen >= min_xen, "{name}: {xen} Xen notes");
        if min_xen > 1 {
            assert!(
                got.notes
                    .iter()
                    .any(|n| n.value == Some(NoteValue::Text("linux".into()))),
                "{name}: XEN_ELFNOTE_GUEST_OS"
            );
        }
    }
}

/// A PT_NOTE that really is 8-byte aligned (descriptors padded to 8, a 6-byte owner
/// name): the 4-byte walk fails on it, so the 8-byte one is used.
#[test]
fn a_truly_eight_byte_aligned_pt_note_still_parses() {
    let mut data = fixture("test_elfnote.bin");
    let note_off = 0xb0;
    let note8 = |owner: &str, n_type: u32, desc: &[u8]| {
        let name = [owner.as_bytes(), b"\0"].concat();
        let mut v = Vec::new();
        v.extend((name.len() as u32).to_le_bytes());
        v.extend((desc.len() as u32).to_le_bytes());
        v.extend(n_type.to_le_bytes());
        v.extend(&name);
        v.resize(v.len().next_multiple_of(8), 0);
        v.extend(desc);
        v.resize(v.len().next_multiple_of(8), 0);
        v
    };
    let notes = [
        note8("dummy", 1, &[1, 2, 3, 4]),
        note8("Xen", 18, &0x1e1fe1fu32.to_le_bytes()),
    ]
    .concat();
    assert!(notes.len() <= 0x58);
    data[note_off..note_off + 0x58].fill(0);
    data[note_off..note_off + notes.len()].copy_from_slice(&notes);
    let fields = pt_note_fields(&data, 48);
    data[fields[0]] = 8;
    // Drop the section table so only the segment describes the notes.
    data[0x3c..0x3e].copy_from_slice(&0u16.to_le_bytes());
    data[0x28..0x30].copy_from_slice(&0u64.to_le_bytes());
    let image = ElfImage::parse(&data).unwrap();
    assert_eq!(image.pvh_entry, Some(0x1e1fe1f));
    assert_eq!(image.notes[0].desc_hex.as_deref(), Some("01020304"));
    assert_eq!(image.notes[1].desc_offset, note_off as u64 + 48);
}

/// An ELF64 with one PT_NOTE (of `p_align`) holding `notes`, and no sections.
fn elf_with_notes(notes: &[u8], p_align: u64) -> Vec<u8> {
    let mut f = vec![0u8; 64 + 56];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4..8].copy_from_slice(&[2, 1, 1, 0]);
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    f[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
    f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    f[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
    let ph = 64;
    f[ph..ph + 4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
    f[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
    f[ph + 32..ph + 40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
    f[ph + 40..ph + 48].copy_from_slice(&(notes.len() as u64).to_le_bytes());
    f[ph + 48..ph + 56].copy_from_slice(&p_align.to_le_bytes());
    f.extend_from_slice(notes);
    f
}

/// A note laid out as Linux's `elfnote.h` does: name and descriptor padded to 4 bytes.
fn note4(owner: &[u8], n_type: u32, desc: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend((owner.len() as u32 + 1).to_le_bytes());
    v.extend((desc.len() as u32).to_le_bytes());
    v.extend(n_type.to_le_bytes());
    v.extend(owner);
    v.push(0);
    v.resize(v.len().next_multiple_of(4), 0);
    v.extend(desc);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

proptest::proptest! {
    /// Notes written 4-byte aligned read the same whatever p_align the PT_NOTE claims.
    #[test]
    fn four_byte_notes_read_the_same_under_p_align_4_and_8(
        notes in proptest::collection::vec(
            (
                proptest::collection::vec(b'a'..=b'z', 1..12),
                0u32..40,
                proptest::collection::vec(proptest::num::u8::ANY, 0..24),
            ),
            1..8,
        )
    ) {
        let bytes: Vec<u8> = notes.iter().flat_map(|(o, t, d)| note4(o, *t, d)).collect();
        let four = ElfImage::parse(&elf_with_notes(&bytes, 4)).unwrap();
        let eight = ElfImage::parse(&elf_with_notes(&bytes, 8)).unwrap();
        proptest::prop_assert_eq!(four.notes.len(), notes.len());
        proptest::prop_assert_eq!(&four.notes, &eight.notes);
        for (n, (o, _, d)) in four.notes.iter().zip(&notes) {
            proptest::prop_assert_eq!(n.owner.as_bytes(), &o[..]);
            proptest::prop_assert_eq!(n.desc_size, d.len() as u64);
        }
    }
}
