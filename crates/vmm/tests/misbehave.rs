//! Guests that misbehave, and guests that end the run in each documented way: domboot
//! reports, maps each ending to its exit status, and never panics.

mod common;

use common::*;
use domboot_builder::{BootPlan, ProtocolChoice};
use domboot_vmm::{EXIT_CRASH, EXIT_TIMEOUT, Outcome};
use iced_x86::code_asm::*;
use std::time::{Duration, Instant};

/// A linux64 plan (ELF64 entry) around `code`, assembled at [`GUEST_ADDR`].
fn plan64(code: impl FnOnce(&mut Guest)) -> BootPlan {
    let mut g = Guest::new(64, GUEST_ADDR, DATA_OFF);
    g.stack((GUEST_ADDR + IMAGE_MEMSZ) as u32);
    code(&mut g);
    let dir = tempfile::tempdir().unwrap();
    build_plan(
        dir.path(),
        &elf64(&g.assemble(), GUEST_ADDR, IMAGE_MEMSZ),
        b"",
        "misbehave",
        64 * MIB,
        ProtocolChoice::Auto,
    )
}

#[test]
fn triple_fault_is_a_crash_with_a_report() {
    let plan = plan64(|g| {
        g.print("about to fault\n");
        // No IDT: #UD → #GP → #DF → shutdown.
        g.a.ud2().unwrap();
    });
    let r = run(&plan, 1, Duration::from_secs(20));
    let Outcome::Crash(report) = &r.outcome else {
        panic!("expected a crash, got {:?}", r.outcome);
    };
    assert!(r.serial.contains("about to fault"));
    assert!(report.reason.contains("triple fault"), "{report}");
    let regs = report.registers.as_ref().expect("registers");
    assert!(
        (GUEST_ADDR..GUEST_ADDR + DATA_OFF).contains(&regs.rip),
        "rip {:#x} outside the guest's code\n{report}",
        regs.rip
    );
    assert_eq!(r.outcome.exit_code(), EXIT_CRASH);
    let text = r.outcome.describe();
    assert!(
        text.contains("triple fault") && text.contains("rip "),
        "{text}"
    );
}

