//! `run --exec guest.cfg` honours the configuration: vcpus, memory, extra (the command
//! line) and ramdisk, on Debian's cloud kernel under TCG.

use domboot_initramfs::{Compression, Initramfs};
use domboot_testkit as kit;
use std::process::{Command, Stdio};

#[test]
fn an_xl_configuration_sets_cpus_memory_cmdline_and_ramdisk() {
    let dir = tempfile::tempdir().unwrap();
    let ramdisk = dir.path().join("extra.cpio");
    let bytes = Initramfs::new()
        .file("/etc/from-ramdisk", 0o644, b"ramdisk-file\n".to_vec())
        .to_bytes(Compression::None)
        .unwrap();
    std::fs::write(&ramdisk, bytes).unwrap();
    let cfg = dir.path().join("guest.cfg");
    std::fs::write(
        &cfg,
        format!(
            "name = \"exec\"\nkernel = \"{}\"\nramdisk = \"extra.cpio\"\nmemory = 384\n\
             vcpus = 2\nextra = \"domboot_test=yes\"\n",
            kit::debian_kernel("cloud").vmlinuz.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_domboot"))
        .arg("run")
        .arg(&cfg)
        // The ramdisk's /etc/from-ramdisk is in the busybox userland's /.
        .args(["--timeout", "120", "--rootfs", "busybox", "--exec"])
        .arg("nproc; cat /etc/from-ramdisk; cat /proc/cmdline; sed -n 's/MemTotal: *//p' /proc/meminfo")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], "2", "vcpus = 2");
    assert_eq!(lines[1], "ramdisk-file");
    assert!(
        lines[2].split_whitespace().any(|p| p == "domboot_test=yes"),
        "extra reaches the kernel: {}",
        lines[2]
    );
    let kib: u64 = lines[3].trim_end_matches(" kB").parse().unwrap();
    assert!(
        (300 << 10..=384 << 10).contains(&kib),
        "memory = 384: {kib} kB"
    );
}
