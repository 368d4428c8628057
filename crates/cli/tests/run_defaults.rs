//! A `domboot run` that works the first time, on Debian's cloud kernel under TCG: the
//! image of `domboot initrd --busybox` boots to a shell, `run` adds console=ttyS0 and
//! panic=-1, `--memory 512` is MiB, QEMU's `--smp`/`--append` spellings work, a kernel
//! with no initrd gets a busybox shell, and a panic under TCG is recognised and quoted.

use domboot_testkit as kit;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn domboot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_domboot"))
}

/// Boots with `args`, waits for the shell's greeting, types `input`, and returns the exit
/// status and everything printed on stdout.
fn shell(args: &[&str], input: &str) -> (Option<i32>, String, String) {
    let mut child = domboot()
        .arg("run")
        .arg("--kernel")
        .arg(kit::debian_kernel("cloud").vmlinuz)
        .args(["--timeout", "120"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut stdin = child.stdin.take().unwrap();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(120)) {
        if line.contains("busybox shell: 'exit' ends the VM") {
            // In small pieces: under a loaded host the guest's 16550 may not drain a
            // 200-byte burst in time (once the probe line arrived mangled and printed
            // nothing but `exit`'s effect).
            for piece in input.as_bytes().chunks(8) {
                stdin.write_all(piece).unwrap();
                stdin.flush().unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            break;
        }
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        reader.join().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const PROBE: &str = "echo CMDLINE $(cat /proc/cmdline); echo CPUS $(nproc); \
                     echo MEM $(sed -n 's/MemTotal: *\\([0-9]*\\) kB/\\1/p' /proc/meminfo); \
                     echo PROC $(ls /proc/self/stat) SYS $(ls -d /sys/kernel); exit\n";

fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} line in:\n{out}"))
        .trim()
}

#[test]
fn initrd_busybox_boots_to_a_shell_with_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("initrd.cpio.gz");
    let made = domboot()
        .args(["initrd", "--busybox", "-o"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (status, out, err) = shell(
        &[
            "--initrd",
            image.to_str().unwrap(),
            "--memory",
            "512",
            "--smp",
            "2",
            "--append",
            "quiet",
        ],
        PROBE,
    );
    assert_eq!(status, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(field(&out, "CMDLINE "), "quiet console=ttyS0 panic=-1");
    assert_eq!(field(&out, "CPUS "), "2");
    let kib: u64 = field(&out, "MEM ").parse().unwrap();
    assert!(
        (400 << 10..=512 << 10).contains(&kib),
        "--memory 512 is 512 MiB: MemTotal {kib} kB"
    );
    assert_eq!(field(&out, "PROC "), "/proc/self/stat SYS /sys/kernel");
}

#[test]
fn no_initrd_gives_a_shell_and_a_panic_is_reported() {
    let (status, out, err) = shell(&["--memory", "0.5G"], PROBE);
    assert_eq!(status, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        field(&out, "CMDLINE ").ends_with("console=ttyS0 panic=-1"),
        "{out}"
    );

    // No init where the command line says: the kernel panics, panic=-1 reboots at once,
    // and domboot tells that from a reset by the console.
    let out = domboot()
        .arg("run")
        .arg("--kernel")
        .arg(kit::debian_kernel("cloud").vmlinuz)
        .args([
            "--timeout",
            "120",
            "--cmdline",
            "init=/nowhere rdinit=/nowhere",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(123), "{err}");
    assert!(err.contains("the guest kernel panicked"), "{err}");
    assert!(
        err.contains("> [") && err.contains("Kernel panic - not syncing: "),
        "{err}"
    );

    // An initramfs whose /init is no program, and with no /sbin/init or /bin/sh to fall
    // back on: "No working init found" has a status of its own.
    let dir = tempfile::tempdir().unwrap();
    let cpio = kit::no_init_initramfs(dir.path());
    let out = domboot()
        .arg("run")
        .arg("--kernel")
        .arg(kit::debian_kernel("cloud").vmlinuz)
        .arg("--initrd")
        .arg(&cpio)
        .args(["--timeout", "120"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(120), "{err}");
    assert!(
        err.contains("Kernel panic - not syncing: No working init found"),
        "{err}"
    );
}
