//! `domboot kexec` (issue 15), proven inside QEMU TCG guests and never on the machine the
//! tests run on: Debian's cloud kernel boots an initramfs holding domboot (with the
//! libraries `ldd` lists), busybox and the next kernel; its /init runs `domboot kexec
//! load` and `exec`, and the next kernel's /init prints a marker, its /proc/cmdline and
//! the checksum of a file in its initrd. Each kexec ends the first kernel, so each case
//! is one boot; checks that leave the kernel running share the first boot. The kboot tests
//! boot the image of `domboot initrd --kboot` with ext4 disks on NVMe (built into the
//! cloud kernel) or on virtio-blk (its modules carried in kboot's /lib/kboot/modules). `KEXEC_QEMU_LOG=FILE` makes QEMU log interrupts and resets there (for a
//! purgatory that faults).
//!
//! Run: `cargo test -p domboot --test kexec` (about 40 s on two cores).

#[path = "../../bootdisk/tests/images/mod.rs"]
mod images;

use domboot_testkit as kit;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BOOT_TIMEOUT: Duration = Duration::from_secs(400);

struct Outcome {
    console: String,
    report: kit::GuestReport,
    secs: f64,
}

/// Boots Debian's cloud kernel under TCG with an initramfs holding domboot, busybox, the
/// `files` (guest path, host path) and an /init that runs `checks` (shell lines) and then
/// `domboot kexec load LOAD_ARGS` and `domboot kexec exec`.
fn first_kernel_kexecs(
    dir: &Path,
    files: &[(&str, PathBuf)],
    checks: &str,
    load_args: &str,
) -> Outcome {
    let root = dir.join("first-root");
    for d in ["bin", "proc", "sys", "dev", "tmp", "k"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(kit::busybox(), root.join("bin/busybox")).unwrap();
    kit::nested::add_program(
        &root,
        Path::new(env!("CARGO_BIN_EXE_domboot")),
        "/bin/domboot",
    )
    .unwrap();
    for (guest, host) in files {
        std::fs::copy(host, root.join(guest.trim_start_matches('/')))
            .unwrap_or_else(|e| panic!("{}: {e}", host.display()));
    }
    let init = format!(
        "#!/bin/busybox sh\n\
         B=/bin/busybox\n\
         $B mount -t proc proc /proc\n\
         $B mount -t sysfs sysfs /sys\n\
         $B mount -t devtmpfs dev /dev\n\
         export PATH=/bin\n\
         echo FIRST-KERNEL-UP\n\
         {checks}\n\
         /bin/domboot kexec load {load_args}\n\
         echo \"LOAD-STATUS $?\"\n\
         echo \"LOADED $($B cat /sys/kernel/kexec_loaded)\"\n\
         /bin/domboot kexec exec\n\
         echo \"EXEC-STATUS $?\"\n\
         $B reboot -f\n"
    );
    std::fs::write(root.join("init"), init).unwrap();
    set_exec(&root.join("init"));
    set_exec(&root.join("bin/busybox"));
    let initramfs = dir.join("first.cpio");
    kit::host_cpio(&root, &initramfs, false).unwrap();
    let debian = kit::debian_kernel("cloud");
    let started = Instant::now();
    let debug_log = std::env::var("KEXEC_QEMU_LOG").unwrap_or_default();
    let mut extra: Vec<&str> = Vec::new();
    if !debug_log.is_empty() {
        extra.extend(["-d", "int,cpu_reset,guest_errors", "-D", debug_log.as_str()]);
    }
    let (_, console) = kit::qemu_run(
        &debian.vmlinuz,
        &[
            "-M",
            "pc",
            "-m",
            "512",
            "-smp",
            "1",
            "-initrd",
            initramfs.to_str().unwrap(),
            "-append",
            "console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init cryptomgr.notests",
        ]
        .into_iter()
        .chain(extra)
        .collect::<Vec<_>>(),
        BOOT_TIMEOUT,
    );
    let secs = started.elapsed().as_secs_f64();
    let field = |key: &str| {
        let tag = format!("{key} ");
        // Only what the next kernel printed: after the first kernel's exec.
        let after = console
            .find("LOAD-STATUS 0")
            .map_or("", |at| &console[at..]);
        after.lines().find_map(|l| {
            let l = l.trim_end_matches('\r');
            l.find(&tag).map(|at| l[at + tag.len()..].to_string())
        })
    };
    let report = kit::GuestReport {
        marker: field("MARKER"),
        cmdline: field("CMDLINE"),
        payload_sum: field("SUM"),
        mem_total_kib: field("MEM").and_then(|m| m.trim().parse().ok()),
        console: console.clone(),
    };
    eprintln!("kexec case: {secs:.1} s");
    Outcome {
        console,
        report,
        secs,
    }
}

fn set_exec(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The next kernel's initramfs (busybox, a payload, an /init that reports and reboots).
fn next_initrd(dir: &Path, marker: &str, payload: &[u8]) -> PathBuf {
    kit::report_initramfs(dir, &kit::busybox(), marker, payload)
}

/// Asserts that the next kernel ran with our marker, command line and initrd.
fn assert_next_kernel(o: &Outcome, marker: &str, cmdline_word: &str, payload: &[u8]) {
    let tail = |n: usize| {
        let lines: Vec<&str> = o.console.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    };
    assert!(
        o.console.contains("FIRST-KERNEL-UP"),
        "the first kernel's /init did not run:\n{}",
        tail(60)
    );
    assert!(
        o.console.contains("LOAD-STATUS 0"),
        "domboot kexec load failed:\n{}",
        tail(60)
    );
    assert_eq!(
        o.report.marker.as_deref(),
        Some(marker),
        "the next kernel did not report (took {:.1} s):\n{}",
        o.secs,
        tail(80)
    );
    let cmdline = o.report.cmdline.clone().unwrap_or_default();
    assert!(
        cmdline.split_whitespace().any(|w| w == cmdline_word),
        "the next kernel's /proc/cmdline {cmdline:?} lacks {cmdline_word}"
    );
    assert_eq!(
        o.report.payload_sum.as_deref(),
        Some(kit::sha256_hex(payload).as_str()),
        "the next kernel's initrd payload differs"
    );
}

fn tiny(name: &str) -> PathBuf {
    kit::shared_kernel(name)
}

/// (a) the same Debian kernel with a new command line; also, in the first kernel, the
/// plan printed by --dry-run, load + unload, and the errors of exec without a load and of
/// --file with an ELF.
#[test]
fn kexec_into_the_same_kernel_with_a_new_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let payload = b"kexec case a";
    let rd = next_initrd(dir.path(), &marker, payload);
    let debian = kit::debian_kernel("cloud");
    let word = format!("kexec.case=a-{}", std::process::id());
    let checks = "\
/bin/domboot kexec exec; echo \"EXEC-NOTHING $?\"\n\
/bin/domboot kexec load --kernel /k/pvh.elf --file; echo \"FILE-ELF $?\"\n\
/bin/domboot kexec load --kernel /k/next --initrd /k/rd --dry-run > /tmp/dry; echo \"DRY $? $($B cat /sys/kernel/kexec_loaded)\"\n\
$B grep -c '^purgatory ' /tmp/dry | $B sed 's/^/DRY-PURGATORY /'\n\
/bin/domboot kexec load --kernel /k/pvh.elf > /dev/null; echo \"LOAD-PVH $? $($B cat /sys/kernel/kexec_loaded)\"\n\
/bin/domboot kexec unload; echo \"UNLOAD $? $($B cat /sys/kernel/kexec_loaded)\"\n\
/bin/domboot kexec load --kernel /k/pvh.elf --reuse-cmdline --dry-run | $B grep -c 'command line .*cryptomgr.notests' | $B sed 's/^/REUSE /'";
    let o = first_kernel_kexecs(
        dir.path(),
        &[
            ("/k/next", debian.vmlinuz.clone()),
            ("/k/rd", rd),
            ("/k/pvh.elf", tiny("vmlinux-x64-pvh-gzip")),
        ],
        checks,
        &format!("--kernel /k/next --initrd /k/rd --cmdline 'console=ttyS0 panic=-1 quiet {word}'"),
    );
    for want in [
        "EXEC-NOTHING 2",
        "FILE-ELF 2",
        "DRY 0 0",
        "DRY-PURGATORY 1",
        "LOAD-PVH 0 1",
        "UNLOAD 0 0",
        "REUSE 1",
        "LOADED 1",
    ] {
        assert!(
            o.console.contains(want),
            "missing {want:?} in the first kernel's output:\n{}",
            o.console
        );
    }
    assert!(
        o.console.contains("no kernel is loaded for kexec"),
        "exec without a load should say so"
    );
    assert!(o.console.contains("is not a bzImage"));
    assert_next_kernel(&o, &marker, &word, payload);
}

/// (b) a tiny bzImage (linux64 through the purgatory), with the memory map read from
/// /proc/iomem and the running kernel's console carried over.
#[test]
fn kexec_into_a_tiny_bzimage() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let payload = b"kexec case b";
    let rd = next_initrd(dir.path(), &marker, payload);
    // No /sys/firmware/memmap (a kernel without CONFIG_FIRMWARE_MEMMAP): the map comes
    // from /proc/iomem. No console= given: the running kernel's carries over, so the next
    // kernel's report reaches the console at all.
    let o = first_kernel_kexecs(
        dir.path(),
        &[("/k/next", tiny("bzImage-x64-pvh-zstd")), ("/k/rd", rd)],
        "$B mount -t tmpfs none /sys/firmware/memmap\n\
         echo \"MEMMAP-ENTRIES $($B ls /sys/firmware/memmap | $B wc -l)\"",
        "--kernel /k/next --initrd /k/rd --cmdline 'kexec.case=b'",
    );
    assert!(o.console.contains("MEMMAP-ENTRIES 0"), "{}", o.console);
    assert!(
        o.console
            .contains("entries from this machine's /proc/iomem"),
        "{}",
        o.console
    );
    assert_next_kernel(&o, &marker, "kexec.case=b", payload);
    assert_next_kernel(&o, &marker, "console=ttyS0", payload);
}

