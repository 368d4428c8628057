//! `run --virtio-mmio-cmdline` (issue 11): the virtio devices announced on the guest's
//! command line as `virtio_mmio.device=`, proven on domboot's KVM backend inside the nested
//! bench (one outer boot for every check) with the tiny kernel scripts/setup.sh builds
//! with VIRTIO_MMIO_CMDLINE_DEVICES and without ACPI
//! ([`domboot_testkit::virtio_mmio_cmdline_kernel`]):
//!
//! - `--no-acpi --disk IMG --rng`: the words are on by default, and the guest finds the
//!   disk (its size, its bytes) and the rng through them alone;
//! - the same kernel with ACPI on and no `--virtio-mmio-cmdline` finds neither (it cannot
//!   read the DSDT): the words are what made the difference;
//! - `--exec` with `--no-acpi` adds the words too;
//! - Debian's cloud kernel with the words and ACPI on (its virtio_mmio, a module, has no
//!   such parameter and ignores them) finds its disk once, through the DSDT.
//!
//! The tiny kernel cannot power off without ACPI: its guests end with `reboot -f`, which
//! ends a run with status 0 (README, "How a run ends").
//!
//! Outside the bench: the words count against the kernel's command-line limit, and under
//! TCG the option adds nothing and says so.

use domboot_testkit::nested::{Bench, BenchRun, CheckResult};
use domboot_testkit::report_field as field;
use std::path::Path;
use std::process::Command;

const DOMBOOT: &str = env!("CARGO_BIN_EXE_domboot");

/// The words for a disk in the first slot and the rng in the second (a serial console
/// takes no slot): 4 KiB windows from 0xd0000000, the I/O APIC's pins from 16.
const WORDS: [&str; 2] = [
    "virtio_mmio.device=4K@0xd0000000:16",
    "virtio_mmio.device=4K@0xd0001000:17",
];

/// The inner guests' /init: loads the modules of /modules/list when there is one (the
/// cloud kernel's virtio drivers), waits a little for vda, reports what it sees (the
/// command line, how many virtio disks, vda's size and checksum, the rng), then
/// `reboot -f`, which ends the run with or without ACPI.
const INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
echo 1 > /proc/sys/kernel/printk
if [ -f /modules/list ]; then
    for m in $($B cat /modules/list); do $B insmod /modules/$m.ko; done
fi
i=0; while [ ! -b /dev/vda ] && [ $i -lt 30 ]; do $B sleep 0.1; i=$((i+1)); done
echo
echo "CMDLINE $($B cat /proc/cmdline)"
echo "DISKS $($B ls /sys/block | $B grep -c '^vd')"
if [ -b /dev/vda ]; then
    echo "SIZE $($B cat /sys/block/vda/size)"
    echo "SUM $($B sha256sum /dev/vda | $B cut -d' ' -f1)"
fi
[ -e /sys/class/misc/hw_random ] || [ -e /dev/hwrng ] && echo "HWRNG yes"
echo "RNG $($B cat /sys/class/misc/hw_random/rng_current 2>/dev/null)"
$B reboot -f
"#;

/// The `--exec` check's command (busybox userland): the same report, less the rng.
const EXEC: &str = r#"i=0; while [ ! -b /dev/vda ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done
echo "CMDLINE $(cat /proc/cmdline)"
echo "DISKS $(ls /sys/block | grep -c '^vd')"
echo "SUM $(sha256sum /dev/vda | cut -d' ' -f1)"
"#;

/// The cloud kernel's drivers for a virtio-mmio disk, in load order (virtio uses
/// virtio_ring's symbols).
const CLOUD_MODULES: [&str; 4] = [
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_mmio.ko",
    "kernel/drivers/block/virtio_blk.ko",
];

fn result<'a>(run: &'a BenchRun, name: &str) -> &'a CheckResult {
    run.result(name)
        .unwrap_or_else(|| panic!("{name}: no result from the bench"))
}

/// A check's report, with the run's own exit status (`RC`, after the guest's lines).
struct Report<'a>(&'a CheckResult);

