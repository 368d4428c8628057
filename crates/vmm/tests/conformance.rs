//! Conformance guests on this machine's /dev/kvm: each checks what the boot protocol
//! handed it and reports over COM1.

mod common;

use common::*;
use domboot_builder::ProtocolChoice;
use domboot_vmm::Outcome;
use std::time::Duration;

const CMDLINE: &str = "console=ttyS0 domboot.test=conformance quiet";

#[test]
fn linux64_elf_entry() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = initrd_bytes(300_001, 7);
    let mut e = Expect {
        cmdline: CMDLINE.into(),
        initrd: initrd.clone(),
        ram_total: 0,
        gdt: None,
        code32_start: None,
    };
    // First pass learns the plan's RAM total and GDT; the guest's size does not depend on
    // the values it compares against, so the layout stays the same.
    let stack = (GUEST_ADDR + IMAGE_MEMSZ) as u32;
    let code = linux_guest(64, &e, stack).assemble(GUEST_ADDR);
    let probe = build_plan(
        dir.path(),
        &elf64(&code, GUEST_ADDR, IMAGE_MEMSZ),
        &initrd,
        CMDLINE,
        256 * MIB,
        ProtocolChoice::Auto,
    );
    e.ram_total = ram_total(&probe);
    e.gdt = Some((probe.entry.gdt_base as u32, probe.entry.gdt_limit));
    let code = linux_guest(64, &e, stack).assemble(GUEST_ADDR);
    let plan = build_plan(
        dir.path(),
        &elf64(&code, GUEST_ADDR, IMAGE_MEMSZ),
        &initrd,
        CMDLINE,
        256 * MIB,
        ProtocolChoice::Auto,
    );
    assert_eq!(plan.protocol, domboot_builder::BootProtocol::Linux64);
    assert_eq!(plan.entry.gdt_base, probe.entry.gdt_base);
    let r = run(&plan, 1, Duration::from_secs(20));
    assert_eq!(r.outcome, Outcome::DebugExit(OK), "{}", r.serial);
    assert!(r.serial.contains("ALL OK"));
}

#[test]
#[ignore]
fn dump_guest() {
    let e = Expect {
        cmdline: CMDLINE.into(),
        initrd: vec![1, 2, 3],
        ram_total: 0x1234,
        gdt: Some((0x100040, 31)),
        code32_start: None,
    };
    let code = linux_guest(64, &e, 0x210000).assemble(GUEST_ADDR);
    std::fs::write("/tmp/guest64.bin", code).unwrap();
}
