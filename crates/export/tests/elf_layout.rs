//! The exported file parsed back with domboot-formats, the stub's placement rules, and
//! every error path.

mod common;

use common::*;
use domboot_builder::{BootPlan, CpuMode, E820Entry, E820Type, Reservation};
use domboot_export::{ExportError, pvh_elf};
use domboot_formats::elf::{ElfClass, ElfImage, PT_LOAD};
use proptest::prelude::*;

fn bytes_of(plan: &BootPlan) -> (domboot_export::PvhElf, Vec<u8>) {
    let elf = pvh_elf(plan).unwrap();
    let mut out = Vec::new();
    elf.write_to(&mut out).unwrap();
    assert_eq!(out.len() as u64, elf.size());
    (elf, out)
}

#[test]
fn elf_header_program_headers_and_note_parse_back() {
    let plan = linux_plan(true, 512 * MIB);
    let (elf, file) = bytes_of(&plan);
    let img = ElfImage::parse(&file).unwrap();
    assert_eq!(img.class, ElfClass::Elf64);
    assert_eq!(img.machine, 62);
    assert_eq!(img.e_type, 2);
    assert_eq!(img.entry, elf.entry());
    assert_eq!(img.pvh_entry, Some(elf.entry()));
    assert!(img.warnings.is_empty(), "{:?}", img.warnings);
    let note = img.note("Xen", 18).expect("XEN_ELFNOTE_PHYS32_ENTRY");
    assert_eq!(note.desc_size, 8);
    assert_eq!(
        &file[note.desc_offset as usize..][..8],
        &elf.entry().to_le_bytes()
    );

    // Every PT_LOAD at or above 1 MiB, paddr = vaddr, sorted.
    let loads: Vec<_> = img.segments.iter().collect();
    assert_eq!(loads.len(), elf.loads().len());
    assert_eq!(img.phnum as usize, loads.len() + 1);
    for w in loads.windows(2) {
        assert!(w[0].paddr < w[1].paddr);
    }
    for s in &loads {
        assert_eq!(s.paddr, s.vaddr);
        assert!(s.paddr >= MIB, "PT_LOAD at {:#x}", s.paddr);
        assert_eq!(s.offset % 4096, s.paddr % 4096);
        assert_eq!(s.align, 4096);
    }
    // The plan's segments above 1 MiB are PT_LOADs with their bytes; those below travel
    // staged in the stub's region.
    let kernel = plan.segments.iter().find(|s| s.name == "kernel").unwrap();
    let ki = loads.iter().position(|s| s.paddr == kernel.addr).unwrap();
    let k = loads[ki];
    assert_eq!(k.filesz, kernel.data.len() as u64);
    assert_eq!(k.memsz, kernel.mem_size);
    assert_eq!(img.segment_bytes(&file, ki).unwrap(), &kernel.data[..]);
    assert_eq!(
        elf.stub().staged,
        vec![
            "gdt".to_string(),
            "boot_params".into(),
            "page_tables".into()
        ]
    );
    for name in ["gdt", "boot_params", "page_tables"] {
        let seg = plan.segments.iter().find(|s| s.name == name).unwrap();
        let staged = elf
            .loads()
            .iter()
            .find(|l| l.name == format!("staged {name}"))
            .unwrap();
        assert!(staged.addr >= elf.stub().base);
        assert!(staged.addr + staged.mem_size <= elf.stub().base + elf.stub().size);
        let off = staged.file_offset as usize;
        assert_eq!(&file[off..off + seg.data.len()], &seg.data[..]);
    }
    // Nothing QEMU would mistake for a bzImage or multiboot header in the first 8 KiB.
    assert_ne!(&file[0x202..0x206], b"HdrS");
    let first_data = elf
        .loads()
        .iter()
        .map(|l| l.file_offset)
        .filter(|&o| o > 0)
        .min();
    assert!(first_data.unwrap() >= 0x2000);
}

