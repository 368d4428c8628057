//! Freestanding conformance guests, assembled with iced-x86, and the files and plans that
//! carry them: ELF64 (linux64 entry), ELF32 with a PVH note, a minimal bzImage.
//!
//! Every guest reports over COM1 the way a driver does (it waits for LSR.THRE before each
//! byte) and ends through the debug-exit port: 0x10 when every check passed, 0x11 after
//! printing `FAIL: <check>` otherwise.
#![allow(dead_code)]

use domboot_builder::{BootPlan, BuildOptions, DomainImage, E820Type, ProtocolChoice};
use domboot_vmm::{Outcome, SerialSink, VmConfig};
use iced_x86::code_asm::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const OK: u8 = 0x10;
pub const BAD: u8 = 0x11;
pub const MIB: u64 = 1 << 20;

/// Where the ELF guests are linked; the bzImage's protected-mode code goes to [`BZ_LOAD`].
pub const GUEST_ADDR: u64 = 0x20_0000;
pub const BZ_LOAD: u64 = 0x100_0000;
/// Guests put their stack and scratch variables in the zero-filled tail of their image.
pub const IMAGE_MEMSZ: u64 = 0x1_0000;
/// Conformance guests keep code below this offset and data from it.
pub const DATA_OFF: u64 = 0x1800;

/// The checksum guests compute over the initrd/module: h = h * 31 + byte (wrapping).
pub fn checksum(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0u32, |h, &b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
}

/// What a conformance guest checks it was handed.
#[derive(Clone, Debug)]
pub struct Expect {
    pub cmdline: String,
    pub initrd: Vec<u8>,
    /// Sum of the RAM entries' sizes in the memory map.
    pub ram_total: u64,
    /// GDTR the plan sets (linux protocols; PVH does not promise one).
    pub gdt: Option<(u32, u16)>,
    /// bzImage checks: code32_start and the protocol version in boot_params.
    pub code32_start: Option<u32>,
}

/// A guest under construction: code, failure handlers, subroutines, data.
pub struct Guest {
    pub a: CodeAssembler,
    pub bits: u32,
    /// Where the code is placed; data follows at `base + data_off` (absolute addresses:
    /// iced's label memory operands exist only in 64-bit mode).
    base: u64,
    data_off: u64,
    data: Vec<u8>,
    putc: CodeLabel,
    puts: CodeLabel,
    hex: CodeLabel,
    fails: Vec<(CodeLabel, String)>,
}

impl Guest {
    /// A guest whose code goes at `base` with at most `data_off` bytes of code.
    pub fn new(bits: u32, base: u64, data_off: u64) -> Guest {
        let mut a = CodeAssembler::new(bits).unwrap();
        let putc = a.create_label();
        let puts = a.create_label();
        let hex = a.create_label();
        Guest {
            a,
            bits,
            base,
            data_off,
            data: Vec::new(),
            putc,
            puts,
            hex,
            fails: Vec::new(),
        }
    }

    fn long(&self) -> bool {
        self.bits == 64
    }

    /// `mov esp, top` (zero-extends into RSP in 64-bit mode).
    pub fn stack(&mut self, top: u32) {
        self.a.mov(esp, top).unwrap();
    }

    fn push_a(&mut self) {
        if self.long() {
            self.a.push(rax).unwrap();
        } else {
            self.a.push(eax).unwrap();
        }
    }

    fn pop_a(&mut self) {
        if self.long() {
            self.a.pop(rax).unwrap();
        } else {
            self.a.pop(eax).unwrap();
        }
    }

    /// Prints `s` (registers preserved; needs a stack).
    pub fn print(&mut self, s: &str) {
        let mut z = s.as_bytes().to_vec();
        z.push(0);
        let at = self.bytes(z);
        self.push_a();
        self.a.mov(eax, at).unwrap();
        self.a.call(self.puts).unwrap();
        self.pop_a();
    }

    /// Prints EAX as 8 hex digits (all registers preserved).
    pub fn hex_eax(&mut self) {
        self.a.call(self.hex).unwrap();
    }

