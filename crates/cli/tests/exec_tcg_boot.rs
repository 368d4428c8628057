//! `run --exec` under TCG boots faster than the kernel as given (issue 16): Debian's cloud
//! bzImage is booted as its own vmlinux through PVH, decompressed once into the cache, and
//! the kernel options that shorten an emulated boot are added where the user's command line
//! leaves them. Each boot checks what the guest itself saw: /proc/cmdline, its CPUs, and
//! which entry it came through.

use domboot_testkit as kit;
use std::path::Path;
use std::process::{Command, Output};

/// One `--exec` run with its own cache folder (the vmlinux cache is checked, and must not
/// race the other tests' runs).
fn exec(cache: &Path, args: &[&str], cmd: &str) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_domboot"))
        .env("DOMBOOT_CACHE", cache)
        .arg("run")
        .arg("--kernel")
        .arg(kit::debian_kernel("cloud").vmlinuz)
        .args(["--accel", "tcg", "--rootfs", "busybox", "--timeout", "180"])
        .args(args)
        .arg("--exec")
        .arg(cmd)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn cached_elfs(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache.join("vmlinux"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".elf"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// What the guest reports, a line each: its command line, its CPUs, and the boot loader
/// type in its boot_params (offset 0x210): Linux's PVH entry outside Xen sets 0xb0
/// (arch/x86/platform/pvh/enlighten.c), domboot's bzImage entries leave 0xff.
const REPORT: &str =
    "cat /proc/cmdline; nproc; od -An -tx1 -j 528 -N 1 /sys/kernel/boot_params/data";

fn loader_type(text: &str) -> Option<&str> {
    text.lines().nth(2).map(str::trim)
}

#[test]
fn a_single_cpu_guest_gets_the_options_and_the_cached_vmlinux() {
    let cache = tempfile::tempdir().unwrap();
    let first = exec(cache.path(), &["--verbose"], REPORT);
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(
        err.contains("decompressing the kernel once") || err.contains("vmlinux through PVH"),
        "{err}"
    );
    assert!(
        err.contains(
            "added for a faster boot under TCG (--no-boot-tuning leaves them out): \
             cryptomgr.notests initcall_blacklist=crypto_kdf108_init no_timer_check acpi=off"
        ),
        "{err}"
    );
    let out = stdout(&first);
    for option in [
        "cryptomgr.notests",
        "crypto_kdf108_init",
        "no_timer_check",
        "acpi=off",
    ] {
        assert!(out.contains(option), "{option} missing: {out}");
    }
    let elfs = cached_elfs(cache.path());
    assert_eq!(elfs.len(), 1, "{elfs:?}");
    assert!(
        err.contains("booting the kernel's vmlinux through PVH"),
        "{err}"
    );
    assert_eq!(loader_type(&out), Some("b0"), "entered through PVH: {out}");

    // The second run uses the cached file as it is (no second extraction).
    let again = exec(cache.path(), &["--verbose"], "true");
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!err.contains("decompressing the kernel once"), "{err}");
    assert_eq!(cached_elfs(cache.path()), elfs);
}

#[test]
fn smp_keeps_acpi_and_the_users_settings_win() {
    let cache = tempfile::tempdir().unwrap();
    let out = exec(
        cache.path(),
        &["--cpus", "2", "--cmdline", "cryptomgr.notests=0"],
        REPORT,
    );
    let text = stdout(&out);
    let mut lines = text.lines();
    let cmdline = lines.next().unwrap_or_default();
    assert!(cmdline.contains("cryptomgr.notests=0"), "{text}");
    assert_eq!(cmdline.matches("cryptomgr.notests").count(), 1, "{text}");
    assert!(cmdline.contains("no_timer_check"), "{text}");
    assert!(!cmdline.contains("acpi=off"), "{text}");
    assert_eq!(lines.next(), Some("2"), "both CPUs came up: {text}");
}

#[test]
fn no_boot_tuning_boots_the_kernel_and_command_line_as_given() {
    let cache = tempfile::tempdir().unwrap();
    let out = exec(cache.path(), &["--no-boot-tuning"], REPORT);
    let text = stdout(&out);
    for option in [
        "cryptomgr.notests",
        "crypto_kdf108_init",
        "no_timer_check",
        "acpi=off",
    ] {
        assert!(!text.contains(option), "{option} added: {text}");
    }
    assert!(cached_elfs(cache.path()).is_empty());
    assert_eq!(
        loader_type(&text),
        Some("ff"),
        "the bzImage's own entry: {text}"
    );
}
