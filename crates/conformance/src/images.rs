//! The files that carry a guest: ELF64, ELF32 with a PVH note, a minimal bzImage.

use crate::BZ_LOAD;

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
