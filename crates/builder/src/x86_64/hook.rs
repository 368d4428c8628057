//! The seeds' `code32_start` hook: a non-relocatable kernel can be loaded somewhere else
//! (away from firmware, for example) if the entry first copies the protected-mode image to
//! the address it was built for and jumps there. Generated with iced-x86's code assembler.
//!
//! The hook preserves ESP, EBP, ESI and EDI (ESI/RSI carries boot_params; the protocol
//! wants EBP/EDI as the loader left them) and touches no stack, because the 32-bit boot
//! protocol does not promise one.

use crate::error::BuildError;
use iced_x86::code_asm::*;

/// Bytes copied per `movsd`.
const UNIT: u64 = 4;

/// What the hook copies and where it then jumps.
#[derive(Clone, Copy, Debug)]
pub struct Relocation {
    pub from: u64,
    pub to: u64,
    /// Bytes to copy (rounded up to whole dwords; the staged segment is padded to match).
    pub len: u64,
    /// Offset of the entry point from `to`: 0 for the 32-bit entry, 0x200 for 64-bit.
    pub entry_offset: u64,
}

impl Relocation {
    fn dwords(&self) -> u64 {
        self.len.div_ceil(UNIT)
    }
    /// A forward copy would overwrite source bytes not yet copied.
    fn backwards(&self) -> bool {
        self.from < self.to && self.from + self.len > self.to
    }
}

fn asm_err(e: IcedError) -> BuildError {
    BuildError::Unsupported(format!("cannot assemble the code32_start hook: {e}"))
}

/// The 32-bit hook (linux32: it is what code32_start points at), assembled for `ip`.
pub fn hook32(r: &Relocation, ip: u64) -> Result<Vec<u8>, BuildError> {
    let (from, to) = (addr32(r.from)?, addr32(r.to)?);
    let last = (r.dwords().saturating_sub(1) * UNIT) as u32;
    let mut a = CodeAssembler::new(32).map_err(asm_err)?;
    (|| -> Result<(), IcedError> {
        a.mov(eax, esi)?;
        a.mov(edx, edi)?;
        if r.backwards() {
            a.std()?;
            a.mov(esi, from + last)?;
            a.mov(edi, to + last)?;
        } else {
            a.cld()?;
            a.mov(esi, from)?;
            a.mov(edi, to)?;
        }
        a.mov(ecx, r.dwords() as u32)?;
        a.rep().movsd()?;
        a.cld()?;
        a.mov(esi, eax)?;
        a.mov(edi, edx)?;
        a.mov(eax, to + r.entry_offset as u32)?;
        a.jmp(eax)?;
        Ok(())
    })()
    .map_err(asm_err)?;
    a.assemble(ip).map_err(asm_err)
}

/// The 64-bit hook (linux64: the plan enters it instead of load address + 0x200).
pub fn hook64(r: &Relocation, ip: u64) -> Result<Vec<u8>, BuildError> {
    let last = r.dwords().saturating_sub(1) * UNIT;
    let mut a = CodeAssembler::new(64).map_err(asm_err)?;
    (|| -> Result<(), IcedError> {
        a.mov(rax, rsi)?;
        a.mov(rdx, rdi)?;
        if r.backwards() {
            a.std()?;
            a.mov(rsi, r.from + last)?;
            a.mov(rdi, r.to + last)?;
        } else {
            a.cld()?;
            a.mov(rsi, r.from)?;
            a.mov(rdi, r.to)?;
        }
        a.mov(rcx, r.dwords())?;
        a.rep().movsd()?;
        a.cld()?;
        a.mov(rsi, rax)?;
        a.mov(rdi, rdx)?;
        a.mov(rax, r.to + r.entry_offset)?;
        a.jmp(rax)?;
        Ok(())
    })()
    .map_err(asm_err)?;
    a.assemble(ip).map_err(asm_err)
}

fn addr32(v: u64) -> Result<u32, BuildError> {
    u32::try_from(v).map_err(|_| {
        BuildError::Unsupported(format!(
            "the 32-bit code32_start hook cannot reach {v:#x}, above 4 GiB"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, Formatter, NasmFormatter};

    fn disasm(bits: u32, code: &[u8], ip: u64) -> String {
        let mut d = Decoder::with_ip(bits, code, ip, DecoderOptions::NONE);
        let mut f = NasmFormatter::new();
        let mut out = String::new();
        for ins in &mut d {
            let mut s = String::new();
            f.format(&ins, &mut s);
            out.push_str(&s);
            out.push('\n');
        }
        out
    }

    #[test]
    fn forward_hook_copies_then_jumps_preserving_esi_edi() {
        let r = Relocation {
            from: 0x200_0000,
            to: 0x100_0000,
            len: 0x1001,
            entry_offset: 0,
        };
        let text = disasm(32, &hook32(&r, 0x10_0000).unwrap(), 0x10_0000);
        assert_eq!(
            text,
            "mov eax,esi\nmov edx,edi\ncld\nmov esi,2000000h\nmov edi,1000000h\nmov ecx,401h\n\
             rep movsd\ncld\nmov esi,eax\nmov edi,edx\nmov eax,1000000h\njmp eax\n"
        );
        assert!(!text.contains("esp") && !text.contains("ebp") && !text.contains("push"));
    }

    #[test]
    fn overlapping_move_up_copies_backwards() {
        let r = Relocation {
            from: 0x100_0000,
            to: 0x100_1000,
            len: 0x2000,
            entry_offset: 0x200,
        };
        let text = disasm(64, &hook64(&r, 0x9000).unwrap(), 0x9000);
        assert!(
            text.contains("std\nmov rsi,1001FFCh\nmov rdi,1002FFCh\n"),
            "{text}"
        );
        assert!(text.ends_with("mov rax,1001200h\njmp rax\n"), "{text}");
    }
}
