//! `domboot initrd` as a user runs it: sources, compression by suffix, reproducibility,
//! atomic output, and clear errors.

use assert_cmd::Command;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

fn domboot() -> Command {
    Command::cargo_bin("domboot").unwrap()
}

/// `tool args < input`, stdout.
fn pipe(tool: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Names in a cpio archive, as GNU `cpio -t` lists them.
fn cpio_list(archive: &[u8]) -> Vec<String> {
    String::from_utf8(pipe("cpio", &["-t", "--quiet"], archive))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `domboot args...` in `dir`, expecting failure with `want` in its stderr.
fn fails_with(dir: &Path, env: Option<(&str, &str)>, args: &[&str], want: &str) {
    let mut cmd = domboot();
    cmd.current_dir(dir).args(args);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(stderr.contains(want), "{args:?}: {stderr} lacks {want:?}");
}

fn sample_root(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc/hostname"), b"guest\n").unwrap();
    std::fs::write(dir.join("init"), b"#!/bin/sh\n").unwrap();
}

#[test]
fn builds_from_a_directory_with_compression_from_the_suffix() {
    let tmp = tempfile::tempdir().unwrap();
    sample_root(&tmp.path().join("root"));
    for (name, tool) in [
        ("i.cpio.gz", Some("gzip")),
        ("i.zst", Some("zstd")),
        ("i.lz4", Some("lz4")),
        ("i.cpio", None),
        ("initrd.img", Some("gzip")),
    ] {
        let out = tmp.path().join(name);
        let assert = domboot()
            .current_dir(tmp.path())
            .args(["initrd", "-o", name, "--dir", "root"])
            .assert()
            .success();
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(stderr.contains("entries"), "{stderr}");
        assert!(
            assert.get_output().stdout.is_empty(),
            "nothing on stdout, no progress bar when stderr is not a terminal"
        );
        let bytes = std::fs::read(&out).unwrap();
        let archive = match tool {
            Some(t) => pipe(t, &["-dc"], &bytes),
            None => bytes,
        };
        assert_eq!(
            cpio_list(&archive),
            ["etc", "etc/hostname", "init"],
            "{name}"
        );
    }
    // lz4: the legacy frame.
    let lz4 = std::fs::read(tmp.path().join("i.lz4")).unwrap();
    assert_eq!(&lz4[..4], &[0x02, 0x21, 0x4c, 0x18]);
}

#[test]
fn reproducible_runs_are_identical_and_honour_source_date_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    sample_root(&tmp.path().join("root"));
    let run = |out: &str, epoch: &str| {
        domboot()
            .current_dir(tmp.path())
            .env("SOURCE_DATE_EPOCH", epoch)
            .args(["initrd", "--reproducible", "--busybox", "--dir", "root"])
            .args(["--compress", "zstd", "-o", out])
            .assert()
            .success();
        std::fs::read(tmp.path().join(out)).unwrap()
    };
    let a = run("a", "1700000000");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(tmp.path().join("root/etc/hostname"), b"guest\n").unwrap();
    let b = run("b", "1700000000");
    assert!(a == b, "two --reproducible runs differ");
    let c = run("c", "1");
    assert!(a != c, "SOURCE_DATE_EPOCH is used");
    let archive = pipe("zstd", &["-dc"], &a);
    let listing = String::from_utf8(pipe("cpio", &["-tv", "--quiet"], &archive)).unwrap();
    assert!(listing.contains("bin/busybox"));
    assert!(listing.contains("usr/bin/awk -> /bin/busybox"), "{listing}");
    assert!(
        listing.contains("Nov 14  2023"),
        "mtime from SOURCE_DATE_EPOCH: {listing}"
    );

    fails_with(
        tmp.path(),
        Some(("SOURCE_DATE_EPOCH", "yesterday")),
        &["initrd", "--reproducible", "--dir", "root", "-o", "d"],
        "SOURCE_DATE_EPOCH",
    );
}

#[test]
fn lists_and_manifests() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("init.sh"), b"#!/bin/sh\n").unwrap();
    std::fs::write(
        d.join("files.txt"),
        "dir /dev 0755 0 0\nnod /dev/console 0600 0 0 c 5 1\nfile /init init.sh 0755 0 0\n",
    )
    .unwrap();
    std::fs::create_dir(d.join("m")).unwrap();
    std::fs::write(d.join("m/motd"), b"hello\n").unwrap();
    std::fs::write(
        d.join("m/image.toml"),
        "[[file]]\npath = \"/etc/motd\"\nsource = \"motd\"\n\n[[symlink]]\npath = \"/sbin\"\ntarget = \"bin\"\n",
    )
    .unwrap();
    domboot()
        .current_dir(d)
        .args(["initrd", "-o", "out.cpio", "--list", "files.txt"])
        .args(["--manifest", "m/image.toml"])
        .assert()
        .success();
    let names = cpio_list(&std::fs::read(d.join("out.cpio")).unwrap());
    assert_eq!(
        names,
        ["dev", "dev/console", "etc", "etc/motd", "init", "sbin"]
    );
}

#[test]
fn errors_are_clear_and_leave_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("bad.txt"),
        "dir /x 0755 0 0\nnod /c 0600 0 0 q 1 1\n",
    )
    .unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["initrd", "-o", "x"], "nothing to put into the image"),
        (&["initrd", "-o", "x", "--list", "bad.txt"], "bad.txt:2:"),
        (&["initrd", "-o", "x", "--dir", "missing"], "missing"),
        (
            &["initrd", "-o", "x", "--busybox", "/usr/bin/ls"],
            "apt-get install busybox-static",
        ),
        (
            &["initrd", "-o", "x", "--busybox", "--compress", "bzip2"],
            "unknown compression",
        ),
        (
            &["initrd", "-o", "x", "--busybox", "--level", "12"],
            "gzip level 12 is out of range",
        ),
        (
            &["initrd", "-o", "no/such/dir/x", "--busybox"],
            "no/such/dir",
        ),
    ];
    for (args, want) in cases {
        fails_with(d, None, args, want);
    }
    // Nothing left behind: no output, no temporary file.
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["bad.txt"]);

    // A failed build does not touch an existing output.
    std::fs::write(d.join("keep.gz"), b"old").unwrap();
    domboot()
        .current_dir(d)
        .args(["initrd", "-o", "keep.gz", "--list", "bad.txt"])
        .assert()
        .failure();
    assert_eq!(std::fs::read(d.join("keep.gz")).unwrap(), b"old");
}