    /// A label that prints `FAIL: name` and exits with [`BAD`].
    pub fn fail(&mut self, name: &str) -> CodeLabel {
        let l = self.a.create_label();
        self.fails.push((l, name.to_string()));
        l
    }

    /// Zero-initialised scratch data of `len` bytes (writable: it is guest RAM); returns
    /// its address.
    pub fn scratch(&mut self, len: usize) -> u32 {
        self.bytes(vec![0; len])
    }

    /// Places `b` in the data area (8-byte aligned); returns its address.
    pub fn bytes(&mut self, b: Vec<u8>) -> u32 {
        self.data.resize(self.data.len().next_multiple_of(8), 0);
        let at = self.base + self.data_off + self.data.len() as u64;
        self.data.extend_from_slice(&b);
        at as u32
    }

    /// `out 0xF4, eax` with `value`, then halt forever.
    pub fn exit(&mut self, value: u32) {
        self.a.mov(edx, 0xF4u32).unwrap();
        self.a.mov(eax, value).unwrap();
        self.a.out(dx, eax).unwrap();
        let mut spin = self.a.create_label();
        self.a.set_label(&mut spin).unwrap();
        self.a.hlt().unwrap();
        self.a.jmp(spin).unwrap();
    }

    /// Fails `name` unless the two 32-bit values are equal.
    pub fn expect_eq(&mut self, op: AsmMemoryOperand, value: u32, name: &str) {
        let f = self.fail(name);
        self.a.cmp(op, value).unwrap();
        self.a.jne(f).unwrap();
    }

    /// Compares the NUL-terminated string at ESI with `expected`. Clobbers EAX, ESI, EDI.
    pub fn expect_str(&mut self, expected: &str, name: &str) {
        let mut want = expected.as_bytes().to_vec();
        want.push(0);
        let label = self.bytes(want);
        let f = self.fail(name);
        let mut lp = self.a.create_label();
        let mut done = self.a.create_label();
        self.lea_edi(label);
        self.a.set_label(&mut lp).unwrap();
        self.a.mov(al, byte_ptr(esi)).unwrap();
        self.a.cmp(al, byte_ptr(edi)).unwrap();
        self.a.jne(f).unwrap();
        self.a.test(al, al).unwrap();
        self.a.jz(done).unwrap();
        self.a.inc(esi).unwrap();
        self.a.inc(edi).unwrap();
        self.a.jmp(lp).unwrap();
        self.a.set_label(&mut done).unwrap();
    }

    fn lea_edi(&mut self, addr: u32) {
        self.a.mov(edi, addr).unwrap();
    }

    /// EAX = checksum of ECX bytes at ESI. Clobbers ECX, EDX, ESI.
    pub fn checksum(&mut self) {
        let mut lp = self.a.create_label();
        let mut done = self.a.create_label();
        self.a.xor(eax, eax).unwrap();
        self.a.test(ecx, ecx).unwrap();
        self.a.jz(done).unwrap();
        self.a.set_label(&mut lp).unwrap();
        self.a.imul_3(eax, eax, 31).unwrap();
        self.a.movzx(edx, byte_ptr(esi)).unwrap();
        self.a.add(eax, edx).unwrap();
        self.a.inc(esi).unwrap();
        self.a.dec(ecx).unwrap();
        self.a.jnz(lp).unwrap();
        self.a.set_label(&mut done).unwrap();
    }

