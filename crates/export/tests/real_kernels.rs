//! Real Linux kernels (shared/kernels, tinyconfig 6.1) built into plans by domboot-builder,
//! exported and booted by QEMU under TCG with a different RAM size than the plan's.
//! Skipped when the kernels are not next to the clone.

mod common;

use common::*;
use domboot_builder::{BuildOptions, DomainImage, ProtocolChoice};
use std::path::PathBuf;

fn kernels() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kernels");
    dir.is_dir().then_some(dir)
}

/// Builds `kernel` for 512 MiB with `protocol`, boots the export with `-m 256`, and checks
/// that Linux came up with the loader's memory map (the kernel prints it as BIOS-e820).
fn boot(kernel: &str, protocol: ProtocolChoice) {
    if !qemu_available() {
        eprintln!("qemu-system-x86_64 not installed: skipping");
        return;
    }
    let Some(dir) = kernels() else {
        eprintln!("shared/kernels not found: skipping");
        return;
    };
    let image = DomainImage::new(
        &dir.join(kernel),
        &[],
        Some("console=ttyS0 earlyprintk=serial panic=-1"),
        BuildOptions {
            memory: 512 * MIB,
            protocol,
            ..BuildOptions::default()
        },
    )
    .unwrap();
    let plan = image.build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("kernel.elf");
    let elf = export(&plan, &path);
    eprintln!("{kernel}: {:?}", elf.stub());
    for s in &plan.segments {
        eprintln!("  segment {} at {:#x}+{:#x}", s.name, s.addr, s.mem_size);
    }
    for r in &plan.reservations {
        eprintln!("  reservation {} at {:#x}+{:#x}", r.name, r.address, r.size);
    }
    let run = qemu(&path, "pc", 256, &[]);
    assert!(!run.timed_out, "QEMU hung:\n{}", run.serial);
    assert!(run.serial.contains("Linux version"), "{}", run.serial);
    // The loader's map (256 MiB less SeaBIOS' top 128 KiB), not the plan's 512 MiB.
    assert!(
        run.serial
            .contains("[mem 0x0000000000100000-0x000000000ffdffff] usable"),
        "{}",
        run.serial
    );
    // No root file system: the kernel panics and, with panic=-1 and -no-reboot, QEMU ends.
    assert!(run.serial.contains("Kernel panic"), "{}", run.serial);
}

#[test]
fn linux64_bzimage_boots_from_the_export() {
    boot("bzImage-x64-pvh-gzip", ProtocolChoice::Linux64);
}

#[test]
fn pvh_vmlinux_boots_from_the_export() {
    boot("vmlinux-x64-pvh-gzip", ProtocolChoice::Pvh);
}

#[test]
fn linux32_non_relocatable_bzimage_boots_from_the_export() {
    boot("bzImage-i386-norelo-xz", ProtocolChoice::Linux32);
}
