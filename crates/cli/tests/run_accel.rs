//! `domboot run` picks its accelerator: on this workplace's PVM host, auto must choose TCG
//! and say why with --verbose, and the Debian cloud kernel must still reach /init.

use assert_cmd::Command;
use domboot_testkit as kit;

fn is_pvm_host() -> bool {
    std::path::Path::new("/sys/module/kvm_pvm").exists()
}

#[test]
fn debian_kernel_reaches_init_with_auto_and_with_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = kit::debian_kernel("cloud").vmlinuz;
    for accel in ["auto", "tcg"] {
        let marker = kit::marker();
        let initrd = kit::report_initramfs(dir.path(), &kit::busybox(), &marker, b"x");
        let out = Command::cargo_bin("domboot")
            .unwrap()
            .arg("run")
            .arg("--kernel")
            .arg(&kernel)
            .arg("--initrd")
            .arg(&initrd)
            .args([
                "--cmdline",
                "console=ttyS0 panic=-1 quiet",
                "--timeout",
                "180",
            ])
            .args(["--accel", accel, "--verbose"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{accel}: {stderr}");
        assert!(
            stdout.contains(&format!("MARKER {marker}")),
            "{accel}: {stdout}"
        );
        if accel == "auto" && is_pvm_host() {
            assert!(stderr.contains("accelerator Tcg"), "{stderr}");
            assert!(stderr.contains("PVM"), "says why: {stderr}");
        }
    }
}

#[test]
fn kvm_on_a_pvm_host_refuses_a_stock_kernel_at_once() {
    if !is_pvm_host() {
        // On a host with real VMX/SVM a stock kernel boots on KVM; this test is about PVM.
        eprintln!("not a PVM host: nothing to check");
        return;
    }
    let run = |extra: &[&str]| {
        let started = std::time::Instant::now();
        let out = Command::cargo_bin("domboot")
            .unwrap()
            .arg("run")
            .arg("--kernel")
            .arg(kit::shared_kernel("bzImage-x64-pvh-gzip"))
            .args(["--accel", "kvm", "--timeout", "5", "--serial", "none"])
            .args(extra)
            .output()
            .unwrap();
        (out, started.elapsed())
    };
    // A Linux kernel on PVM: refused before any VM exists, with the reason and the way out.
    let (out, took) = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        took < std::time::Duration::from_secs(4),
        "not at once: {took:?}"
    );
    assert!(stderr.contains("the kernel is Linux 6.1"), "{stderr}");
    assert!(
        stderr.contains("stock Linux kernels cannot run on it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--accel tcg") && stderr.contains("--pvm-guest"),
        "{stderr}"
    );
    // --pvm-guest overrides: the stock kernel then crawls until the timeout stops it.
    let (out, _) = run(&["--pvm-guest", "--verbose"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(124), "{stderr}");
    assert!(stderr.contains("(--timeout)"), "{stderr}");
}
