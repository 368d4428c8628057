//! ELF encoding (ELF64, or ELF32 for 32-bit kernels): header, program headers, the Xen PVH
//! note and the file layout.

use crate::layout::PAGE;
use crate::{ExportError, LoadSegment};
use bytes::Bytes;

pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const ET_EXEC: u16 = 2;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
/// `XEN_ELFNOTE_PHYS32_ENTRY`.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// QEMU looks for a Linux setup header ("HdrS" at 0x202) and for a multiboot header in the
/// first 8 KiB before it tries PVH; keep every byte we do not control out of that window.
const FIRST_DATA: u64 = 0x2000;

/// A `PT_LOAD` to lay out.
pub struct Load {
    pub name: String,
    pub addr: u64,
    pub data: Bytes,
    pub mem_size: u64,
    pub flags: u32,
}

pub struct ElfFile {
    pub header: Vec<u8>,
    pub chunks: Vec<(u64, Bytes)>,
    pub size: u64,
    pub loads: Vec<LoadSegment>,
}

/// The ELF class of an exported image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ElfClass {
    /// ELFCLASS64, EM_X86_64: what Firecracker and Cloud Hypervisor (linux-loader) load.
    #[default]
    Elf64,
    /// ELFCLASS32, EM_386: what `qemu-system-i386` loads (it refuses EM_X86_64), and
    /// `qemu-system-x86_64` too. Every address and file offset must fit in 32 bits.
    Elf32,
}

impl ElfClass {
    fn ehdr_size(self) -> u64 {
        match self {
            ElfClass::Elf64 => 64,
            ElfClass::Elf32 => 52,
        }
    }
    fn phdr_size(self) -> u64 {
        match self {
            ElfClass::Elf64 => 56,
            ElfClass::Elf32 => 32,
        }
    }
    /// Appends an address-sized word (the caller checked it fits).
    fn word(self, out: &mut Vec<u8>, v: u64) {
        match self {
            ElfClass::Elf64 => out.extend_from_slice(&v.to_le_bytes()),
            ElfClass::Elf32 => out.extend_from_slice(&(v as u32).to_le_bytes()),
        }
    }
}

/// The note: owner "Xen", type 18, the entry as an address-sized descriptor (as Linux's
/// vmlinux has it: 8 bytes in a 64-bit kernel, where QEMU reads the first 4 and 64-bit
/// readers all 8; `.long` in a 32-bit one).
fn pvh_note(class: ElfClass, entry: u64) -> Vec<u8> {
    let desc = match class {
        ElfClass::Elf64 => 8u32,
        ElfClass::Elf32 => 4,
    };
    let mut n = Vec::with_capacity(24);
    n.extend_from_slice(&4u32.to_le_bytes());
    n.extend_from_slice(&desc.to_le_bytes());
    n.extend_from_slice(&XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
    n.extend_from_slice(b"Xen\0");
    class.word(&mut n, entry);
    n
}

/// One program header in the class's field order (ELF32 puts p_flags after p_memsz).
#[allow(clippy::too_many_arguments)]
fn phdr(
    class: ElfClass,
    out: &mut Vec<u8>,
    p_type: u32,
    flags: u32,
    offset: u64,
    addr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
) {
    out.extend_from_slice(&p_type.to_le_bytes());
    if class == ElfClass::Elf64 {
        out.extend_from_slice(&flags.to_le_bytes());
    }
    for v in [offset, addr, addr, filesz, memsz] {
        class.word(out, v); // p_offset, p_vaddr, p_paddr, p_filesz, p_memsz
    }
    if class == ElfClass::Elf32 {
        out.extend_from_slice(&flags.to_le_bytes());
    }
    class.word(out, align);
}

/// Lays out the file: header, program headers (note first, then the loads in the given
/// order), the note, then each load's bytes at an offset congruent to its address modulo
/// 4 KiB (so `p_align` can be 4 KiB).
pub fn build(loads: Vec<Load>, entry: u64, class: ElfClass) -> Result<ElfFile, ExportError> {
    let phnum = loads.len() + 1;
    if phnum >= 0xFFFF {
        return Err(ExportError::TooManySegments { count: phnum });
    }
    let note = pvh_note(class, entry);
    let note_offset = class.ehdr_size() + class.phdr_size() * phnum as u64;
    let header_end = note_offset + note.len() as u64;

    let mut pos = header_end.max(FIRST_DATA);
    let mut placed = Vec::with_capacity(loads.len());
    let mut chunks = Vec::with_capacity(loads.len());
    for l in loads {
        let len = l.data.len() as u64;
        // The smallest offset >= pos with offset ≡ addr (mod PAGE).
        let offset = pos + ((l.addr % PAGE + PAGE - pos % PAGE) % PAGE);
        if len > 0 {
            pos = offset + len;
            chunks.push((offset, l.data));
        }
        placed.push(LoadSegment {
            name: l.name,
            addr: l.addr,
            file_offset: if len > 0 { offset } else { l.addr % PAGE },
            file_size: len,
            mem_size: l.mem_size,
            flags: l.flags,
        });
    }
    let size = pos;
    if class == ElfClass::Elf32 {
        check_elf32(&placed, size)?;
    }

    let (ident_class, machine) = match class {
        ElfClass::Elf64 => (2u8, EM_X86_64),
        ElfClass::Elf32 => (1u8, EM_386),
    };
    let mut h = Vec::with_capacity(header_end as usize);
    h.extend_from_slice(b"\x7fELF");
    h.extend_from_slice(&[ident_class, 1, 1, 0]); // class, little-endian, version 1, SysV
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&ET_EXEC.to_le_bytes());
    h.extend_from_slice(&machine.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes()); // e_version
    class.word(&mut h, entry);
    class.word(&mut h, class.ehdr_size()); // e_phoff
    class.word(&mut h, 0); // e_shoff
    h.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    h.extend_from_slice(&(class.ehdr_size() as u16).to_le_bytes());
    h.extend_from_slice(&(class.phdr_size() as u16).to_le_bytes());
    h.extend_from_slice(&(phnum as u16).to_le_bytes());
    h.extend_from_slice(&(class.ehdr_size() as u16).to_le_bytes()); // e_shentsize (no table)
    h.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    h.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    let note_len = note.len() as u64;
    phdr(
        class,
        &mut h,
        PT_NOTE,
        PF_R,
        note_offset,
        0,
        note_len,
        note_len,
        4,
    );
    for l in &placed {
        phdr(
            class,
            &mut h,
            PT_LOAD,
            l.flags,
            l.file_offset,
            l.addr,
            l.file_size,
            l.mem_size,
            PAGE,
        );
    }
    h.extend_from_slice(&note);
    Ok(ElfFile {
        header: h,
        chunks,
        size,
        loads: placed,
    })
}

/// An ELF32 holds 32-bit addresses, sizes and file offsets only.
fn check_elf32(placed: &[LoadSegment], size: u64) -> Result<(), ExportError> {
    const LIMIT: u64 = 1 << 32;
    for l in placed {
        if l.addr.saturating_add(l.mem_size) > LIMIT {
            return Err(ExportError::Above4GiB {
                what: format!("the end of segment `{}` in an ELF32 image", l.name),
                addr: l.addr.saturating_add(l.mem_size),
            });
        }
    }
    if size > LIMIT {
        return Err(ExportError::Above4GiB {
            what: "the end of the ELF32 image file".into(),
            addr: size,
        });
    }
    Ok(())
}