    /// Memory-map sanity for ECX entries of `stride` bytes at ESI (e820 layout: u64 address,
    /// u64 size, u32 type): 1..=128 entries, each non-empty with a known type, sorted and
    /// non-overlapping; the RAM sizes add up to `ram_total`; a RAM entry covers the 32-bit
    /// address in `covers` (a scratch dword). Clobbers EAX, EBX, ECX, EDX, ESI.
    pub fn memory_map(&mut self, stride: u32, ram_total: u64, covers: u32, what: &str) {
        // prev_end lo/hi, RAM total lo/hi, found; addressed through EBP.
        let vars = self.scratch(24);
        let f_count = self.fail(&format!("{what}: entry count"));
        let f_type = self.fail(&format!("{what}: entry type"));
        let f_empty = self.fail(&format!("{what}: empty entry"));
        let f_order = self.fail(&format!("{what}: entries unsorted or overlapping"));
        let f_total = self.fail(&format!("{what}: RAM total"));
        let f_cover = self.fail(&format!("{what}: no RAM entry covers the boot structure"));
        self.a.mov(ebp, vars).unwrap();
        let a = &mut self.a;
        a.test(ecx, ecx).unwrap();
        a.jz(f_count).unwrap();
        a.cmp(ecx, 128u32).unwrap();
        a.ja(f_count).unwrap();
        for off in [0u32, 4, 8, 12, 16] {
            a.mov(dword_ptr(ebp) + off, 0u32).unwrap();
        }
        let mut lp = a.create_label();
        let mut hi_ok = a.create_label();
        let mut not_ram = a.create_label();
        let mut next = a.create_label();
        a.set_label(&mut lp).unwrap();
        // type in 1..=5
        a.mov(eax, dword_ptr(esi + 16)).unwrap();
        a.cmp(eax, 1u32).unwrap();
        a.jb(f_type).unwrap();
        a.cmp(eax, 5u32).unwrap();
        a.ja(f_type).unwrap();
        // size != 0
        a.mov(eax, dword_ptr(esi + 8)).unwrap();
        a.or(eax, dword_ptr(esi + 12)).unwrap();
        a.jz(f_empty).unwrap();
        // address >= prev_end (64-bit compare: high dwords, then low)
        a.mov(eax, dword_ptr(esi + 4)).unwrap();
        a.cmp(eax, dword_ptr(ebp + 4)).unwrap();
        a.ja(hi_ok).unwrap();
        a.jb(f_order).unwrap();
        a.mov(eax, dword_ptr(esi)).unwrap();
        a.cmp(eax, dword_ptr(ebp)).unwrap();
        a.jb(f_order).unwrap();
        a.set_label(&mut hi_ok).unwrap();
        // prev_end = address + size
        a.mov(eax, dword_ptr(esi)).unwrap();
        a.mov(edx, dword_ptr(esi + 4)).unwrap();
        a.add(eax, dword_ptr(esi + 8)).unwrap();
        a.adc(edx, dword_ptr(esi + 12)).unwrap();
        a.mov(dword_ptr(ebp), eax).unwrap();
        a.mov(dword_ptr(ebp + 4), edx).unwrap();
        // RAM: add to the total, and see whether it covers `covers`
        a.cmp(dword_ptr(esi + 16), 1u32).unwrap();
        a.jne(not_ram).unwrap();
        a.mov(eax, dword_ptr(esi + 8)).unwrap();
        a.add(dword_ptr(ebp + 8), eax).unwrap();
        a.mov(eax, dword_ptr(esi + 12)).unwrap();
        a.adc(dword_ptr(ebp + 12), eax).unwrap();
        // covered if address_hi == 0 && address_lo <= X && (end_hi != 0 || end_lo > X)
        a.cmp(dword_ptr(esi + 4), 0u32).unwrap();
        a.jne(next).unwrap();
        a.mov(ebx, dword_ptr(u64::from(covers))).unwrap();
        a.cmp(dword_ptr(esi), ebx).unwrap();
        a.ja(next).unwrap();
        let mut covered = a.create_label();
        a.test(edx, edx).unwrap();
        a.jnz(covered).unwrap();
        a.mov(eax, dword_ptr(ebp)).unwrap();
        a.cmp(eax, ebx).unwrap();
        a.jbe(next).unwrap();
        a.set_label(&mut covered).unwrap();
        a.mov(dword_ptr(ebp + 16), 1u32).unwrap();
        a.set_label(&mut not_ram).unwrap();
        a.nop().unwrap();
        a.set_label(&mut next).unwrap();
        a.add(esi, stride).unwrap();
        a.dec(ecx).unwrap();
        a.jnz(lp).unwrap();
        a.cmp(dword_ptr(ebp + 8), ram_total as u32).unwrap();
        a.jne(f_total).unwrap();
        a.cmp(dword_ptr(ebp + 12), (ram_total >> 32) as u32)
            .unwrap();
        a.jne(f_total).unwrap();
        a.cmp(dword_ptr(ebp + 16), 1u32).unwrap();
        a.jne(f_cover).unwrap();
    }

