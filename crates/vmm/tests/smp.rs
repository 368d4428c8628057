//! SMP on this machine's /dev/kvm: the boot processor finds every vCPU in the MP table,
//! starts the application processors with INIT/SIPI through its LAPIC (at 0xFEE00000), and
//! each AP, entering a real-mode trampoline below 1 MiB, reports its CPUID APIC ID and
//! bumps a counter.

mod common;

use bytes::Bytes;
use common::*;
use domboot_builder::{ProtocolChoice, Segment};
use domboot_vmm::Outcome;
use iced_x86::code_asm::*;
use std::time::Duration;

/// SIPI vector 0x08: APs start at 0x0800:0000.
const TRAMPOLINE: u64 = 0x8000;
const COUNTER: u32 = 0x9000;
/// One byte per APIC ID, set by the AP with that ID.
const SEEN: u32 = 0x9100;
const LAPIC: u64 = 0xFEE0_0000;

/// The AP trampoline: real mode, CS = 0x0800, DS = 0.
fn trampoline() -> Vec<u8> {
    let mut a = CodeAssembler::new(16).unwrap();
    a.cli().unwrap();
    a.xor(ax, ax).unwrap();
    a.mov(ds, ax).unwrap();
    a.mov(eax, 1u32).unwrap();
    a.cpuid().unwrap();
    a.shr(ebx, 24).unwrap();
    a.mov(byte_ptr(ebx + SEEN), 1u32).unwrap();
    a.lock().inc(dword_ptr(u64::from(COUNTER))).unwrap();
    let mut spin = a.create_label();
    a.set_label(&mut spin).unwrap();
    a.cli().unwrap();
    a.hlt().unwrap();
    a.jmp(spin).unwrap();
    a.assemble(TRAMPOLINE).unwrap()
}

