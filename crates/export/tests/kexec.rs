//! `kexec_image`: the segments `kexec_load` gets and the purgatory's checksum table,
//! checked on the host against the host's `sha256sum`, and the purgatory run from the
//! state Linux's relocate_kernel leaves (64-bit mode, identity-mapped memory, a GDT it
//! does not know) under QEMU, with intact and with corrupted segments. (kexec itself is
//! proven inside TCG guests by crates/cli/tests/kexec.rs.)

mod common;

use bytes::Bytes;
use common::MIB;
use domboot_builder::{
    BootPlan, BootProtocol, BuildOptions, CpuMode, DomainImage, PatchPoints, ProtocolChoice,
    Reservation, Segment,
};
use domboot_export::{
    BAD_SUM_EXIT, ExportError, KEXEC_BAD_SUM, KEXEC_SEGMENT_MAX, KexecImage, Machine,
    MachineMapEntry, kexec_image,
};
use domboot_testkit as kit;

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

/// The table entry the purgatory holds for `data` at `addr`: address, 64-byte blocks, and
/// the SHA-256 (from the host's sha256sum) of the data zero-padded to whole blocks, as the
/// eight state words in little-endian order.
fn oracle_entry(addr: u64, data: &[u8]) -> Vec<u8> {
    let blocks = data.len().div_ceil(64);
    let mut padded = data.to_vec();
    padded.resize(blocks * 64, 0);
    let hex = kit::sha256_hex(&padded);
    let mut entry = Vec::new();
    entry.extend_from_slice(&addr.to_le_bytes());
    entry.extend_from_slice(&(blocks as u64).to_le_bytes());
    for i in 0..8 {
        let word = u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).unwrap();
        entry.extend_from_slice(&word.to_le_bytes());
    }
    entry
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
            let entry = oracle_entry(s.addr, &s.data);
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

/// A plan that does what relocate_kernel does before it jumps to the purgatory: the kexec
/// segments in place (with `corrupt`, one byte of that segment flipped: its first, or with
/// `true` its last), identity-mapped page
/// tables (1 GiB), a GDT of its own, 64-bit mode, then a jump to the kexec entry. Its
/// export stub plays the part of the old kernel.
fn relocate_kernel_handoff(image: &KexecImage, corrupt: Option<(&str, bool)>) -> BootPlan {
    let e820 = common::e820_for(512 * MIB);
    let mut entry = common::entry(CpuMode::Long64, image.entry, 0x8_0000);
    entry.rsi = 0;
    let mut segments = vec![
        common::segment("gdt", common::GDT_ADDR, common::gdt(true), 32),
        common::segment(
            "boot_params",
            common::BOOT_PARAMS,
            common::boot_params(&e820),
            4096,
        ),
        common::segment(
            "page_tables",
            common::PAGE_TABLES,
            common::page_tables(common::PAGE_TABLES),
            3 * 4096,
        ),
    ];
    for k in &image.segments {
        let mut data = k.data.to_vec();
        match corrupt {
            Some((name, last)) if name == k.name => {
                let at = if last { data.len() - 1 } else { 0 };
                data[at] ^= 0x40;
            }
            _ => {}
        }
        segments.push(common::segment(
            &format!("kexec {}", k.name),
            k.addr,
            data,
            k.mem_size,
        ));
    }
    BootPlan {
        protocol: BootProtocol::Linux64,
        memory_size: 512 * MIB,
        e820,
        segments,
        reservations: vec![Reservation {
            name: "the next kernel's init_size".into(),
            address: common::GUEST_ADDR,
            size: 0x10_0000,
        }],
        entry,
        patch_points: PatchPoints {
            boot_params: Some(common::BOOT_PARAMS),
            start_info: None,
            pvh_memmap: None,
        },
    }
}

#[test]
fn the_purgatory_checks_the_segments_and_enters_the_kernel_or_halts_on_a_mismatch() {
    if !common::qemu_available() {
        eprintln!("qemu-system-x86_64 not installed: skipping");
        return;
    }
    // The next "kernel": the freestanding linux64 guest, whose GDT, boot_params and page
    // tables live below 1 MiB (staged by the purgatory, and checksummed there too).
    let next = common::linux_plan(true, 512 * MIB);
    let image = kexec_image(&next, &machine()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.elf");
    common::export(&relocate_kernel_handoff(&image, None), &good);
    let run = common::qemu(&good, "pc", 512, &[]);
    assert_eq!(run.status, Some(common::QEMU_OK), "{}", run.serial);
    assert!(run.serial.contains("GUEST64"), "{}", run.serial);
    assert!(!run.serial.contains("checksum"), "{}", run.serial);
    // The kernel, and a copy the purgatory stages below 1 MiB (the last bytes of its own
    // segment are the next kernel's page tables; the purgatory's code and data are not
    // checksummed, as in kexec-tools).
    for (victim, last) in [("kernel", false), ("purgatory", true)] {
        let bad = dir.path().join(format!("bad-{victim}.elf"));
        common::export(&relocate_kernel_handoff(&image, Some((victim, last))), &bad);
        let run = common::qemu(&bad, "pc", 512, &[]);
        assert_eq!(
            run.status,
            Some(i32::from(BAD_SUM_EXIT) << 1 | 1),
            "{}",
            run.serial
        );
        assert!(
            run.serial.contains(KEXEC_BAD_SUM.trim_end()),
            "{}",
            run.serial
        );
        assert!(!run.serial.contains("GUEST64"), "{}", run.serial);
    }
}
