//! The interactive console on a real terminal (a pseudo-terminal): domboot puts it in raw
//! mode while the guest runs, feeds keystrokes to COM1, leaves on Ctrl-A x, and restores
//! the terminal's settings however the run ends — a crash, SIGTERM, the escape key.
//!
//! The VM runs in a child process (this test binary, re-executed with
//! DOMBOOT_VMM_TERMINAL_CHILD set) whose standard input is the pseudo-terminal.

mod common;

use common::*;
use domboot_builder::{BootPlan, ProtocolChoice};
use domboot_vmm::{SerialSink, VmConfig};
use iced_x86::code_asm::*;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "DOMBOOT_VMM_TERMINAL_CHILD";

fn plan(kind: &str) -> BootPlan {
    let mut g = Guest::new(64, GUEST_ADDR, DATA_OFF);
    g.stack((GUEST_ADDR + IMAGE_MEMSZ) as u32);
    g.print("guest up\n");
    match kind {
        "crash" => {
            g.a.ud2().unwrap();
        }
        "spin" => {
            let mut l = g.a.create_label();
            g.a.set_label(&mut l).unwrap();
            g.a.jmp(l).unwrap();
        }
        _ => {
            // Echo: wait for LSR.DR, read RBR, write it back in brackets.
            let mut lp = g.a.create_label();
            g.a.set_label(&mut lp).unwrap();
            g.a.mov(edx, 0x3FDu32).unwrap();
            g.a.in_(al, dx).unwrap();
            g.a.test(al, 1u32).unwrap();
            g.a.jz(lp).unwrap();
            g.a.mov(edx, 0x3F8u32).unwrap();
            g.a.in_(al, dx).unwrap();
            g.a.mov(ebx, eax).unwrap();
            g.print("[");
            g.a.mov(eax, ebx).unwrap();
            g.a.out(dx, al).unwrap();
            g.print("]");
            g.a.jmp(lp).unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    build_plan(
        dir.path(),
        &elf64(&g.assemble(), GUEST_ADDR, IMAGE_MEMSZ),
        b"",
        "",
        64 * MIB,
        ProtocolChoice::Auto,
    )
}

/// Not a test of its own: the child process's body (does nothing unless re-executed).
#[test]
fn terminal_child_process() {
    let Ok(kind) = std::env::var(CHILD_ENV) else {
        return;
    };
    let cfg = VmConfig {
        cpus: 1,
        serial: SerialSink::Stdout,
        timeout: Some(Duration::from_secs(60)),
        verbose: false,
        acpi: true,
        ..Default::default()
    };
    let outcome = domboot_vmm::run(&plan(&kind), &cfg).unwrap();
    eprintln!("child outcome: {}", outcome.describe());
    std::process::exit(outcome.exit_code().into());
}

struct Pty {
    master: File,
    slave: RawFd,
}

fn openpty() -> Pty {
    let (mut m, mut s) = (0, 0);
    // SAFETY: valid out-pointers; null name, termios and winsize are allowed.
    let rc = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    Pty {
        // SAFETY: openpty returned a fresh descriptor we now own.
        master: unsafe { File::from_raw_fd(m) },
        slave: s,
    }
}

fn termios(fd: RawFd) -> libc::termios {
    // SAFETY: all-zero is a valid termios to overwrite.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer; checked below.
    assert_eq!(unsafe { libc::tcgetattr(fd, &mut t) }, 0);
    t
}

fn same(a: &libc::termios, b: &libc::termios) -> bool {
    a.c_iflag == b.c_iflag
        && a.c_oflag == b.c_oflag
        && a.c_cflag == b.c_cflag
        && a.c_lflag == b.c_lflag
        && a.c_cc == b.c_cc
}

fn spawn(kind: &str, pty: &Pty) -> (Child, Arc<Mutex<Vec<u8>>>) {
    // SAFETY: dup of a descriptor we own; the File takes ownership of the copy.
    let stdin = unsafe { File::from_raw_fd(libc::dup(pty.slave)) };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "terminal_child_process", "--nocapture"])
        .env(CHILD_ENV, kind)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut pipe = child.stdout.take().unwrap();
    let sink = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    (child, out)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn is_raw(fd: RawFd) -> bool {
    termios(fd).c_lflag & (libc::ICANON | libc::ECHO | libc::ISIG) == 0
}

#[test]
fn crash_restores_the_terminal() {
    let pty = openpty();
    let before = termios(pty.slave);
    assert!(!is_raw(pty.slave));
    let (mut child, out) = spawn("crash", &pty);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(125), "crash → 125");
    assert!(String::from_utf8_lossy(&out.lock().unwrap()).contains("guest up"));
    assert!(
        same(&termios(pty.slave), &before),
        "terminal restored after a crash"
    );
}

#[test]
fn sigterm_restores_the_terminal() {
    let pty = openpty();
    let before = termios(pty.slave);
    let (mut child, out) = spawn("spin", &pty);
    wait_until("raw mode", || is_raw(pty.slave));
    wait_until("the guest", || {
        String::from_utf8_lossy(&out.lock().unwrap()).contains("guest up")
    });
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    assert!(
        same(&termios(pty.slave), &before),
        "terminal restored after SIGTERM"
    );
}

#[test]
fn keystrokes_reach_the_guest_and_ctrl_a_x_leaves() {
    let mut pty = openpty();
    let before = termios(pty.slave);
    let (mut child, out) = spawn("echo", &pty);
    wait_until("raw mode", || is_raw(pty.slave));
    wait_until("the guest", || {
        String::from_utf8_lossy(&out.lock().unwrap()).contains("guest up")
    });
    // Ctrl-C is a key like any other in raw mode; Ctrl-A Ctrl-A sends one Ctrl-A.
    pty.master.write_all(b"hi\x03\x01\x01").unwrap();
    wait_until("the echo", || {
        String::from_utf8_lossy(&out.lock().unwrap()).contains("[h][i][\u{3}][\u{1}]")
    });
    pty.master.write_all(b"\x01x").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGINT), "Ctrl-A x → 130");
    assert!(
        same(&termios(pty.slave), &before),
        "terminal restored after Ctrl-A x"
    );
}
