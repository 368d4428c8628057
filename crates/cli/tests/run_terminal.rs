//! `domboot run` on a terminal (a pseudo-terminal from util-linux's `script`), Debian's
//! cloud kernel under TCG: the "Ctrl-A x to quit" banner, the terminal's size reaching the
//! guest's shell, and Ctrl-A x reported as what it is.

use domboot_testkit as kit;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn banner_window_size_and_ctrl_a_x() {
    let inner = format!(
        "stty rows 33 cols 101; {} run --kernel {} --timeout 100; echo STATUS=$?",
        env!("CARGO_BIN_EXE_domboot"),
        kit::debian_kernel("cloud").vmlinuz.display()
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
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim_end_matches('\r').to_string()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let wait_for = |what: &str, seen: &mut Vec<String>| loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(l) => {
                seen.push(l.clone());
                if l.contains(what) {
                    return;
                }
            }
            Err(_) => panic!("no {what:?} in:\n{}", seen.join("\n")),
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    wait_for("Ctrl-A x to quit", &mut seen);
    wait_for("busybox shell: 'exit' ends the VM", &mut seen);
    stdin.write_all(b"stty size\n").unwrap();
    wait_for("33 101", &mut seen);
    stdin.write_all(b"\x01x").unwrap();
    wait_for("STATUS=", &mut seen);
    let tail = seen[seen.len().saturating_sub(3)..].join("\n");
    assert!(
        tail.contains("domboot: stopped the guest (Ctrl-A x)"),
        "{tail}"
    );
    assert!(tail.ends_with("STATUS=130"), "{tail}");
    let _ = child.wait();
}