impl Report<'_> {
    fn get(&self, key: &str) -> &str {
        field(&self.0.stdout, key).unwrap_or("")
    }

    /// The run ended with status 0, `words` are on the guest's command line, and it has one
    /// virtio disk, with the bytes whose SHA-256 is `sum`.
    fn found_the_disk(&self, words: &str, sum: &str) -> Vec<(bool, &'static str)> {
        vec![
            (self.get("RC") == "0", "the run did not end with status 0"),
            (
                self.get("CMDLINE").contains(words),
                "the words are not on /proc/cmdline",
            ),
            (self.get("DISKS") == "1", "not exactly one virtio disk"),
            (self.get("SUM") == sum, "vda's bytes are not the image's"),
        ]
    }

    /// The problems among `expect` (ok, what is wrong), with the check's output.
    fn assert(&self, expect: &[(bool, &str)]) {
        let problems: Vec<&str> = expect
            .iter()
            .filter(|(ok, _)| !ok)
            .map(|(_, why)| *why)
            .collect();
        assert!(
            problems.is_empty(),
            "{}: {problems:?}\n{}",
            self.0.name,
            self.0.output()
        );
    }
}

#[test]
fn devices_announced_on_the_command_line_on_the_kvm_backend() {
    let tiny = domboot_testkit::virtio_mmio_cmdline_kernel();
    let cloud = domboot_testkit::debian_kernel("cloud");
    let dir = tempfile::tempdir().unwrap();
    // 3 MiB of a pattern: the guest must read exactly these bytes from vda.
    let data: Vec<u8> = (0..3u32 << 20).map(|i| (i * 31 + i / 4093) as u8).collect();
    let image = dir.path().join("disk.img");
    std::fs::write(&image, &data).unwrap();
    let want_sum = domboot_testkit::sha256_hex(&data);
    let want_sectors = (data.len() / 512).to_string();
    let busybox = domboot_testkit::busybox();
    let rd_tiny = domboot_testkit::busybox_initramfs(dir.path(), &busybox, "tiny", INIT, &[]);
    let modules = std::fs::canonicalize(cloud.vmlinuz.parent().unwrap().join("modules"))
        .expect("the cloud kernel's modules tree");
    let rd_cloud = domboot_testkit::busybox_initramfs_with_modules(
        dir.path(),
        &busybox,
        "cloud",
        INIT,
        &modules,
        &CLOUD_MODULES,
    );

    let mut bench = Bench::new(Path::new(DOMBOOT));
    let tiny_k = bench.file(&tiny.bzimage);
    let cloud_k = bench.file(&cloud.vmlinuz);
    let rd_tiny = bench.file(&rd_tiny);
    let rd_cloud = bench.file(&rd_cloud);
    let img = bench.file(&image);
    bench.bytes("/bench/exec.sh", EXEC.as_bytes());
    let run = |kernel: &str, rd: &str, extra: &str| {
        format!(
            "domboot run --accel kvm --kernel {kernel} --initrd {rd} --timeout 120 \
             --cmdline 'console=ttyS0 panic=-1' --disk {img} {extra}; \
             echo \"RC $?\""
        )
    };
    bench.check(
        "no-acpi",
        &run(&tiny_k, &rd_tiny, "--memory 256M --no-acpi --rng"),
    );
    bench.check(
        "acpi-without-words",
        &run(&tiny_k, &rd_tiny, "--memory 256M --rng"),
    );
    bench.check(
        "exec-no-acpi",
        &format!(
            "domboot run --accel kvm --kernel {tiny_k} --memory 256M --timeout 120 \
             --no-acpi --disk {img} --rootfs busybox --exec \"$(cat /bench/exec.sh)\"; \
             echo \"RC $?\""
        ),
    );
    bench.check(
        "cloud-acpi-and-words",
        &run(&cloud_k, &rd_cloud, "--memory 512M --virtio-mmio-cmdline"),
    );
    bench.retry_inner_faults(&[domboot_testkit::nested::RESET_TRIPLE_FAULT]);
    let outcome = bench.run().unwrap_or_else(|e| panic!("nested bench: {e}"));
    for name in [
        "no-acpi",
        "acpi-without-words",
        "exec-no-acpi",
        "cloud-acpi-and-words",
    ] {
        let r = result(&outcome, name);
        eprintln!("{name} ({} ms):\n{}", r.elapsed.as_millis(), r.output());
    }
    let words = WORDS.join(" ");
    let sum = want_sum.as_str();

    // Status 0 is reboot -f's: the tiny kernel cannot power off without ACPI.
    let r = Report(result(&outcome, "no-acpi"));
    let mut expect = r.found_the_disk(&words, sum);
    expect.extend([
        (
            r.get("SIZE") == want_sectors,
            "vda's size is not the image's",
        ),
        (
            r.get("HWRNG") == "yes",
            "no /sys/class/misc/hw_random or /dev/hwrng",
        ),
        (
            r.get("RNG").starts_with("virtio_rng"),
            "virtio_rng is not the current rng",
        ),
    ]);
    r.assert(&expect);

    let r = Report(result(&outcome, "acpi-without-words"));
    r.assert(&[
        (
            r.get("RC") == "0",
            "the run did not end with status 0 (reboot -f)",
        ),
        (!r.get("CMDLINE").is_empty(), "no report"),
        (
            !r.get("CMDLINE").contains("virtio_mmio"),
            "words without asking",
        ),
        (r.get("DISKS") == "0", "a disk found without the words"),
        (
            !r.get("RNG").starts_with("virtio_rng"),
            "virtio_rng found without the words",
        ),
    ]);

    let r = Report(result(&outcome, "exec-no-acpi"));
    r.assert(&r.found_the_disk(&words, sum));

    // The rng comes with the disk by default; the words are asked for with ACPI on, and
    // the disk is found once, through the DSDT.
    let r = Report(result(&outcome, "cloud-acpi-and-words"));
    r.assert(&r.found_the_disk(&words, sum));
}