    /// Checks CS and the data segment selectors.
    pub fn selectors(&mut self, cs_sel: u32, ds_sel: u32) {
        let fcs = self.fail("CS selector");
        let fds = self.fail("DS/ES/SS selector");
        let a = &mut self.a;
        a.mov(eax, 0u32).unwrap();
        a.mov(ax, cs).unwrap();
        a.cmp(eax, cs_sel).unwrap();
        a.jne(fcs).unwrap();
        for s in [ds, es, ss] {
            a.mov(eax, 0u32).unwrap();
            a.mov(ax, s).unwrap();
            a.cmp(eax, ds_sel).unwrap();
            a.jne(fds).unwrap();
        }
    }

    /// EFLAGS.IF and DF clear (needs a stack).
    pub fn flags_clear(&mut self) {
        let f = self.fail("EFLAGS: IF or DF set at entry");
        if self.long() {
            self.a.pushfq().unwrap();
            self.a.pop(rax).unwrap();
        } else {
            self.a.pushfd().unwrap();
            self.a.pop(eax).unwrap();
        }
        self.a.test(eax, 0x600u32).unwrap();
        self.a.jnz(f).unwrap();
    }

    /// CR0.PE set; CR0.PG as `paging`; in 64-bit mode CR4.PAE and EFER.LME/LMA set, in 32-bit
    /// mode (PVH) CR4 zero when `cr4_zero`.
    pub fn control_registers(&mut self, cr4_zero: bool) {
        let fpe = self.fail("CR0.PE clear");
        let fpg = self.fail(if self.long() {
            "CR0.PG clear in long mode"
        } else {
            "CR0.PG set at a 32-bit entry"
        });
        let fpae = self.fail("CR4.PAE clear in long mode");
        let flma = self.fail("EFER.LME/LMA clear in long mode");
        let fcr4 = self.fail("CR4 not zero at the PVH entry");
        if self.long() {
            let a = &mut self.a;
            a.mov(rax, cr0).unwrap();
            a.test(eax, 1u32).unwrap();
            a.jz(fpe).unwrap();
            a.bt(eax, 31).unwrap();
            a.jnc(fpg).unwrap();
            a.mov(rax, cr4).unwrap();
            a.test(eax, 0x20u32).unwrap();
            a.jz(fpae).unwrap();
            a.mov(ecx, 0xC000_0080u32).unwrap();
            a.rdmsr().unwrap();
            a.and(eax, 0x500u32).unwrap();
            a.cmp(eax, 0x500u32).unwrap();
            a.jne(flma).unwrap();
        } else {
            let a = &mut self.a;
            a.mov(eax, cr0).unwrap();
            a.test(eax, 1u32).unwrap();
            a.jz(fpe).unwrap();
            a.bt(eax, 31).unwrap();
            a.jc(fpg).unwrap();
            if cr4_zero {
                a.mov(eax, cr4).unwrap();
                a.test(eax, eax).unwrap();
                a.jnz(fcr4).unwrap();
            }
        }
    }

    /// The x87 control word domboot sets (0x37F, FNINIT's value). (Only x87: SSE state
    /// cannot be read without CR4.OSFXSR, which the boot protocols leave clear.)
    pub fn fpu_control_word(&mut self) {
        let buf = self.scratch(4);
        let f = self.fail("x87 control word is not 0x37f");
        self.a.mov(ebp, buf).unwrap();
        self.a.fnstcw(word_ptr(ebp)).unwrap();
        self.a.movzx(eax, word_ptr(ebp)).unwrap();
        self.a.cmp(eax, 0x37Fu32).unwrap();
        self.a.jne(f).unwrap();
    }

