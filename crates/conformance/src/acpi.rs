//! The ACPI conformance guest: finds the RSDP the way an OS does and checks everything on
//! the way to powering off.
//!
//! 1. Scans 0xE0000–0xFFFFF on 16-byte boundaries for "RSD PTR ", and checks the address
//!    equals what the boot protocol handed over (`boot_params.acpi_rsdp_addr` at 0x070,
//!    `hvm_start_info.rsdp_paddr` at 32 — written here from the boot protocols' documents,
//!    not taken from the builder, so a wrong offset on either side shows).
//! 2. The RSDP's checksums (first 20 bytes, whole structure) and revision ≥ 2; the XSDT's
//!    signature and checksum; every table the XSDT lists: below 4 GiB, checksum 0. FACP
//!    (FADT) and APIC (MADT) must be among them.
//! 3. FADT: `HW_REDUCED_ACPI`; the DSDT (X_DSDT, else DSDT): signature, checksum, and an
//!    `_S5_` object in it.
//! 4. MADT: the enabled Processor Local APIC structures number the expected CPU count.
//! 5. Prints `ACPI OK`, then writes `SLP_TYP = 5 | SLP_EN` to the sleep control register
//!    whose SystemIO port it reads from the FADT ([`SleepWrite::PowerOff`]): the run must
//!    end there. Or ([`SleepWrite::Garbage`]) writes values that must not power off, checks
//!    the sleep status register reads with WAK_STS clear, and exits through the debug-exit
//!    port with [`OK`].

use crate::asm::Guest;
use crate::{BAD, DATA_OFF, OK};
use iced_x86::code_asm::*;

/// How the guest is entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiBoot {
    /// ELF64 through the linux64 entry: RSI = boot_params.
    Linux64,
    /// ELF32 through PVH: EBX = hvm_start_info.
    Pvh,
}

/// What the guest writes to the sleep control register once the tables check out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SleepWrite {
    /// S5: the machine must power off.
    PowerOff,
    /// Other sleep types, SLP_EN clear, all ones: the machine must keep running.
    Garbage,
}

/// Sleep control register values that are not a power-off request.
pub const GARBAGE: [u8; 7] = [0x00, 0x14, 0x20, 0x24, 0x2C, 0x3C, 0xFF];
/// `SLP_TYP = 5` (bits 2–4) with `SLP_EN` (bit 5).
pub const S5_REQUEST: u8 = (5 << 2) | (1 << 5);

fn sig(s: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*s)
}

/// AL = 8-bit sum of ECX bytes at ESI. Clobbers EAX, ECX, ESI.
fn sum_bytes(g: &mut Guest) {
    let mut lp = g.a.create_label();
    let mut done = g.a.create_label();
    g.a.xor(eax, eax).unwrap();
    g.a.test(ecx, ecx).unwrap();
    g.a.jz(done).unwrap();
    g.a.set_label(&mut lp).unwrap();
    g.a.add(al, byte_ptr(esi)).unwrap();
    g.a.inc(esi).unwrap();
    g.a.dec(ecx).unwrap();
    g.a.jnz(lp).unwrap();
    g.a.set_label(&mut done).unwrap();
    g.a.nop().unwrap();
}

