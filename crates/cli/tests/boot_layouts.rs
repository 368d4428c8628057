//! Issue 12's proof for every disk layout: images built with the real tools (sgdisk,
//! parted, `mkfs.ext4 -d`, mkfs.ext2, mkfs.vfat + mcopy, xorriso) — GPT and MBR (with a
//! logical partition), a whole-disk FAT and an ISO9660 — each holding Debian's cloud
//! kernel and a real initramfs under BLS (and a UKI), extlinux, GRUB legacy menu.lst,
//! isolinux, grub.cfg and syslinux layouts with several entries. `domboot run --disk IMG
//! --bootloader` boots each image's default entry and a named one, and the initramfs's
//! /init reports the run's random marker and /proc/cmdline, which must be exactly that
//! entry's (its root= included). Under TCG, and on the KVM backend inside the nested
//! bench (one outer boot for every KVM boot).
//!
//! Run alone: `cargo test -p domboot --test boot_layouts -- --nocapture`.

#[path = "../../bootdisk/tests/images/mod.rs"]
mod images;

use domboot_testkit as kit;
use images::Tree;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

const DOMBOOT: &str = env!("CARGO_BIN_EXE_domboot");
const KVER: &str = "6.1.0-57-cloud-amd64";

/// One boot: an image, how the entry is chosen, and the command line it must report.
#[derive(Clone, Debug)]
struct Boot {
    /// `layout-entry`, also the bench's check name.
    name: String,
    disk: PathBuf,
    /// The disk is attached read-only (`IMG,ro`).
    ro: bool,
    /// `--boot-entry` (None: the boot loader's default).
    entry: Option<String>,
    /// The entry's command line: what /proc/cmdline must say, word for word.
    cmdline: String,
}

impl Boot {
    /// The `run` arguments after `--accel ACCEL`.
    fn args(&self) -> Vec<String> {
        let mut disk = self.disk.display().to_string();
        if self.ro {
            disk.push_str(",ro");
        }
        let mut a: Vec<String> = ["--memory", "512M", "--timeout", "120", "--disk"]
            .map(String::from)
            .to_vec();
        a.push(disk);
        a.push("--bootloader".into());
        if let Some(e) = &self.entry {
            a.push("--boot-entry".into());
            a.push(e.clone());
        }
        a
    }
}

/// The images of one test process, built once and shared by its tests; removed when the
/// last test using them is done.
struct Images {
    dir: tempfile::TempDir,
    marker: String,
    boots: Vec<Boot>,
}

fn images() -> Arc<Images> {
    static SHARED: Mutex<Weak<Images>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(images) = shared.upgrade() {
        return images;
    }
    let images = Arc::new(build());
    *shared = Arc::downgrade(&images);
    images
}

/// A command line for an entry: the console, the entry's own words.
fn line(root: Option<&str>, entry: &str, extra: &str) -> String {
    let mut words = Vec::new();
    if let Some(r) = root {
        words.push(format!("root={r} ro"));
    }
    words.push("console=ttyS0 panic=-1".into());
    if !extra.is_empty() {
        words.push(extra.into());
    }
    words.push(format!("domboot.entry={entry}"));
    words.join(" ")
}