/// (c) the non-relocatable tiny kernel loaded at 0x2000000, moved into place by the
/// code32_start hook.
#[test]
fn kexec_into_a_non_relocatable_kernel_through_the_hook() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let payload = b"kexec case c";
    let rd = next_initrd(dir.path(), &marker, payload);
    let o = first_kernel_kexecs(
        dir.path(),
        &[("/k/next", tiny("bzImage-x64-norelo-gzip")), ("/k/rd", rd)],
        "",
        "--kernel /k/next --initrd /k/rd --load-address 0x2000000 --cmdline 'console=ttyS0 kexec.case=c'",
    );
    assert!(o.console.contains("code32_start hook"), "{}", o.console);
    assert_next_kernel(&o, &marker, "kexec.case=c", payload);
}

/// (d) an ELF vmlinux through PVH.
#[test]
fn kexec_into_an_elf_through_pvh() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let payload = b"kexec case d";
    let rd = next_initrd(dir.path(), &marker, payload);
    let o = first_kernel_kexecs(
        dir.path(),
        &[("/k/next", tiny("vmlinux-x64-pvh-xz")), ("/k/rd", rd)],
        "",
        "--kernel /k/next --initrd /k/rd --cmdline 'console=ttyS0 kexec.case=d'",
    );
    assert!(o.console.contains("(pvh)"), "{}", o.console);
    assert_next_kernel(&o, &marker, "kexec.case=d", payload);
}