#[test]
fn stub_code_and_data_are_separate_loads_with_the_entry_in_the_code() {
    let (elf, _) = bytes_of(&linux_plan(false, 256 * MIB));
    let code = elf.loads().iter().find(|l| l.name == "stub code").unwrap();
    let data = elf.loads().iter().find(|l| l.name == "stub data").unwrap();
    eprintln!(
        "stub code {} bytes, data {} bytes (memory {})",
        code.file_size, data.file_size, data.mem_size
    );
    assert!(code.file_size < 2048, "the stub grew past half its page");
    assert_eq!(code.flags, 5); // R X
    assert_eq!(data.flags, 6); // R W
    assert!(code.addr <= elf.entry() && elf.entry() < code.addr + code.file_size);
    assert_eq!(data.addr, code.addr + 4096);
    // Snapshot of 128 map entries and a 4 KiB stack are zero-filled by the loader.
    assert!(data.mem_size >= data.file_size + 128 * 24 + 4096);
}

#[test]
fn stub_goes_to_the_lowest_free_page_above_1mib_clear_of_segments_and_reservations() {
    let (elf, _) = bytes_of(&linux_plan(false, 256 * MIB));
    // Nothing of the plan is between 1 MiB and the kernel at 2 MiB.
    assert_eq!(elf.stub().base, MIB);

    let mut plan = linux_plan(false, 256 * MIB);
    plan.reservations.push(Reservation {
        name: "decompression".into(),
        address: MIB,
        size: 0x1_0000,
    });
    plan.reservations[0].size = 0x30_0000; // init_size: 2 MiB .. 5 MiB
    let (elf, _) = bytes_of(&plan);
    let stub = elf.stub();
    assert_eq!(stub.base, 0x11_0000);
    assert!(stub.base + stub.size <= 2 * MIB);

    // No gap below the kernel: the stub goes past the reservation.
    plan.reservations[1].size = MIB - 0x1000;
    let (elf, _) = bytes_of(&plan);
    assert_eq!(elf.stub().base, 5 * MIB);
    assert_eq!(elf.stub().base % 4096, 0);
}

#[test]
fn stub_stays_out_of_the_top_4mib_of_low_ram() {
    let mut plan = linux_plan(false, 16 * MIB);
    plan.reservations[0].size = 9 * MIB; // 2 .. 11 MiB
    plan.reservations.push(Reservation {
        name: "low".into(),
        address: MIB,
        size: MIB,
    });
    // Free: 11 MiB .. 16 MiB, of which the top 4 MiB are off limits.
    let (elf, _) = bytes_of(&plan);
    assert_eq!(elf.stub().base, 11 * MIB);
    assert!(elf.stub().base + elf.stub().size <= 12 * MIB);
    plan.reservations[0].size = 10 * MIB - 0x1000; // leaves one page below the margin
    let err = pvh_elf(&plan).unwrap_err();
    assert!(matches!(err, ExportError::NoRoomForStub { .. }), "{err}");
    assert!(err.to_string().contains("top 4 MiB"), "{err}");
}

#[test]
fn long_mode_stub_must_be_identity_mapped() {
    // Page tables that map only the first 2 MiB (one 2 MiB page), with 1..2 MiB busy.
    let mut plan = linux_plan(true, 512 * MIB);
    let pt = plan
        .segments
        .iter_mut()
        .find(|s| s.name == "page_tables")
        .unwrap();
    let mut t = pt.data.to_vec();
    for b in &mut t[0x2008..0x3000] {
        *b = 0;
    }
    pt.data = t.into();
    plan.reservations.push(Reservation {
        name: "busy".into(),
        address: MIB,
        size: MIB,
    });
    // The kernel at 2 MiB is unmapped too, but that is the plan's business; the stub
    // finds no identity-mapped room.
    let err = pvh_elf(&plan).unwrap_err();
    assert!(matches!(err, ExportError::NoRoomForStub { .. }), "{err}");
    assert!(err.to_string().contains("identity-mapped"), "{err}");
}

