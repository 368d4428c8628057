//! What we write, the real tools read back: GNU `cpio -i` extracts the same tree, `gzip`,
//! `zstd` and `lz4` accept and decompress the compressed forms to the same archive, and
//! reproducible builds are byte-identical.

mod common;

use common::*;
use domboot_initramfs::{Compression, Error, Initramfs, cpio};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

/// A tree with every kind of object: nested and empty directories, files of odd sizes and
/// modes (setuid included), symlinks (relative, absolute, dangling), a FIFO, device nodes
/// when running as root, and a socket (which must be skipped with a warning).
fn sample_tree(root: &Path) {
    let d = |p: &str| std::fs::create_dir_all(root.join(p)).unwrap();
    let f = |p: &str, data: &[u8], mode: u32| {
        std::fs::write(root.join(p), data).unwrap();
        chmod(&root.join(p), mode);
    };
    d("bin");
    d("etc/deep/er/still");
    d("empty");
    d("private");
    f("bin/tool", &payload(1_048_579, 1), 0o755);
    f("bin/suid", b"#!/bin/sh\n", 0o4755);
    f("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644);
    f("etc/empty", b"", 0o600);
    f("etc/deep/er/still/three", b"abc", 0o640);
    f("private/key", b"secret", 0o400);
    chmod(&root.join("private"), 0o700);
    symlink("../bin/tool", root.join("etc/rel-link")).unwrap();
    symlink("/bin/tool", root.join("abs-link")).unwrap();
    symlink("nowhere/at/all", root.join("dangling")).unwrap();
    let ok = Command::new("mkfifo")
        .arg(root.join("etc/fifo"))
        .status()
        .unwrap();
    assert!(ok.success());
    if is_root() {
        d("dev");
        for (name, kind, maj, min) in [("console", "c", "5", "1"), ("sda", "b", "8", "0")] {
            let ok = Command::new("mknod")
                .arg(root.join("dev").join(name))
                .args([kind, maj, min])
                .status()
                .unwrap();
            assert!(ok.success());
        }
    }
    std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
}

#[test]
fn dir_tree_round_trips_through_gnu_cpio() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let fs = Initramfs::new().dir_tree(&src, "/").unwrap();
    assert_eq!(fs.warnings().len(), 1, "{:?}", fs.warnings());
    assert!(fs.warnings()[0].contains("socket"));
    let archive = fs.to_bytes(Compression::None).unwrap();

    let entries = parse_newc(&archive);
    check_invariants(&entries);
    assert!(!entries.iter().any(|e| e.name == "sock"));

    let out = tmp.path().join("out");
    cpio_extract(&archive, &out);
    let mut want = snapshot(&src);
    want.remove("sock");
    assert_eq!(snapshot(&out), want);
}

#[test]
fn host_metadata_is_kept_outside_reproducible_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let ok = Command::new("touch")
        .args(["-d", "@1234567890"])
        .arg(src.join("f"))
        .status()
        .unwrap();
    assert!(ok.success());
    let entries = parse_newc(
        &Initramfs::new()
            .dir_tree(&src, "/")
            .unwrap()
            .to_bytes(Compression::None)
            .unwrap(),
    );
    assert_eq!(entries[0].mtime, 1_234_567_890);
    let entries = parse_newc(
        &Initramfs::new()
            .reproducible(true)
            .source_date_epoch(1_700_000_000)
            .dir_tree(&src, "/")
            .unwrap()
            .file("/g", 0o644, "y")
            .to_bytes(Compression::None)
            .unwrap(),
    );
    assert!(entries.iter().all(|e| e.mtime == 1_700_000_000));
    assert!(entries.iter().all(|e| e.uid == 0 && e.gid == 0));
}

#[test]
fn tree_under_a_subdirectory_gets_its_parents() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("x"), b"1").unwrap();
    let archive = Initramfs::new()
        .reproducible(true)
        .dir_tree(tmp.path(), "/opt/pkg")
        .unwrap()
        .to_bytes(Compression::None)
        .unwrap();
    let entries = parse_newc(&archive);
    check_invariants(&entries);
    let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["opt", "opt/pkg", "opt/pkg/x"]);
}