/// (e) kexec_file_load with a bzImage (the running kernel loads it).
#[test]
fn kexec_file_load_of_a_bzimage() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let payload = b"kexec case e";
    let rd = next_initrd(dir.path(), &marker, payload);
    let o = first_kernel_kexecs(
        dir.path(),
        &[("/k/next", tiny("bzImage-x64-pvh-gzip")), ("/k/rd", rd)],
        "",
        "--file --kernel /k/next --initrd /k/rd --cmdline 'console=ttyS0 kexec.case=e'",
    );
    assert!(o.console.contains("kexec_file_load"), "{}", o.console);
    assert_next_kernel(&o, &marker, "kexec.case=e", payload);
}

/// (f) a unified kernel image: its .linux entered with its own .initrd and .cmdline.
#[test]
fn kexec_into_a_unified_kernel_image() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let payload = b"kexec case f";
    let rd = std::fs::read(next_initrd(dir.path(), &marker, payload)).unwrap();
    let uki = images::uki(
        dir.path(),
        "next",
        &tiny("bzImage-x64-pvh-gzip"),
        &rd,
        "console=ttyS0 kexec.case=f",
    );
    let o = first_kernel_kexecs(dir.path(), &[("/k/next", uki)], "", "--kernel /k/next");
    assert_next_kernel(&o, &marker, "kexec.case=f", payload);
}

