//! ELF64 encoding: header, program headers, the Xen PVH note and the file layout.

use crate::layout::PAGE;
use crate::{ExportError, LoadSegment};
use bytes::Bytes;

pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u64 = 56;
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

/// The note: owner "Xen", type 18, an 8-byte descriptor holding the entry (as the kernel's
/// vmlinux does; QEMU reads the first 4 bytes, older QEMU and 64-bit readers all 8).
fn pvh_note(entry: u64) -> Vec<u8> {
    let mut n = Vec::with_capacity(24);
    n.extend_from_slice(&4u32.to_le_bytes());
    n.extend_from_slice(&8u32.to_le_bytes());
    n.extend_from_slice(&XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
    n.extend_from_slice(b"Xen\0");
    n.extend_from_slice(&entry.to_le_bytes());
    n
}

#[allow(clippy::too_many_arguments)]
fn phdr(
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
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&addr.to_le_bytes()); // p_vaddr
    out.extend_from_slice(&addr.to_le_bytes()); // p_paddr
    out.extend_from_slice(&filesz.to_le_bytes());
    out.extend_from_slice(&memsz.to_le_bytes());
    out.extend_from_slice(&align.to_le_bytes());
}

/// Lays out the file: header, program headers (note first, then the loads in the given
/// order), the note, then each load's bytes at an offset congruent to its address modulo
/// 4 KiB (so `p_align` can be 4 KiB).
pub fn build(loads: Vec<Load>, entry: u64) -> Result<ElfFile, ExportError> {
    let phnum = loads.len() + 1;
    if phnum >= 0xFFFF {
        return Err(ExportError::TooManySegments { count: phnum });
    }
    let note = pvh_note(entry);
    let note_offset = EHDR_SIZE + PHDR_SIZE * phnum as u64;
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

    let mut h = Vec::with_capacity(header_end as usize);
    h.extend_from_slice(b"\x7fELF");
    h.extend_from_slice(&[2, 1, 1, 0]); // ELFCLASS64, little-endian, version 1, SysV ABI
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&ET_EXEC.to_le_bytes());
    h.extend_from_slice(&EM_X86_64.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes()); // e_version
    h.extend_from_slice(&entry.to_le_bytes());
    h.extend_from_slice(&EHDR_SIZE.to_le_bytes()); // e_phoff
    h.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    h.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    h.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    h.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    h.extend_from_slice(&(phnum as u16).to_le_bytes());
    h.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    h.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    h.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    phdr(
        &mut h,
        PT_NOTE,
        PF_R,
        note_offset,
        0,
        note.len() as u64,
        note.len() as u64,
        4,
    );
    for l in &placed {
        phdr(
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