fn reproducible_sample(root: &Path, reverse: bool) -> Vec<u8> {
    let mut fs = Initramfs::new()
        .reproducible(true)
        .dir_tree(root, "/")
        .unwrap();
    let extra: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("/gen/{i:02}"), payload(1000 + i * 37, i as u64)))
        .collect();
    let mut order: Vec<_> = extra.iter().collect();
    if reverse {
        order.reverse();
    }
    for (p, d) in order {
        fs = fs.file(p, 0o644, d.clone());
    }
    fs.to_bytes(Compression::None).unwrap()
}

#[test]
fn reproducible_output_is_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    sample_tree(&a);
    let first = reproducible_sample(&a, false);
    let second = reproducible_sample(&a, false);
    assert_eq!(first, second, "same input, same bytes");

    // The same content made again later, in another order: new mtimes, new inodes,
    // another readdir order; the archive must not change.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = tmp.path().join("b");
    std::fs::create_dir_all(b.join("zz-made-first")).unwrap();
    sample_tree(&b);
    std::fs::remove_dir(b.join("zz-made-first")).unwrap();
    let third = reproducible_sample(&b, true);
    assert_eq!(first, third, "other mtimes and insertion order, same bytes");

    for c in [Compression::Gzip, Compression::Zstd, Compression::Lz4] {
        let x = Initramfs::new()
            .reproducible(true)
            .dir_tree(&a, "/")
            .unwrap()
            .to_bytes(c)
            .unwrap();
        let y = Initramfs::new()
            .reproducible(true)
            .dir_tree(&b, "/")
            .unwrap()
            .to_bytes(c)
            .unwrap();
        assert_eq!(x, y, "{c} output reproducible");
    }
}

#[test]
fn compressed_outputs_pass_the_tools_and_hold_the_same_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    // More than one parallel gzip block and more than one 8 MiB lz4 block.
    std::fs::write(src.join("big"), payload(9 << 20, 7)).unwrap();
    let fs = Initramfs::new()
        .reproducible(true)
        .dir_tree(&src, "/")
        .unwrap();
    let plain = fs.to_bytes(Compression::None).unwrap();
    for (c, tool) in [
        (Compression::Gzip, "gzip"),
        (Compression::Zstd, "zstd"),
        (Compression::Lz4, "lz4"),
    ] {
        let packed = fs.to_bytes(c).unwrap();
        assert!(packed.len() < plain.len(), "{c} compresses");
        let (ok, _, err) = pipe(tool, &["-t"], &packed);
        assert!(ok, "{tool} -t rejects our {c}: {err}");
        let (ok, out, err) = pipe(tool, &["-dc"], &packed);
        assert!(ok, "{tool} -dc: {err}");
        assert!(out == plain, "{tool} -dc gives back the archive");
    }
    // lz4: the legacy frame, which is what the kernel's unlz4 accepts.
    let lz4 = fs.to_bytes(Compression::Lz4).unwrap();
    assert_eq!(&lz4[..4], &0x184C_2102u32.to_le_bytes());
}

#[test]
fn writer_level_summary_and_thread_count_independence() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("big"), payload(3 << 20, 3)).unwrap();
    let fs = Initramfs::new()
        .reproducible(true)
        .dir_tree(tmp.path(), "/")
        .unwrap();
    for c in [Compression::Gzip, Compression::Zstd] {
        let mut outs = Vec::new();
        for threads in [1, 2, 5] {
            let mut out = Vec::new();
            let opts = domboot_initramfs::CompressOptions {
                level: None,
                threads,
            };
            let summary = fs.write_with(&mut out, c, &opts).unwrap();
            assert_eq!(summary.output_bytes, out.len() as u64);
            assert_eq!(summary.entries, 1);
            assert_eq!(summary.cpio_bytes % 512, 0);
            outs.push(out);
        }
        assert!(
            outs.windows(2).all(|w| w[0] == w[1]),
            "{c}: thread count changed the output"
        );
    }
    let bad = domboot_initramfs::CompressOptions {
        level: Some(99),
        threads: 1,
    };
    let err = fs
        .write_with(Vec::new(), Compression::Zstd, &bad)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOption(_)), "{err}");
}