/// `domboot run` of a tiny kernel with one disk (so two virtio devices, with the rng) and
/// a command line of `len` bytes that stops before any VM exists when too long.
fn run_with_cmdline(dir: &Path, len: usize, extra: &[&str]) -> (Option<i32>, String) {
    let disk = dir.join("d.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let head = "console=ttyS0 panic=-1 pad=";
    let cmdline = format!("{head}{}", "x".repeat(len - head.len()));
    let out = Command::new(DOMBOOT)
        .arg("run")
        .arg("--kernel")
        .arg(domboot_testkit::shared_kernel("bzImage-x64-pvh-gzip"))
        .args(["--cmdline", &cmdline, "--serial", "none", "--timeout", "5"])
        .arg("--disk")
        .arg(&disk)
        .args(extra)
        .output()
        .expect("domboot runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A command line that fits the kernel's 2046 bytes alone but not with the two words is
/// refused before any VM exists, and the error says how much of it the words are.
#[test]
fn words_that_make_the_command_line_too_long_are_named() {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        eprintln!("no usable /dev/kvm: --accel kvm cannot get as far as the command line");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // --pvm-guest: on a PVM host (this workplace's) --accel kvm refuses a Linux kernel
    // before its command line is built otherwise.
    let (code, stderr) = run_with_cmdline(
        dir.path(),
        2000,
        &["--accel", "kvm", "--pvm-guest", "--no-acpi"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("too long with the virtio_mmio.device= words of the guest's 2 virtio device(s), 72 bytes")
            && stderr.contains("command line is 2072 bytes but the kernel accepts at most 2046"),
        "{stderr}"
    );
}

/// Under TCG the devices are QEMU's PCI devices: one line says the option adds nothing,
/// and no words are added (the error about a line too long has no note about them).
#[test]
fn under_tcg_the_option_adds_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run_with_cmdline(
        dir.path(),
        3000,
        &["--accel", "tcg", "--virtio-mmio-cmdline"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--virtio-mmio-cmdline adds nothing under TCG"),
        "{stderr}"
    );
    assert!(
        stderr.contains("command line is 3000 bytes") && !stderr.contains("words"),
        "{stderr}"
    );
}
