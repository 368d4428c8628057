//! The seeds' provisioning story (seed 000) end to end: an empty disk image; domboot
//! direct-boots an installer (Debian's cloud kernel and an initramfs this test makes, with
//! `ks.`-style parameters on the command line naming the disk, the boot entry's title and
//! a marker) that partitions the disk (GPT, sgdisk), makes ext4 (mke2fs), installs a
//! kernel, an initramfs and a grub.cfg, writes the marker into the new root, and powers
//! off; then `domboot run --disk disk.img --bootloader` boots the installed system from
//! the disk, which mounts its root= and reports it and the marker. Under TCG, and on the
//! KVM backend inside the nested bench (the same two commands, run there).

use domboot_testkit as kit;
use domboot_testkit::nested::{Bench, add_program};
use std::path::{Path, PathBuf};
use std::process::Command;

const DOMBOOT: &str = env!("CARGO_BIN_EXE_domboot");

/// The virtio drivers both initramfs images load, in dependency order (virtio_pci under
/// TCG, virtio_mmio on the KVM backend; the other fails to find a device and is skipped).
/// ext4 is built into Debian's cloud kernel.
const MODULES: &[&str] = &[
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci",
    "drivers/virtio/virtio_mmio",
    "drivers/block/virtio_blk",
];

/// Mounts, loads the drivers and waits for a block device (shared by both images).
const PRELUDE: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev
$B mount -t proc proc /proc
# Only emergencies on the console: a late kernel line (the TSC's refined calibration)
# must not land inside one of our report lines.
echo 1 > /proc/sys/kernel/printk
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in $($B cat /modules.list); do $B insmod /modules/$m.ko 2>/dev/null; done
wait_for() { i=0; while [ ! -b "$1" ] && [ $i -lt 100 ]; do $B sleep 0.1; i=$((i+1)); done; [ -b "$1" ]; }
arg() { for w in $($B cat /proc/cmdline); do case $w in "$1"=*) echo "${w#*=}" ;; esac; done; }
"#;

/// The installer: what the command line names (ks.disk, ks.title, ks.marker) onto the disk.
const INSTALLER: &str = r#"
set -e
DISK=/dev/$(arg ks.disk)
wait_for "$DISK" || { echo "INSTALL-FAILED no $DISK"; $B poweroff -f; }
/bin/sgdisk --zap-all --new=1:2048:0 --typecode=1:8300 --change-name=1:root "$DISK" > /dev/null
wait_for "${DISK}1" || { echo "INSTALL-FAILED no ${DISK}1"; $B poweroff -f; }
/bin/mke2fs -q -F -t ext4 -L root "${DISK}1"
$B mkdir -p /mnt
$B mount -t ext4 "${DISK}1" /mnt
$B mkdir -p /mnt/boot/grub /mnt/etc
$B cp /payload/vmlinuz /mnt/boot/vmlinuz-installed
$B cp /payload/initrd.img /mnt/boot/initrd.img-installed
arg ks.marker > /mnt/etc/installed-by-domboot
cat > /mnt/boot/grub/grub.cfg <<EOF
set default=0
menuentry '$(arg ks.title)' {
	linux /boot/vmlinuz-installed root=${DISK}1 console=ttyS0 panic=-1
	initrd /boot/initrd.img-installed
}
EOF
$B umount /mnt
$B sync
echo "INSTALLED $(arg ks.marker)"
$B poweroff -f
"#;

/// The installed system's initramfs: mounts root= read-only and reports.
const INSTALLED: &str = r#"
ROOT=$(arg root)
wait_for "$ROOT" && $B mkdir -p /root && $B mount -o ro -t ext4 "$ROOT" /root
echo "ROOT $ROOT"
echo "MARK $($B cat /root/etc/installed-by-domboot 2>/dev/null)"
echo "CMDLINE $($B cat /proc/cmdline)"
$B poweroff -f
"#;