#[test]
fn in_memory_entries_and_conflicts() {
    let archive = Initramfs::new()
        .reproducible(true)
        .file("/init", 0o755, "#!/bin/sh\n")
        .symlink("/sbin", "bin")
        .fifo("/run/fifo", 0o600)
        .essential_dev()
        .block_device("/dev/vda", 0o660, 254, 0)
        .to_bytes(Compression::None)
        .unwrap();
    let entries = parse_newc(&archive);
    check_invariants(&entries);
    let by_name = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
    assert_eq!(by_name("dev/console").mode, 0o020600);
    assert_eq!(by_name("dev/console").rdev, (5, 1));
    assert_eq!(by_name("dev/vda").mode, 0o060660);
    assert_eq!(by_name("dev/vda").rdev, (254, 0));
    assert_eq!(by_name("sbin").mode, 0o120777);
    assert_eq!(by_name("sbin").data, b"bin");
    assert_eq!(by_name("run").mode, 0o040755, "implied parent");
    assert_eq!(by_name("init").data, b"#!/bin/sh\n");

    // A later entry replaces an earlier one at the same path.
    let entries = parse_newc(
        &Initramfs::new()
            .file("/x", 0o644, "old")
            .file("//x/", 0o600, "new")
            .to_bytes(Compression::None)
            .unwrap(),
    );
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].data, b"new");

    let err = Initramfs::new()
        .file("/a", 0o644, "")
        .file("/a/b", 0o644, "")
        .to_bytes(Compression::None)
        .unwrap_err();
    assert!(matches!(err, Error::ParentNotDirectory { .. }), "{err}");
    assert!(err.to_string().contains("/a/b") && err.to_string().contains("/a "));

    let err = Initramfs::new()
        .file("/../etc/x", 0o644, "")
        .to_bytes(Compression::None)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidPath { .. }), "{err}");
    let err = Initramfs::new()
        .file("/x", 0o10644, "")
        .to_bytes(Compression::None)
        .unwrap_err();
    assert!(err.to_string().contains("/x"), "{err}");
    let long = format!("/{}", "n".repeat(cpio::HEADER_LEN * 40));
    let err = Initramfs::new()
        .file(&long, 0o644, "")
        .to_bytes(Compression::None)
        .unwrap_err();
    assert!(matches!(err, Error::NameTooLong { .. }), "{err}");
}

#[test]
fn host_file_changes_between_adding_and_writing_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("f");
    std::fs::write(&f, b"data").unwrap();
    let fs = Initramfs::new().host_file("/f", &f).unwrap();
    std::fs::remove_file(&f).unwrap();
    let err = fs.to_bytes(Compression::None).unwrap_err();
    assert!(err.to_string().contains(&*f.to_string_lossy()), "{err}");
    std::fs::create_dir(&f).unwrap();
    let err = fs.to_bytes(Compression::None).unwrap_err();
    assert!(err.to_string().contains("regular file"), "{err}");
    let err = Initramfs::new().host_file("/x", tmp.path()).unwrap_err();
    assert!(matches!(err, Error::UnsupportedFileType { .. }), "{err}");
    let err = Initramfs::new()
        .dir_tree(tmp.path().join("missing"), "/")
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    let err = Initramfs::new().dir_tree(f.join("x"), "/").unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn output_errors_are_write_errors() {
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    for c in Compression::ALL {
        let err = Initramfs::new()
            .file("/x", 0o644, vec![7u8; 3 << 20])
            .write_to(Full, c)
            .unwrap_err();
        assert!(matches!(err, Error::Write(_)), "{c}: {err}");
        assert!(err.to_string().contains("disk full"));
    }
}
