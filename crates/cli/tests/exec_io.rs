//! `run --exec` I/O under TCG on Debian's cloud kernel: stdin with its end, live stdout,
//! stderr apart, the JSON line, and failures explained (panic, bad initrd), and the i386
//! busybox for a 32-bit kernel. Each boot checks several things, since one costs seconds.

use domboot_testkit as kit;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn domboot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_domboot"))
}

fn cloud() -> std::path::PathBuf {
    kit::debian_kernel("cloud").vmlinuz
}

#[test]
fn stdin_stdout_stderr_and_json_are_separate_and_live() {
    let mut child = domboot()
        .arg("run")
        .arg("--kernel")
        .arg(cloud())
        .args(["--timeout", "180", "--json", "--exec"])
        // wc reads to the end of input; cat then sees that end at once; the line before
        // the sleep must reach us long before the run ends.
        .arg("wc -l; cat; echo to-stderr >&2; echo before-sleep; sleep 5; printf tail")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"a\nb\n").unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut r = BufReader::new(stdout);
        loop {
            let mut l = String::new();
            if r.read_line(&mut l).unwrap() == 0 {
                return lines;
            }
            lines.push((Instant::now(), l));
        }
    });
    let out = child.wait_with_output().unwrap();
    let ended = Instant::now();
    let lines = reader.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let text: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(text, ["2\n", "before-sleep\n", "tail"], "stderr: {err}");
    let early = ended.duration_since(lines[1].0);
    assert!(
        early >= Duration::from_secs(3),
        "the line printed before `sleep 5` arrived only {early:?} before the end"
    );
    let err_lines: Vec<&str> = err.lines().collect();
    assert_eq!(err_lines.first(), Some(&"to-stderr"), "{err}");
    let json: serde_json::Value = serde_json::from_str(err_lines.last().unwrap()).unwrap();
    assert_eq!(json["status"], 0);
    assert!(json["boot_ms"].as_u64().unwrap() > 0);
    assert!(json["command_ms"].as_u64().unwrap() >= 5000, "{json}");
}

#[test]
fn a_command_reading_empty_stdin_ends() {
    let out = domboot()
        .arg("run")
        .arg("--kernel")
        .arg(cloud())
        .args(["--timeout", "120", "--exec", "cat; echo ended"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"ended\n");
}

#[test]
fn a_kernel_panic_is_quoted_with_its_status() {
    let out = domboot()
        .arg("run")
        .arg("--kernel")
        .arg(cloud())
        .args(["--timeout", "120", "--json", "--exec"])
        .arg("echo before; echo c > /proc/sysrq-trigger")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(123), "{err}");
    assert_eq!(out.stdout, b"before\n");
    assert!(err.contains("the guest kernel panicked"), "{err}");
    assert!(
        err.contains("Kernel panic - not syncing: sysrq triggered crash"),
        "{err}"
    );
    let json: serde_json::Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    assert_eq!(json["status"], serde_json::Value::Null);
    assert_eq!(json["reason"], "kernel-panic");
}

#[test]
fn a_picture_as_initrd_is_refused_before_booting() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("picture.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    let started = Instant::now();
    let out = domboot()
        .arg("run")
        .arg("--kernel")
        .arg(cloud())
        .arg("--initrd")
        .arg(&png)
        .args(["--exec", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // 119: the status of an initrd the kernel could not unpack (`run --help`).
    assert_eq!(out.status.code(), Some(119), "{err}");
    assert!(
        err.contains(&format!(
            "{}: not an initramfs: at byte 0 it starts with 89 50 4e 47",
            png.display()
        )) && err.contains("(a PNG image)"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "no boot needed"
    );
}

#[test]
fn a_32bit_kernel_runs_the_i386_busybox() {
    let out = domboot()
        .arg("run")
        .arg("--kernel")
        .arg(kit::shared_kernel("bzImage-i386-norelo-xz"))
        .args(["--timeout", "120", "--exec", "uname -m"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"i686\n");
}

#[test]
fn a_guest_that_ends_early_is_explained() {
    let run = |extra: &[&str], cmd: &str| {
        domboot()
            .arg("run")
            .arg("--kernel")
            .arg(cloud())
            .args(["--timeout", "120"])
            .args(extra)
            .args(["--exec", cmd])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Powered off under the command's feet: no status, no panic.
    let out = run(&[], "echo o > /proc/sysrq-trigger; sleep 60");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(122), "{err}");
    assert!(
        err.contains("the guest stopped before the command finished"),
        "{err}"
    );
    // Too little RAM for Debian's kernel and the initramfs: the panic line says so.
    let out = run(&["--memory", "70"], "true");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(123), "{err}");
    assert!(err.contains("> ["), "the panic line is quoted: {err}");
    assert!(err.contains("Kernel panic - not syncing: "), "{err}");
}

#[test]
fn a_reader_that_leaves_stops_the_vm_like_sigpipe() {
    let mut child = domboot()
        .arg("run")
        .arg("--kernel")
        .arg(cloud())
        .args(["--timeout", "120", "--exec", "yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "y\n");
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(128 + 13), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "stopped at once, not at --timeout"
    );
}

#[test]
fn binary_stdin_arrives_byte_exact() {
    // Every byte value (XON, XOFF, Ctrl-C, Ctrl-D, CR, DEL included) three times over.
    let data: Vec<u8> = (0..3).flat_map(|_| 0..=255u8).collect();
    let mut child = domboot()
        .arg("run")
        .arg("--kernel")
        .arg(cloud())
        .args([
            "--timeout",
            "120",
            "--exec",
            "od -An -tx1 -v | tr -d ' \\n'",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), hex);
}
