//! SIGTERM and SIGINT stop a running VM cleanly: the run returns `Interrupted(signal)`
//! (exit status 128 + signal) and the previous signal dispositions come back afterwards.
//! (Its own test binary: the handlers are process-wide.)

mod common;

use common::*;
use domboot_builder::{BootPlan, ProtocolChoice};
use domboot_vmm::Outcome;
use std::time::{Duration, Instant};

fn spin_plan() -> BootPlan {
    let mut g = Guest::new(64, GUEST_ADDR, DATA_OFF);
    g.stack((GUEST_ADDR + IMAGE_MEMSZ) as u32);
    g.print("spinning until signalled\n");
    let mut l = g.a.create_label();
    g.a.set_label(&mut l).unwrap();
    g.a.jmp(l).unwrap();
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

fn handler_of(sig: i32) -> usize {
    // SAFETY: all-zero is a valid sigaction for the kernel to overwrite; a null new action
    // only queries.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers; querying changes nothing.
    unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
    old.sa_sigaction
}

#[test]
fn sigterm_and_sigint_stop_the_vm_cleanly() {
    let plan = spin_plan();
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        assert_eq!(handler_of(sig), libc::SIG_DFL);
        let p = plan.clone();
        let vm = std::thread::spawn(move || run(&p, 2, Duration::from_secs(60)));
        let deadline = Instant::now() + Duration::from_secs(20);
        while handler_of(sig) == libc::SIG_DFL {
            assert!(
                Instant::now() < deadline,
                "domboot never installed its handler"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(300));
        let sent = Instant::now();
        // SAFETY: sending a signal to our own process, whose handler is installed.
        assert_eq!(unsafe { libc::kill(libc::getpid(), sig) }, 0);
        let r = vm.join().unwrap();
        assert_eq!(r.outcome, Outcome::Interrupted(sig));
        assert_eq!(i32::from(r.outcome.exit_code()), 128 + sig);
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "{:?}",
            sent.elapsed()
        );
        assert!(r.serial.contains("spinning until signalled"));
        assert_eq!(handler_of(sig), libc::SIG_DFL, "disposition restored");
    }
}
