//! Images `domboot build` writes for inputs from elsewhere boot as their loaders would
//! boot them (issue 14): a UKI given an extra initrd gets it appended to its own, as
//! systemd-stub does; an i386 kernel's image is an ELF32 that `qemu-system-i386` boots.

use assert_cmd::Command;
use domboot_testkit as kit;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn build(args: &[&str]) -> String {
    let out = Command::cargo_bin("domboot")
        .unwrap()
        .arg("build")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    stderr
}

/// A UKI the way systemd's documentation builds one with objcopy.
fn uki(dir: &Path, kernel: &Path, initrd: &Path, cmdline: &str) -> PathBuf {
    assert!(
        Path::new(STUB).exists(),
        "{STUB} missing (package systemd-boot-efi)"
    );
    std::fs::write(dir.join("cmdline"), cmdline).unwrap();
    let out = dir.join("uki.efi");
    let status = std::process::Command::new("objcopy")
        .current_dir(dir)
        .args(["--add-section", ".cmdline=cmdline", "--change-section-vma"])
        .arg(".cmdline=0x30000")
        .arg("--add-section")
        .arg(format!(".linux={}", kernel.display()))
        .args(["--change-section-vma", ".linux=0x2000000", "--add-section"])
        .arg(format!(".initrd={}", initrd.display()))
        .args(["--change-section-vma", ".initrd=0x3000000", STUB])
        .arg(&out)
        .status()
        .expect("objcopy (binutils) runs");
    assert!(status.success(), "objcopy failed");
    out
}

/// A gzip'd newc archive holding only `/payload`, made with the host's cpio.
fn payload_archive(dir: &Path, payload: &[u8]) -> PathBuf {
    let root = dir.join("extra-root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("payload"), payload).unwrap();
    let out = dir.join("extra.cpio.gz");
    let script = format!(
        "cd '{}' && echo payload | cpio -o -H newc --quiet | gzip -1 > '{}'",
        root.display(),
        out.display()
    );
    let status = std::process::Command::new("sh")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success());
    out
}

#[test]
fn uki_keeps_its_initrd_and_appends_the_given_one_like_systemd_stub() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let embedded = kit::report_initramfs(dir.path(), &kit::busybox(), &marker, b"embedded");
    // Unpacked after the UKI's own archive, the extra one replaces /payload: the guest's
    // checksum tells which archive came last, the marker that the UKI's /init ran.
    let extra_payload = b"appended by --initrd";
    let extra = payload_archive(dir.path(), extra_payload);
    let cmdline = "console=ttyS0 panic=-1 quiet\n";
    let kernel = kit::shared_kernel("bzImage-x64-pvh-gzip");
    let uki = uki(dir.path(), &kernel, &embedded, cmdline);

    // extract writes the .cmdline section as stored, newline included.
    let part = dir.path().join("cmdline.out");
    Command::cargo_bin("domboot")
        .unwrap()
        .args(["extract", s(&uki), "--uki-part", "cmdline", "-o", s(&part)])
        .assert()
        .success();
    assert_eq!(std::fs::read(&part).unwrap(), cmdline.as_bytes());

    let image = dir.path().join("image.elf");
    build(&[
        "--kernel",
        s(&uki),
        "--initrd",
        s(&extra),
        "--memory",
        "256M",
        "-o",
        s(&image),
    ]);
    let r = kit::qemu_boot(&image, "256M", &[], BOOT_TIMEOUT);
    let tail = || {
        r.console
            .chars()
            .rev()
            .take(3000)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    };
    assert_eq!(r.marker.as_deref(), Some(marker.as_str()), "{}", tail());
    assert_eq!(r.cmdline.as_deref(), Some(cmdline.trim_end()), "{}", tail());
    assert_eq!(
        r.payload_sum.as_deref(),
        Some(kit::sha256_hex(extra_payload).as_str()),
        "{}",
        tail()
    );
}

/// Runs `binary -accel tcg ARGS -kernel IMAGE` with the serial console on stdout; returns
/// what it printed, or panics after `timeout`.
fn qemu(binary: &str, image: &Path, memory: &str, timeout: Duration) -> String {
    let mut child = std::process::Command::new(binary)
        .args([
            "-accel",
            "tcg",
            "-M",
            "pc",
            "-m",
            memory,
            "-no-reboot",
            "-nographic",
        ])
        .args(["-nodefaults", "-serial", "stdio", "-kernel"])
        .arg(image)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{binary} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text
}

#[test]
fn i386_kernel_image_is_elf32_and_both_qemus_boot_it() {
    let dir = tempfile::tempdir().unwrap();
    let marker = kit::marker();
    let initrd = kit::report_initramfs(dir.path(), &kit::busybox_i386(), &marker, b"i386");
    let image = dir.path().join("i386.elf");
    let kernel = kit::shared_kernel("bzImage-i386-norelo-xz");
    let msg = build(&[
        "--kernel",
        s(&kernel),
        "--initrd",
        s(&initrd),
        "--cmdline",
        "console=ttyS0 panic=-1",
        "--memory",
        "256M",
        "-o",
        s(&image),
    ]);
    assert!(msg.contains("linux32 protocol, ELF32"), "{msg}");
    let head = std::fs::read(&image).unwrap();
    assert_eq!(head[4], 1, "ELFCLASS32");
    assert_eq!(u16::from_le_bytes([head[18], head[19]]), 3, "EM_386");
    for binary in ["qemu-system-i386", "qemu-system-x86_64"] {
        let console = qemu(binary, &image, "256M", BOOT_TIMEOUT);
        assert!(
            console.contains(&format!("MARKER {marker}")),
            "{binary}:\n{console}"
        );
    }
}
