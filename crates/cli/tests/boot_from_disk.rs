//! `run` booting what a disk's boot loader would, with the disk attached: an xl
//! configuration with `bootloader = "pygrub"` (its `--entry=` choosing, its `extra`
//! appended as pygrub does) and `--boot-entry menu` answered on a terminal. The disk is
//! a GPT image with an ext4 root made with the real tools, holding Debian's cloud kernel,
//! an initramfs reporting a random marker and /proc/cmdline, and a grub.cfg with two
//! entries. Under TCG.

#[path = "../../bootdisk/tests/images/mod.rs"]
mod images;

use domboot_testkit as kit;
use images::Tree;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const DOMBOOT: &str = env!("CARGO_BIN_EXE_domboot");
const SECOND: &str = "console=ttyS0 panic=-1 quiet domboot.entry=second";

/// A GPT disk whose grub.cfg has "first" (the default) and "second" entries.
fn disk(dir: &Path, marker: &str) -> PathBuf {
    let initrd = kit::report_initramfs(dir, &kit::busybox(), marker, b"payload");
    let grub = format!(
        "set default=0\nset ver=6.1.0-57-cloud-amd64\n\
         menuentry 'first' {{\n\tlinux /boot/vmlinuz-$ver console=ttyS0 panic=-1 domboot.entry=first\n\tinitrd /boot/initrd.img-$ver\n}}\n\
         menuentry 'second' {{\n\tlinux /boot/vmlinuz-$ver {SECOND}\n\tinitrd /boot/initrd.img-$ver\n}}\n"
    );
    let tree = Tree::new()
        .text("/boot/grub/grub.cfg", &grub)
        .copy("/boot/vmlinuz-6.1.0-57-cloud-amd64", &images::kernel())
        .copy("/boot/initrd.img-6.1.0-57-cloud-amd64", &initrd);
    let root = images::ext4(dir, "root", &tree, 32);
    images::gpt_disk(dir, "boot", &[(Some(&root), "8300", "root")])
}

fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    let tag = format!("{key} ");
    out.lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix(&tag).map(str::trim))
}

#[test]
fn xl_pygrub_config_boots_the_chosen_entry_with_the_disk_attached() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let disk = disk(dir.path(), &marker);
    let cfg = dir.path().join("guest.cfg");
    std::fs::write(
        &cfg,
        format!(
            "name = \"pygrub-guest\"\nmemory = 512\nbootloader = \"pygrub\"\n\
             bootloader_args = [ \"--entry=1\" ]\nextra = \"domboot.extra=yes\"\n\
             disk = [ \"format=raw,vdev=xvda,access=rw,target={}\" ]\n",
            disk.display()
        ),
    )
    .unwrap();
    let out = Command::new(DOMBOOT)
        .args([
            "run",
            "-v",
            "--accel",
            "tcg",
            "--serial",
            "stdio",
            "--timeout",
            "180",
        ])
        .arg(&cfg)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    assert_eq!(field(&stdout, "MARKER"), Some(marker.as_str()), "{stdout}");
    assert_eq!(
        field(&stdout, "CMDLINE"),
        Some(format!("{SECOND} domboot.extra=yes").as_str()),
        "the second entry, with the file's extra appended\n{stdout}"
    );
    assert!(
        !stderr.contains("bootloader") || !stderr.contains("not supported"),
        "{stderr}"
    );
    // The disk the kernel came from is attached (QEMU's command line, shown by -v).
    assert!(
        stderr.contains(&format!("file={},format=raw", disk.display()))
            && stderr.contains("virtio-blk-pci,drive=disk0"),
        "{stderr}"
    );
}

#[test]
fn boot_entry_menu_asks_on_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let disk = disk(dir.path(), &marker);
    let inner = format!(
        "{DOMBOOT} run --accel tcg --memory 512M --timeout 180 --disk {} --bootloader \
         --boot-entry menu; echo STATUS=$?",
        disk.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        // The prompt has no newline: pass on what came whenever the reader stalls.
        loop {
            buf.clear();
            match r.read_until(b' ', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut seen = String::new();
    let mut wait_for = |what: &str| loop {
        if seen.contains(what) {
            return seen.clone();
        }
        match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(s) => seen.push_str(&s),
            Err(_) => panic!("no {what:?} in:\n{seen}"),
        }
    };
    let menu = wait_for("Entry to boot [0]:");
    assert!(menu.contains("first") && menu.contains("second"), "{menu}");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"1\n").unwrap();
    let all = wait_for("STATUS=");
    let _ = child.wait();
    let out = all.replace('\r', "");
    assert!(out.contains(&format!("MARKER {marker}")), "{out}");
    assert!(out.contains(&format!("CMDLINE {SECOND}")), "{out}");
}
