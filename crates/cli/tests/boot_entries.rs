//! `domboot boot-entries` lists what disk images built with the real tools define, and
//! `plan`/`build --disk IMG --bootloader [--boot-entry N|TITLE]` use the chosen entry's
//! kernel, initrds and command line: the image they build is byte for byte the one built
//! from the same files given with --kernel/--initrd/--cmdline.

#[path = "../../bootdisk/tests/images/mod.rs"]
mod images;

use assert_cmd::Command;
use images::layouts::{self, Layout};
use std::path::{Path, PathBuf};

fn domboot(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("domboot")
        .unwrap()
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = domboot(args);
    assert!(
        out.status.success(),
        "domboot {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = domboot(args);
    assert!(!out.status.success(), "domboot {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The JSON listing matches the layout: titles, order, default, partitions, paths, cmdlines.
fn check_listing(layout: &Layout) {
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["boot-entries", s(&layout.disk), "--json"])).unwrap();
    let entries = json["entries"].as_array().unwrap();
    assert_eq!(entries.len(), layout.entries.len(), "{json:#}");
    for (i, (got, want)) in entries.iter().zip(&layout.entries).enumerate() {
        assert_eq!(got["index"], i);
        assert_eq!(got["title"], want.title, "{got:#}");
        assert_eq!(got["partition"], want.partition, "{got:#}");
        assert_eq!(got["kernel"], want.kernel, "{got:#}");
        assert_eq!(got["initrds"], serde_json::json!(want.initrds), "{got:#}");
        assert_eq!(got["cmdline"], want.cmdline, "{got:#}");
        assert_eq!(got["default"], i == layout.default, "{got:#}");
    }
    assert_eq!(json["default"], layout.default);
    // The table marks the default with '*' on its line.
    let text = ok(&["boot-entries", s(&layout.disk)]);
    let line = text
        .lines()
        .find(|l| l.starts_with('*'))
        .expect("a default line");
    assert!(
        line.contains(layout.entries[layout.default].title),
        "{text}"
    );
}

#[test]
fn boot_entries_lists_every_layout() {
    let dir = tempfile::tempdir().unwrap();
    for layout in [
        layouts::gpt_bls(dir.path()),
        layouts::gpt_grub(dir.path()),
        layouts::mbr_extlinux_menulst(dir.path()),
        layouts::iso_installer(dir.path()),
        layouts::whole_disk_fat12(dir.path()),
    ] {
        check_listing(&layout);
    }
    let text = ok(&["boot-entries", s(&layouts::gpt_grub(dir.path()).disk)]);
    assert!(
        text.contains("partition 2 (gpt)") && text.contains("grub"),
        "{text}"
    );
}

/// Builds with `disk_args`, then with the host files, and compares the two images.
fn same_build(dir: &Path, disk_args: &[&str], kernel: &Path, initrds: &[Vec<u8>], cmdline: &str) {
    let a = dir.join("from-disk.elf");
    let b = dir.join("from-files.elf");
    let mut args = vec!["build", "--no-rng-seed", "-o", s(&a)];
    args.extend_from_slice(disk_args);
    ok(&args);
    let files: Vec<PathBuf> = initrds
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let p = dir.join(format!("host-initrd-{i}"));
            std::fs::write(&p, bytes).unwrap();
            p
        })
        .collect();
    let mut args = vec![
        "build",
        "--no-rng-seed",
        "-o",
        s(&b),
        "--kernel",
        s(kernel),
        "--cmdline",
        cmdline,
    ];
    for f in &files {
        args.extend(["--initrd", s(f)]);
    }
    ok(&args);
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "{disk_args:?} built another image than {args:?}"
    );
}

