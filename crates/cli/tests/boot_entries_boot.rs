//! End to end: `domboot build --disk IMG --bootloader --boot-entry TITLE` on a GPT disk
//! whose ext4 root holds Debian's cloud kernel, an initramfs and a grub.cfg with several
//! entries; QEMU (TCG) boots the image and the initramfs's /init reports the random
//! marker it was built with and /proc/cmdline, which must be the chosen entry's.

#[path = "../../bootdisk/tests/images/mod.rs"]
mod images;

use assert_cmd::Command;
use domboot_testkit as kit;
use images::Tree;
use std::time::Duration;

#[test]
fn debian_kernel_boots_from_a_grub_entry_on_a_gpt_ext4_disk() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let initrd = kit::report_initramfs(dir.path(), &kit::busybox(), &marker, b"payload");
    let chosen = "console=ttyS0 panic=-1 quiet domboot.entry=rescue";
    let grub = format!(
        "set default=0\nset timeout=5\nset ver=6.1.0-57-cloud-amd64\n\
         menuentry 'Debian GNU/Linux' {{\n\tlinux /boot/vmlinuz-$ver root=/dev/vda1 ro console=ttyS0 panic=-1\n\tinitrd /boot/initrd.img-$ver\n}}\n\
         menuentry 'Debian rescue' {{\n\tlinux /boot/vmlinuz-$ver {chosen}\n\tinitrd /boot/initrd.img-$ver\n}}\n"
    );
    let tree = Tree::new()
        .text("/boot/grub/grub.cfg", &grub)
        .copy("/boot/vmlinuz-6.1.0-57-cloud-amd64", &images::kernel())
        .copy("/boot/initrd.img-6.1.0-57-cloud-amd64", &initrd);
    let root = images::ext4(dir.path(), "root", &tree, 32);
    let disk = images::gpt_disk(dir.path(), "boot", &[(Some(&root), "8300", "root")]);
    let image = dir.path().join("image.elf");
    let out = Command::cargo_bin("domboot")
        .unwrap()
        .arg("build")
        .arg("--disk")
        .arg(&disk)
        .args([
            "--bootloader",
            "--boot-entry",
            "Debian rescue",
            "--memory",
            "512M",
            "-o",
        ])
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = kit::qemu_boot(&image, "512M", &[], Duration::from_secs(180));
    let tail: Vec<&str> = report.console.lines().rev().take(25).collect();
    assert_eq!(report.marker.as_deref(), Some(marker.as_str()), "{tail:#?}");
    assert_eq!(report.cmdline.as_deref(), Some(chosen), "{tail:#?}");
}