/// (g) a compressed ELF vmlinux (vmlinux.xz, as some distributions ship it), through PVH.
#[test]
fn kexec_into_a_compressed_vmlinux() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let payload = b"kexec case g";
    let rd = next_initrd(dir.path(), &marker, payload);
    let vmlinux = dir.path().join("vmlinux");
    std::fs::copy(tiny("vmlinux-x64-pvh-gzip"), &vmlinux).unwrap();
    let status = std::process::Command::new("xz")
        .args(["-1", "-f"])
        .arg(&vmlinux)
        .status()
        .expect("xz runs");
    assert!(status.success(), "xz failed");
    let o = first_kernel_kexecs(
        dir.path(),
        &[("/k/next", dir.path().join("vmlinux.xz")), ("/k/rd", rd)],
        "",
        "--kernel /k/next --initrd /k/rd --cmdline 'console=ttyS0 kexec.case=g'",
    );
    assert!(o.console.contains("(pvh)"), "{}", o.console);
    assert_next_kernel(&o, &marker, "kexec.case=g", payload);
}

/// An extlinux.conf with one entry per tiny kernel of [`kboot_disk`].
const EXTLINUX: &str = "DEFAULT tinya
LABEL tinya
  MENU LABEL Tiny A
  KERNEL /boot/vmlinuz-tinya
  INITRD /boot/initrd.img-tinya
  APPEND console=ttyS0 kboot.entry=a
LABEL tinyb
  MENU LABEL Tiny B
  KERNEL /boot/vmlinuz-tinyb
  INITRD /boot/initrd.img-tinyb
  APPEND console=ttyS0 kboot.entry=b
";

/// A raw ext4 disk image whose /boot holds two tiny kernels, each with the initrd its name
/// matches (`initrd.img-NAME`), reporting `markers[0]` and `markers[1]`; with `extlinux`,
/// also /boot/extlinux/extlinux.conf ([`EXTLINUX`]).
fn kboot_disk(dir: &Path, markers: [&str; 2], extlinux: bool) -> PathBuf {
    let root = dir.join("disk-root");
    std::fs::create_dir_all(root.join("boot/extlinux")).unwrap();
    if extlinux {
        std::fs::write(root.join("boot/extlinux/extlinux.conf"), EXTLINUX).unwrap();
    }
    for (name, kernel, marker) in [
        ("tinya", "bzImage-x64-pvh-gzip", markers[0]),
        ("tinyb", "bzImage-x64-pvh-lz4", markers[1]),
    ] {
        std::fs::copy(tiny(kernel), root.join(format!("boot/vmlinuz-{name}"))).unwrap();
        let rd = next_initrd(dir, marker, marker.as_bytes());
        std::fs::copy(rd, root.join(format!("boot/initrd.img-{name}"))).unwrap();
    }
    mkfs_ext4(&root, &dir.join("disk.img"), None)
}