/// The guest, assembled for `base`, expecting `cpus` enabled processors in the MADT.
pub fn acpi_guest(
    kind: AcpiBoot,
    base: u64,
    cpus: u32,
    sleep: SleepWrite,
    stack_top: u32,
) -> Guest {
    let bits = match kind {
        AcpiBoot::Linux64 => 64,
        AcpiBoot::Pvh => 32,
    };
    let mut g = Guest::new(bits, base, DATA_OFF);
    // Variables: boot structure, RSDP, FADT, MADT, DSDT, XSDT, entries left, cursor.
    let vars = u64::from(g.scratch(32));
    let (v_boot, v_rsdp, v_fadt, v_madt) = (vars, vars + 4, vars + 8, vars + 12);
    let (v_dsdt, v_xsdt, v_left, v_cur) = (vars + 16, vars + 20, vars + 24, vars + 28);
    let entry_reg = if kind == AcpiBoot::Linux64 { esi } else { ebx };
    g.a.mov(dword_ptr(v_boot), entry_reg).unwrap();
    g.stack(stack_top);
    g.print("acpi conformance\n");

    // 1. The RSDP, as an OS finds it.
    let f = g.fail("no RSDP (\"RSD PTR \") in 0xE0000-0xFFFFF");
    let mut scan = g.a.create_label();
    let mut next = g.a.create_label();
    let mut found = g.a.create_label();
    g.a.mov(esi, 0xE_0000u32).unwrap();
    g.a.set_label(&mut scan).unwrap();
    g.a.cmp(dword_ptr(esi), sig(b"RSD ")).unwrap();
    g.a.jne(next).unwrap();
    g.a.cmp(dword_ptr(esi + 4), sig(b"PTR ")).unwrap();
    g.a.je(found).unwrap();
    g.a.set_label(&mut next).unwrap();
    g.a.add(esi, 16u32).unwrap();
    g.a.cmp(esi, 0x10_0000u32).unwrap();
    g.a.jb(scan).unwrap();
    g.a.jmp(f).unwrap();
    g.a.set_label(&mut found).unwrap();
    g.a.mov(dword_ptr(v_rsdp), esi).unwrap();
    g.print("RSDP at ");
    g.a.mov(eax, esi).unwrap();
    g.hex_eax();
    g.print("\n");
    let (offset, what) = match kind {
        AcpiBoot::Linux64 => (0x070, "boot_params.acpi_rsdp_addr"),
        AcpiBoot::Pvh => (32, "hvm_start_info.rsdp_paddr"),
    };
    let f = g.fail(&format!("{what} is not the RSDP the scan found"));
    g.a.mov(edi, dword_ptr(v_boot)).unwrap();
    g.a.cmp(dword_ptr(edi + offset), esi).unwrap();
    g.a.jne(f).unwrap();
    g.a.cmp(dword_ptr(edi + (offset + 4)), 0u32).unwrap();
    g.a.jne(f).unwrap();

    // 2. RSDP checksums and revision, then the XSDT and every table in it.
    let f = g.fail("RSDP checksum (first 20 bytes)");
    g.a.mov(ecx, 20u32).unwrap();
    sum_bytes(&mut g);
    g.a.test(al, al).unwrap();
    g.a.jnz(f).unwrap();
    let f = g.fail("RSDP revision below 2 (no XSDT)");
    g.a.mov(esi, dword_ptr(v_rsdp)).unwrap();
    g.a.cmp(byte_ptr(esi + 15), 2u32).unwrap();
    g.a.jb(f).unwrap();
    let f = g.fail("RSDP length");
    g.a.mov(ecx, dword_ptr(esi + 20)).unwrap();
    g.a.cmp(ecx, 36u32).unwrap();
    g.a.jb(f).unwrap();
    let f = g.fail("RSDP extended checksum");
    sum_bytes(&mut g);
    g.a.test(al, al).unwrap();
    g.a.jnz(f).unwrap();
    let f = g.fail("XSDT address missing or above 4 GiB");
    g.a.mov(esi, dword_ptr(v_rsdp)).unwrap();
    g.a.cmp(dword_ptr(esi + 28), 0u32).unwrap();
    g.a.jne(f).unwrap();
    g.a.mov(esi, dword_ptr(esi + 24)).unwrap();
    g.a.test(esi, esi).unwrap();
    g.a.jz(f).unwrap();
    g.a.mov(dword_ptr(v_xsdt), esi).unwrap();
    g.expect_eq(dword_ptr(esi), sig(b"XSDT"), "XSDT signature");
    let f = g.fail("XSDT checksum");
    g.a.mov(ecx, dword_ptr(esi + 4)).unwrap();
    sum_bytes(&mut g);
    g.a.test(al, al).unwrap();
    g.a.jnz(f).unwrap();
    let f = g.fail("XSDT lists no tables");
    g.a.mov(esi, dword_ptr(v_xsdt)).unwrap();
    g.a.mov(ecx, dword_ptr(esi + 4)).unwrap();
    g.a.sub(ecx, 36u32).unwrap();
    g.a.shr(ecx, 3).unwrap();
    g.a.jz(f).unwrap();
    g.a.mov(dword_ptr(v_left), ecx).unwrap();
    g.a.add(esi, 36u32).unwrap();
    g.a.mov(dword_ptr(v_cur), esi).unwrap();
    g.print("XSDT tables=");
    g.a.mov(eax, ecx).unwrap();
    g.hex_eax();
    g.print("\n");
    let f_high = g.fail("an XSDT entry is above 4 GiB or 0");
    let f_len = g.fail("a table's length is below its header's");
    let f_sum = g.fail("a table's checksum");
    let mut each = g.a.create_label();
    let mut not_facp = g.a.create_label();
    let mut not_apic = g.a.create_label();
    g.a.set_label(&mut each).unwrap();
    g.a.mov(esi, dword_ptr(v_cur)).unwrap();
    g.a.cmp(dword_ptr(esi + 4), 0u32).unwrap();
    g.a.jne(f_high).unwrap();
    g.a.mov(ebx, dword_ptr(esi)).unwrap();
    g.a.test(ebx, ebx).unwrap();
    g.a.jz(f_high).unwrap();
    g.print("table at ");
    g.a.mov(eax, ebx).unwrap();
    g.hex_eax();
    g.print("\n");
    g.a.mov(ecx, dword_ptr(ebx + 4)).unwrap();
    g.a.cmp(ecx, 36u32).unwrap();
    g.a.jb(f_len).unwrap();
    g.a.mov(esi, ebx).unwrap();
    sum_bytes(&mut g);
    g.a.test(al, al).unwrap();
    g.a.jnz(f_sum).unwrap();
    g.a.cmp(dword_ptr(ebx), sig(b"FACP")).unwrap();
    g.a.jne(not_facp).unwrap();
    g.a.mov(dword_ptr(v_fadt), ebx).unwrap();
    g.a.set_label(&mut not_facp).unwrap();
    g.a.cmp(dword_ptr(ebx), sig(b"APIC")).unwrap();
    g.a.jne(not_apic).unwrap();
    g.a.mov(dword_ptr(v_madt), ebx).unwrap();
    g.a.set_label(&mut not_apic).unwrap();
    g.a.add(dword_ptr(v_cur), 8u32).unwrap();
    g.a.dec(dword_ptr(v_left)).unwrap();
    g.a.jnz(each).unwrap();
    let f = g.fail("no FADT (FACP) in the XSDT");
    g.a.cmp(dword_ptr(v_fadt), 0u32).unwrap();
    g.a.je(f).unwrap();
    let f = g.fail("no MADT (APIC) in the XSDT");
    g.a.cmp(dword_ptr(v_madt), 0u32).unwrap();
    g.a.je(f).unwrap();
    g.print("checksums ok\n");

    // 3. FADT: hardware-reduced; the DSDT with an _S5_ object.
    let f = g.fail("FADT: HW_REDUCED_ACPI not set");
    g.a.mov(ebx, dword_ptr(v_fadt)).unwrap();
    g.a.test(dword_ptr(ebx + 112), 1u32 << 20).unwrap();
    g.a.jz(f).unwrap();
    let f = g.fail("FADT: no DSDT, or one above 4 GiB");
    let mut have = g.a.create_label();
    g.a.cmp(dword_ptr(ebx + 144), 0u32).unwrap();
    g.a.jne(f).unwrap();
    g.a.mov(esi, dword_ptr(ebx + 140)).unwrap();
    g.a.test(esi, esi).unwrap();
    g.a.jnz(have).unwrap();
    g.a.mov(esi, dword_ptr(ebx + 40)).unwrap();
    g.a.test(esi, esi).unwrap();
    g.a.jz(f).unwrap();
    g.a.set_label(&mut have).unwrap();
    g.a.mov(dword_ptr(v_dsdt), esi).unwrap();
    g.expect_eq(dword_ptr(esi), sig(b"DSDT"), "DSDT signature");
    let f = g.fail("DSDT checksum");
    g.a.mov(ecx, dword_ptr(esi + 4)).unwrap();
    sum_bytes(&mut g);
    g.a.test(al, al).unwrap();
    g.a.jnz(f).unwrap();
    let f = g.fail("DSDT has no _S5_");
    let mut s5 = g.a.create_label();
    let mut s5_found = g.a.create_label();
    g.a.mov(esi, dword_ptr(v_dsdt)).unwrap();
    g.a.mov(ecx, dword_ptr(esi + 4)).unwrap();
    g.a.sub(ecx, 3u32).unwrap();
    g.a.set_label(&mut s5).unwrap();
    g.a.cmp(dword_ptr(esi), sig(b"_S5_")).unwrap();
    g.a.je(s5_found).unwrap();
    g.a.inc(esi).unwrap();
    g.a.dec(ecx).unwrap();
    g.a.jnz(s5).unwrap();
    g.a.jmp(f).unwrap();
    g.a.set_label(&mut s5_found).unwrap();
    g.print("FADT hardware-reduced, DSDT with _S5_\n");

    // 4. MADT: count the enabled Processor Local APIC structures.
    let f_struct = g.fail("MADT: a structure's length is below 2");
    let mut lp = g.a.create_label();
    let mut next = g.a.create_label();
    let mut done = g.a.create_label();
    g.a.mov(ebx, dword_ptr(v_madt)).unwrap();
    g.a.mov(edx, ebx).unwrap();
    g.a.add(edx, dword_ptr(ebx + 4)).unwrap();
    g.a.lea(esi, ptr(ebx + 44)).unwrap();
    g.a.xor(edi, edi).unwrap();
    g.a.set_label(&mut lp).unwrap();
    g.a.cmp(esi, edx).unwrap();
    g.a.jae(done).unwrap();
    g.a.movzx(ecx, byte_ptr(esi + 1)).unwrap();
    g.a.cmp(ecx, 2u32).unwrap();
    g.a.jb(f_struct).unwrap();
    g.a.cmp(byte_ptr(esi), 0u32).unwrap();
    g.a.jne(next).unwrap();
    g.a.test(dword_ptr(esi + 4), 1u32).unwrap();
    g.a.jz(next).unwrap();
    g.a.inc(edi).unwrap();
    g.a.set_label(&mut next).unwrap();
    g.a.add(esi, ecx).unwrap();
    g.a.jmp(lp).unwrap();
    g.a.set_label(&mut done).unwrap();
    g.print("MADT enabled local APICs=");
    g.a.mov(eax, edi).unwrap();
    g.hex_eax();
    g.print("\n");
    let f = g.fail("MADT: enabled local APIC count is not the CPU count");
    g.a.cmp(edi, cpus).unwrap();
    g.a.jne(f).unwrap();
    g.print("ACPI OK\n");

    // 5. The sleep registers, as the FADT names them.
    let f = g.fail("FADT too short for SLEEP_CONTROL_REG/SLEEP_STATUS_REG");
    g.a.mov(ebx, dword_ptr(v_fadt)).unwrap();
    g.a.cmp(dword_ptr(ebx + 4), 268u32).unwrap();
    g.a.jb(f).unwrap();
    g.expect_eq(
        byte_ptr(ebx + 244),
        1,
        "SLEEP_CONTROL_REG is not in SystemIO space",
    );
    g.expect_eq(
        byte_ptr(ebx + 256),
        1,
        "SLEEP_STATUS_REG is not in SystemIO space",
    );
    g.a.mov(edx, dword_ptr(ebx + 248)).unwrap();
    g.print("sleep control port=");
    g.a.mov(eax, edx).unwrap();
    g.hex_eax();
    g.print("\n");
    match sleep {
        SleepWrite::PowerOff => {
            g.a.mov(al, u32::from(S5_REQUEST)).unwrap();
            g.a.out(dx, al).unwrap();
            g.print("FAIL: still running after SLP_TYP=5|SLP_EN\n");
            g.exit(u32::from(BAD));
        }
        SleepWrite::Garbage => {
            for v in GARBAGE {
                g.a.mov(al, u32::from(v)).unwrap();
                g.a.out(dx, al).unwrap();
            }
            // Linux clears WAK_STS before it sleeps; then the status must read clear.
            let f = g.fail("sleep status register reads with WAK_STS set");
            g.a.mov(edx, dword_ptr(ebx + 260)).unwrap();
            g.a.mov(al, 0x80u32).unwrap();
            g.a.out(dx, al).unwrap();
            g.a.in_(al, dx).unwrap();
            g.a.test(al, 0x80u32).unwrap();
            g.a.jnz(f).unwrap();
            g.print("still running after the garbage sleep writes\nALL OK\n");
            g.exit(u32::from(OK));
        }
    }
    g
}