#[test]
fn spinning_guest_times_out() {
    let plan = plan64(|g| {
        g.print("spinning\n");
        let mut l = g.a.create_label();
        g.a.set_label(&mut l).unwrap();
        g.a.jmp(l).unwrap();
    });
    let start = Instant::now();
    let r = run(&plan, 1, Duration::from_secs(1));
    assert_eq!(r.outcome, Outcome::Timeout(Duration::from_secs(1)));
    assert_eq!(r.outcome.exit_code(), EXIT_TIMEOUT);
    assert!(r.outcome.describe().contains("timeout"));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn halted_guest_with_interrupts_off_times_out() {
    let plan = plan64(|g| {
        g.a.cli().unwrap();
        g.a.hlt().unwrap();
        g.exit(0x33);
    });
    let r = run(&plan, 1, Duration::from_millis(500));
    assert_eq!(r.outcome, Outcome::Timeout(Duration::from_millis(500)));
}

/// Writes and reads pseudo-random values at pseudo-random ports (all but the reset, exit
/// and ACPI sleep control ports), then re-initialises the UART and reports.
fn garbage(g: &mut Guest, iterations: u32, spare_special_ports: bool) {
    let mut lp = g.a.create_label();
    let mut skip = g.a.create_label();
    g.a.mov(ebx, 0x1234_5678u32).unwrap(); // xorshift32 state
    g.a.mov(edi, iterations).unwrap();
    g.a.set_label(&mut lp).unwrap();
    for (op, n) in [(0u8, 13u32), (1, 17), (0, 5)] {
        g.a.mov(eax, ebx).unwrap();
        if op == 0 {
            g.a.shl(eax, n).unwrap();
        } else {
            g.a.shr(eax, n).unwrap();
        }
        g.a.xor(ebx, eax).unwrap();
    }
    g.a.mov(edx, ebx).unwrap();
    g.a.and(edx, 0xFFFFu32).unwrap();
    if spare_special_ports {
        for port in [0x60u32, 0x64, 0xCF9, 0x600] {
            g.a.cmp(edx, port).unwrap();
            g.a.je(skip).unwrap();
        }
        g.a.mov(eax, edx).unwrap();
        g.a.and(eax, !3u32).unwrap();
        g.a.cmp(eax, 0xF4u32).unwrap();
        g.a.je(skip).unwrap();
    }
    g.a.mov(eax, ebx).unwrap();
    g.a.shr(eax, 16).unwrap();
    g.a.test(ebx, 0x100u32).unwrap();
    let mut write = g.a.create_label();
    g.a.jz(write).unwrap();
    g.a.in_(al, dx).unwrap();
    g.a.in_(eax, dx).unwrap();
    g.a.set_label(&mut write).unwrap();
    g.a.out(dx, al).unwrap();
    g.a.out(dx, ax).unwrap();
    g.a.set_label(&mut skip).unwrap();
    g.a.dec(edi).unwrap();
    g.a.jnz(lp).unwrap();
}

fn reinit_uart(g: &mut Guest) {
    for (port, value) in [(0x3FBu32, 0x03u32), (0x3F9, 0), (0x3FC, 0x03), (0x3FA, 0)] {
        g.a.mov(edx, port).unwrap();
        g.a.mov(al, value).unwrap();
        g.a.out(dx, al).unwrap();
    }
}

#[test]
fn garbage_port_io_is_survived_and_reported() {
    let plan = plan64(|g| {
        g.print("writing garbage\n");
        garbage(g, 20_000, true);
        reinit_uart(g);
        g.print("survived garbage\n");
        g.exit(0x42);
    });
    let r = run(&plan, 1, Duration::from_secs(30));
    assert_eq!(r.outcome, Outcome::DebugExit(0x42), "{}", r.serial);
    assert_eq!(r.outcome.exit_code(), 0x42);
    assert!(r.serial.contains("survived garbage"), "{}", r.serial);
}

/// Whatever a guest does, the run ends with an outcome whose status follows the mapping.
fn ends_cleanly(r: &Run) {
    let code = r.outcome.exit_code();
    match &r.outcome {
        Outcome::Reset | Outcome::PowerOff => assert_eq!(code, 0),
        Outcome::DebugExit(v) => assert_eq!(code, *v),
        Outcome::Timeout(_) => assert_eq!(code, EXIT_TIMEOUT),
        Outcome::Crash(rep) => {
            assert_eq!(code, EXIT_CRASH);
            assert!(rep.registers.is_some());
        }
        Outcome::Interrupted(_) => panic!("nobody sent a signal"),
        Outcome::Panic(p) => panic!("no kernel here to panic, yet: {}", p.line),
        Outcome::BackendGone(why) => panic!("no device here has a backend process: {why}"),
    }
}

#[test]
fn garbage_on_every_port_ends_cleanly() {
    // No port spared: the guest may hit the reset or exit ports, reprogram the PIC and PIT,
    // put the UART in loopback...
    let plan = plan64(|g| {
        garbage(g, 50_000, false);
        g.exit(0x43);
    });
    let r = run(&plan, 1, Duration::from_secs(5));
    eprintln!("garbage on every port ended with {:?}", r.outcome);
    ends_cleanly(&r);
}

#[test]
fn garbage_over_the_mmio_gap_ends_cleanly() {
    // Reads and writes of pseudo-random values at pseudo-random addresses in
    // 0xC0000000..0xFFFFFFFF: unbacked MMIO, the IOAPIC and the LAPIC (which may send IPIs
    // or INIT the guest's own CPU).
    let plan = plan64(|g| {
        g.print("scribbling over the MMIO gap\n");
        let mut lp = g.a.create_label();
        g.a.mov(ebx, 0x9E37_79B9u32).unwrap();
        g.a.mov(edi, 20_000u32).unwrap();
        g.a.set_label(&mut lp).unwrap();
        for (op, n) in [(0u8, 13u32), (1, 17), (0, 5)] {
            g.a.mov(eax, ebx).unwrap();
            if op == 0 {
                g.a.shl(eax, n).unwrap();
            } else {
                g.a.shr(eax, n).unwrap();
            }
            g.a.xor(ebx, eax).unwrap();
        }
        g.a.mov(esi, ebx).unwrap();
        g.a.or(esi, 0xC000_0000u32).unwrap();
        g.a.and(esi, !3u32).unwrap();
        g.a.mov(eax, dword_ptr(rsi)).unwrap();
        g.a.mov(dword_ptr(rsi), ebx).unwrap();
        g.a.dec(edi).unwrap();
        g.a.jnz(lp).unwrap();
        g.print("done scribbling; now the IOAPIC and LAPIC registers\n");
        // IOAPIC: index/data pairs; LAPIC: every 16-byte register, ICR included.
        let mut io = g.a.create_label();
        g.a.mov(ecx, 64u32).unwrap();
        g.a.mov(edi, 0xFEC0_0000u32).unwrap();
        g.a.set_label(&mut io).unwrap();
        g.a.mov(dword_ptr(rdi), ecx).unwrap();
        g.a.mov(dword_ptr(rdi + 0x10), ebx).unwrap();
        g.a.rol(ebx, 7).unwrap();
        g.a.dec(ecx).unwrap();
        g.a.jnz(io).unwrap();
        let mut lapic = g.a.create_label();
        g.a.mov(esi, 0xFEE0_0000u32).unwrap();
        g.a.set_label(&mut lapic).unwrap();
        g.a.mov(eax, dword_ptr(rsi)).unwrap();
        g.a.mov(dword_ptr(rsi), ebx).unwrap();
        g.a.rol(ebx, 11).unwrap();
        g.a.add(esi, 0x10u32).unwrap();
        g.a.cmp(esi, 0xFEE0_0400u32).unwrap();
        g.a.jb(lapic).unwrap();
        g.print("done\n");
        g.exit(0x44);
    });
    let r = run(&plan, 1, Duration::from_secs(10));
    eprintln!("garbage over the MMIO gap ended with {:?}", r.outcome);
    ends_cleanly(&r);
}

#[test]
fn executing_from_the_mmio_gap_is_a_crash() {
    let plan = plan64(|g| {
        g.print("jumping into the MMIO gap\n");
        g.a.mov(eax, 0xD000_0000u32).unwrap();
        g.a.jmp(rax).unwrap();
    });
    let r = run(&plan, 1, Duration::from_secs(10));
    let Outcome::Crash(report) = &r.outcome else {
        panic!("expected a crash, got {:?}", r.outcome);
    };
    assert_eq!(r.outcome.exit_code(), EXIT_CRASH);
    eprintln!("{report}");
}

#[test]
fn i8042_reset_ends_with_status_0() {
    let plan = plan64(|g| {
        g.a.mov(al, 0xFEu32).unwrap();
        g.a.out(0x64, al).unwrap();
        g.exit(0x55);
    });
    let r = run(&plan, 1, Duration::from_secs(10));
    assert_eq!(r.outcome, Outcome::Reset);
    assert_eq!(r.outcome.exit_code(), 0);
}

#[test]
fn reset_control_register_ends_with_status_0() {
    let plan = plan64(|g| {
        g.a.mov(edx, 0xCF9u32).unwrap();
        g.a.mov(al, 0x02u32).unwrap();
        g.a.out(dx, al).unwrap();
        g.a.mov(al, 0x06u32).unwrap();
        g.a.out(dx, al).unwrap();
        g.exit(0x55);
    });
    let r = run(&plan, 1, Duration::from_secs(10));
    assert_eq!(r.outcome, Outcome::Reset);
}

#[test]
fn debug_exit_status_is_the_value_written() {
    for (value, status) in [(0u32, 0u8), (1, 1), (0x1FF, 0xFF)] {
        let plan = plan64(|g| g.exit(value));
        let r = run(&plan, 1, Duration::from_secs(10));
        assert_eq!(r.outcome, Outcome::DebugExit(status));
        assert_eq!(r.outcome.exit_code(), status);
    }
}

#[test]
fn serial_output_to_a_file() {
    let plan = plan64(|g| {
        g.print("to the file\n");
        g.exit(0);
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console.log");
    std::fs::write(&path, "old contents, truncated").unwrap();
    let cfg = domboot_vmm::VmConfig {
        cpus: 1,
        serial: domboot_vmm::SerialSink::File(path.clone()),
        timeout: Some(Duration::from_secs(10)),
        verbose: false,
        acpi: true,
        ..Default::default()
    };
    assert_eq!(
        domboot_vmm::run(&plan, &cfg).unwrap(),
        Outcome::DebugExit(0)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "to the file\n");
    // An unwritable path is a set-up error naming the file, not a panic.
    let cfg = domboot_vmm::VmConfig {
        serial: domboot_vmm::SerialSink::File(dir.path().join("no/such/dir/log")),
        ..cfg
    };
    let err = domboot_vmm::run(&plan, &cfg).unwrap_err().to_string();
    assert!(
        err.contains("serial output file") && err.contains("no/such/dir"),
        "{err}"
    );
}