#[test]
fn long_mode_gdt_must_be_identity_mapped() {
    let mut plan = linux_plan(true, 512 * MIB);
    let pt = plan
        .segments
        .iter_mut()
        .find(|s| s.name == "page_tables")
        .unwrap();
    let mut t = pt.data.to_vec();
    t[0x2000..0x2008].copy_from_slice(&0u64.to_le_bytes()); // unmap 0..2 MiB
    pt.data = t.into();
    let err = pvh_elf(&plan).unwrap_err();
    assert!(matches!(err, ExportError::PageTables { .. }), "{err}");
    assert!(err.to_string().contains("GDT"), "{err}");
}

#[test]
fn streaming_a_large_segment_matches_size() {
    let mut plan = linux_plan(false, 512 * MIB);
    let big = bytes::Bytes::from(vec![0xA5u8; 32 << 20]);
    plan.segments.push(domboot_builder::Segment {
        name: "initrd".into(),
        addr: 100 * MIB + 0x123,
        mem_size: big.len() as u64,
        data: big,
        backing: None,
    });
    let elf = pvh_elf(&plan).unwrap();
    struct Count(u64, u64);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            self.1 = self.1.max(b.len() as u64);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0, 0);
    elf.write_to(&mut c).unwrap();
    assert_eq!(c.0, elf.size());
    let initrd = elf.loads().iter().find(|l| l.name == "initrd").unwrap();
    assert_eq!(initrd.file_offset % 4096, 0x123);
    assert_eq!(elf.size(), initrd.file_offset + (32 << 20));
}

fn err_of(plan: &BootPlan) -> String {
    pvh_elf(plan).unwrap_err().to_string()
}

#[test]
fn errors_name_the_piece_and_the_rule() {
    // Segment outside the plan's RAM.
    let mut plan = linux_plan(false, 256 * MIB);
    plan.segments
        .push(segment("initrd", 300 * MIB, vec![1], 4096));
    let e = err_of(&plan);
    assert!(e.contains("`initrd`") && e.contains("not RAM"), "{e}");

    // Overlapping segments.
    let mut plan = linux_plan(false, 256 * MIB);
    plan.segments
        .push(segment("initrd", GUEST_ADDR + 0x800, vec![1], 4096));
    let e = err_of(&plan);
    assert!(e.contains("overlap") && e.contains("`kernel`"), "{e}");

    // Data larger than the memory size.
    let mut plan = linux_plan(false, 256 * MIB);
    plan.segments[0].mem_size = 8;
    let e = err_of(&plan);
    assert!(e.contains("`gdt`") && e.contains("memory size"), "{e}");

    // Missing patch point.
    let mut plan = linux_plan(false, 256 * MIB);
    plan.patch_points.boot_params = None;
    let e = err_of(&plan);
    assert!(e.contains("boot_params") && e.contains("linux32"), "{e}");

    // Patch point outside every segment.
    let mut plan = linux_plan(false, 256 * MIB);
    plan.patch_points.boot_params = Some(0x50_0000);
    let e = err_of(&plan);
    assert!(e.contains("boot_params") && e.contains("not inside"), "{e}");

    // PVH without start_info.
    let mut plan = pvh_plan(256 * MIB, "x");
    plan.patch_points.start_info = None;
    assert!(err_of(&plan).contains("start_info"));

    // 64-bit entry without PAE.
    let mut plan = linux_plan(true, 256 * MIB);
    plan.entry.cr4 = 0;
    let e = err_of(&plan);
    assert!(e.contains("CR4.PAE"), "{e}");

    // CS beyond the GDT limit, and CS naming a data descriptor.
    let mut plan = linux_plan(false, 256 * MIB);
    plan.entry.cs.selector = 0x20;
    assert!(err_of(&plan).contains("beyond the GDT limit"));
    plan.entry.cs.selector = DS_SEL;
    assert!(err_of(&plan).contains("not a present code segment"));

    // A 32-bit entry with a 64-bit code segment.
    let mut plan = linux_plan(false, 256 * MIB);
    plan.entry.mode = CpuMode::Protected32;
    plan.segments[0] = segment("gdt", GDT_ADDR, gdt(true), 32);
    assert!(err_of(&plan).contains("not a 32-bit code segment"));

    // A 32-bit entry point above 4 GiB.
    let mut plan = linux_plan(false, 256 * MIB);
    plan.entry.rip = 1 << 33;
    assert!(err_of(&plan).contains("RIP"));

    // No RAM at all above 1 MiB.
    let mut plan = linux_plan(false, 256 * MIB);
    plan.e820 = vec![E820Entry {
        address: 0,
        size: 0x9_f000,
        kind: E820Type::Ram,
    }];
    plan.segments.retain(|s| s.addr < MIB);
    plan.reservations.clear();
    let e = err_of(&plan);
    assert!(e.contains("no room for the boot stub"), "{e}");

    // Address overflow.
    let mut plan = linux_plan(false, 256 * MIB);
    plan.reservations.push(Reservation {
        name: "wrap".into(),
        address: u64::MAX - 10,
        size: 100,
    });
    assert!(err_of(&plan).contains("past the end of the address space"));
}