fn build() -> Images {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let marker = kit::marker();
    let initrd = kit::report_initramfs(d, &kit::busybox(), &marker, b"layouts payload");
    let kernel = images::kernel();
    let mut boots = Vec::new();
    let mut boot = |name: &str, disk: &Path, ro: bool, entry: Option<&str>, cmdline: &str| {
        boots.push(Boot {
            name: name.into(),
            disk: disk.to_path_buf(),
            ro,
            entry: entry.map(String::from),
            cmdline: cmdline.into(),
        });
    };

    // (1) GPT: an EFI system partition (FAT32) with Boot Loader Spec entries, a
    // loader.conf default that is not the first entry and a unified kernel image (objcopy
    // and systemd-boot's stub: its own initramfs and command line), and an ext4 root.
    let bls = |entry: &str| line(Some("/dev/vda2"), entry, "quiet");
    let (new, old, rescue) = (bls("new"), bls("old"), line(None, "rescue", "single"));
    let uki = bls("uki");
    let esp = Tree::new()
        .text("/loader/loader.conf", "timeout 3\ndefault debian-old*\n")
        .text(
            "/loader/entries/debian-new.conf",
            &format!(
                "title Debian new\nversion {KVER}\nlinux /debian/vmlinuz\n\
                 initrd /debian/initrd.img\noptions {new}\n"
            ),
        )
        .text(
            "/loader/entries/debian-old.conf",
            &format!(
                "title Debian old\nversion 6.1.0-9-cloud-amd64\nlinux /debian/vmlinuz\n\
                 initrd /debian/initrd.img\noptions {old}\n"
            ),
        )
        .text(
            "/loader/entries/recovery.conf",
            &format!(
                "title Recovery\nlinux /debian/vmlinuz\ninitrd /debian/initrd.img\n\
                 options {rescue}\n"
            ),
        )
        .copy("/debian/vmlinuz", &kernel)
        .copy("/debian/initrd.img", &initrd)
        .copy(
            "/EFI/Linux/debian-uki.efi",
            &images::uki(d, "uki", &kernel, &std::fs::read(&initrd).unwrap(), &uki),
        );
    let esp = images::fat(d, "esp", &esp, 48, 32);
    let root = images::ext4(
        d,
        "gpt-root",
        &Tree::new().text("/etc/hostname", "bls\n"),
        4,
    );
    let gpt = images::gpt_disk(
        d,
        "gpt-bls",
        &[
            (Some(&esp), "ef00", "EFI system"),
            (Some(&root), "8300", "root"),
        ],
    );
    boot("gpt-bls-default", &gpt, false, None, &old);
    boot("gpt-bls-named", &gpt, true, Some("Recovery"), &rescue);
    boot(
        "gpt-bls-uki",
        &gpt,
        true,
        Some("Debian GNU/Linux 12 (bookworm) (6.1.0-57-cloud-amd64)"),
        &uki,
    );

    // (2) MBR with a primary and a logical partition (5): ext4 holding extlinux.conf, the
    // kernel and the initramfs on the logical one.
    let ext = |entry: &str, extra: &str| line(Some("/dev/vda5"), entry, extra);
    let (linux, single) = (ext("linux", ""), ext("single", "single"));
    let extlinux = format!(
        "DEFAULT single\nTIMEOUT 50\nPROMPT 0\n\n\
         LABEL linux\n  MENU LABEL Debian (extlinux)\n  LINUX /boot/vmlinuz-{KVER}\n  \
         INITRD /boot/initrd.img-{KVER}\n  APPEND {linux}\n\n\
         LABEL single\n  MENU LABEL Debian single-user\n  LINUX ../vmlinuz-{KVER}\n  \
         INITRD ../initrd.img-{KVER}\n  APPEND {single}\n"
    );
    let logical = Tree::new()
        .text("/boot/extlinux/extlinux.conf", &extlinux)
        .copy(&format!("/boot/vmlinuz-{KVER}"), &kernel)
        .copy(&format!("/boot/initrd.img-{KVER}"), &initrd);
    let logical = images::ext4(d, "mbr-logical", &logical, 24);
    let primary = images::ext4(d, "mbr-primary", &Tree::new().text("/data", "p1\n"), 4);
    let mbr = images::mbr_disk(d, "mbr-extlinux", &[&primary], &[&logical]);
    boot("mbr-extlinux-default", &mbr, false, None, &single);
    boot(
        "mbr-extlinux-named",
        &mbr,
        true,
        Some("Debian (extlinux)"),
        &linux,
    );

    // (3) MBR: GRUB legacy's menu.lst on a FAT16 first partition, pointing with
    // `root (hd0,1)` at the kernel on an ext2 second partition.
    let legacy = |entry: &str, extra: &str| line(Some("/dev/vda2"), entry, extra);
    let (normal, safe) = (legacy("normal", ""), legacy("safe", "nomodeset"));
    let menu = format!(
        "# GRUB legacy\ndefault\t\t1\ntimeout\t\t5\n\n\
         title\t\tDebian GNU/Linux, kernel {KVER}\nroot\t\t(hd0,1)\n\
         kernel\t\t/boot/vmlinuz {normal}\ninitrd\t\t/boot/initrd.img\n\n\
         title\t\tDebian GNU/Linux, kernel {KVER} (safe)\nroot\t\t(hd0,1)\n\
         kernel\t\t/boot/vmlinuz {safe}\ninitrd\t\t/boot/initrd.img\n"
    );
    let p1 = images::fat(
        d,
        "legacy-fat16",
        &Tree::new().text("/boot/grub/menu.lst", &menu),
        16,
        16,
    );
    let p2 = Tree::new()
        .copy("/boot/vmlinuz", &kernel)
        .copy("/boot/initrd.img", &initrd);
    let p2 = images::ext(d, "legacy-ext2", &p2, 24, "ext2");
    let legacy_disk = images::mbr_disk(d, "mbr-menulst", &[&p1, &p2], &[]);
    boot("mbr-menulst-default", &legacy_disk, false, None, &safe);
    boot(
        "mbr-menulst-named",
        &legacy_disk,
        true,
        Some(&format!("Debian GNU/Linux, kernel {KVER}")),
        &normal,
    );

    // (4) ISO9660 (Rock Ridge + Joliet) laid out like a live/installer medium: grub.cfg
    // (its default) and isolinux.cfg, whose entry is booted by its title. (No `noapic` or
    // `nosmp`, which live media's fail-safe entries often have: on the KVM backend, whose
    // ACPI tables describe a hardware-reduced platform, Linux then has no interrupt
    // controller for COM1, and what /init writes to the console never comes out.)
    let (live, failsafe, iso_safe) = (
        line(None, "live", "boot=live"),
        line(None, "failsafe", "boot=live components"),
        line(None, "isolinux-safe", "boot=live toram"),
    );
    let grub = format!(
        "set default=1\nset timeout=5\n\
         menuentry 'Live system' {{\n\tlinux /live/vmlinuz {live}\n\tinitrd /live/initrd.img\n}}\n\
         menuentry 'Live system (fail-safe)' {{\n\tlinux /live/vmlinuz {failsafe}\n\tinitrd /live/initrd.img\n}}\n"
    );
    let isolinux = format!(
        "default live\nprompt 0\ntimeout 0\n\
         label live\n  menu label Live (isolinux)\n  kernel /live/vmlinuz\n  \
         initrd /live/initrd.img\n  append {live}\n\
         label safe\n  menu label Live safe mode (isolinux)\n  kernel /live/vmlinuz\n  \
         initrd /live/initrd.img\n  append {iso_safe}\n"
    );
    let iso = Tree::new()
        .text("/boot/grub/grub.cfg", &grub)
        .text("/isolinux/isolinux.cfg", &isolinux)
        .copy("/live/vmlinuz", &kernel)
        .copy("/live/initrd.img", &initrd);
    let iso = images::iso(d, "live", &iso);
    boot("iso-default", &iso, true, None, &failsafe);
    boot(
        "iso-named",
        &iso,
        true,
        Some("Live safe mode (isolinux)"),
        &iso_safe,
    );

    // (5) A FAT12 filesystem (8 KiB clusters) on the whole disk (no partition table) with
    // syslinux.cfg; the named entry is chosen by its index.
    let whole = |entry: &str, extra: &str| line(Some("/dev/vda"), entry, extra);
    let (first, second) = (whole("first", ""), whole("second", "quiet"));
    let syslinux = format!(
        "DEFAULT second\nLABEL first\n  KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND {first}\n\
         LABEL second\n  KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND {second}\n"
    );
    let fat = Tree::new()
        .text("/syslinux.cfg", &syslinux)
        .copy("/vmlinuz", &kernel)
        .copy("/initrd.img", &initrd);
    let fat = images::fat(d, "whole-disk", &fat, 20, 12);
    boot("fat-whole-default", &fat, false, None, &second);
    boot("fat-whole-named", &fat, true, Some("0"), &first);

    Images { dir, marker, boots }
}

