//! The guest assembler: a small iced-x86 program with COM1 output (polling LSR.THRE, as a
//! driver does), named failure exits, and the checks every conformance guest shares.

use crate::BAD;
use iced_x86::code_asm::*;
use std::ops::RangeInclusive;

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
    /// non-overlapping; the RAM sizes add up to a total within `ram` (inclusive, compared as
    /// 64-bit numbers); a RAM entry covers the 32-bit address in `covers` (a scratch dword).
    /// Prints every entry and the RAM total before judging them. Clobbers EAX, EBX, ECX, EDX,
    /// ESI.
    pub fn memory_map(&mut self, stride: u32, ram: &RangeInclusive<u64>, covers: u32, what: &str) {
        let (min, max) = (*ram.start(), *ram.end());
        assert!(min <= max, "empty RAM range {min:#x}..={max:#x}");
        // prev_end lo/hi, RAM total lo/hi, found; addressed through EBP.
        let vars = self.scratch(24);
        let f_count = self.fail(&format!("{what}: entry count"));
        let f_type = self.fail(&format!("{what}: entry type"));
        let f_empty = self.fail(&format!("{what}: empty entry"));
        let f_order = self.fail(&format!("{what}: entries unsorted or overlapping"));
        let f_total = self.fail(&format!("{what}: RAM total outside {min:#x}..={max:#x}"));
        let f_cover = self.fail(&format!("{what}: no RAM entry covers the boot structure"));
        self.a.mov(ebp, vars).unwrap();
        self.a.test(ecx, ecx).unwrap();
        self.a.jz(f_count).unwrap();
        self.a.cmp(ecx, 128u32).unwrap();
        self.a.ja(f_count).unwrap();
        for off in [0u32, 4, 8, 12, 16] {
            self.a.mov(dword_ptr(ebp) + off, 0u32).unwrap();
        }
        let mut lp = self.a.create_label();
        let mut hi_ok = self.a.create_label();
        let mut not_ram = self.a.create_label();
        let mut next = self.a.create_label();
        self.a.set_label(&mut lp).unwrap();
        // "  address size type" in hex, so a failure shows the map it judged.
        self.print("  ");
        for (off, sep) in [(4u32, ""), (0, " "), (12, ""), (8, " "), (16, "\n")] {
            self.a.mov(eax, dword_ptr(esi + off)).unwrap();
            self.hex_eax();
            if !sep.is_empty() {
                self.print(sep);
            }
        }
        let a = &mut self.a;
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
        self.print(&format!("{what} RAM total="));
        self.a.mov(eax, dword_ptr(ebp + 12)).unwrap();
        self.hex_eax();
        self.a.mov(eax, dword_ptr(ebp + 8)).unwrap();
        self.hex_eax();
        self.print("\n");
        // min <= total <= max, 64-bit: the high dwords decide unless they are equal.
        let a = &mut self.a;
        let mut above_min = a.create_label();
        let mut below_max = a.create_label();
        a.mov(eax, dword_ptr(ebp + 12)).unwrap();
        a.cmp(eax, (min >> 32) as u32).unwrap();
        a.ja(above_min).unwrap();
        a.jb(f_total).unwrap();
        a.mov(eax, dword_ptr(ebp + 8)).unwrap();
        a.cmp(eax, min as u32).unwrap();
        a.jb(f_total).unwrap();
        a.set_label(&mut above_min).unwrap();
        a.mov(eax, dword_ptr(ebp + 12)).unwrap();
        a.cmp(eax, (max >> 32) as u32).unwrap();
        a.jb(below_max).unwrap();
        a.ja(f_total).unwrap();
        a.mov(eax, dword_ptr(ebp + 8)).unwrap();
        a.cmp(eax, max as u32).unwrap();
        a.ja(f_total).unwrap();
        a.set_label(&mut below_max).unwrap();
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

    /// Both 8259 interrupt mask registers read 0xFF: every legacy PIC line masked at entry
    /// (domboot's KVM backend sets its PIC so, the export stub masks firmware's).
    pub fn pic_masked(&mut self) {
        let f = self.fail("8259 not fully masked at entry (IMR of 0x21 or 0xA1 is not 0xff)");
        for port in [0x21u32, 0xA1] {
            self.a.mov(edx, port).unwrap();
            self.a.in_(al, dx).unwrap();
            self.a.cmp(al, 0xFFu32).unwrap();
            self.a.jne(f).unwrap();
        }
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