/// 32-bit BSP (PVH entry): MP table check, INIT/SIPI/SIPI, wait for the APs.
fn bsp(cpus: u32) -> Vec<u8> {
    let mut g = Guest::new(32, GUEST_ADDR, DATA_OFF);
    g.stack((GUEST_ADDR + IMAGE_MEMSZ) as u32);
    g.print("smp: BSP up\n");
    // Our own APIC ID from CPUID must be 0.
    let f = g.fail("BSP CPUID APIC ID is not 0");
    g.a.mov(eax, 1u32).unwrap();
    g.a.cpuid().unwrap();
    g.a.shr(ebx, 24).unwrap();
    g.a.test(ebx, ebx).unwrap();
    g.a.jnz(f).unwrap();
    // The MP table: floating pointer at 0xF0000, processor entries enabled.
    g.expect_eq(
        dword_ptr(0xF_0000u64),
        u32::from_le_bytes(*b"_MP_"),
        "MP floating pointer",
    );
    g.a.mov(esi, dword_ptr(0xF_0004u64)).unwrap();
    g.expect_eq(
        dword_ptr(esi),
        u32::from_le_bytes(*b"PCMP"),
        "MP config table",
    );
    g.a.movzx(ecx, word_ptr(esi + 34)).unwrap();
    g.a.add(esi, 44u32).unwrap();
    g.a.xor(edi, edi).unwrap();
    let mut lp = g.a.create_label();
    let mut small = g.a.create_label();
    let mut next = g.a.create_label();
    g.a.set_label(&mut lp).unwrap();
    g.a.cmp(byte_ptr(esi), 0u32).unwrap();
    g.a.jne(small).unwrap();
    g.a.test(byte_ptr(esi + 3), 1u32).unwrap();
    g.a.setnz(al).unwrap();
    g.a.movzx(eax, al).unwrap();
    g.a.add(edi, eax).unwrap();
    g.a.add(esi, 20u32).unwrap();
    g.a.jmp(next).unwrap();
    g.a.set_label(&mut small).unwrap();
    g.a.add(esi, 8u32).unwrap();
    g.a.set_label(&mut next).unwrap();
    g.a.dec(ecx).unwrap();
    g.a.jnz(lp).unwrap();
    g.print("smp: MP table processors=");
    g.a.mov(eax, edi).unwrap();
    g.hex_eax();
    g.print("\n");
    let f = g.fail("MP table processor count");
    g.a.cmp(edi, cpus).unwrap();
    g.a.jne(f).unwrap();
    // Software-enable the LAPIC (SVR bit 8), then INIT and two SIPIs to all but self.
    let svr = LAPIC + 0xF0;
    let icr_lo = LAPIC + 0x300;
    let icr_hi = LAPIC + 0x310;
    g.a.mov(eax, dword_ptr(svr)).unwrap();
    g.a.or(eax, 0x1FFu32).unwrap();
    g.a.mov(dword_ptr(svr), eax).unwrap();
    g.print("smp: LAPIC id=");
    g.a.mov(eax, dword_ptr(LAPIC + 0x20)).unwrap();
    g.hex_eax();
    g.print(" version=");
    g.a.mov(eax, dword_ptr(LAPIC + 0x30)).unwrap();
    g.hex_eax();
    g.print("\n");
    let vector = (TRAMPOLINE >> 12) as u32;
    for (icr, name) in [
        (0x000C_4500u32, "INIT"),
        (0x000C_4600 | vector, "SIPI"),
        (0x000C_4600 | vector, "SIPI"),
    ] {
        g.a.mov(dword_ptr(icr_hi), 0u32).unwrap();
        g.a.mov(dword_ptr(icr_lo), icr).unwrap();
        // Wait for the delivery status bit to clear, then a short delay.
        let mut busy = g.a.create_label();
        g.a.set_label(&mut busy).unwrap();
        g.a.pause().unwrap();
        g.a.test(dword_ptr(icr_lo), 1u32 << 12).unwrap();
        g.a.jnz(busy).unwrap();
        g.a.mov(ecx, 100_000u32).unwrap();
        let mut delay = g.a.create_label();
        g.a.set_label(&mut delay).unwrap();
        g.a.pause().unwrap();
        g.a.dec(ecx).unwrap();
        g.a.jnz(delay).unwrap();
        g.print(&format!("smp: {name} sent\n"));
    }
    // Wait (bounded) for every AP.
    let mut done = g.a.create_label();
    let mut wait = g.a.create_label();
    g.a.mov(ecx, 400_000_000u32).unwrap();
    g.a.set_label(&mut wait).unwrap();
    g.a.cmp(dword_ptr(u64::from(COUNTER)), cpus - 1).unwrap();
    g.a.jae(done).unwrap();
    g.a.pause().unwrap();
    g.a.dec(ecx).unwrap();
    g.a.jnz(wait).unwrap();
    g.a.set_label(&mut done).unwrap();
    g.print("smp: APs up=");
    g.a.mov(eax, dword_ptr(u64::from(COUNTER))).unwrap();
    g.hex_eax();
    g.print(" ids:");
    for id in 0..cpus {
        let mut skip = g.a.create_label();
        g.a.cmp(byte_ptr(u64::from(SEEN + id)), 0u32).unwrap();
        g.a.je(skip).unwrap();
        g.print(&format!(" {id}"));
        g.a.set_label(&mut skip).unwrap();
        g.a.nop().unwrap();
    }
    g.print("\n");
    let f = g.fail("not every AP came up");
    g.a.cmp(dword_ptr(u64::from(COUNTER)), cpus - 1).unwrap();
    g.a.jne(f).unwrap();
    for id in 1..cpus {
        let f = g.fail(&format!("AP with APIC ID {id} did not report"));
        g.a.cmp(byte_ptr(u64::from(SEEN + id)), 1u32).unwrap();
        g.a.jne(f).unwrap();
    }
    g.print("ALL OK\n");
    g.exit(u32::from(OK));
    g.assemble()
}

fn smp_plan(cpus: u32) -> domboot_builder::BootPlan {
    let dir = tempfile::tempdir().unwrap();
    let code = bsp(cpus);
    let mut plan = build_plan(
        dir.path(),
        &elf32_pvh(&code, GUEST_ADDR as u32, IMAGE_MEMSZ as u32),
        b"initrd",
        "smp",
        128 * MIB,
        ProtocolChoice::Auto,
    );
    // The builder places segments at 1 MiB or above; the trampoline (and the counter and
    // ID bytes after it, zero) must be below 1 MiB for real mode.
    plan.segments.insert(
        0,
        Segment {
            name: "ap trampoline".into(),
            addr: TRAMPOLINE,
            mem_size: 0x2000,
            data: Bytes::from(trampoline()),
        },
    );
    plan
}

#[test]
fn four_vcpus_every_ap_comes_up() {
    let plan = smp_plan(4);
    let r = run(&plan, 4, Duration::from_secs(30));
    assert_eq!(r.outcome, Outcome::DebugExit(OK), "{}", r.serial);
    assert!(
        r.serial.contains("APs up=00000003 ids: 1 2 3"),
        "{}",
        r.serial
    );
}