fn arb_plan() -> impl Strategy<Value = BootPlan> {
    (
        any::<bool>(),
        1u64..2048,
        prop::collection::vec((0u64..(3 << 30), 0u64..0x40_0000, 0usize..64), 0..6),
        prop::collection::vec((0u64..(5 << 30), 0u64..(1 << 30)), 0..4),
        any::<u64>(),
        any::<u16>(),
        prop::collection::vec((any::<u64>(), any::<u64>(), 1u8..6), 0..6),
    )
        .prop_map(|(long, mem_mib, segs, res, rip, sel, e820)| {
            let mut plan = linux_plan(long, (mem_mib + 16) * MIB);
            for (i, (addr, size, len)) in segs.into_iter().enumerate() {
                plan.segments
                    .push(segment(&format!("s{i}"), addr, vec![0x5A; len], size));
            }
            for (i, (address, size)) in res.into_iter().enumerate() {
                plan.reservations.push(Reservation {
                    name: format!("r{i}"),
                    address,
                    size,
                });
            }
            if rip % 3 == 0 {
                plan.entry.rip = rip;
                plan.entry.cs.selector = sel;
            }
            for (address, size, kind) in e820 {
                let kind = match kind {
                    1 => E820Type::Ram,
                    2 => E820Type::Reserved,
                    3 => E820Type::Acpi,
                    4 => E820Type::Nvs,
                    _ => E820Type::Unusable,
                };
                plan.e820.push(E820Entry {
                    address,
                    size,
                    kind,
                });
            }
            plan
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// No plan makes the exporter panic; whatever it accepts streams to exactly `size()`
    /// bytes that parse back with the stub as the PVH entry.
    #[test]
    fn any_plan_exports_or_errors_cleanly(plan in arb_plan()) {
        if let Ok(elf) = pvh_elf(&plan) {
            let mut out = Vec::new();
            elf.write_to(&mut out).unwrap();
            prop_assert_eq!(out.len() as u64, elf.size());
            let img = ElfImage::parse(&out).unwrap();
            prop_assert_eq!(img.pvh_entry, Some(elf.entry()));
            prop_assert!(img.segments.iter().all(|s| s.paddr >= MIB));
            let stub = elf.stub();
            prop_assert!(stub.base >= MIB && stub.base + stub.size <= 3 << 30);
            for s in plan.segments.iter().filter(|s| s.mem_size > 0) {
                prop_assert!(s.addr + s.mem_size <= stub.base || stub.base + stub.size <= s.addr);
            }
            prop_assert!(img.segments.iter().filter(|s| s.index > 0).count() > 0);
            let _ = PT_LOAD;
        }
    }
}
