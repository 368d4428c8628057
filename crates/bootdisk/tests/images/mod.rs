//! Builds disk images for the tests with the real tools (sgdisk, parted, mkfs.ext4 -d,
//! mkfs.vfat + mcopy, xorriso), so the readers are checked against what the tools write,
//! not against our own idea of the formats. A missing tool fails the test and says which
//! package scripts/setup.sh installs.
#![allow(dead_code)]

pub mod layouts;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A file tree to put into a filesystem.
#[derive(Default, Clone)]
pub struct Tree(Vec<(String, Node)>);

#[derive(Clone)]
enum Node {
    Bytes(Vec<u8>),
    Copy(PathBuf),
    Symlink(String),
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }
    pub fn text(mut self, path: &str, text: &str) -> Tree {
        self.0
            .push((path.into(), Node::Bytes(text.as_bytes().to_vec())));
        self
    }
    pub fn bytes(mut self, path: &str, bytes: &[u8]) -> Tree {
        self.0.push((path.into(), Node::Bytes(bytes.to_vec())));
        self
    }
    pub fn copy(mut self, path: &str, from: &Path) -> Tree {
        self.0.push((path.into(), Node::Copy(from.to_path_buf())));
        self
    }
    pub fn symlink(mut self, path: &str, target: &str) -> Tree {
        self.0.push((path.into(), Node::Symlink(target.into())));
        self
    }

    /// Writes the tree under a new directory in `dir`.
    fn stage(&self, dir: &Path, name: &str) -> PathBuf {
        let root = dir.join(format!("stage-{name}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        for (path, node) in &self.0 {
            let p = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            match node {
                Node::Bytes(b) => std::fs::write(&p, b).unwrap(),
                Node::Copy(from) => {
                    std::fs::copy(from, &p).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
                }
                Node::Symlink(t) => std::os::unix::fs::symlink(t, &p).unwrap(),
            }
        }
        root
    }
}