/// An ext4 image of the folder `tree` (mkfs.ext4 -d), labelled `label`.
fn mkfs_ext4(tree: &Path, image: &Path, label: Option<&str>) -> PathBuf {
    let mut cmd = std::process::Command::new("mkfs.ext4");
    cmd.args(["-q", "-F"]);
    if let Some(l) = label {
        cmd.args(["-L", l]);
    }
    let status = cmd
        .arg("-d")
        .arg(tree)
        .arg(image)
        .arg("32M")
        .status()
        .expect("mkfs.ext4 (e2fsprogs) runs");
    assert!(status.success(), "mkfs.ext4 failed");
    image.to_path_buf()
}

/// Builds the kboot image with `domboot initrd --kboot`.
fn kboot_image(dir: &Path) -> PathBuf {
    kboot_image_with_modules(dir, &[])
}

/// [`kboot_image`] with the cloud kernel's modules `modules` (paths in its modules tree,
/// in load order) in /lib/kboot/modules, named so that kboot's name order is that order.
fn kboot_image_with_modules(dir: &Path, modules: &[&str]) -> PathBuf {
    let out = dir.join("kboot.cpio.gz");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_domboot"));
    cmd.args(["initrd", "--kboot", "-o"]).arg(&out);
    if !modules.is_empty() {
        let tree = kit::debian_kernel("cloud")
            .vmlinuz
            .parent()
            .unwrap()
            .join("modules");
        let mods = dir.join("kboot-modules");
        std::fs::create_dir_all(&mods).unwrap();
        for (i, m) in modules.iter().enumerate() {
            let name = Path::new(m).file_name().unwrap().to_string_lossy();
            std::fs::copy(tree.join(m), mods.join(format!("{:02}-{name}", i + 10)))
                .unwrap_or_else(|e| panic!("{m}: {e}"));
        }
        cmd.arg("--dir")
            .arg(format!("{}=/lib/kboot/modules", mods.display()));
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "domboot initrd --kboot failed");
    out
}

/// What the cloud kernel needs for a virtio-blk disk on PCI, in load order (virtio_blk and
/// the virtio core are modules there; virtio uses virtio_ring's symbols).
const VIRTIO_BLK_MODULES: &[&str] = &[
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/drivers/block/virtio_blk.ko",
];

/// How the kboot tests attach their disks.
#[derive(Clone, Copy)]
enum Bus {
    /// NVMe: the cloud kernel's driver is built in.
    Nvme,
    /// virtio-blk on PCI: kboot loads the drivers from /lib/kboot/modules.
    Virtio,
}

/// Boots Debian's cloud kernel with the kboot image and `disk` as an NVMe disk (the cloud
/// kernel's NVMe driver is built in; virtio_blk is a module). With `key`, types it on the
/// console once kboot asks. Returns the console output.
fn boot_kboot(kboot: &Path, disk: &Path, append: &str, key: Option<&str>) -> String {
    boot_kboot_disks(kboot, &[disk], Bus::Nvme, append, key)
}