/// The value after `KEY ` on a line of the guest's report (the kernel's log never starts
/// a line with these).
fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    let tag = format!("{key} ");
    out.lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix(&tag).map(str::trim))
}

/// What is wrong with a boot's result, if anything: its status, the marker and the exact
/// command line the guest reported.
fn verdict(boot: &Boot, marker: &str, status: Option<i32>, stdout: &str) -> Option<String> {
    let mut wrong = Vec::new();
    if status != Some(0) {
        wrong.push(format!("status {status:?}"));
    }
    if field(stdout, "MARKER") != Some(marker) {
        wrong.push(format!("marker {:?}", field(stdout, "MARKER")));
    }
    if field(stdout, "CMDLINE") != Some(boot.cmdline.as_str()) {
        wrong.push(format!(
            "/proc/cmdline {:?}, not {:?}",
            field(stdout, "CMDLINE"),
            boot.cmdline
        ));
    }
    (!wrong.is_empty()).then(|| wrong.join("; "))
}

#[test]
fn every_layout_boots_its_default_and_a_named_entry_under_tcg() {
    let images = images();
    let started = Instant::now();
    // Two images at a time (each boot is a QEMU TCG guest of ~3-6 s), an image's boots
    // one after the other: QEMU locks a disk image it has open for writing.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut groups: Vec<Vec<Boot>> = Vec::new();
    for boot in &images.boots {
        match groups.iter_mut().find(|g| g[0].disk == boot.disk) {
            Some(g) => g.push(boot.clone()),
            None => groups.push(vec![boot.clone()]),
        }
    }
    let queue = Arc::new(Mutex::new(groups));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (queue, tx) = (queue.clone(), tx.clone());
            std::thread::spawn(move || {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                    let Some(group) = next else { break };
                    for boot in group {
                        let t = Instant::now();
                        let out = Command::new(DOMBOOT)
                            .args(["run", "--accel", "tcg"])
                            .args(boot.args())
                            .stdin(Stdio::null())
                            .output()
                            .expect("domboot runs");
                        let _ = tx.send((boot, out, t.elapsed()));
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let mut fails = Vec::new();
    let mut results: Vec<_> = rx.iter().collect();
    for w in workers {
        w.join().expect("worker");
    }
    results.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    assert_eq!(results.len(), images.boots.len());
    for (boot, out, took) in &results {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let verdict = verdict(boot, &images.marker, out.status.code(), &stdout);
        eprintln!(
            "  tcg {:<24} {:>6.1} s  {}",
            boot.name,
            took.as_secs_f64(),
            verdict.as_deref().unwrap_or("ok")
        );
        if let Some(v) = verdict {
            let tail: Vec<&str> = stdout.lines().rev().take(15).collect();
            fails.push(format!(
                "{}: {v}\n--- stderr ---\n{}\n--- stdout (last lines, newest first) ---\n{}",
                boot.name,
                String::from_utf8_lossy(&out.stderr),
                tail.join("\n")
            ));
        }
    }
    eprintln!(
        "tcg: {} boots in {:.1} s",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(fails.is_empty(), "{}", fails.join("\n\n"));
}

#[test]
fn every_layout_boots_its_default_and_a_named_entry_on_kvm_in_the_bench() {
    use domboot_testkit::nested::{Bench, INNER_FAULTS};
    let images = images();
    let mut bench = Bench::new(Path::new(DOMBOOT));
    for boot in &images.boots {
        bench.file(&boot.disk);
        let args: Vec<String> = boot.args().iter().map(|a| quote(a)).collect();
        bench.check(
            &boot.name,
            &format!("domboot run --accel kvm {}", args.join(" ")),
        );
    }
    bench.set_timeouts(Duration::from_secs(180));
    bench.retry_inner_faults(INNER_FAULTS);
    let run = bench.run().unwrap_or_else(|e| panic!("nested bench: {e}"));
    let mut fails = Vec::new();
    for boot in &images.boots {
        let Some(r) = run.result(&boot.name) else {
            fails.push(format!("{}: no result", boot.name));
            continue;
        };
        let verdict = verdict(boot, &images.marker, r.status, &r.stdout);
        eprintln!(
            "  kvm {:<24} {:>6.1} s  {}",
            boot.name,
            r.elapsed.as_secs_f64(),
            verdict.as_deref().unwrap_or("ok")
        );
        if let Some(v) = verdict {
            fails.push(format!("{}: {v}\n{}", boot.name, r.output()));
        }
    }
    eprintln!(
        "kvm bench: {} checks in {:.1} s; hung: {:?}; retried: {:?}",
        run.results.len(),
        run.elapsed.as_secs_f64(),
        run.hung,
        run.retried.iter().map(|r| &r.name).collect::<Vec<_>>()
    );
    let _ = &images.dir;
    assert!(fails.is_empty(), "{}", fails.join("\n\n"));
}

/// A word for the outer guest's `sh`, single-quoted.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}