    /// GDTR base (low 32 bits) and limit.
    pub fn gdtr(&mut self, base: u32, limit: u16) {
        let buf = self.scratch(16);
        let fb = self.fail("GDTR base");
        let fl = self.fail("GDTR limit");
        self.a.mov(ebp, buf).unwrap();
        self.a.sgdt(ptr(ebp)).unwrap();
        self.print("gdtr limit=");
        self.a.movzx(eax, word_ptr(ebp)).unwrap();
        self.hex_eax();
        self.print(" base=");
        self.a.mov(eax, dword_ptr(ebp + 2)).unwrap();
        self.hex_eax();
        self.print("\n");
        let a = &mut self.a;
        a.movzx(eax, word_ptr(ebp)).unwrap();
        a.cmp(eax, u32::from(limit)).unwrap();
        a.jne(fl).unwrap();
        a.mov(eax, dword_ptr(ebp + 2)).unwrap();
        a.cmp(eax, base).unwrap();
        a.jne(fb).unwrap();
    }

    /// Appends the failure handlers and subroutines, assembles at the base, and appends the
    /// data area.
    pub fn assemble(mut self) -> Vec<u8> {
        let fails = std::mem::take(&mut self.fails);
        for (mut l, name) in fails {
            self.a.set_label(&mut l).unwrap();
            self.print(&format!("FAIL: {name}\n"));
            self.exit(u32::from(BAD));
        }
        // putc: AL to COM1 once LSR.THRE (bit 5 of 0x3FD) is set; preserves everything.
        let mut putc = self.putc;
        self.a.set_label(&mut putc).unwrap();
        if self.long() {
            self.a.push(rdx).unwrap();
            self.a.push(rax).unwrap();
        } else {
            self.a.push(edx).unwrap();
            self.a.push(eax).unwrap();
        }
        self.a.mov(edx, 0x3FDu32).unwrap();
        let mut wait = self.a.create_label();
        self.a.set_label(&mut wait).unwrap();
        self.a.in_(al, dx).unwrap();
        self.a.test(al, 0x20u32).unwrap();
        self.a.jz(wait).unwrap();
        self.pop_a();
        self.a.mov(edx, 0x3F8u32).unwrap();
        self.a.out(dx, al).unwrap();
        if self.long() {
            self.a.pop(rdx).unwrap();
        } else {
            self.a.pop(edx).unwrap();
        }
        self.a.ret().unwrap();
        // puts: the NUL-terminated string at EAX; preserves everything.
        let mut puts = self.puts;
        self.a.set_label(&mut puts).unwrap();
        if self.long() {
            self.a.push(rsi).unwrap();
            self.a.push(rax).unwrap();
        } else {
            self.a.push(esi).unwrap();
            self.a.push(eax).unwrap();
        }
        self.a.mov(esi, eax).unwrap();
        let mut next = self.a.create_label();
        let mut end = self.a.create_label();
        self.a.set_label(&mut next).unwrap();
        self.a.mov(al, byte_ptr(esi)).unwrap();
        self.a.test(al, al).unwrap();
        self.a.jz(end).unwrap();
        self.a.call(self.putc).unwrap();
        self.a.inc(esi).unwrap();
        self.a.jmp(next).unwrap();
        self.a.set_label(&mut end).unwrap();
        if self.long() {
            self.a.pop(rax).unwrap();
            self.a.pop(rsi).unwrap();
        } else {
            self.a.pop(eax).unwrap();
            self.a.pop(esi).unwrap();
        }
        self.a.ret().unwrap();
        // hex: EAX as 8 digits; preserves everything.
        let mut hex = self.hex;
        self.a.set_label(&mut hex).unwrap();
        if self.long() {
            for r in [rax, rbx, rcx] {
                self.a.push(r).unwrap();
            }
        } else {
            for r in [eax, ebx, ecx] {
                self.a.push(r).unwrap();
            }
        }
        self.a.mov(ebx, eax).unwrap();
        self.a.mov(ecx, 8u32).unwrap();
        let mut lp = self.a.create_label();
        let mut digit = self.a.create_label();
        self.a.set_label(&mut lp).unwrap();
        self.a.rol(ebx, 4).unwrap();
        self.a.mov(eax, ebx).unwrap();
        self.a.and(eax, 0xFu32).unwrap();
        self.a.add(eax, u32::from(b'0')).unwrap();
        self.a.cmp(eax, u32::from(b'9')).unwrap();
        self.a.jbe(digit).unwrap();
        self.a.add(eax, 7u32).unwrap();
        self.a.set_label(&mut digit).unwrap();
        self.a.call(self.putc).unwrap();
        self.a.dec(ecx).unwrap();
        self.a.jnz(lp).unwrap();
        if self.long() {
            for r in [rcx, rbx, rax] {
                self.a.pop(r).unwrap();
            }
        } else {
            for r in [ecx, ebx, eax] {
                self.a.pop(r).unwrap();
            }
        }
        self.a.ret().unwrap();
        let mut out = self.a.assemble(self.base).unwrap();
        assert!(
            out.len() as u64 <= self.data_off,
            "guest code ({} bytes) runs into its data at +{:#x}",
            out.len(),
            self.data_off
        );
        out.resize(self.data_off as usize, 0);
        out.extend_from_slice(&self.data);
        out
    }
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
    g.memory_map(20, e.ram_total, bp_var, "e820");
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
    g.memory_map(24, e.ram_total, si_var, "memmap");
    g.print("memmap ok\nALL OK\n");
    g.exit(u32::from(OK));
    g
}

