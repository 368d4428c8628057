//! The kernel accepts what we build: real kernels boot under QEMU (TCG) with our
//! initramfs, run its /init (busybox, through an applet link) and print a marker, the
//! SHA-256 of a payload (so every byte came through the kernel's decompressor and cpio
//! unpacker intact) and whether applet links work, then `reboot -f` (with `-no-reboot`,
//! QEMU exits).
//!
//! `qemu-system-x86_64 -accel tcg -M pc -m 256 -no-reboot -nographic -nodefaults
//! -serial stdio -kernel KERNEL -initrd OUT -append 'console=ttyS0 panic=-1'`

mod common;

use common::payload;
use domboot_initramfs::{Compression, Initramfs};
use std::path::Path;
use std::time::Duration;

fn qemu_available() -> bool {
    std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

macro_rules! require_qemu {
    () => {
        if !qemu_available() {
            eprintln!("qemu-system-x86_64 not installed: skipping");
            return;
        }
    };
}

/// Builds the image, boots `kernel` with it, and checks what the guest said.
fn boot(kernel: &Path, compression: Compression, payload_len: usize, timeout: Duration) {
    let marker = domboot_testkit::marker();
    let data = payload(payload_len, payload_len as u64);
    let init = format!(
        "#!/bin/sh\n\
         mount -t proc proc /proc\n\
         echo \"MARKER $(echo {marker})\"\n\
         echo \"SUM $(sha256sum /payload | cut -d' ' -f1)\"\n\
         echo \"APPLET $(readlink /usr/bin/awk) $(echo x | awk '{{print \"awk-ok\"}}')\"\n\
         reboot -f\n"
    );
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp
        .path()
        .join(format!("initramfs.cpio{}", compression.extension()));
    let mut out = std::fs::File::create(&image).unwrap();
    Initramfs::new()
        .reproducible(true)
        .busybox(domboot_testkit::busybox())
        .unwrap()
        .file("/init", 0o755, init)
        .file("/payload", 0o644, data.clone())
        .dir("/proc", 0o755)
        .essential_dev()
        .write_to(&mut out, compression)
        .unwrap();
    drop(out);

    let image_arg = image.to_str().unwrap();
    let report = domboot_testkit::qemu_boot(
        kernel,
        "256",
        &[
            "-initrd",
            image_arg,
            "-append",
            "console=ttyS0 panic=-1 rdinit=/init",
        ],
        timeout,
    );
    let console = &report.console;
    assert_eq!(
        report.marker.as_deref(),
        Some(marker.as_str()),
        "{compression}: no marker; console:\n{console}"
    );
    assert_eq!(
        report.payload_sum.as_deref(),
        Some(domboot_testkit::sha256_hex(&data).as_str()),
        "{compression}: payload damaged; console:\n{console}"
    );
    assert!(
        console.contains("APPLET /bin/busybox awk-ok"),
        "{compression}: applet links; console:\n{console}"
    );
}

#[test]
fn tiny_kernel_boots_our_gzip_initramfs() {
    require_qemu!();
    // This kernel unpacks gzip only (CONFIG_RD_GZIP). 3 MiB of payload spans several
    // parallel-gzip blocks.
    let kernel = domboot_testkit::shared_kernel("bzImage-x64-pvh-gzip");
    boot(&kernel, Compression::Gzip, 3 << 20, Duration::from_secs(90));
}

#[test]
fn tiny_kernel_boots_an_uncompressed_initramfs() {
    require_qemu!();
    let kernel = domboot_testkit::shared_kernel("bzImage-x64-pvh-gzip");
    boot(&kernel, Compression::None, 1 << 20, Duration::from_secs(90));
}

#[test]
fn debian_kernel_boots_our_zstd_initramfs() {
    require_qemu!();
    let kernel = domboot_testkit::debian_kernel("cloud");
    boot(
        &kernel.vmlinuz,
        Compression::Zstd,
        3 << 20,
        Duration::from_secs(120),
    );
}

#[test]
fn debian_kernel_boots_our_lz4_legacy_initramfs() {
    require_qemu!();
    // More than 8 MiB of archive: several lz4 legacy blocks.
    let kernel = domboot_testkit::debian_kernel("cloud");
    boot(
        &kernel.vmlinuz,
        Compression::Lz4,
        9 << 20,
        Duration::from_secs(120),
    );
}