/// An initramfs (host cpio + gzip) with busybox, the drivers, `init` and `extra` files.
fn initramfs(
    dir: &Path,
    name: &str,
    init: &str,
    programs: &[&str],
    extra: &[(&str, &Path)],
) -> PathBuf {
    let root = dir.join(format!("root-{name}"));
    for d in ["bin", "proc", "sys", "dev", "modules", "payload"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(kit::busybox(), root.join("bin/busybox")).unwrap();
    for link in ["sh", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(link)).unwrap();
    }
    for p in programs {
        let host = Path::new("/usr/sbin").join(p);
        add_program(&root, &host, &format!("/bin/{p}")).unwrap();
    }
    let modules_dir = std::fs::canonicalize(
        kit::debian_kernel("cloud")
            .vmlinuz
            .parent()
            .unwrap()
            .join("modules/kernel"),
    )
    .unwrap();
    let mut list = String::new();
    for m in MODULES {
        let file = Path::new(m).file_name().unwrap().to_str().unwrap();
        std::fs::copy(
            modules_dir.join(format!("{m}.ko")),
            root.join(format!("modules/{file}.ko")),
        )
        .unwrap_or_else(|e| panic!("module {m}: {e}"));
        list.push_str(file);
        list.push('\n');
    }
    std::fs::write(root.join("modules.list"), list).unwrap();
    for (guest, host) in extra {
        std::fs::copy(host, root.join(guest)).unwrap();
    }
    std::fs::write(root.join("init"), format!("{PRELUDE}{init}")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("init"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = dir.join(format!("{name}.cpio.gz"));
    kit::host_cpio(&root, &out, true).unwrap();
    out
}

struct Story {
    dir: tempfile::TempDir,
    installer: PathBuf,
    marker: String,
}

fn story() -> Story {
    let dir = tempfile::tempdir().unwrap();
    let kernel = kit::debian_kernel("cloud").vmlinuz;
    let installed = initramfs(dir.path(), "installed", INSTALLED, &[], &[]);
    let installer = initramfs(
        dir.path(),
        "installer",
        INSTALLER,
        &["sgdisk", "mke2fs"],
        &[
            ("payload/vmlinuz", &kernel),
            ("payload/initrd.img", &installed),
        ],
    );
    Story {
        dir,
        installer,
        marker: kit::marker(),
    }
}

/// The two commands, with `disk`, `kernel` and `installer` as the place they run sees them.
fn commands(accel: &str, kernel: &str, installer: &str, disk: &str, marker: &str) -> [String; 2] {
    [
        format!(
            "domboot run --accel {accel} --memory 512M --timeout 240 --kernel {kernel} \
             --initrd {installer} --disk {disk} \
             --cmdline 'console=ttyS0 ks.disk=vda ks.title=installed-system ks.marker={marker}'"
        ),
        format!(
            "domboot run --accel {accel} --memory 512M --timeout 240 --disk {disk} --bootloader"
        ),
    ]
}

fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    let tag = format!("{key} ");
    out.lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix(&tag).map(str::trim))
}

fn check_installed(out: &str, marker: &str) {
    assert_eq!(
        field(out, "INSTALLED"),
        Some(marker),
        "the installer ran:\n{out}"
    );
}

fn check_booted(out: &str, marker: &str) {
    assert_eq!(
        field(out, "ROOT"),
        Some("/dev/vda1"),
        "root= from the installed grub.cfg:\n{out}"
    );
    assert_eq!(
        field(out, "MARK"),
        Some(marker),
        "the file written during the install:\n{out}"
    );
}

fn sh(line: &str) -> (bool, String) {
    let out = Command::new("sh")
        .args(["-c", &line.replacen("domboot ", &format!("{DOMBOOT} "), 1)])
        .output()
        .unwrap();
    let text = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn install_onto_an_empty_disk_then_boot_it_under_tcg() {
    let s = story();
    let disk = s.dir.path().join("disk.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let kernel = kit::debian_kernel("cloud").vmlinuz;
    let [install, boot] = commands(
        "tcg",
        kernel.to_str().unwrap(),
        s.installer.to_str().unwrap(),
        disk.to_str().unwrap(),
        &s.marker,
    );
    let (ok, out) = sh(&install);
    assert!(ok, "{out}");
    check_installed(&out, &s.marker);
    // The host reads what the installer wrote with domboot's own reader.
    let entries = Command::new(DOMBOOT)
        .args(["boot-entries"])
        .arg(&disk)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&entries.stdout);
    assert!(listing.contains("installed-system"), "{listing}");
    let (ok, out) = sh(&boot);
    assert!(ok, "{out}");
    check_booted(&out, &s.marker);
}

#[test]
fn install_onto_an_empty_disk_then_boot_it_on_the_kvm_backend() {
    let s = story();
    let mut bench = Bench::new(Path::new(DOMBOOT));
    let kernel = bench.file(&kit::debian_kernel("cloud").vmlinuz);
    let installer = bench.file(&s.installer);
    let disk = "/tmp/provision-disk.img";
    let [install, boot] = commands("kvm", &kernel, &installer, disk, &s.marker);
    bench.check(
        "provision",
        &format!("truncate -s 64M {disk} && {install} && echo '@@BOOT' && {boot}; echo \"rc=$?\""),
    );
    bench.set_timeouts(std::time::Duration::from_secs(600));
    bench.retry_inner_faults(&[domboot_testkit::nested::RESET_TRIPLE_FAULT]);
    let run = bench.run().unwrap_or_else(|e| panic!("nested bench: {e}"));
    let r = run
        .result("provision")
        .expect("the provision check's result");
    let (install_out, boot_out) = r
        .stdout
        .split_once("@@BOOT")
        .unwrap_or_else(|| panic!("the installer did not finish\n{}", r.output()));
    check_installed(install_out, &s.marker);
    check_booted(boot_out, &s.marker);
    assert!(r.stdout.contains("rc=0"), "{}", r.output());
}
