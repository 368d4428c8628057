//! The conformance guests: what each boot protocol promises, checked from inside the guest.

use crate::asm::Guest;
use crate::images::{bzimage, elf32_pvh, elf64};
use crate::plans::checksum;
use crate::{BZ_LOAD, DATA_OFF, GUEST_ADDR, IMAGE_MEMSZ, OK};
use iced_x86::code_asm::*;
use std::ops::RangeInclusive;

/// What a conformance guest checks it was handed.
#[derive(Clone, Debug)]
pub struct Expect {
    pub cmdline: String,
    pub initrd: Vec<u8>,
    /// Bounds (inclusive) for the sum of the RAM entries' sizes in the memory map: exactly
    /// the plan's total where domboot hands over its own map (KVM), a range where firmware
    /// hands over its own (QEMU: SeaBIOS keeps some RAM for itself).
    pub ram: RangeInclusive<u64>,
    /// GDTR the plan sets (linux protocols; PVH does not promise one).
    pub gdt: Option<(u32, u16)>,
    /// bzImage checks: code32_start and the protocol version in boot_params.
    pub code32_start: Option<u32>,
}

/// The Linux-protocol conformance guest (ELF entry, or a bzImage's 32-bit or 64-bit entry):
/// ESI/RSI = boot_params.
pub fn linux_guest(bits: u32, base: u64, e: &Expect, stack_top: u32) -> Guest {
    let mut g = Guest::new(bits, base, DATA_OFF);
    let bp_var = g.scratch(8);
    g.a.mov(dword_ptr(u64::from(bp_var)), esi).unwrap();
    g.stack(stack_top);
    g.print(if bits == 64 {
        "linux64 conformance: rsi="
    } else {
        "linux32 conformance: esi="
    });
    g.a.mov(eax, esi).unwrap();
    g.hex_eax();
    g.print("\n");
    if bits == 64 {
        let f = g.fail("RSI above 4 GiB");
        g.a.mov(rax, rsi).unwrap();
        g.a.shr(rax, 32).unwrap();
        g.a.jnz(f).unwrap();
    }
    g.selectors(0x10, 0x18);
    g.flags_clear();
    g.control_registers(false);
    g.fpu_control_word();
    g.pic_masked();
    if let Some((base, limit)) = e.gdt {
        g.gdtr(base, limit);
    }
    g.print("entry state ok\n");
    // The setup header as the loader must leave it.
    g.a.mov(esi, dword_ptr(u64::from(bp_var))).unwrap();
    g.expect_eq(
        dword_ptr(esi + 0x202),
        0x5372_6448,
        "boot_params: HdrS magic",
    );
    let f = g.fail("boot_params: type_of_loader");
    g.a.cmp(byte_ptr(esi + 0x210), 0xFFu32).unwrap();
    g.a.jne(f).unwrap();
    let f = g.fail("boot_params: LOADED_HIGH");
    g.a.test(byte_ptr(esi + 0x211), 1u32).unwrap();
    g.a.jz(f).unwrap();
    if let Some(c32) = e.code32_start {
        g.expect_eq(dword_ptr(esi + 0x214), c32, "boot_params: code32_start");
        let f = g.fail("boot_params: protocol version");
        g.a.cmp(word_ptr(esi + 0x206), 0x020Fu32).unwrap();
        g.a.jne(f).unwrap();
    }
    // Command line.
    g.expect_eq(dword_ptr(esi + 0xC8), 0, "boot_params: ext_cmd_line_ptr");
    let f = g.fail("boot_params: cmd_line_ptr is 0");
    g.a.mov(eax, dword_ptr(esi + 0x228)).unwrap();
    g.a.test(eax, eax).unwrap();
    g.a.jz(f).unwrap();
    g.a.mov(esi, eax).unwrap();
    g.expect_str(&e.cmdline, "command line");
    g.print("cmdline ok\n");
    // Initrd bytes.
    g.a.mov(esi, dword_ptr(u64::from(bp_var))).unwrap();
    g.expect_eq(dword_ptr(esi + 0xC0), 0, "boot_params: ext_ramdisk_image");
    g.expect_eq(dword_ptr(esi + 0xC4), 0, "boot_params: ext_ramdisk_size");
    g.expect_eq(
        dword_ptr(esi + 0x21C),
        e.initrd.len() as u32,
        "boot_params: ramdisk_size",
    );
    g.a.mov(ecx, dword_ptr(esi + 0x21C)).unwrap();
    g.a.mov(esi, dword_ptr(esi + 0x218)).unwrap();
    g.checksum();
    g.print("initrd sum=");
    g.hex_eax();
    g.print("\n");
    let f = g.fail("initrd checksum");
    g.a.cmp(eax, checksum(&e.initrd)).unwrap();
    g.a.jne(f).unwrap();
    // Memory map.
    g.a.mov(esi, dword_ptr(u64::from(bp_var))).unwrap();
    g.a.movzx(ecx, byte_ptr(esi + 0x1E8)).unwrap();
    g.print("e820 entries=");
    g.a.mov(eax, ecx).unwrap();
    g.hex_eax();
    g.print("\n");
    g.a.add(esi, 0x2D0u32).unwrap();
    g.memory_map(20, &e.ram, bp_var, "e820");
    g.print("e820 ok\nALL OK\n");
    g.exit(u32::from(OK));
    g
}

