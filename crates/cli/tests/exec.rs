//! `domboot run --exec` on the Debian cloud kernel (TCG here): exit statuses, byte-exact
//! output, modules, timeouts and a missing kernel.

use assert_cmd::Command;
use domboot_testkit as kit;
use std::process::Output;

fn exec(args: &[&str], cmd: &str) -> Output {
    let kernel = kit::debian_kernel("cloud").vmlinuz;
    Command::cargo_bin("domboot")
        .unwrap()
        .arg("run")
        .arg("--kernel")
        .arg(&kernel)
        .args(["--timeout", "180"])
        .args(args)
        .args(["--exec", cmd])
        .output()
        .unwrap()
}

#[test]
fn exit_statuses_are_the_commands() {
    for (cmd, status) in [("true", 0), ("false", 1), ("exit 42", 42)] {
        let out = exec(&[], cmd);
        assert_eq!(
            out.status.code(),
            Some(status),
            "{cmd}: stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout.is_empty(),
            "{cmd}: nothing printed, nothing passed through: {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn output_passes_through_byte_exact() {
    // Every byte value, a 20 000-character line, and no newline at the end.
    let cmd = "i=0; while [ $i -lt 256 ]; do printf \"\\\\$(printf %o $i)\"; i=$((i+1)); done; \
               head -c 20000 /dev/zero | tr '\\0' x; echo; printf 'end without newline'";
    let out = exec(&[], cmd);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expect: Vec<u8> = (0..=255u8).collect();
    expect.extend(std::iter::repeat_n(b'x', 20000));
    expect.push(b'\n');
    expect.extend_from_slice(b"end without newline");
    assert_eq!(out.stdout.len(), expect.len());
    assert!(
        out.stdout == expect,
        "output differs from what the command printed"
    );
}

#[test]
fn json_reports_status_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.json");
    let out = exec(&["--json-file", file.to_str().unwrap()], "echo hi; exit 3");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"hi\n", "the JSON goes to its file, not stdout");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(v["status"], 3);
    assert!(v["boot_ms"].as_u64().unwrap() > 0);
    assert!(v["command_ms"].is_u64());
    assert!(v.get("reason").is_none(), "a status needs no reason: {v}");
}

#[test]
fn a_module_and_its_dependencies_are_loaded() {
    // busybox's lsmod: the host's userland need not have kmod.
    let out = exec(&["--rootfs", "busybox", "--module", "vfat"], "lsmod");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("vfat ")), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("fat ")),
        "dependency fat: {text}"
    );
    let out = exec(&["--module", "no_such_module"], "true");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("module no_such_module not found"));
}

#[test]
fn a_command_that_never_ends_hits_the_timeout() {
    let kernel = kit::debian_kernel("cloud").vmlinuz;
    let out = Command::cargo_bin("domboot")
        .unwrap()
        .arg("run")
        .arg("--kernel")
        .arg(&kernel)
        .args(["--timeout", "20", "--exec", "sleep 1000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("still running after 20.0 s (--timeout)"),
        "{err}"
    );
}

#[test]
fn a_missing_kernel_is_a_clear_error() {
    let out = Command::cargo_bin("domboot")
        .unwrap()
        .args(["run", "--kernel", "/nonexistent/vmlinuz", "--exec", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/vmlinuz: No such file"), "{err}");
}

#[test]
fn without_kernel_the_cached_kernel_is_used() {
    // This machine has no /boot/vmlinuz-$(uname -r); setup cached Debian's cloud kernel.
    let out = Command::cargo_bin("domboot")
        .unwrap()
        .args(["run", "--timeout", "180", "--exec", "uname -r"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let release = kit::debian_kernel("cloud").release;
    let running = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    if !std::path::Path::new(&format!("/boot/vmlinuz-{}", running.trim())).exists() {
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), release);
    }
}