/// Runs a tool; panics with its output, or with the package to install when it is missing.
pub fn run(program: &str, args: &[&str], package: &str) -> String {
    let out = Command::new(program).args(args).env("MTOOLS_SKIP_CHECK", "1").output().unwrap_or_else(|e| {
        panic!("{program} cannot run ({e}): install the Debian package {package} (scripts/setup.sh does)")
    });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An ext4 filesystem image of `mib` MiB holding `tree` (mkfs.ext4 -d).
pub fn ext4(dir: &Path, name: &str, tree: &Tree, mib: u64) -> PathBuf {
    ext(dir, name, tree, mib, "ext4")
}

/// An ext2, ext3 or ext4 (`kind`) filesystem image of `mib` MiB holding `tree`.
pub fn ext(dir: &Path, name: &str, tree: &Tree, mib: u64, kind: &str) -> PathBuf {
    let root = tree.stage(dir, name);
    let img = dir.join(format!("{name}.{kind}"));
    run(
        &format!("mkfs.{kind}"),
        &[
            "-q",
            "-F",
            "-L",
            name,
            "-d",
            s(&root),
            s(&img),
            &format!("{mib}M"),
        ],
        "e2fsprogs",
    );
    img
}

/// A FAT12/16/32 (`bits`) image of `mib` MiB holding `tree` (mkfs.vfat, then mmd/mcopy).
pub fn fat(dir: &Path, name: &str, tree: &Tree, mib: u64, bits: u32) -> PathBuf {
    let root = tree.stage(dir, name);
    let img = dir.join(format!("{name}.fat"));
    let _ = std::fs::remove_file(&img);
    run(
        "mkfs.vfat",
        &[
            "-C",
            "-F",
            &bits.to_string(),
            "-n",
            "BOOT",
            s(&img),
            &(mib * 1024).to_string(),
        ],
        "dosfstools",
    );
    for entry in std::fs::read_dir(&root).unwrap() {
        let p = entry.unwrap().path();
        run("mcopy", &["-s", "-i", s(&img), s(&p), "::"], "mtools");
    }
    img
}

/// An ISO9660 image with Rock Ridge and Joliet holding `tree` (xorriso -as mkisofs).
pub fn iso(dir: &Path, name: &str, tree: &Tree) -> PathBuf {
    let root = tree.stage(dir, name);
    let img = dir.join(format!("{name}.iso"));
    run(
        "xorriso",
        &[
            "-as",
            "mkisofs",
            "-quiet",
            "-R",
            "-J",
            "-V",
            "DOMBOOT",
            "-o",
            s(&img),
            s(&root),
        ],
        "xorriso",
    );
    img
}

const MIB: u64 = 1 << 20;

fn mib_of(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len().div_ceil(MIB)
}

/// Copies filesystem images into `disk` at the given byte offsets.
fn place(disk: &Path, parts: &[(u64, &Path)]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(disk).unwrap();
    for (offset, img) in parts {
        f.seek(SeekFrom::Start(*offset)).unwrap();
        f.write_all(&std::fs::read(img).unwrap()).unwrap();
    }
}

/// A GPT disk (sgdisk) with one partition per (filesystem image or None for an empty one
/// of 1 MiB, type code, name), starting at 1 MiB.
pub fn gpt_disk(dir: &Path, name: &str, parts: &[(Option<&Path>, &str, &str)]) -> PathBuf {
    let disk = dir.join(format!("{name}.img"));
    let sizes: Vec<u64> = parts
        .iter()
        .map(|(img, _, _)| img.map_or(1, mib_of))
        .collect();
    let total = 2 + sizes.iter().sum::<u64>();
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(total * MIB)
        .unwrap();
    let mut args = vec!["-o".to_string()];
    let mut start = MIB;
    let mut placed = Vec::new();
    for (i, ((img, code, pname), size)) in parts.iter().zip(&sizes).enumerate() {
        let n = i + 1;
        args.push(format!(
            "-n={n}:{}:{}",
            start / 512,
            (start + size * MIB) / 512 - 1
        ));
        args.push(format!("-t={n}:{code}"));
        args.push(format!("-c={n}:{pname}"));
        if let Some(img) = img {
            placed.push((start, *img));
        }
        start += size * MIB;
    }
    args.push(s(&disk).to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("sgdisk", &args, "gdisk");
    place(&disk, &placed);
    disk
}

/// An MBR disk (parted) with `primary` partitions, then an extended partition holding
/// `logical` ones; each a filesystem image, placed where parted put the partition.
pub fn mbr_disk(dir: &Path, name: &str, primary: &[&Path], logical: &[&Path]) -> PathBuf {
    let disk = dir.join(format!("{name}.img"));
    let all: Vec<u64> = primary.iter().chain(logical).map(|p| mib_of(p)).collect();
    let total = 3 + all.iter().sum::<u64>() + logical.len() as u64;
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(total * MIB)
        .unwrap();
    let mut script = vec!["mklabel".to_string(), "msdos".to_string()];
    let mut at = 1;
    for p in primary {
        let end = at + mib_of(p);
        script.extend(
            [
                "mkpart",
                "primary",
                &format!("{at}MiB"),
                &format!("{end}MiB"),
            ]
            .map(String::from),
        );
        at = end;
    }
    if !logical.is_empty() {
        script.extend(["mkpart", "extended", &format!("{at}MiB"), "100%"].map(String::from));
        for p in logical {
            let start = at + 1;
            let end = start + mib_of(p);
            script.extend(
                [
                    "mkpart",
                    "logical",
                    &format!("{start}MiB"),
                    &format!("{end}MiB"),
                ]
                .map(String::from),
            );
            at = end;
        }
    }
    let mut args = vec!["-s", s(&disk)];
    args.extend(script.iter().map(String::as_str));
    run("parted", &args, "parted");
    // Where parted put each partition: "N:STARTB:ENDB:..." lines.
    let table = run(
        "parted",
        &["-s", "-m", s(&disk), "unit", "B", "print"],
        "parted",
    );
    let mut starts = std::collections::BTreeMap::new();
    for line in table.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if let (Some(n), Some(start)) = (f.first().and_then(|n| n.parse::<u32>().ok()), f.get(1)) {
            starts.insert(n, start.trim_end_matches('B').parse::<u64>().unwrap());
        }
    }
    let mut placed = Vec::new();
    for (i, p) in primary.iter().enumerate() {
        placed.push((starts[&(i as u32 + 1)], *p));
    }
    for (i, p) in logical.iter().enumerate() {
        placed.push((starts[&(i as u32 + 5)], *p));
    }
    place(&disk, &placed);
    disk
}

/// The Debian cloud kernel scripts/setup.sh caches.
pub fn kernel() -> PathBuf {
    let k = domboot_testkit::debian_kernel("cloud").vmlinuz;
    assert!(
        k.exists(),
        "{} missing: run scripts/setup.sh --install-only",
        k.display()
    );
    k
}

const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

/// A unified kernel image of `kernel`, `initrd` and `cmdline`, built as systemd's
/// documentation does with objcopy and systemd-boot's stub.
pub fn uki(dir: &Path, name: &str, kernel: &Path, initrd: &[u8], cmdline: &str) -> PathBuf {
    assert!(
        Path::new(STUB).exists(),
        "{STUB} missing: install the Debian package systemd-boot-efi (scripts/setup.sh does)"
    );
    let part = |p: &str| dir.join(format!("{name}-{p}"));
    std::fs::write(part("initrd"), initrd).unwrap();
    std::fs::write(part("cmdline"), cmdline).unwrap();
    std::fs::write(
        part("osrel"),
        "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    )
    .unwrap();
    std::fs::write(part("uname"), "6.1.0-57-cloud-amd64\n").unwrap();
    let out = dir.join(format!("{name}.efi"));
    let section = |n: &str, p: &Path| format!(".{n}={}", p.display());
    let args = [
        "--add-section".to_string(),
        section("osrel", &part("osrel")),
        "--change-section-vma".into(),
        ".osrel=0x20000".into(),
        "--add-section".into(),
        section("cmdline", &part("cmdline")),
        "--change-section-vma".into(),
        ".cmdline=0x30000".into(),
        "--add-section".into(),
        section("uname", &part("uname")),
        "--change-section-vma".into(),
        ".uname=0x40000".into(),
        "--add-section".into(),
        section("linux", kernel),
        "--change-section-vma".into(),
        ".linux=0x2000000".into(),
        "--add-section".into(),
        section("initrd", &part("initrd")),
        "--change-section-vma".into(),
        ".initrd=0x3000000".into(),
        STUB.into(),
        s(&out).into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("objcopy", &args, "binutils");
    out
}
