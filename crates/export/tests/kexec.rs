//! `kexec_image`: the segments `kexec_load` gets and the purgatory's checksum table,
//! checked on the host against an independent FNV-1a. (Booting through kexec is proven
//! inside TCG guests by crates/cli/tests/kexec.rs.)

use bytes::Bytes;
use domboot_builder::{BootPlan, BuildOptions, DomainImage, ProtocolChoice, Segment};
use domboot_export::{ExportError, KEXEC_SEGMENT_MAX, Machine, MachineMapEntry, kexec_image};
use domboot_testkit as kit;

const MIB: u64 = 1 << 20;

fn machine() -> Machine {
    let e = |addr, size, kind| MachineMapEntry { addr, size, kind };
    Machine {
        memmap: vec![
            e(0, 0x9_fc00, 1),
            e(0x9_fc00, 0x400, 2),
            e(0xf_0000, 0x1_0000, 2),
            e(MIB, 0x1ffe_0000 - MIB, 1),
            e(0x1ffe_0000, 0x2_0000, 2),
        ],
        rsdp: 0xf_59d0,
    }
}

fn plan(kernel: &str, protocol: ProtocolChoice) -> BootPlan {
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd");
    // Not a multiple of 8 bytes: the last checksum word is zero-padded.
    std::fs::write(&initrd, vec![0x5a; 12_345]).unwrap();
    DomainImage::new(
        &kit::shared_kernel(kernel),
        &[initrd],
        Some("console=ttyS0"),
        BuildOptions {
            memory: 511 * MIB,
            protocol,
            ..BuildOptions::default()
        },
    )
    .unwrap()
    .build()
    .unwrap()
}

/// FNV-1a over little-endian 64-bit words, the last one zero-padded.
fn oracle(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        h ^= u64::from_le_bytes(w);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn segments_are_page_aligned_and_every_one_is_checksummed_by_the_purgatory() {
    for (kernel, protocol) in [
        ("bzImage-x64-pvh-gzip", ProtocolChoice::Auto),
        ("vmlinux-x64-pvh-gzip", ProtocolChoice::Auto),
        ("bzImage-i386-norelo-xz", ProtocolChoice::Auto),
    ] {
        let plan = plan(kernel, protocol);
        let image = kexec_image(&plan, &machine()).unwrap();
        assert!(image.segments.len() <= KEXEC_SEGMENT_MAX);
        for w in image.segments.windows(2) {
            assert!(w[0].addr + w[0].mem_size <= w[1].addr, "{kernel}: overlap");
        }
        let purgatory = image
            .segments
            .iter()
            .find(|s| s.name == "purgatory")
            .expect("a purgatory segment");
        assert!(
            (purgatory.addr..purgatory.addr + 4096).contains(&image.entry),
            "{kernel}: the entry is in the purgatory's code page"
        );
        for s in &image.segments {
            assert_eq!(s.addr % 4096, 0, "{kernel}: {} address", s.name);
            assert_eq!(s.mem_size % 4096, 0, "{kernel}: {} size", s.name);
            assert!(s.data.len() as u64 <= s.mem_size);
            if s.name == "purgatory" {
                continue;
            }
            // The table entry: address, 64-bit words, hash.
            let mut entry = Vec::new();
            entry.extend_from_slice(&s.addr.to_le_bytes());
            entry.extend_from_slice(&(s.data.len().div_ceil(8) as u64).to_le_bytes());
            entry.extend_from_slice(&oracle(&s.data).to_le_bytes());
            assert!(
                contains(&purgatory.data, &entry),
                "{kernel}: no checksum entry for segment {}",
                s.name
            );
        }
        // Every plan segment's bytes are where the plan puts them.
        for p in plan.segments.iter().filter(|p| p.addr >= MIB) {
            let k = image
                .segments
                .iter()
                .find(|k| k.addr <= p.addr && p.addr + p.mem_size <= k.addr + k.mem_size)
                .unwrap_or_else(|| panic!("{kernel}: {} not in any kexec segment", p.name));
            let off = (p.addr - k.addr) as usize;
            assert_eq!(&k.data[off..off + p.data.len()], &p.data[..], "{}", p.name);
        }
        // The 64-bit entry starts with `cli` and leaves through a far return (REX.W retf)
        // to 32-bit code.
        let off = (image.entry - purgatory.addr) as usize;
        let code = &purgatory.data[off..4096];
        assert_eq!(code[0], 0xFA, "{kernel}: cli first");
        assert!(contains(code, &[0x48, 0xCB]), "{kernel}: no retfq");
    }
}

#[test]
fn more_segments_than_kexec_load_takes_is_an_error_naming_the_limit() {
    let mut plan = plan("bzImage-x64-pvh-gzip", ProtocolChoice::Auto);
    for i in 0..KEXEC_SEGMENT_MAX as u64 {
        plan.segments.push(Segment {
            name: format!("extra {i}"),
            addr: 0x400_0000 + i * 0x2000,
            mem_size: 16,
            data: Bytes::from_static(b"0123456789abcdef"),
            backing: None,
        });
    }
    match kexec_image(&plan, &machine()) {
        Err(e @ ExportError::TooManyKexecSegments { .. }) => {
            assert!(e.to_string().contains("16"), "{e}");
        }
        other => panic!("expected TooManyKexecSegments, got {other:?}"),
    }
}

#[test]
fn segments_sharing_a_page_are_merged() {
    let mut plan = plan("bzImage-x64-pvh-gzip", ProtocolChoice::Auto);
    for i in 0..40u64 {
        plan.segments.push(Segment {
            name: format!("small {i}"),
            addr: 0x400_0000 + i * 64,
            mem_size: 16,
            data: Bytes::from(vec![i as u8 + 1; 16]),
            backing: None,
        });
    }
    let image = kexec_image(&plan, &machine()).unwrap();
    let merged = image
        .segments
        .iter()
        .find(|s| s.addr == 0x400_0000)
        .unwrap();
    assert_eq!(merged.mem_size, 4096);
    assert_eq!(merged.data[64 * 39], 40);
    assert_eq!(merged.data[20], 0, "gaps between merged segments are zero");
}
