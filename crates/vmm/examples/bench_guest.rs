//! Writes the startup benchmark's guest (`scripts/bench/startup.sh`): a freestanding ELF32
//! with a PVH note (XEN_ELFNOTE_PHYS32_ENTRY), so the same file boots through
//! `domboot run --kernel FILE` (the builder enters it through pvh) and through QEMU's
//! `-kernel FILE` (its PVH loader).
//!
//! The guest, entered in 32-bit protected mode with paging off, writes one byte to COM1
//! (0x3F8) before anything else, then the rest of a short line (waiting for LSR.THRE before
//! each byte, like a driver), then 0 to the debug-exit port 0xF4 (domboot exits 0, QEMU's
//! `isa-debug-exit` exits 1). No stack, no interrupts, no IDT: it runs on PVM's KVM too.
//!
//! Usage: `cargo run --release -p domboot-vmm --example bench_guest -- OUT.elf`
//! (prints the line the guest writes, for the caller to check the output against).

use iced_x86::code_asm::*;
use std::process::ExitCode;

/// Where the guest is linked and loaded (physical; PVH entry = this address).
const LOAD: u32 = 0x20_0000;
/// The line is stored at `LOAD + DATA_OFF`; the code must fit below it.
const DATA_OFF: u32 = 0x80;
/// The first byte, written with no wait at all.
const FIRST: u8 = b'#';
/// The rest of the line.
const REST: &str = " domboot bench guest: up\n";
const COM1: u16 = 0x3F8;
const DEBUG_EXIT: u16 = 0xF4;

fn code() -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(32)?;
    // The first byte: the UART comes out of reset with its transmitter empty.
    a.mov(dx, COM1 as u32)?;
    a.mov(al, FIRST as u32)?;
    a.out(dx, al)?;
    // The rest of the NUL-terminated line at ESI.
    a.mov(esi, LOAD + DATA_OFF)?;
    let mut next = a.create_label();
    let mut wait = a.create_label();
    let mut done = a.create_label();
    a.set_label(&mut next)?;
    a.mov(dx, (COM1 + 5) as u32)?; // LSR
    a.set_label(&mut wait)?;
    a.in_(al, dx)?;
    a.test(al, 0x20)?; // THRE
    a.jz(wait)?;
    a.mov(al, byte_ptr(esi))?;
    a.test(al, al)?;
    a.jz(done)?;
    a.mov(dx, COM1 as u32)?;
    a.out(dx, al)?;
    a.inc(esi)?;
    a.jmp(next)?;
    a.set_label(&mut done)?;
    // Debug exit with value 0; halt forever should the port not end the run.
    a.mov(dx, DEBUG_EXIT as u32)?;
    a.xor(eax, eax)?;
    a.out(dx, eax)?;
    let mut spin = a.create_label();
    a.set_label(&mut spin)?;
    a.hlt()?;
    a.jmp(spin)?;
    a.assemble(u64::from(LOAD))
}

fn put16(v: &mut [u8], at: usize, x: u16) {
    v[at..at + 2].copy_from_slice(&x.to_le_bytes());
}

fn put32(v: &mut [u8], at: usize, x: u32) {
    v[at..at + 4].copy_from_slice(&x.to_le_bytes());
}

/// An ELF32 i386 executable: one PT_LOAD of `image` at [`LOAD`] (file offset 0x1000) and a
/// PT_NOTE holding XEN_ELFNOTE_PHYS32_ENTRY = [`LOAD`].
fn elf32_pvh(image: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 0x1000];
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = 1; // ELFCLASS32
    f[5] = 1; // little-endian
    f[6] = 1; // EV_CURRENT
    put16(&mut f, 16, 2); // ET_EXEC
    put16(&mut f, 18, 3); // EM_386
    put32(&mut f, 20, 1);
    put32(&mut f, 24, LOAD); // e_entry
    put32(&mut f, 28, 52); // e_phoff
    put16(&mut f, 40, 52); // e_ehsize
    put16(&mut f, 42, 32); // e_phentsize
    put16(&mut f, 44, 2); // e_phnum
    put16(&mut f, 46, 40); // e_shentsize
    let note_off = 0x200usize;
    let mut note = Vec::new();
    note.extend_from_slice(&4u32.to_le_bytes()); // namesz
    note.extend_from_slice(&4u32.to_le_bytes()); // descsz
    note.extend_from_slice(&18u32.to_le_bytes()); // XEN_ELFNOTE_PHYS32_ENTRY
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&LOAD.to_le_bytes());
    f[note_off..note_off + note.len()].copy_from_slice(&note);
    let p = 52;
    put32(&mut f, p, 1); // PT_LOAD
    put32(&mut f, p + 4, 0x1000); // p_offset
    put32(&mut f, p + 8, LOAD); // p_vaddr
    put32(&mut f, p + 12, LOAD); // p_paddr
    put32(&mut f, p + 16, image.len() as u32); // p_filesz
    put32(&mut f, p + 20, image.len() as u32); // p_memsz
    put32(&mut f, p + 24, 7); // RWX
    put32(&mut f, p + 28, 0x1000);
    let p = 52 + 32;
    put32(&mut f, p, 4); // PT_NOTE
    put32(&mut f, p + 4, note_off as u32);
    put32(&mut f, p + 16, note.len() as u32);
    put32(&mut f, p + 20, note.len() as u32);
    put32(&mut f, p + 24, 4);
    put32(&mut f, p + 28, 4);
    f.extend_from_slice(image);
    f
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out] = args.as_slice() else {
        eprintln!("usage: bench_guest OUT.elf");
        return ExitCode::from(2);
    };
    let mut image = match code() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench_guest: assembling: {e}");
            return ExitCode::from(2);
        }
    };
    assert!(
        image.len() <= DATA_OFF as usize,
        "code ({} bytes) overlaps the data at {DATA_OFF:#x}",
        image.len()
    );
    image.resize(DATA_OFF as usize, 0x90); // nop padding up to the line
    image.extend_from_slice(REST.as_bytes());
    image.push(0);
    if let Err(e) = std::fs::write(out, elf32_pvh(&image)) {
        eprintln!("bench_guest: writing {out}: {e}");
        return ExitCode::from(2);
    }
    print!("{}{REST}", FIRST as char);
    ExitCode::SUCCESS
}