/// [`boot_kboot`] with several disks on `bus` (in order; the guest may number them
/// otherwise).
fn boot_kboot_disks(
    kboot: &Path,
    disks: &[&Path],
    bus: Bus,
    append: &str,
    key: Option<&str>,
) -> String {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    let debian = kit::debian_kernel("cloud");
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-M", "pc", "-m", "512", "-smp", "1"])
        .args([
            "-no-reboot",
            "-nographic",
            "-nodefaults",
            "-serial",
            "stdio",
        ])
        .arg("-kernel")
        .arg(&debian.vmlinuz)
        .arg("-initrd")
        .arg(kboot)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 quiet loglevel=4 cryptomgr.notests {append}"
        ))
        .args(disks.iter().enumerate().flat_map(|(i, d)| {
            [
                "-drive".to_string(),
                format!(
                    "file={},if=none,id=d{i},format=raw,readonly=on",
                    d.display()
                ),
                "-device".to_string(),
                match bus {
                    Bus::Nvme => format!("nvme,drive=d{i},serial=kboot{i}"),
                    Bus::Virtio => format!("virtio-blk-pci,drive=d{i},serial=kboot{i}"),
                },
            ]
        }))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("qemu-system-x86_64 runs");
    let text = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let text = Arc::clone(&text);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let mut stdin = child.stdin.take();
    let mut sent = key.is_none();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        if !sent && text.lock().unwrap().contains("kboot: press") {
            if let (Some(input), Some(k)) = (stdin.as_mut(), key) {
                input.write_all(k.as_bytes()).unwrap();
                input.flush().unwrap();
            }
            sent = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(stdin);
    let _ = reader.join();
    let out = text.lock().unwrap().clone();
    eprintln!("kboot boot: {:.1} s", started.elapsed().as_secs_f64());
    out
}

fn reported_marker(console: &str) -> Option<String> {
    console.lines().find_map(|l| {
        let l = l.trim_end_matches('\r');
        l.find("MARKER ").map(|at| l[at + 7..].to_string())
    })
}

/// kboot with kernel= boots the named kernel (with the initrd its name matches), without
/// a menu.
#[test]
fn kboot_boots_the_kernel_named_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (kit::marker() + "-a", kit::marker() + "-b");
    let disk = kboot_disk(dir.path(), [&a, &b], false);
    let kboot = kboot_image(dir.path());
    let console = boot_kboot(
        &kboot,
        &disk,
        "root=/dev/nvme0n1 kernel=vmlinuz-tinyb",
        None,
    );
    assert!(!console.contains("choose what to boot"), "{console}");
    assert_eq!(
        reported_marker(&console).as_deref(),
        Some(b.as_str()),
        "{console}"
    );
    assert!(console.contains("CMDLINE ") && console.contains("root=/dev/nvme0n1"));
}

/// kboot on a virtio disk (its drivers loaded from /lib/kboot/modules) without a choice
/// lists the boot loader's entries and both kernels, takes a keystroke and boots that one.
#[test]
fn kboot_shows_a_menu_and_boots_the_chosen_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (kit::marker() + "-a", kit::marker() + "-b");
    let disk = kboot_disk(dir.path(), [&a, &b], true);
    let kboot = kboot_image_with_modules(dir.path(), VIRTIO_BLK_MODULES);
    let console = boot_kboot_disks(&kboot, &[&disk], Bus::Virtio, "root=/dev/vda", Some("4"));
    assert!(!console.contains("insmod"), "{console}");
    assert!(console.contains("kboot: choose what to boot"), "{console}");
    for item in [
        "1) Tiny A (boot entry 0)",
        "2) Tiny B (boot entry 1)",
        "3) vmlinuz-tinya",
        "4) vmlinuz-tinyb",
    ] {
        assert!(
            console.contains(item),
            "no {item:?} in the menu:\n{console}"
        );
    }
    assert_eq!(
        reported_marker(&console).as_deref(),
        Some(b.as_str()),
        "{console}"
    );
}

/// The 32-bit (i386, non-relocatable) tiny kernel through linux32, with an i386 busybox.
#[test]
fn kexec_into_an_i386_kernel_through_linux32() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let payload = b"kexec i386";
    let rd = kit::report_initramfs(dir.path(), &kit::busybox_i386(), &marker, payload);
    let o = first_kernel_kexecs(
        dir.path(),
        &[("/k/next", tiny("bzImage-i386-norelo-xz")), ("/k/rd", rd)],
        "",
        "--kernel /k/next --initrd /k/rd --cmdline 'console=ttyS0 kexec.case=i386'",
    );
    assert!(o.console.contains("(linux32)"), "{}", o.console);
    assert_next_kernel(&o, &marker, "kexec.case=i386", payload);
}