/// The PVH conformance guest: EBX = hvm_start_info.
pub fn pvh_guest(base: u64, e: &Expect, stack_top: u32) -> Guest {
    let mut g = Guest::new(32, base, DATA_OFF);
    let si_var = g.scratch(8);
    g.a.mov(dword_ptr(u64::from(si_var)), ebx).unwrap();
    g.stack(stack_top);
    g.print("pvh conformance: ebx=");
    g.a.mov(eax, ebx).unwrap();
    g.hex_eax();
    g.print("\n");
    g.selectors(0x10, 0x18);
    g.flags_clear();
    g.control_registers(true);
    g.fpu_control_word();
    g.pic_masked();
    g.print("entry state ok\n");
    g.a.mov(esi, dword_ptr(u64::from(si_var))).unwrap();
    g.expect_eq(dword_ptr(esi), 0x336E_C578, "start_info: magic");
    let f = g.fail("start_info: version < 1");
    g.a.cmp(dword_ptr(esi + 4), 1u32).unwrap();
    g.a.jb(f).unwrap();
    g.expect_eq(dword_ptr(esi + 28), 0, "start_info: cmdline above 4 GiB");
    g.a.mov(esi, dword_ptr(esi + 24)).unwrap();
    g.expect_str(&e.cmdline, "command line");
    g.print("cmdline ok\n");
    g.a.mov(esi, dword_ptr(u64::from(si_var))).unwrap();
    g.expect_eq(dword_ptr(esi + 12), 1, "start_info: nr_modules");
    g.a.mov(esi, dword_ptr(esi + 16)).unwrap();
    g.expect_eq(dword_ptr(esi + 4), 0, "module 0 above 4 GiB");
    g.expect_eq(dword_ptr(esi + 8), e.initrd.len() as u32, "module 0 size");
    g.a.mov(ecx, dword_ptr(esi + 8)).unwrap();
    g.a.mov(esi, dword_ptr(esi)).unwrap();
    g.checksum();
    g.print("module sum=");
    g.hex_eax();
    g.print("\n");
    let f = g.fail("module 0 checksum");
    g.a.cmp(eax, checksum(&e.initrd)).unwrap();
    g.a.jne(f).unwrap();
    g.a.mov(esi, dword_ptr(u64::from(si_var))).unwrap();
    g.a.mov(ecx, dword_ptr(esi + 48)).unwrap();
    g.print("memmap entries=");
    g.a.mov(eax, ecx).unwrap();
    g.hex_eax();
    g.print("\n");
    g.a.mov(esi, dword_ptr(esi + 40)).unwrap();
    g.memory_map(24, &e.ram, si_var, "memmap");
    g.print("memmap ok\nALL OK\n");
    g.exit(u32::from(OK));
    g
}

/// A bzImage whose 32-bit entry (offset 0) jumps to a linux32 conformance guest and whose
/// 64-bit entry (offset 0x200) is a linux64 one, both placed for [`BZ_LOAD`].
pub fn conformance_bzimage(e: &Expect) -> Vec<u8> {
    let body32_off = 0x4000u64;
    let stack = (BZ_LOAD + 0xF000) as u32;
    let g64 = linux_guest(64, BZ_LOAD + 0x200, e, stack).assemble();
    assert!(
        0x200 + g64.len() as u64 <= body32_off,
        "64-bit body too big"
    );
    let g32 = linux_guest(32, BZ_LOAD + body32_off, e, stack).assemble();
    let mut jmp = CodeAssembler::new(32).unwrap();
    jmp.jmp(BZ_LOAD + body32_off).unwrap();
    let jmp = jmp.assemble(BZ_LOAD).unwrap();
    let mut pm = vec![0u8; body32_off as usize];
    pm[..jmp.len()].copy_from_slice(&jmp);
    pm[0x200..0x200 + g64.len()].copy_from_slice(&g64);
    pm.extend_from_slice(&g32);
    pm.resize(pm.len().next_multiple_of(16) + 0x1000, 0);
    bzimage(&pm, 0x10_0000)
}

/// The linux64 conformance guest as an ELF64 linked at [`GUEST_ADDR`], its stack at the
/// top of its image.
pub fn linux64_elf(e: &Expect) -> Vec<u8> {
    let stack = (GUEST_ADDR + IMAGE_MEMSZ) as u32;
    let code = linux_guest(64, GUEST_ADDR, e, stack).assemble();
    elf64(&code, GUEST_ADDR, IMAGE_MEMSZ)
}

/// The PVH conformance guest as an ELF32 with the PVH note, linked at [`GUEST_ADDR`].
pub fn pvh_elf(e: &Expect) -> Vec<u8> {
    let stack = (GUEST_ADDR + IMAGE_MEMSZ) as u32;
    let code = pvh_guest(GUEST_ADDR, e, stack).assemble();
    elf32_pvh(&code, GUEST_ADDR as u32, IMAGE_MEMSZ as u32)
}
