//! Real Linux kernels built into plans by domboot-builder for 512 MiB, exported, and booted
//! by QEMU under TCG with another RAM size: the kernel must come up on the loader's memory
//! map, or, when the builder's initrd (at the top of the plan's RAM) is out of reach, the
//! stub must say so.
//! Kernels: shared/kernels (tinyconfig 6.1) and the Debian cloud kernel that
//! scripts/setup.sh fetches; busybox-static for the initramfs.

mod common;

use common::MIB;
use domboot_builder::{BuildOptions, DomainImage, ProtocolChoice};
use domboot_testkit as kit;
use std::path::Path;
use std::time::Duration;

const CMDLINE: &str = "console=ttyS0 panic=-1 domboot.export=1";

/// Builds `kernel` (+ `initrd`) for 512 MiB with `protocol` and writes the export.
fn export(kernel: &Path, initrd: Option<&Path>, protocol: ProtocolChoice, out: &Path) {
    let initrds: Vec<_> = initrd.map(Path::to_path_buf).into_iter().collect();
    let image = DomainImage::new(
        kernel,
        &initrds,
        Some(CMDLINE),
        BuildOptions {
            memory: 512 * MIB,
            protocol,
            ..BuildOptions::default()
        },
    )
    .unwrap();
    let plan = image.build().unwrap();
    let elf = common::export(&plan, out);
    eprintln!("{}: {:?}", kernel.display(), elf.stub());
    for s in &plan.segments {
        eprintln!("  segment {} at {:#x}+{:#x}", s.name, s.addr, s.mem_size);
    }
}

/// Boots `kernel` with a busybox initramfs whose /init reports the marker, the command line,
/// a payload's checksum and MemTotal, then reboots (QEMU exits: -no-reboot).
/// Returns the image and the temporary folder holding it.
fn boot_with_initramfs(
    kernel: &Path,
    protocol: ProtocolChoice,
    timeout: Duration,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let payload: Vec<u8> = (0..(3u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let initrd = kit::report_initramfs(tmp.path(), &kit::busybox(), &marker, &payload);
    let image = tmp.path().join("export.elf");
    export(kernel, Some(&initrd), protocol, &image);
    let report = kit::qemu_boot(&image, "1024", &[], timeout);
    let console = &report.console;
    assert_eq!(report.marker.as_deref(), Some(marker.as_str()), "{console}");
    assert!(
        report
            .cmdline
            .as_deref()
            .is_some_and(|c| c.contains("domboot.export=1")),
        "{console}"
    );
    assert_eq!(
        report.payload_sum.as_deref(),
        Some(kit::sha256_hex(&payload).as_str()),
        "{console}"
    );
    // The loader's 1024 MiB, not the plan's 512.
    let mem = report.mem_total_kib.unwrap();
    assert!(
        (600 * 1024..1024 * 1024).contains(&mem),
        "MemTotal {mem} kB\n{console}"
    );
    (tmp, image)
}

#[test]
fn tiny_linux64_bzimage_with_initramfs() {
    let (_tmp, image) = boot_with_initramfs(
        &kit::shared_kernel("bzImage-x64-pvh-gzip"),
        ProtocolChoice::Linux64,
        Duration::from_secs(60),
    );
    // The builder put the initrd at the top of the plan's 512 MiB: with 256 MiB the stub
    // names it and the RAM to give, and QEMU ends by itself.
    let report = kit::qemu_boot(&image, "256", &[], Duration::from_secs(60));
    let console = &report.console;
    assert!(
        console.contains("domboot: this image needs RAM at 0x"),
        "{console}"
    );
    assert!(
        console.contains(
            "(initrd) but the loader's memory map has none there; give the VM at least 512 MiB"
        ),
        "{console}"
    );
    assert!(report.marker.is_none(), "{console}");
}

#[test]
fn tiny_pvh_vmlinux_with_initramfs() {
    let _ = boot_with_initramfs(
        &kit::shared_kernel("vmlinux-x64-pvh-gzip"),
        ProtocolChoice::Pvh,
        Duration::from_secs(60),
    );
}

#[test]
fn debian_cloud_kernel_linux64_with_initramfs() {
    let kernel = kit::debian_kernel("cloud");
    let _ = boot_with_initramfs(
        &kernel.vmlinuz,
        ProtocolChoice::Linux64,
        Duration::from_secs(180),
    );
}

/// The i386 kernel has no 32-bit userland here: it boots to the missing-root panic, which
/// (panic=-1, -no-reboot) ends QEMU. The code32_start hook path of the builder runs first.
#[test]
fn tiny_linux32_non_relocatable_bzimage_boots_to_its_root_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("export.elf");
    export(
        &kit::shared_kernel("bzImage-i386-norelo-xz"),
        None,
        ProtocolChoice::Linux32,
        &image,
    );
    let report = kit::qemu_boot(&image, "256", &[], Duration::from_secs(60));
    let console = &report.console;
    assert!(console.contains("Linux version"), "{console}");
    // The loader's map (256 MiB less SeaBIOS' top 128 KiB), not the plan's 512 MiB.
    assert!(
        console.contains("[mem 0x0000000000100000-0x000000000ffdffff] usable"),
        "{console}"
    );
    assert!(console.contains("Kernel panic"), "{console}");
}
