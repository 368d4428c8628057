//! Images for 32-bit kernels as ELF32 (EM_386): `qemu-system-i386` refuses an EM_X86_64
//! ELF ("Error while loading elf kernel"), and boots these, as `qemu-system-x86_64` does.

mod common;

use common::*;
use domboot_builder::BootPlan;
use domboot_export::{ElfClass, ExportError, PvhElf, pvh_elf_as};
use domboot_formats::elf::{self, ElfImage};
use std::path::Path;

fn write(plan: &BootPlan, path: &Path) -> (PvhElf, Vec<u8>) {
    let elf = pvh_elf_as(plan, ElfClass::Elf32).unwrap();
    let mut out = Vec::new();
    elf.write_to(&mut out).unwrap();
    assert_eq!(out.len() as u64, elf.size());
    std::fs::write(path, &out).unwrap();
    (elf, out)
}

#[test]
fn elf32_image_parses_back_with_the_same_loads_and_a_4_byte_pvh_note() {
    let dir = tempfile::tempdir().unwrap();
    for plan in [
        linux_plan(false, 512 * MIB),
        pvh_plan(512 * MIB, "console=ttyS0"),
    ] {
        let (exported, file) = write(&plan, &dir.path().join("image.elf"));
        let img = ElfImage::parse(&file).unwrap();
        assert_eq!(img.class, elf::ElfClass::Elf32);
        assert_eq!(img.machine, elf::EM_386);
        assert_eq!(img.entry, exported.entry());
        assert_eq!(img.pvh_entry, Some(exported.entry()));
        assert!(img.warnings.is_empty(), "{:?}", img.warnings);
        assert_eq!(img.note("Xen", 18).unwrap().desc_size, 4);
        assert_eq!(img.segments.len(), exported.loads().len());
        for (s, l) in img.segments.iter().zip(exported.loads()) {
            assert_eq!((s.paddr, s.vaddr, s.memsz), (l.addr, l.addr, l.mem_size));
            assert_eq!(
                (s.offset, s.filesz, s.flags),
                (l.file_offset, l.file_size, l.flags)
            );
        }
        // The same plan as ELF64 has the same loads at the same offsets.
        let wide = domboot_export::pvh_elf(&plan).unwrap();
        let addrs = |e: &PvhElf| {
            e.loads()
                .iter()
                .map(|l| (l.addr, l.mem_size))
                .collect::<Vec<_>>()
        };
        assert_eq!(addrs(&wide), addrs(&exported));
    }
}

#[test]
fn elf32_refuses_a_64_bit_entry_and_anything_above_4gib() {
    let err = pvh_elf_as(&linux_plan(true, 512 * MIB), ElfClass::Elf32).unwrap_err();
    assert!(matches!(err, ExportError::EntryState(_)), "{err}");
    let mut plan = linux_plan(false, 6144 * MIB);
    plan.segments
        .push(segment("initrd", 5 << 30, b"high".to_vec(), 0x1000));
    let err = pvh_elf_as(&plan, ElfClass::Elf32).unwrap_err();
    assert!(
        matches!(err, ExportError::Above4GiB { .. }) && err.to_string().contains("initrd"),
        "{err}"
    );
}

#[test]
fn qemu_system_i386_and_x86_64_boot_the_elf32_image() {
    if !qemu_available() {
        eprintln!("qemu-system-x86_64 not installed: skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let linux32 = dir.path().join("linux32.elf");
    write(&linux_plan(false, 512 * MIB), &linux32);
    let pvh = dir.path().join("pvh.elf");
    write(&pvh_plan(512 * MIB, "console=ttyS0 hello-i386"), &pvh);
    for binary in ["qemu-system-i386", "qemu-system-x86_64"] {
        let run = qemu_bin(binary, &linux32, "pc", 256, &[]);
        assert!(!run.timed_out, "{binary} hung:\n{}", run.serial);
        assert_eq!(run.status, Some(QEMU_OK), "{binary}: {}", run.serial);
        assert!(
            run.serial.contains("GUEST32 esi=00007000 ebp=12345678"),
            "{binary}: {}",
            run.serial
        );
        let run = qemu_bin(binary, &pvh, "pc", 384, &[]);
        assert_eq!(run.status, Some(QEMU_OK), "{binary}: {}", run.serial);
        assert!(
            run.serial.contains("cmdline=console=ttyS0 hello-i386 END"),
            "{binary}: {}",
            run.serial
        );
    }
    // The ELF64 image of the same plan is what qemu-system-i386 refused.
    let wide = dir.path().join("linux32-elf64.elf");
    export(&linux_plan(false, 512 * MIB), &wide);
    let run = qemu_bin("qemu-system-i386", &wide, "pc", 256, &[]);
    assert_ne!(run.status, Some(QEMU_OK), "{}", run.serial);
    assert!(
        run.serial.contains("Error while loading elf kernel"),
        "{}",
        run.serial
    );
}