/// Debian's own kernel entered through PVH (the ELF inside its bzImage), with the
/// machine's ACPI tables found through the RSDP the purgatory hands over.
#[test]
fn kexec_into_the_debian_kernel_through_pvh() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let payload = b"kexec debian pvh";
    let rd = next_initrd(dir.path(), &marker, payload);
    let debian = kit::debian_kernel("cloud");
    let o = first_kernel_kexecs(
        dir.path(),
        &[("/k/next", debian.vmlinuz.clone()), ("/k/rd", rd)],
        "",
        "--kernel /k/next --initrd /k/rd --boot-protocol pvh --cmdline 'console=ttyS0 panic=-1 kexec.case=pvh'",
    );
    assert!(o.console.contains("(pvh)"), "{}", o.console);
    assert_next_kernel(&o, &marker, "kexec.case=pvh", payload);
    let next = o.console.split("LOAD-STATUS 0").nth(1).unwrap_or_default();
    assert!(
        next.contains("ACPI: RSDP"),
        "the PVH kernel did not find the ACPI tables:\n{}",
        o.console
    );
}

/// kboot with entry= boots that boot loader entry of the root disk (read by `domboot
/// boot-entries` from the block device), with the entry's own command line.
#[test]
fn kboot_boots_a_boot_loader_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (kit::marker() + "-a", kit::marker() + "-b");
    let disk = kboot_disk(dir.path(), [&a, &b], true);
    let kboot = kboot_image(dir.path());
    let console = boot_kboot(&kboot, &disk, "root=/dev/nvme0n1 entry=1", None);
    assert!(console.contains("booting boot entry 1"), "{console}");
    assert_eq!(
        reported_marker(&console).as_deref(),
        Some(b.as_str()),
        "{console}"
    );
    let cmdline = console
        .lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("CMDLINE "))
        .unwrap_or_default();
    assert!(cmdline.contains("kboot.entry=b"), "{console}");
}

/// kboot with root= and boot= as LABEL=s of two disks, and ramdisk= naming another
/// kernel's initrd: the kernel comes from the boot disk's root, the initrd is the named one.
#[test]
fn kboot_takes_boot_and_ramdisk_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (kit::marker() + "-a", kit::marker() + "-b");
    let root_tree = dir.path().join("root-tree");
    std::fs::create_dir_all(root_tree.join("boot")).unwrap();
    let boot_tree = dir.path().join("boot-tree");
    std::fs::create_dir_all(&boot_tree).unwrap();
    std::fs::copy(
        tiny("bzImage-x64-pvh-gzip"),
        boot_tree.join("vmlinuz-tinya"),
    )
    .unwrap();
    for (name, marker) in [("tinya", &a), ("other", &b)] {
        let rd = next_initrd(dir.path(), marker, marker.as_bytes());
        std::fs::copy(rd, boot_tree.join(format!("initrd.img-{name}"))).unwrap();
    }
    let root_disk = mkfs_ext4(&root_tree, &dir.path().join("root.img"), Some("kbroot"));
    let boot_disk = mkfs_ext4(&boot_tree, &dir.path().join("boot.img"), Some("kbboot"));
    let kboot = kboot_image(dir.path());
    let console = boot_kboot_disks(
        &kboot,
        &[&root_disk, &boot_disk],
        Bus::Nvme,
        "root=LABEL=kbroot boot=LABEL=kbboot kernel=vmlinuz-tinya ramdisk=initrd.img-other",
        None,
    );
    assert!(
        console.contains("booting /mnt/boot/vmlinuz-tinya with /mnt/boot/initrd.img-other"),
        "{console}"
    );
    assert_eq!(
        reported_marker(&console).as_deref(),
        Some(b.as_str()),
        "{console}"
    );
}