// ---------------------------------------------------------------- image files

fn put16(v: &mut [u8], at: usize, x: u16) {
    v[at..at + 2].copy_from_slice(&x.to_le_bytes());
}
fn put32(v: &mut [u8], at: usize, x: u32) {
    v[at..at + 4].copy_from_slice(&x.to_le_bytes());
}
fn put64(v: &mut [u8], at: usize, x: u64) {
    v[at..at + 8].copy_from_slice(&x.to_le_bytes());
}

/// An ELF64 executable with one PT_LOAD of `code` at `addr` (memsz `memsz`), entry `addr`.
pub fn elf64(code: &[u8], addr: u64, memsz: u64) -> Vec<u8> {
    let mut f = vec![0u8; 0x1000];
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // 64-bit
    f[5] = 1; // little-endian
    f[6] = 1;
    put16(&mut f, 16, 2); // ET_EXEC
    put16(&mut f, 18, 62); // x86-64
    put32(&mut f, 20, 1);
    put64(&mut f, 24, addr);
    put64(&mut f, 32, 64); // phoff
    put16(&mut f, 52, 64);
    put16(&mut f, 54, 56);
    put16(&mut f, 56, 1);
    put16(&mut f, 58, 64);
    let p = 64;
    put32(&mut f, p, 1); // PT_LOAD
    put32(&mut f, p + 4, 7);
    put64(&mut f, p + 8, 0x1000);
    put64(&mut f, p + 16, addr);
    put64(&mut f, p + 24, addr);
    put64(&mut f, p + 32, code.len() as u64);
    put64(&mut f, p + 40, memsz.max(code.len() as u64));
    put64(&mut f, p + 48, 0x1000);
    f.extend_from_slice(code);
    f
}

/// An ELF32 executable with one PT_LOAD of `code` at `addr` and a PT_NOTE holding
/// XEN_ELFNOTE_PHYS32_ENTRY = `addr`.
pub fn elf32_pvh(code: &[u8], addr: u32, memsz: u32) -> Vec<u8> {
    let mut f = vec![0u8; 0x1000];
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = 1; // 32-bit
    f[5] = 1;
    f[6] = 1;
    put16(&mut f, 16, 2);
    put16(&mut f, 18, 3); // i386
    put32(&mut f, 20, 1);
    put32(&mut f, 24, addr);
    put32(&mut f, 28, 52); // phoff
    put16(&mut f, 40, 52);
    put16(&mut f, 42, 32);
    put16(&mut f, 44, 2);
    put16(&mut f, 46, 40);
    let note_off = 0x200u32;
    let mut note = Vec::new();
    note.extend_from_slice(&4u32.to_le_bytes());
    note.extend_from_slice(&4u32.to_le_bytes());
    note.extend_from_slice(&18u32.to_le_bytes());
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&addr.to_le_bytes());
    f[note_off as usize..note_off as usize + note.len()].copy_from_slice(&note);
    let p = 52;
    put32(&mut f, p, 1); // PT_LOAD
    put32(&mut f, p + 4, 0x1000);
    put32(&mut f, p + 8, addr);
    put32(&mut f, p + 12, addr);
    put32(&mut f, p + 16, code.len() as u32);
    put32(&mut f, p + 20, memsz.max(code.len() as u32));
    put32(&mut f, p + 24, 7);
    put32(&mut f, p + 28, 0x1000);
    let p = 52 + 32;
    put32(&mut f, p, 4); // PT_NOTE
    put32(&mut f, p + 4, note_off);
    put32(&mut f, p + 16, note.len() as u32);
    put32(&mut f, p + 20, note.len() as u32);
    put32(&mut f, p + 24, 4);
    put32(&mut f, p + 28, 4);
    f.extend_from_slice(code);
    f
}

