//! Conformance guests on this machine's /dev/kvm, booted from real plans the builder made:
//! each checks what its boot protocol handed it (entry registers and segment state, the
//! command line, the initrd bytes by checksum, the memory map, boot_params / start_info
//! fields), reports over COM1 and ends through the debug-exit port.

mod common;

use common::*;
use domboot_builder::{BootPlan, BootProtocol, ProtocolChoice};
use domboot_vmm::Outcome;
use std::time::Duration;

const CMDLINE: &str = "console=ttyS0 domboot.test=conformance quiet";
const MEMORY: u64 = 256 * MIB;

fn expect(initrd: &[u8]) -> Expect {
    Expect {
        cmdline: CMDLINE.into(),
        initrd: initrd.to_vec(),
        ram: 0..=0,
        gdt: None,
        code32_start: None,
    }
}

/// Builds the plan twice: the first pass tells the guest what to expect (RAM total, GDT,
/// load address); the guest's size does not depend on those values, so the second plan
/// has the same layout, which the caller can assert.
fn two_pass(
    initrd: &[u8],
    protocol: ProtocolChoice,
    mut kernel: impl FnMut(&Expect) -> Vec<u8>,
    fill: impl Fn(&mut Expect, &BootPlan),
) -> (BootPlan, Expect) {
    let dir = tempfile::tempdir().unwrap();
    let mut e = expect(initrd);
    let probe = build_plan(dir.path(), &kernel(&e), initrd, CMDLINE, MEMORY, protocol);
    // domboot hands the guest its own e820: the total is exactly the plan's.
    let total = ram_total(&probe);
    e.ram = total..=total;
    fill(&mut e, &probe);
    let plan = build_plan(dir.path(), &kernel(&e), initrd, CMDLINE, MEMORY, protocol);
    assert_eq!(plan.entry.gdt_base, probe.entry.gdt_base);
    assert_eq!(plan.entry.rip, probe.entry.rip);
    (plan, e)
}

fn passes(plan: &BootPlan, what: &str) {
    let r = run(plan, 1, Duration::from_secs(30));
    assert_eq!(
        r.outcome,
        Outcome::DebugExit(OK),
        "{what}: {}\n{}",
        r.outcome.describe(),
        r.serial
    );
    assert!(r.serial.contains("ALL OK"), "{what}: {}", r.serial);
    assert!(!r.serial.contains("FAIL"), "{what}: {}", r.serial);
}

#[test]
fn linux64_elf_entry_rsi_boot_params() {
    let initrd = initrd_bytes(300_001, 7);
    let (plan, _) = two_pass(&initrd, ProtocolChoice::Auto, linux64_elf, |e, p| {
        e.gdt = Some((p.entry.gdt_base as u32, p.entry.gdt_limit))
    });
    assert_eq!(plan.protocol, BootProtocol::Linux64);
    assert_eq!(plan.entry.rip, GUEST_ADDR);
    passes(&plan, "linux64 ELF");
}

#[test]
fn pvh_elf32_entry_ebx_start_info() {
    let initrd = initrd_bytes(123_457, 11);
    let (plan, _) = two_pass(&initrd, ProtocolChoice::Auto, pvh_elf, |_, _| {});
    assert_eq!(plan.protocol, BootProtocol::Pvh);
    assert_ne!(plan.entry.rbx, 0);
    passes(&plan, "pvh ELF32");
}

fn bzimage_plan(protocol: ProtocolChoice) -> BootPlan {
    let initrd = initrd_bytes(77_777, 3);
    let (plan, _) = two_pass(&initrd, protocol, conformance_bzimage, |e, p| {
        e.gdt = Some((p.entry.gdt_base as u32, p.entry.gdt_limit));
        e.code32_start = Some(BZ_LOAD as u32);
    });
    let kernel = plan.segments.iter().find(|s| s.name == "kernel").unwrap();
    assert_eq!(kernel.addr, BZ_LOAD, "the builder honours pref_address");
    plan
}

#[test]
fn bzimage_linux64_entry() {
    let plan = bzimage_plan(ProtocolChoice::Auto);
    assert_eq!(plan.protocol, BootProtocol::Linux64);
    assert_eq!(plan.entry.rip, BZ_LOAD + 0x200);
    passes(&plan, "bzImage linux64");
}

#[test]
fn bzimage_linux32_entry() {
    let plan = bzimage_plan(ProtocolChoice::Linux32);
    assert_eq!(plan.protocol, BootProtocol::Linux32);
    assert_eq!(plan.entry.rip, BZ_LOAD);
    passes(&plan, "bzImage linux32");
}

/// The checks can fail: a guest told to expect another command line, then another initrd,
/// reports the mismatch and exits with the failure status.
#[test]
fn conformance_guest_catches_a_wrong_handover() {
    let initrd = initrd_bytes(1000, 5);
    for (cmdline, expected_initrd, failure) in [
        ("console=ttyS0 other", initrd.clone(), "FAIL: command line"),
        (CMDLINE, initrd_bytes(1000, 6), "FAIL: initrd checksum"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut e = expect(&expected_initrd);
        e.cmdline = cmdline.into();
        e.ram = 0..=0; // never reached
        let plan = build_plan(
            dir.path(),
            &linux64_elf(&e),
            &initrd,
            CMDLINE,
            MEMORY,
            ProtocolChoice::Auto,
        );
        let r = run(&plan, 1, Duration::from_secs(30));
        assert_eq!(r.outcome, Outcome::DebugExit(BAD), "{}", r.serial);
        assert!(r.serial.contains(failure), "{}", r.serial);
    }
}

/// The RAM-total check compares 64-bit bounds: a total one byte outside either end fails, the
/// inclusive ends pass, and a bound's high dword decides before its low one.
#[test]
fn ram_total_range_is_inclusive_and_64_bit() {
    let initrd = initrd_bytes(1000, 5);
    let dir = tempfile::tempdir().unwrap();
    let mut e = expect(&initrd);
    let kernel = linux64_elf;
    let probe = build_plan(
        dir.path(),
        &kernel(&e),
        &initrd,
        CMDLINE,
        MEMORY,
        ProtocolChoice::Auto,
    );
    let t = ram_total(&probe);
    e.gdt = Some((probe.entry.gdt_base as u32, probe.entry.gdt_limit));
    const G4: u64 = 1 << 32;
    // The total is below 4 GiB: its high dword is 0.
    assert!(t < G4);
    for (ram, passes) in [
        (t..=t, true),
        (t - 1..=t + 1, true),
        (t + 1..=u64::MAX, false),
        (0..=t - 1, false),
        // The high dwords decide: the low dword of G4 (0) is below the total's.
        (0..=G4, true),
        (t + G4..=u64::MAX, false),
    ] {
        e.ram = ram.clone();
        let plan = build_plan(
            dir.path(),
            &kernel(&e),
            &initrd,
            CMDLINE,
            MEMORY,
            ProtocolChoice::Auto,
        );
        assert_eq!(ram_total(&plan), t);
        let r = run(&plan, 1, Duration::from_secs(30));
        let (status, text) = if passes {
            (OK, "ALL OK")
        } else {
            (BAD, "FAIL: e820: RAM total outside")
        };
        assert_eq!(
            r.outcome,
            Outcome::DebugExit(status),
            "{ram:#x?}: {}",
            r.serial
        );
        assert!(r.serial.contains(text), "{ram:#x?}: {}", r.serial);
        assert!(
            r.serial.contains(&format!("e820 RAM total={t:016X}")),
            "{}",
            r.serial
        );
    }
}
