//! The SMP guest: the boot processor (PVH entry, 32-bit, paging off) starts the application
//! processors with INIT/SIPI/SIPI through its LAPIC (at 0xFEE00000), and each AP, entering
//! a real-mode trampoline below 1 MiB, records its CPUID APIC ID and bumps a counter; the
//! BSP waits for all of them. The BSP copies the trampoline into place and clears the
//! counters itself, so the guest needs nothing from the loader beyond the PVH entry: it runs
//! on domboot's KVM and under QEMU, where firmware (SeaBIOS) has written low memory first.
//!
//! Optionally it also checks the MP table lists every processor: domboot's own table (KVM)
//! does. SeaBIOS's does not in general: it lists only the first logical CPU of each package
//! (CPUID.1:EBX[23:16] logical CPUs per package), and QEMU makes `-smp 4` one socket of
//! 4 cores, so its table shows one processor. Under QEMU the guest skips the MP table.

use crate::asm::Guest;
use crate::images::elf32_pvh;
use crate::{DATA_OFF, GUEST_ADDR, IMAGE_MEMSZ, OK};
use iced_x86::code_asm::*;

/// SIPI vector 0x08: APs start at 0x0800:0000.
pub const TRAMPOLINE: u64 = 0x8000;
const COUNTER: u32 = 0x9000;
/// One byte per APIC ID, set by the AP with that ID.
const SEEN: u32 = 0x9100;
const SEEN_LEN: u32 = 256;
const LAPIC: u64 = 0xFEE0_0000;
/// Where the MP spec lets the floating pointer be that both platforms use: the BIOS ROM
/// area (domboot puts it at its start, SeaBIOS somewhere in it), on 16-byte boundaries.
const MP_SCAN: (u32, u32) = (0xF_0000, 0x10_0000);

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
    let code = a.assemble(TRAMPOLINE).unwrap();
    assert!(TRAMPOLINE + code.len() as u64 <= u64::from(COUNTER));
    code
}

/// What the BSP prints once the APs of a `cpus`-processor guest have all reported.
pub fn smp_report(cpus: u32) -> String {
    let ids: String = (1..cpus).map(|id| format!(" {id}")).collect();
    format!("APs up={:08X} ids:{ids}\n", cpus - 1)
}

/// The BSP's code, for [`GUEST_ADDR`] (PVH entry): with `mp_table_cpus`, finds the MP table
/// and checks it lists that many enabled processors; then INIT/SIPI/SIPI, waits (bounded)
/// for `cpus - 1` APs to report, and exits with [`OK`].
pub fn smp_guest(cpus: u32, mp_table_cpus: Option<u32>) -> Vec<u8> {
    assert!((2..=SEEN_LEN).contains(&cpus), "{cpus} CPUs");
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
    // The trampoline into place, and the counter and ID bytes cleared (firmware may have
    // left anything there).
    let code = trampoline();
    let len = code.len() as u32;
    let src = g.bytes(code);
    g.a.cld().unwrap();
    g.a.mov(esi, src).unwrap();
    g.a.mov(edi, TRAMPOLINE as u32).unwrap();
    g.a.mov(ecx, len).unwrap();
    g.a.rep().movsb().unwrap();
    g.a.mov(dword_ptr(u64::from(COUNTER)), 0u32).unwrap();
    g.a.xor(eax, eax).unwrap();
    g.a.mov(edi, SEEN).unwrap();
    g.a.mov(ecx, SEEN_LEN).unwrap();
    g.a.rep().stosb().unwrap();
    if let Some(mp_cpus) = mp_table_cpus {
        mp_table(&mut g, mp_cpus);
    }
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

/// Finds the MP floating pointer and fails unless its configuration table lists `cpus`
/// enabled processors. Clobbers EAX, ECX, ESI, EDI.
fn mp_table(g: &mut Guest, cpus: u32) {
    // The MP floating pointer: "_MP_" on a 16-byte boundary of the BIOS area.
    let f = g.fail("MP floating pointer not found in 0xF0000-0xFFFFF");
    let mut scan = g.a.create_label();
    let mut found = g.a.create_label();
    g.a.mov(esi, MP_SCAN.0).unwrap();
    g.a.set_label(&mut scan).unwrap();
    g.a.cmp(dword_ptr(esi), u32::from_le_bytes(*b"_MP_"))
        .unwrap();
    g.a.je(found).unwrap();
    g.a.add(esi, 16u32).unwrap();
    g.a.cmp(esi, MP_SCAN.1).unwrap();
    g.a.jb(scan).unwrap();
    g.a.jmp(f).unwrap();
    g.a.set_label(&mut found).unwrap();
    g.print("smp: MP floating pointer at ");
    g.a.mov(eax, esi).unwrap();
    g.hex_eax();
    g.print("\n");
    // The configuration table: count the enabled processor entries (20 bytes each; every
    // other entry type is 8).
    g.a.mov(esi, dword_ptr(esi + 4)).unwrap();
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
}

/// The SMP guest as an ELF32 with a PVH note, linked at [`GUEST_ADDR`].
pub fn smp_kernel(cpus: u32, mp_table_cpus: Option<u32>) -> Vec<u8> {
    elf32_pvh(
        &smp_guest(cpus, mp_table_cpus),
        GUEST_ADDR as u32,
        IMAGE_MEMSZ as u32,
    )
}