/// A minimal bzImage (boot protocol 2.15, one setup sector, no payload): `pm` is the
/// protected-mode code, entered at offset 0 (32-bit) or 0x200 (64-bit, XLF_KERNEL_64).
/// Relocatable, 2 MiB aligned, preferring [`BZ_LOAD`].
pub fn bzimage(pm: &[u8], init_size: u32) -> Vec<u8> {
    let mut f = vec![0u8; 1024];
    f[0x1F1] = 1; // setup_sects
    put16(&mut f, 0x1FE, 0xAA55);
    f[0x200] = 0xEB; // jmp short over the header
    f[0x201] = (0x26C - 0x202) as u8;
    f[0x202..0x206].copy_from_slice(b"HdrS");
    put16(&mut f, 0x206, 0x020F);
    f[0x211] = 0x01; // LOADED_HIGH
    put32(&mut f, 0x214, 0x10_0000); // code32_start (the loader rewrites it)
    put32(&mut f, 0x22C, 0x7FFF_FFFF); // initrd_addr_max
    put32(&mut f, 0x230, 0x20_0000); // kernel_alignment
    f[0x234] = 1; // relocatable_kernel
    f[0x235] = 21; // min_alignment (log2)
    put16(&mut f, 0x236, 0x1 | 0x2); // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
    put32(&mut f, 0x238, 2047); // cmdline_size
    put64(&mut f, 0x258, BZ_LOAD); // pref_address
    put32(&mut f, 0x260, init_size);
    f.extend_from_slice(pm);
    f
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

// ---------------------------------------------------------------- plans and runs

pub fn ram_total(plan: &BootPlan) -> u64 {
    plan.e820
        .iter()
        .filter(|e| e.kind == E820Type::Ram)
        .map(|e| e.size)
        .sum()
}

/// Builds a real plan with the builder from files written to `dir`.
pub fn build_plan(
    dir: &Path,
    kernel: &[u8],
    initrd: &[u8],
    cmdline: &str,
    memory: u64,
    protocol: ProtocolChoice,
) -> BootPlan {
    let kpath = dir.join("kernel");
    std::fs::write(&kpath, kernel).unwrap();
    let ipath: PathBuf = dir.join("initrd");
    std::fs::write(&ipath, initrd).unwrap();
    let image = DomainImage::new(
        &kpath,
        &[ipath],
        Some(cmdline),
        BuildOptions {
            memory,
            protocol,
            ..Default::default()
        },
    )
    .expect("domain image");
    image.build().expect("plan")
}

/// A pseudo-random initrd (so a checksum catches misplaced or truncated bytes).
pub fn initrd_bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 7) as u8
        })
        .collect()
}

pub struct Run {
    pub outcome: Outcome,
    pub serial: String,
}

pub fn run(plan: &BootPlan, cpus: u8, timeout: Duration) -> Run {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let cfg = VmConfig {
        cpus,
        serial: SerialSink::Capture(buf.clone()),
        timeout: Some(timeout),
        verbose: true,
    };
    let outcome = domboot_vmm::run(plan, &cfg).expect("domboot_vmm::run");
    let serial = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    eprintln!(
        "--- serial ---\n{serial}\n--- outcome: {} (exit code {})",
        outcome.describe(),
        outcome.exit_code()
    );
    Run { outcome, serial }
}