#[test]
fn plan_and_build_use_the_default_or_the_named_entry() {
    let dir = tempfile::tempdir().unwrap();
    let k = images::kernel();
    let grub = layouts::gpt_grub(dir.path());
    let disk = s(&grub.disk).to_string();
    let i57 = layouts::initrd_bytes("57");
    // Default: the recovery entry inside the submenu.
    same_build(
        dir.path(),
        &["--disk", &disk, "--bootloader"],
        &k,
        std::slice::from_ref(&i57),
        grub.entries[2].cmdline,
    );
    // By title, by index, and with the command line overridden.
    same_build(
        dir.path(),
        &[
            "--disk",
            &disk,
            "--bootloader",
            "--boot-entry",
            "Debian GNU/Linux",
        ],
        &k,
        std::slice::from_ref(&i57),
        grub.entries[0].cmdline,
    );
    same_build(
        dir.path(),
        &["--disk", &disk, "--bootloader", "--boot-entry", "1"],
        &k,
        std::slice::from_ref(&i57),
        grub.entries[1].cmdline,
    );
    same_build(
        dir.path(),
        &[
            "--disk",
            &disk,
            "--bootloader",
            "--cmdline",
            "console=ttyS0 mine",
        ],
        &k,
        &[i57],
        "console=ttyS0 mine",
    );

    // BLS: loader.conf's default has two initrds; a named entry another one.
    let bls = layouts::gpt_bls(dir.path());
    let disk = format!("{},ro", s(&bls.disk));
    let (ucode, i9, i10) = (
        layouts::initrd_bytes("ucode"),
        layouts::initrd_bytes("9"),
        layouts::initrd_bytes("10"),
    );
    same_build(
        dir.path(),
        &["--disk", &disk, "--bootloader"],
        &k,
        &[ucode, i9],
        bls.entries[2].cmdline,
    );
    same_build(
        dir.path(),
        &[
            "--disk",
            &disk,
            "--bootloader",
            "--boot-entry",
            "debian-6.1.0-10-amd64",
        ],
        &k,
        &[i10],
        bls.entries[1].cmdline,
    );

    // A UKI boots with what it embeds, as with --kernel UKI.
    let a = ok(&[
        "plan",
        "--no-rng-seed",
        "--disk",
        &disk,
        "--bootloader",
        "--boot-entry",
        "debian-6.1.0-57.efi",
    ]);
    let b = ok(&[
        "plan",
        "--no-rng-seed",
        "--kernel",
        s(&dir.path().join("uki57.efi")),
    ]);
    assert_eq!(a, b);

    // plan shows the same plan as with the files themselves.
    let from_disk = ok(&[
        "plan",
        "--no-rng-seed",
        "--disk",
        s(&grub.disk),
        "--disk",
        s(&bls.disk),
        "--bootloader",
        "--boot-entry",
        "Debian GNU/Linux",
    ]);
    let host_initrd = dir.path().join("i57");
    std::fs::write(&host_initrd, layouts::initrd_bytes("57")).unwrap();
    let from_files = ok(&[
        "plan",
        "--no-rng-seed",
        "--kernel",
        s(&k),
        "--initrd",
        s(&host_initrd),
        "--cmdline",
        grub.entries[0].cmdline,
    ]);
    assert_eq!(from_disk, from_files);
}

#[test]
fn bootloader_option_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let grub = layouts::gpt_grub(dir.path());
    let disk = s(&grub.disk);
    let err = fails(&[
        "plan",
        "--disk",
        disk,
        "--bootloader",
        "--boot-entry",
        "menu",
    ]);
    assert!(
        err.contains("--boot-entry menu") && err.contains("domboot run"),
        "{err}"
    );
    let err = fails(&[
        "plan",
        "--disk",
        disk,
        "--bootloader",
        "--boot-entry",
        "Windows",
    ]);
    assert!(
        err.contains("no boot entry \"Windows\"") && err.contains("Debian GNU/Linux"),
        "{err}"
    );
    let err = fails(&["plan", "--bootloader"]);
    assert!(err.contains("--disk"), "{err}");
    let err = fails(&["plan", "--disk", disk, "--bootloader", "--kernel", disk]);
    assert!(err.contains("cannot be used with"), "{err}");
    let err = fails(&[
        "plan",
        "--disk",
        disk,
        "--bootloader",
        "--boot-entry",
        "Symlink loop",
    ]);
    assert!(
        err.contains("/loop1")
            && err.contains("partition 2 (gpt)")
            && err.contains("more than 40 symlinks"),
        "{err}"
    );
    let err = fails(&["boot-entries", s(&dir.path().join("absent.img"))]);
    assert!(
        err.contains("absent.img") && err.contains("cannot read the image"),
        "{err}"
    );
    // A FAT directory at a reserved cluster (fatfs panics on it): a clean error, no panic text.
    let tree = images::Tree::new().text("/boot/grub/grub.cfg", "menuentry A { linux /a }\n");
    let fat = images::fat(dir.path(), "fat16", &tree, 16, 16);
    let mut bytes = std::fs::read(&fat).unwrap();
    let u16_at = |b: &[u8], o: usize| usize::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let root =
        (u16_at(&bytes, 14) + usize::from(bytes[16]) * u16_at(&bytes, 22)) * u16_at(&bytes, 11);
    let entry = (root..root + 512)
        .step_by(32)
        .find(|&e| &bytes[e..e + 11] == b"BOOT       " && bytes[e + 11] & 0x10 != 0)
        .unwrap();
    bytes[entry + 26] = 1;
    std::fs::write(&fat, bytes).unwrap();
    let err = fails(&["boot-entries", s(&fat)]);
    assert!(
        err.contains("fat16.fat, whole disk") && err.contains("corrupt FAT filesystem"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let err = fails(&["plan", "--disk", "x.img,rx", "--bootloader"]);
    assert!(err.contains("unknown disk flag"), "{err}");
}
