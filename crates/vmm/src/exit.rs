//! The short report domboot gives when a guest ends badly: the exit reason, the vCPU, its
//! registers and the code bytes at RIP.

use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};
use kvm_ioctls::VcpuFd;
use std::fmt;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// A segment register as the report shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seg {
    pub selector: u16,
    pub base: u64,
    pub limit: u32,
    pub type_: u8,
    pub l: bool,
    pub db: bool,
}

impl From<&kvm_segment> for Seg {
    fn from(s: &kvm_segment) -> Seg {
        Seg {
            selector: s.selector,
            base: s.base,
            limit: s.limit,
            type_: s.type_,
            l: s.l != 0,
            db: s.db != 0,
        }
    }
}

/// A vCPU's registers at the moment it stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registers {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub cs: Seg,
    pub ds: Seg,
    pub ss: Seg,
    pub tr: Seg,
    pub gdt: (u64, u16),
    pub idt: (u64, u16),
}

impl Registers {
    /// The architectural state after RESET/INIT: CS base 0xFFFF0000, IP 0xFFF0, real mode.
    pub fn is_reset_state(&self) -> bool {
        self.rip == 0xFFF0 && self.cs.base == 0xFFFF_0000 && self.cr0 & 1 == 0
    }

    pub fn from_kvm(r: &kvm_regs, s: &kvm_sregs) -> Registers {
        Registers {
            rax: r.rax,
            rbx: r.rbx,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            rbp: r.rbp,
            rsp: r.rsp,
            r8: r.r8,
            r9: r.r9,
            r10: r.r10,
            r11: r.r11,
            r12: r.r12,
            r13: r.r13,
            r14: r.r14,
            r15: r.r15,
            rip: r.rip,
            rflags: r.rflags,
            cr0: s.cr0,
            cr2: s.cr2,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer,
            cs: (&s.cs).into(),
            ds: (&s.ds).into(),
            ss: (&s.ss).into(),
            tr: (&s.tr).into(),
            gdt: (s.gdt.base, s.gdt.limit),
            idt: (s.idt.base, s.idt.limit),
        }
    }

    /// "real", "protected (32-bit)", "long (64-bit)", ...
    pub fn mode(&self) -> &'static str {
        if self.cr0 & 1 == 0 {
            "real mode"
        } else if self.efer & (1 << 10) != 0 && self.cs.l {
            "64-bit long mode"
        } else if self.efer & (1 << 10) != 0 {
            "compatibility mode"
        } else if self.cs.db {
            "32-bit protected mode"
        } else {
            "16-bit protected mode"
        }
    }
}

/// Why and where a guest stopped badly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashReport {
    pub vcpu: usize,
    /// e.g. "triple fault (KVM_EXIT_SHUTDOWN)".
    pub reason: String,
    pub registers: Option<Registers>,
    /// Up to 16 bytes at CS:RIP, when they could be read.
    pub code: Option<Vec<u8>>,
}

impl CrashReport {
    /// Reads what it can from `vcpu`; failures just leave fields empty.
    pub fn capture(
        vcpu_index: usize,
        reason: String,
        vcpu: &VcpuFd,
        mem: &GuestMemoryMmap,
    ) -> CrashReport {
        let registers = match (vcpu.get_regs(), vcpu.get_sregs()) {
            (Ok(r), Ok(s)) => Some(Registers::from_kvm(&r, &s)),
            _ => None,
        };
        let code = registers.as_ref().and_then(|r| {
            let linear = r.cs.base.wrapping_add(r.rip);
            let phys = if r.cr0 & (1 << 31) == 0 {
                linear
            } else {
                let t = vcpu.translate_gva(linear).ok()?;
                if t.valid == 0 {
                    return None;
                }
                t.physical_address
            };
            let mut buf = [0u8; 16];
            mem.read_slice(&mut buf, GuestAddress(phys)).ok()?;
            Some(buf.to_vec())
        });
        CrashReport {
            vcpu: vcpu_index,
            reason,
            registers,
            code,
        }
    }
}

impl fmt::Display for CrashReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "vCPU {}: {}", self.vcpu, self.reason)?;
        let Some(r) = &self.registers else {
            return writeln!(f, "  (registers unavailable)");
        };
        if r.is_reset_state() {
            writeln!(
                f,
                "  note: these are the vCPU's power-on values (F000:FFF0, real mode): KVM on \
                 AMD (SVM) resets a vCPU that triple-faults before domboot can read it, so \
                 where the guest failed is lost; its last console lines are the clue"
            )?;
        }
        writeln!(
            f,
            "  rip {:016x}  rflags {:016x}  {}",
            r.rip,
            r.rflags,
            r.mode()
        )?;
        writeln!(
            f,
            "  rax {:016x}  rbx {:016x}  rcx {:016x}  rdx {:016x}",
            r.rax, r.rbx, r.rcx, r.rdx
        )?;
        writeln!(
            f,
            "  rsi {:016x}  rdi {:016x}  rbp {:016x}  rsp {:016x}",
            r.rsi, r.rdi, r.rbp, r.rsp
        )?;
        writeln!(
            f,
            "  r8  {:016x}  r9  {:016x}  r10 {:016x}  r11 {:016x}",
            r.r8, r.r9, r.r10, r.r11
        )?;
        writeln!(
            f,
            "  r12 {:016x}  r13 {:016x}  r14 {:016x}  r15 {:016x}",
            r.r12, r.r13, r.r14, r.r15
        )?;
        writeln!(
            f,
            "  cr0 {:016x}  cr2 {:016x}  cr3 {:016x}  cr4 {:016x}  efer {:x}",
            r.cr0, r.cr2, r.cr3, r.cr4, r.efer
        )?;
        writeln!(
            f,
            "  cs {:04x} base {:x}  ds {:04x}  ss {:04x}  tr {:04x}  gdt {:x}/{:x}  idt {:x}/{:x}",
            r.cs.selector,
            r.cs.base,
            r.ds.selector,
            r.ss.selector,
            r.tr.selector,
            r.gdt.0,
            r.gdt.1,
            r.idt.0,
            r.idt.1
        )?;
        if let Some(code) = &self.code {
            write!(f, "  code at rip:")?;
            for b in code {
                write!(f, " {b:02x}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_shows_reason_rip_and_mode() {
        let r = CrashReport {
            vcpu: 1,
            reason: "triple fault (KVM_EXIT_SHUTDOWN)".into(),
            registers: Some(Registers {
                rip: 0x20_0010,
                cr0: 0x8000_0011,
                efer: 0x500,
                cs: Seg {
                    selector: 0x10,
                    l: true,
                    ..Default::default()
                },
                ..Default::default()
            }),
            code: Some(vec![0x0f, 0x0b]),
        };
        let s = r.to_string();
        assert!(s.starts_with("vCPU 1: triple fault"), "{s}");
        assert!(s.contains("rip 0000000000200010"), "{s}");
        assert!(s.contains("64-bit long mode"), "{s}");
        assert!(s.contains("code at rip: 0f 0b"), "{s}");
    }
}
