//! Real Linux kernels boot from images `domboot build` writes: QEMU (TCG) loads the image
//! with `-kernel`, the guest's /init reports a marker, its command line, the checksum of a
//! file inside the initramfs and its RAM, and each is checked.

use assert_cmd::Command;
use domboot_testkit as kit;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TINY_TIMEOUT: Duration = Duration::from_secs(90);
const DEBIAN_TIMEOUT: Duration = Duration::from_secs(180);

struct Boot<'a> {
    kernel: PathBuf,
    args: Vec<String>,
    memory: &'a str,
    cmdline: String,
    payload: Vec<u8>,
    busybox: PathBuf,
    timeout: Duration,
}

impl<'a> Boot<'a> {
    fn new(kernel: PathBuf) -> Boot<'a> {
        Boot {
            kernel,
            args: Vec::new(),
            memory: "512M",
            cmdline: "console=ttyS0 panic=-1 quiet".into(),
            payload: b"hello from the initramfs".to_vec(),
            busybox: kit::busybox(),
            timeout: TINY_TIMEOUT,
        }
    }
    fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }

    /// Builds the image, boots it and checks everything the guest reports.
    fn run(self) -> kit::GuestReport {
        let dir = tempfile::tempdir().unwrap();
        let marker = kit::marker();
        let initrd = kit::report_initramfs(dir.path(), &self.busybox, &marker, &self.payload);
        let image = dir.path().join("image.elf");
        let out = Command::cargo_bin("domboot")
            .unwrap()
            .arg("build")
            .arg("--kernel")
            .arg(&self.kernel)
            .arg("--initrd")
            .arg(&initrd)
            .args(["--cmdline", &self.cmdline, "--memory", self.memory])
            .args(&self.args)
            .arg("-o")
            .arg(&image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = kit::qemu_boot(&image, self.memory, &[], self.timeout);
        let ctx = || {
            format!(
                "{} {:?}:\n{}",
                self.kernel.display(),
                self.args,
                tail(&report.console)
            )
        };
        assert_eq!(report.marker.as_deref(), Some(marker.as_str()), "{}", ctx());
        assert_eq!(
            report.cmdline.as_deref(),
            Some(self.cmdline.as_str()),
            "{}",
            ctx()
        );
        assert_eq!(
            report.payload_sum.as_deref(),
            Some(kit::sha256_hex(&self.payload).as_str()),
            "{}",
            ctx()
        );
        report
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

fn cloud() -> PathBuf {
    kit::debian_kernel("cloud").vmlinuz
}

fn tiny(name: &str) -> PathBuf {
    kit::shared_kernel(&format!("bzImage-{name}"))
}

#[test]
fn debian_cloud_kernel_through_linux64() {
    let mut b = Boot::new(cloud()).arg("--boot-protocol").arg("linux64");
    b.timeout = DEBIAN_TIMEOUT;
    b.run();
}

#[test]
fn debian_cloud_kernel_through_linux32() {
    let mut b = Boot::new(cloud()).arg("--boot-protocol").arg("linux32");
    b.timeout = DEBIAN_TIMEOUT;
    b.run();
}

#[test]
fn debian_cloud_kernel_payload_elf_through_pvh() {
    let dir = tempfile::tempdir().unwrap();
    let vmlinux = dir.path().join("vmlinux");
    Command::cargo_bin("domboot")
        .unwrap()
        .arg("extract")
        .arg(cloud())
        .arg("-o")
        .arg(&vmlinux)
        .assert()
        .success();
    let mut b = Boot::new(vmlinux).arg("--boot-protocol").arg("pvh");
    b.timeout = DEBIAN_TIMEOUT;
    b.run();
}

#[test]
fn every_payload_compression_boots() {
    for c in ["gzip", "bzip2", "lzma", "xz", "lzo", "lz4", "zstd"] {
        Boot::new(tiny(&format!("x64-pvh-{c}"))).run();
    }
}

#[test]
fn non_relocatable_kernel_at_its_address_and_through_the_hook() {
    Boot::new(tiny("x64-norelo-gzip")).run();
    for protocol in ["linux64", "linux32"] {
        Boot::new(tiny("x64-norelo-gzip"))
            .arg("--load-address")
            .arg("0x2000000")
            .arg("--boot-protocol")
            .arg(protocol)
            .run();
    }
}

#[test]
fn i386_kernel_through_linux32() {
    let mut b = Boot::new(tiny("i386-norelo-xz"));
    b.busybox = kit::busybox_i386();
    let r = b.run();
    assert!(r.console.contains("MARKER"), "the 32-bit userland ran");
}

#[test]
fn hundred_megabyte_initrd() {
    let mut b = Boot::new(tiny("x64-pvh-zstd"));
    b.payload = (0..100u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    b.memory = "1G";
    b.timeout = Duration::from_secs(240);
    b.run();
}

#[test]
fn command_line_of_exactly_cmdline_size_minus_one() {
    let kernel = tiny("x64-pvh-lz4");
    let size = domboot_formats::open(&kernel, &Default::default())
        .unwrap()
        .bzimage()
        .and_then(|l| l.bzimage().map(|b| b.cmdline_size))
        .unwrap() as usize;
    let prefix = "console=ttyS0 panic=-1 quiet x=";
    let full = format!("{prefix}{}", "y".repeat(size - 1 - prefix.len()));
    assert_eq!(full.len(), size - 1);
    let mut b = Boot::new(kernel.clone());
    b.cmdline = full.clone();
    b.run();

    // One byte more is refused, and no image is left behind.
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.elf");
    let out = Command::cargo_bin("domboot")
        .unwrap()
        .arg("build")
        .arg("--kernel")
        .arg(&kernel)
        .args(["--cmdline", &format!("{full}z")])
        .arg("-o")
        .arg(&image)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("command line is {size} bytes")),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no output left behind"
    );
}

fn boots_with_memory(kernel: PathBuf, memory: &str, min_kib: u64, timeout: Duration) {
    let mut b = Boot::new(kernel);
    b.memory = memory;
    b.timeout = timeout;
    let r = b.run();
    let mem = r.mem_total_kib.expect("MemTotal reported");
    assert!(
        mem >= min_kib,
        "{memory}: guest sees {mem} KiB, expected at least {min_kib}"
    );
}

#[test]
fn small_memory_128m() {
    boots_with_memory(tiny("x64-pvh-gzip"), "128M", 100 << 10, TINY_TIMEOUT);
}

#[test]
fn memory_with_mmio_gap_3_5g() {
    // 3.5 GiB: RAM continues above 4 GiB past the MMIO gap.
    boots_with_memory(cloud(), "3584M", 3300 << 10, DEBIAN_TIMEOUT);
}

#[test]
fn memory_above_4g_5g() {
    boots_with_memory(cloud(), "5G", 4800 << 10, DEBIAN_TIMEOUT);
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.elf");
    let build = |args: &[&str]| {
        let out = Command::cargo_bin("domboot")
            .unwrap()
            .arg("build")
            .args(args)
            .arg("-o")
            .arg(&image)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!image.exists(), "{args:?} left an image");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let k = cloud();
    let k = k.to_str().unwrap();
    let err = build(&["--kernel", "/nonexistent/vmlinuz"]);
    assert!(err.contains("/nonexistent/vmlinuz: No such file"), "{err}");
    let err = build(&["--kernel", k, "--initrd", "/nonexistent/initrd"]);
    assert!(err.contains("/nonexistent/initrd: No such file"), "{err}");
    let norelo = tiny("x64-norelo-gzip");
    let err = build(&[
        "--kernel",
        norelo.to_str().unwrap(),
        "--boot-protocol",
        "pvh",
    ]);
    assert!(err.contains("XEN_ELFNOTE_PHYS32_ENTRY"), "{err}");
    let err = build(&["--kernel", k, "--memory", "8M"]);
    assert!(err.contains("below the minimum"), "{err}");
    let err = build(&[
        "--kernel",
        norelo.to_str().unwrap(),
        "--load-address",
        "0x1100000",
    ]);
    assert!(err.contains("overlaps kernel"), "{err}");
    let big = dir.path().join("big");
    std::fs::write(&big, vec![0u8; 80 << 20]).unwrap();
    let err = build(&[
        "--kernel",
        k,
        "--initrd",
        big.to_str().unwrap(),
        // The kernel takes 16-67.5 MiB (pref_address + init_size): 80 MiB fits neither
        // below nor above it.
        "--memory",
        "96M",
    ]);
    assert!(err.contains("initrd (80 MiB) does not fit"), "{err}");
}

#[test]
fn image_too_big_for_the_loaders_ram_says_so() {
    // Built for 1 GiB (the initrd sits near its top), booted with 256 MiB.
    let dir = tempfile::tempdir().unwrap();
    let initrd = kit::report_initramfs(dir.path(), &kit::busybox(), "m", b"x");
    let image = dir.path().join("image.elf");
    Command::cargo_bin("domboot")
        .unwrap()
        .arg("build")
        .arg("--kernel")
        .arg(tiny("x64-pvh-gzip"))
        .arg("--initrd")
        .arg(&initrd)
        .args(["--memory", "1G", "-o"])
        .arg(&image)
        .assert()
        .success();
    let r = kit::qemu_boot(&image, "256M", &[], TINY_TIMEOUT);
    assert!(r.console.contains("domboot:"), "{}", tail(&r.console));
    assert!(r.marker.is_none());
    let _ = Path::new("");
}
