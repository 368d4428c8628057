//! The boot stub: x86 code generated with iced-x86's code assembler, and its data page.
//!
//! Memory layout of the stub region (base `B`, 4 KiB-aligned, at or above 1 MiB):
//!
//! ```text
//! B            code page: [64-bit tail (Long64 only)] [32-bit PVH entry ...]
//!              [kexec only: 32-bit part leaving long mode] [64-bit kexec entry, SHA-256]
//! B + 0x1000   data: stub GDT, GDTRs, variables, check table, staging table, messages,
//!              then (zero-filled) the memory-map snapshot and the stack
//! after data   staged copies of plan segments that live below 1 MiB
//! ```
//!
//! The 32-bit part runs from the PVH entry (flat protected mode, paging off, EBX =
//! `hvm_start_info`): own GDT and stack, snapshot of the loader's memory map, fit check
//! (message on COM1 and port 0xE9, a write to QEMU's debug-exit port, then a triple fault), copies of low segments, patching
//! of boot_params / start_info, masking the 8259s, and the switch to the plan's entry state.

use crate::ExportError;
use crate::layout::{PAGE, Span};
use domboot_builder::x86_64::{pvh, zero_page};
use domboot_builder::{BootPlan, CpuMode};
use iced_x86::code_asm::*;
use iced_x86::{BlockEncoderOptions, Code, Instruction};

/// Bytes reserved for the code (one page).
pub const CODE_SIZE: u64 = PAGE;

/// Maximum memory-map entries the stub adopts (the size of boot_params' e820 table).
pub const MAX_MAP_ENTRIES: u32 = zero_page::E820_MAX as u32;
/// One `hvm_memmap_table_entry`.
const MAP_ENTRY_SIZE: u32 = pvh::MEMMAP_ENTRY_SIZE as u32;
const STACK_SIZE: u64 = 4096;

// The boot ABIs' layouts come from the builder, which writes these structures; the stub
// only patches them, so both sides share one definition.
pub const HVM_START_MAGIC: u32 = pvh::START_INFO_MAGIC;
/// `hvm_start_info` field offsets.
const SI_MAGIC: u32 = pvh::MAGIC as u32;
const SI_VERSION: u32 = pvh::VERSION as u32;
const SI_RSDP: u32 = pvh::RSDP_PADDR as u32;
const SI_MEMMAP_PADDR: u32 = pvh::MEMMAP_PADDR as u32;
const SI_MEMMAP_ENTRIES: u32 = pvh::MEMMAP_ENTRIES as u32;
/// boot_params offsets.
const BP_ACPI_RSDP: u32 = zero_page::ACPI_RSDP_ADDR as u32;
const BP_E820_ENTRIES: u32 = zero_page::E820_ENTRIES as u32;
const BP_E820_TABLE: u32 = zero_page::E820_TABLE as u32;
const E820_ENTRY_SIZE: u32 = zero_page::E820_ENTRY_SIZE as u32;

const COM1: u32 = 0x3F8;
const COM1_LSR: u32 = 0x3FD;
const DEBUGCON: u32 = 0xE9;
/// QEMU's isa-debug-exit port (its default iobase; `domboot run --accel tcg` and the tests
/// add the device there). Elsewhere the write goes to an unused port and does nothing.
pub const DEBUG_EXIT_PORT: u16 = 0xF4;
/// What the stub writes to [`DEBUG_EXIT_PORT`] when the loader gave too little RAM, so
/// QEMU exits with status `(0x7E << 1) | 1` = 253 instead of 0 after the triple fault.
pub const NO_RAM_EXIT: u8 = 0x7E;
/// What the kexec entry writes to [`DEBUG_EXIT_PORT`] before it halts on a checksum
/// mismatch (QEMU with that device exits with status 251; elsewhere the write does nothing
/// and the machine stays halted, as with kexec-tools' purgatory).
pub const BAD_SUM_EXIT: u8 = 0x7D;
const MSR_EFER: u32 = 0xC000_0080;
/// The 8259 interrupt mask registers (OCW1).
const PIC_MASTER_DATA: u32 = 0x21;
const PIC_SLAVE_DATA: u32 = 0xA1;
const EFER_LMA: u64 = 1 << 10;

/// Stub GDT selectors (0x18 is a 64-bit code segment, used only by the kexec entry).
const STUB_CS: u16 = 0x08;
const STUB_DS: u32 = 0x10;
const STUB_CS64: u64 = 0x18;

// Data page offsets.
const D_GDT: u64 = 0;
const D_STUB_GDTR: u64 = 32;
const D_PLAN_GDTR: u64 = 40;
const D_ZERO_IDTR: u64 = 48;
/// The stub GDT's 10-byte pseudo-descriptor for `lgdt` in 64-bit mode (kexec entry).
const D_STUB_GDTR64: u64 = 54;
const D_CUR: u64 = 64;
const D_MAP_COUNT: u64 = 72;
const D_RSDP: u64 = 80;
const D_TABLES: u64 = 128;
const ITEM_SIZE: u64 = 24;
const STAGED_SIZE: u64 = 16;

/// A range the loader's memory map must cover with RAM, and what to say when it does not.
#[derive(Clone, Debug)]
pub struct CheckItem {
    pub span: Span,
    pub message: String,
}

/// A plan segment below 1 MiB: its bytes travel at `src` and the stub copies them down.
#[derive(Clone, Copy, Debug)]
pub struct Staged {
    pub src: u32,
    pub dst: u32,
    pub len: u32,
    pub zero: u32,
}

/// Which structure receives the adopted memory map.
#[derive(Clone, Copy, Debug)]
pub enum Patch {
    Linux {
        boot_params: u32,
    },
    Pvh {
        start_info: u32,
        memmap: Option<(u32, u32)>,
    },
}

/// What the kexec entry needs: the running machine's memory map and RSDP (handed to the
/// PVH path as an `hvm_start_info` of the stub's own) and the ranges it checksums.
#[derive(Clone, Debug)]
pub struct KexecData {
    /// `(address, size, e820 type)`.
    pub memmap: Vec<(u64, u64, u32)>,
    pub rsdp: u64,
    pub hashes: Vec<HashRange>,
}

/// A range the kexec entry hashes with SHA-256 before it goes on: `blocks` 64-byte blocks
/// from `addr` (the data zero-padded to whole blocks, which is what memory holds there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashRange {
    pub addr: u64,
    pub blocks: u64,
    pub digest: [u8; 32],
}

const SHA256_K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];
const SHA256_H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

fn sha256_block(h: &mut [u32; 8], block: &[u8]) {
    let mut w = [0u32; 64];
    for (i, c) in block.chunks(4).enumerate() {
        w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16]
            .wrapping_add(s0)
            .wrapping_add(w[i - 7])
            .wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = *h;
    for i in 0..64 {
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let choose = (e & f) ^ (!e & g);
        let t1 = hh
            .wrapping_add(s1)
            .wrapping_add(choose)
            .wrapping_add(SHA256_K[i])
            .wrapping_add(w[i]);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0.wrapping_add(maj);
        hh = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }
    for (x, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
        *x = x.wrapping_add(v);
    }
}

/// The kexec entry's checksum of `bytes` at `addr`: SHA-256 of the bytes zero-padded to
/// whole 64-byte blocks (as kexec-tools' purgatory checks its segments with SHA-256).
pub fn hash_range(addr: u64, bytes: &[u8]) -> HashRange {
    let mut h = SHA256_H0;
    let mut blocks = 0u64;
    for chunk in bytes.chunks(64) {
        let mut b = [0u8; 64];
        b[..chunk.len()].copy_from_slice(chunk);
        sha256_block(&mut h, &b);
        blocks += 1;
    }
    let mut pad = [0u8; 64];
    pad[0] = 0x80;
    pad[56..].copy_from_slice(&(blocks * 512).to_be_bytes());
    sha256_block(&mut h, &pad);
    let mut digest = [0u8; 32];
    for (d, v) in digest.chunks_mut(4).zip(h) {
        d.copy_from_slice(&v.to_be_bytes());
    }
    HashRange {
        addr,
        blocks,
        digest,
    }
}

/// What the kexec entry prints when a checksum does not match.
pub const KEXEC_BAD_SUM: &str =
    "domboot purgatory: a kexec segment's checksum does not match; not booting it\r\n";
const HVM_START_INFO_SIZE: u64 = 56;
/// One hash table entry: address, blocks, digest (as the eight state words, little-endian).
const HASH_SIZE: u64 = 48;

/// Where the kexec data lives in the data page.
#[derive(Clone, Copy, Debug)]
struct KexecLayout {
    start_info: u64,
    memmap: u64,
    hashes: u64,
    hashes_end: u64,
    message: u64,
    /// SHA-256 round constants (256 bytes), initial state (32), padding block (64), then
    /// at run time: the state (32), the message schedule (256) and the table cursor (8).
    sha_k: u64,
    sha_h0: u64,
    sha_pad: u64,
    sha_h: u64,
    sha_w: u64,
    cursor: u64,
}

/// Where things are in the data page.
#[derive(Clone, Debug)]
pub struct DataLayout {
    items: u64,
    items_end: u64,
    staged: u64,
    staged_end: u64,
    messages: u64,
    kexec: Option<KexecLayout>,
    /// Bytes with contents (the rest of `mem_size` is zero-filled by the loader).
    pub file_size: u64,
    snapshot: u64,
    stack_top: u64,
    pub mem_size: u64,
}

impl DataLayout {
    /// `kexec`: the number of memory-map entries and of hash ranges, for a kexec stub.
    pub fn new(items: &[CheckItem], staged: usize, kexec: Option<(usize, usize)>) -> DataLayout {
        let items_off = D_TABLES;
        let items_end = items_off + ITEM_SIZE * items.len() as u64;
        let staged_off = items_end;
        let staged_end = staged_off + STAGED_SIZE * staged as u64;
        let messages = staged_end;
        let mut file_size = messages + items.iter().map(|i| i.message.len() as u64).sum::<u64>();
        let kexec = kexec.map(|(map, hashes)| {
            let start_info = file_size.next_multiple_of(8);
            let memmap = start_info + HVM_START_INFO_SIZE;
            let hashes_off = memmap + u64::from(MAP_ENTRY_SIZE) * map as u64;
            let hashes_end = hashes_off + HASH_SIZE * hashes as u64;
            let sha_k = (hashes_end + KEXEC_BAD_SUM.len() as u64).next_multiple_of(8);
            let sha_h0 = sha_k + 256;
            let sha_pad = sha_h0 + 32;
            let sha_h = sha_pad + 64;
            let sha_w = sha_h + 32;
            let cursor = sha_w + 256;
            file_size = cursor + 8;
            KexecLayout {
                start_info,
                memmap,
                hashes: hashes_off,
                hashes_end,
                message: hashes_end,
                sha_k,
                sha_h0,
                sha_pad,
                sha_h,
                sha_w,
                cursor,
            }
        });
        let snapshot = file_size.next_multiple_of(16);
        let stack_top = snapshot + u64::from(MAX_MAP_ENTRIES * MAP_ENTRY_SIZE) + STACK_SIZE;
        DataLayout {
            items: items_off,
            items_end,
            staged: staged_off,
            staged_end,
            messages,
            kexec,
            file_size,
            snapshot,
            stack_top,
            mem_size: stack_top.next_multiple_of(PAGE),
        }
    }
}

/// Everything the code generator needs.
pub struct StubParams<'a> {
    pub plan: &'a BootPlan,
    pub base: u32,
    pub items: &'a [CheckItem],
    pub staged: &'a [Staged],
    pub patch: Patch,
    pub layout: &'a DataLayout,
    /// Also generate the kexec entry (64-bit, as Linux's relocate_kernel jumps to it).
    pub kexec: Option<&'a KexecData>,
}

/// The generated stub.
pub struct StubImage {
    pub code: Vec<u8>,
    pub data: Vec<u8>,
    pub entry: u64,
    /// The kexec entry, when asked for.
    pub kexec_entry: Option<u64>,
}

impl StubParams<'_> {
    fn data_base(&self) -> u32 {
        self.base + CODE_SIZE as u32
    }
    fn d(&self, off: u64) -> u64 {
        u64::from(self.data_base()) + off
    }
}

/// A flat 4 GiB descriptor with the given access byte and flags nibble.
fn flat_descriptor(access: u8, flags: u8) -> u64 {
    0xFFFF | (u64::from(access) << 40) | (0xF << 48) | (u64::from(flags) << 52)
}

fn put(buf: &mut [u8], off: u64, bytes: &[u8]) {
    let off = off as usize;
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

fn data_page(p: &StubParams) -> Vec<u8> {
    let l = p.layout;
    let mut d = vec![0u8; l.file_size as usize];
    // Null, 32-bit flat code (0x08), 32-bit flat data (0x10).
    put(&mut d, D_GDT + 8, &flat_descriptor(0x9A, 0xC).to_le_bytes());
    put(
        &mut d,
        D_GDT + 16,
        &flat_descriptor(0x92, 0xC).to_le_bytes(),
    );
    // 64-bit flat code (0x18), for the kexec entry's own GDT before it leaves long mode.
    put(
        &mut d,
        D_GDT + STUB_CS64,
        &flat_descriptor(0x9A, 0xA).to_le_bytes(),
    );
    put(&mut d, D_STUB_GDTR, &31u16.to_le_bytes());
    put(&mut d, D_STUB_GDTR64, &31u16.to_le_bytes());
    put(&mut d, D_STUB_GDTR64 + 2, &p.d(D_GDT).to_le_bytes());
    put(&mut d, D_STUB_GDTR + 2, &(p.d(D_GDT) as u32).to_le_bytes());
    put(&mut d, D_PLAN_GDTR, &p.plan.entry.gdt_limit.to_le_bytes());
    put(
        &mut d,
        D_PLAN_GDTR + 2,
        &(p.plan.entry.gdt_base as u32).to_le_bytes(),
    );
    let mut msg = l.messages;
    for (i, item) in p.items.iter().enumerate() {
        let at = l.items + ITEM_SIZE * i as u64;
        put(&mut d, at, &item.span.start.to_le_bytes());
        put(&mut d, at + 8, &item.span.end.to_le_bytes());
        put(&mut d, at + 16, &(p.d(msg) as u32).to_le_bytes());
        put(&mut d, at + 20, &(item.message.len() as u32).to_le_bytes());
        put(&mut d, msg, item.message.as_bytes());
        msg += item.message.len() as u64;
    }
    for (i, s) in p.staged.iter().enumerate() {
        let at = l.staged + STAGED_SIZE * i as u64;
        put(&mut d, at, &s.src.to_le_bytes());
        put(&mut d, at + 4, &s.dst.to_le_bytes());
        put(&mut d, at + 8, &s.len.to_le_bytes());
        put(&mut d, at + 12, &s.zero.to_le_bytes());
    }
    if let (Some(k), Some(kl)) = (p.kexec, l.kexec) {
        let info = kl.start_info;
        put(
            &mut d,
            info + u64::from(SI_MAGIC),
            &HVM_START_MAGIC.to_le_bytes(),
        );
        put(&mut d, info + u64::from(SI_VERSION), &1u32.to_le_bytes());
        put(&mut d, info + u64::from(SI_RSDP), &k.rsdp.to_le_bytes());
        put(
            &mut d,
            info + u64::from(SI_MEMMAP_PADDR),
            &p.d(kl.memmap).to_le_bytes(),
        );
        put(
            &mut d,
            info + u64::from(SI_MEMMAP_ENTRIES),
            &(k.memmap.len() as u32).to_le_bytes(),
        );
        for (i, &(addr, size, kind)) in k.memmap.iter().enumerate() {
            let at = kl.memmap + u64::from(MAP_ENTRY_SIZE) * i as u64;
            put(&mut d, at, &addr.to_le_bytes());
            put(&mut d, at + 8, &size.to_le_bytes());
            put(&mut d, at + 16, &kind.to_le_bytes());
        }
        for (i, h) in k.hashes.iter().enumerate() {
            let at = kl.hashes + HASH_SIZE * i as u64;
            put(&mut d, at, &h.addr.to_le_bytes());
            put(&mut d, at + 8, &h.blocks.to_le_bytes());
            // The digest as the state words the code leaves in memory.
            for (j, w) in h.digest.chunks(4).enumerate() {
                let v = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
                put(&mut d, at + 16 + 4 * j as u64, &v.to_le_bytes());
            }
        }
        put(&mut d, kl.message, KEXEC_BAD_SUM.as_bytes());
        for (j, k) in SHA256_K.iter().enumerate() {
            put(&mut d, kl.sha_k + 4 * j as u64, &k.to_le_bytes());
        }
        for (j, h) in SHA256_H0.iter().enumerate() {
            put(&mut d, kl.sha_h0 + 4 * j as u64, &h.to_le_bytes());
        }
        put(&mut d, kl.sha_pad, &[0x80]);
    }
    d
}

/// Generates code and data for a stub at `p.base`.
pub fn generate(p: &StubParams) -> Result<StubImage, ExportError> {
    let base = u64::from(p.base);
    let (tail, tail_len) = match p.plan.entry.mode {
        CpuMode::Long64 => {
            let code = tail64(p)?.assemble(base)?;
            let len = code.len() as u64;
            (code, len.next_multiple_of(16))
        }
        CpuMode::Protected32 => (Vec::new(), 0),
    };
    let entry = base + tail_len;
    // Two passes: the first finds where the far jump that reloads CS must land.
    let (mut a, reload) = main32(p, 0)?;
    let first = a.assemble_options(entry, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
    let target = first.label_ip(&reload)?;
    let (mut a, reload) = main32(p, target as u32)?;
    let second = a.assemble_options(entry, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
    if second.label_ip(&reload)? != target {
        return Err(ExportError::Assembler(
            "the stub's layout changed between passes".into(),
        ));
    }
    let mut code = tail;
    code.resize(tail_len as usize, 0xCC);
    code.extend_from_slice(&second.inner.code_buffer);
    let mut kexec_entry = None;
    if let (Some(_), Some(kl)) = (p.kexec, p.layout.kexec) {
        // [32-bit part that leaves long mode][64-bit entry], after the main part.
        code.resize(code.len().next_multiple_of(16), 0xCC);
        let at32 = base + code.len() as u64;
        let part32 = kexec32(p, kl, entry)?.assemble(at32)?;
        code.extend_from_slice(&part32);
        code.resize(code.len().next_multiple_of(16), 0xCC);
        let at64 = base + code.len() as u64;
        let part64 = kexec64(p, kl, at32)?.assemble(at64)?;
        code.extend_from_slice(&part64);
        kexec_entry = Some(at64);
    }
    if code.len() as u64 > CODE_SIZE {
        return Err(ExportError::StubTooLarge {
            size: code.len(),
            limit: CODE_SIZE as usize,
        });
    }
    Ok(StubImage {
        code,
        data: data_page(p),
        entry,
        kexec_entry,
    })
}

/// The kexec entry, where Linux's relocate_kernel lands (64-bit mode, identity-mapped page
/// tables covering RAM and the segments, interrupts off, its own GDT no longer mapped):
/// loads the stub's GDT and stack, checks every hashed range (on a mismatch: a message on
/// COM1 and port 0xE9, then halts, as kexec-tools' purgatory does), then far-returns to
/// the 32-bit part at `to32` in compatibility mode.
fn kexec64(p: &StubParams, kl: KexecLayout, to32: u64) -> Result<CodeAssembler, ExportError> {
    let mut a = CodeAssembler::new(64)?;
    a.cli()?;
    a.cld()?;
    a.mov(rax, p.d(D_STUB_GDTR64))?;
    a.lgdt(ptr(rax))?;
    a.mov(rsp, p.d(p.layout.stack_top))?;
    // SHA-256 of every range in the table.
    let mut range = a.create_label();
    let mut block = a.create_label();
    let mut padded = a.create_label();
    let mut good = a.create_label();
    let mut bad = a.create_label();
    let mut compress = a.create_label();
    a.mov(rax, p.d(kl.cursor))?;
    a.mov(rbx, p.d(kl.hashes))?;
    a.mov(qword_ptr(rax), rbx)?;
    a.set_label(&mut range)?;
    a.mov(rax, p.d(kl.cursor))?;
    a.mov(rbx, qword_ptr(rax))?;
    a.mov(rax, p.d(kl.hashes_end))?;
    a.cmp(rbx, rax)?;
    a.jae(good)?;
    a.mov(rsi, p.d(kl.sha_h0))?;
    a.mov(rdi, p.d(kl.sha_h))?;
    a.mov(ecx, 8u32)?;
    a.rep().movsd()?;
    a.mov(rdx, qword_ptr(rbx))?;
    a.mov(rcx, qword_ptr(rbx + 8))?;
    a.set_label(&mut block)?;
    a.test(rcx, rcx)?;
    a.jz(padded)?;
    a.push(rcx)?;
    a.push(rdx)?;
    a.call(compress)?;
    a.pop(rdx)?;
    a.pop(rcx)?;
    a.add(rdx, 64)?;
    a.dec(rcx)?;
    a.jmp(block)?;
    // The padding block: 0x80, zeros, the length in bits (big-endian).
    a.set_label(&mut padded)?;
    a.mov(rax, p.d(kl.cursor))?;
    a.mov(rbx, qword_ptr(rax))?;
    a.mov(rax, qword_ptr(rbx + 8))?;
    a.shl(rax, 9)?;
    a.bswap(rax)?;
    a.mov(rdx, p.d(kl.sha_pad))?;
    a.mov(qword_ptr(rdx + 56), rax)?;
    a.call(compress)?;
    a.mov(rax, p.d(kl.cursor))?;
    a.mov(rbx, qword_ptr(rax))?;
    a.mov(rsi, p.d(kl.sha_h))?;
    a.lea(rdi, qword_ptr(rbx + 16))?;
    a.mov(ecx, 8u32)?;
    a.repe().cmpsd()?;
    a.jne(bad)?;
    a.add(qword_ptr(rax), HASH_SIZE as i32)?;
    a.jmp(range)?;

    // compress: one 64-byte block at RDX into the state; clobbers everything but RSP.
    a.set_label(&mut compress)?;
    let mut load = a.create_label();
    let mut schedule = a.create_label();
    let mut round = a.create_label();
    a.mov(rsi, p.d(kl.sha_w))?;
    a.mov(rdi, p.d(kl.sha_k))?;
    a.xor(ebp, ebp)?;
    a.set_label(&mut load)?;
    a.mov(eax, dword_ptr(rdx + rbp))?;
    a.bswap(eax)?;
    a.mov(dword_ptr(rsi + rbp), eax)?;
    a.add(ebp, 4)?;
    a.cmp(ebp, 64)?;
    a.jb(load)?;
    a.set_label(&mut schedule)?;
    a.mov(eax, dword_ptr(rsi + rbp - 60))?;
    a.mov(ebx, eax)?;
    a.ror(ebx, 7)?;
    a.mov(ecx, eax)?;
    a.ror(ecx, 18)?;
    a.xor(ebx, ecx)?;
    a.shr(eax, 3)?;
    a.xor(ebx, eax)?;
    a.mov(eax, dword_ptr(rsi + rbp - 8))?;
    a.mov(ecx, eax)?;
    a.ror(ecx, 17)?;
    a.mov(edx, eax)?;
    a.ror(edx, 19)?;
    a.xor(ecx, edx)?;
    a.shr(eax, 10)?;
    a.xor(ecx, eax)?;
    a.mov(eax, dword_ptr(rsi + rbp - 64))?;
    a.add(eax, ebx)?;
    a.add(eax, dword_ptr(rsi + rbp - 28))?;
    a.add(eax, ecx)?;
    a.mov(dword_ptr(rsi + rbp), eax)?;
    a.add(ebp, 4)?;
    a.cmp(ebp, 256)?;
    a.jb(schedule)?;
    let state = [r8d, r9d, r10d, r11d, r12d, r13d, r14d, r15d];
    a.mov(rax, p.d(kl.sha_h))?;
    for (i, r) in state.iter().enumerate() {
        a.mov(*r, dword_ptr(rax + 4 * i as i32))?;
    }
    let [va, vb, vc, vd, ve, vf, vg, vh] = state;
    a.xor(ebp, ebp)?;
    a.set_label(&mut round)?;
    // EAX = t1 = h + S1(e) + ch(e, f, g) + K[i] + W[i]
    a.mov(eax, ve)?;
    a.ror(eax, 6)?;
    a.mov(ebx, ve)?;
    a.ror(ebx, 11)?;
    a.xor(eax, ebx)?;
    a.mov(ebx, ve)?;
    a.ror(ebx, 25)?;
    a.xor(eax, ebx)?;
    a.mov(ebx, ve)?;
    a.and(ebx, vf)?;
    a.mov(ecx, ve)?;
    a.not(ecx)?;
    a.and(ecx, vg)?;
    a.xor(ebx, ecx)?;
    a.add(eax, ebx)?;
    a.add(eax, vh)?;
    a.add(eax, dword_ptr(rdi + rbp))?;
    a.add(eax, dword_ptr(rsi + rbp))?;
    // EBX = t2 = S0(a) + maj(a, b, c)
    a.mov(ebx, va)?;
    a.ror(ebx, 2)?;
    a.mov(ecx, va)?;
    a.ror(ecx, 13)?;
    a.xor(ebx, ecx)?;
    a.mov(ecx, va)?;
    a.ror(ecx, 22)?;
    a.xor(ebx, ecx)?;
    a.mov(ecx, va)?;
    a.and(ecx, vb)?;
    a.mov(edx, va)?;
    a.and(edx, vc)?;
    a.xor(ecx, edx)?;
    a.mov(edx, vb)?;
    a.and(edx, vc)?;
    a.xor(ecx, edx)?;
    a.add(ebx, ecx)?;
    a.mov(vh, vg)?;
    a.mov(vg, vf)?;
    a.mov(vf, ve)?;
    a.mov(ve, vd)?;
    a.add(ve, eax)?;
    a.mov(vd, vc)?;
    a.mov(vc, vb)?;
    a.mov(vb, va)?;
    a.mov(va, eax)?;
    a.add(va, ebx)?;
    a.add(ebp, 4)?;
    a.cmp(ebp, 256)?;
    a.jb(round)?;
    a.mov(rax, p.d(kl.sha_h))?;
    for (i, r) in state.iter().enumerate() {
        a.add(dword_ptr(rax + 4 * i as i32), *r)?;
    }
    a.ret()?;

    // Mismatch: say so and stop.
    a.set_label(&mut bad)?;
    let mut print = a.create_label();
    let mut wait = a.create_label();
    let mut ready = a.create_label();
    let mut halt = a.create_label();
    a.mov(rsi, p.d(kl.message))?;
    a.mov(ecx, KEXEC_BAD_SUM.len() as u32)?;
    a.set_label(&mut print)?;
    a.mov(edx, COM1_LSR)?;
    a.mov(ebx, 0x10000u32)?;
    a.set_label(&mut wait)?;
    a.in_(al, dx)?;
    a.test(al, 0x20u32)?;
    a.jnz(ready)?;
    a.dec(ebx)?;
    a.jnz(wait)?;
    a.set_label(&mut ready)?;
    a.mov(al, byte_ptr(rsi))?;
    a.mov(edx, COM1)?;
    a.out(dx, al)?;
    a.mov(edx, DEBUGCON)?;
    a.out(dx, al)?;
    a.inc(rsi)?;
    a.dec(ecx)?;
    a.jnz(print)?;
    a.mov(edx, u32::from(DEBUG_EXIT_PORT))?;
    a.mov(al, u32::from(BAD_SUM_EXIT))?;
    a.out(dx, al)?;
    a.set_label(&mut halt)?;
    a.hlt()?;
    a.jmp(halt)?;
    // Good: to 32-bit compatibility mode (CS 0x08) at `to32`.
    a.set_label(&mut good)?;
    a.push(i32::from(STUB_CS))?;
    a.mov(rax, to32)?;
    a.push(rax)?;
    a.add_instruction(Instruction::with(Code::Retfq))?;
    Ok(a)
}

/// The kexec entry's 32-bit part (compatibility mode, identity-mapped): stub data
/// segments, paging and long mode off, then the PVH path at `entry` with EBX pointing at
/// the stub's own `hvm_start_info` (the running machine's memory map and RSDP).
fn kexec32(p: &StubParams, kl: KexecLayout, entry: u64) -> Result<CodeAssembler, ExportError> {
    const CR0_PG: u32 = 1 << 31;
    const EFER_LME: u32 = 1 << 8;
    let mut a = CodeAssembler::new(32)?;
    a.mov(eax, STUB_DS)?;
    load_data_segments(&mut a)?;
    a.mov(eax, cr0)?;
    a.and(eax, !CR0_PG as i32)?;
    a.mov(cr0, eax)?;
    a.mov(ecx, MSR_EFER)?;
    a.rdmsr()?;
    a.and(eax, !EFER_LME as i32)?;
    a.wrmsr()?;
    a.xor(eax, eax)?;
    a.mov(cr4, eax)?;
    a.mov(cr3, eax)?;
    a.mov(ebx, p.d(kl.start_info) as u32)?;
    a.jmp(entry)?;
    Ok(a)
}

/// 6b. Puts the boot processor's local APIC in virtual wire mode (LINT0 = ExtINT,
/// LINT1 = NMI), as PC firmware does and Linux expects of it: a kernel without APIC
/// support (i386 tinyconfig) gets its timer through the 8259 and LINT0. SeaBIOS does
/// this, qboot does not, and QEMU's APIC at reset masks LINT0, which blocks the 8259's
/// output: such a kernel hung at "Calibrating delay loop" under qboot. LVT masks only
/// clear while the APIC is software-enabled, so SVR gets its enable bit first (vector
/// 0xFF, as SeaBIOS sets it). Skipped without an APIC (CPUID), with the APIC disabled in
/// IA32_APIC_BASE or in x2APIC mode (no MMIO window). Clobbers EAX, EBX, ECX, EDX.
fn virtual_wire_mode(a: &mut CodeAssembler) -> Result<(), IcedError> {
    const CPUID_APIC: u32 = 1 << 9;
    const MSR_APIC_BASE: u32 = 0x1B;
    const APIC_GLOBAL_ENABLE: u32 = 1 << 11;
    const APIC_X2APIC: u32 = 1 << 10;
    const APIC_SVR: u32 = 0xF0;
    const APIC_LVT0: u32 = 0x350;
    const APIC_LVT1: u32 = 0x360;
    const SVR_ENABLED: u32 = 0x1FF;
    const LVT_EXTINT: u32 = 0x700;
    const LVT_NMI: u32 = 0x400;
    let mut skip = a.create_label();
    a.mov(eax, 1u32)?;
    a.cpuid()?;
    a.test(edx, CPUID_APIC)?;
    a.jz(skip)?;
    a.mov(ecx, MSR_APIC_BASE)?;
    a.rdmsr()?;
    a.test(eax, APIC_GLOBAL_ENABLE)?;
    a.jz(skip)?;
    a.test(eax, APIC_X2APIC)?;
    a.jnz(skip)?;
    // The window must be addressable with paging off.
    a.test(edx, edx)?;
    a.jnz(skip)?;
    a.and(eax, 0xFFFF_F000u32)?;
    a.mov(dword_ptr(eax + APIC_SVR), SVR_ENABLED)?;
    a.mov(dword_ptr(eax + APIC_LVT0), LVT_EXTINT)?;
    a.mov(dword_ptr(eax + APIC_LVT1), LVT_NMI)?;
    a.set_label(&mut skip)?;
    // A label needs an instruction after it; the caller's next one may carry its own.
    a.nop()?;
    Ok(())
}

/// Drops the empty entries of the memory-map snapshot (`count` entries at `snapshot`) and
/// sorts the rest by address, with a bubble sort (at most [`MAX_MAP_ENTRIES`] entries, so a few thousand compares). The PVH ABI
/// does not promise a sorted map and qboot hands one that is not (the RAM above 1 MiB
/// after the reserved ranges it adds); Linux sorts its own copy, but the maps domboot hands
/// on are in address order, as its own KVM backend's are. Clobbers EAX, ECX, EDX, ESI, EDI, EBP.
fn sort_snapshot(
    a: &mut CodeAssembler,
    snapshot: u32,
    count: AsmMemoryOperand,
) -> Result<(), IcedError> {
    let mut pass = a.create_label();
    let mut pair = a.create_label();
    let mut swap = a.create_label();
    let mut in_order = a.create_label();
    let mut sorted = a.create_label();
    let next = MAP_ENTRY_SIZE;
    // Drop empty entries first (qboot's map ends with an all-zero one).
    let mut keep_loop = a.create_label();
    let mut skip = a.create_label();
    let mut kept = a.create_label();
    a.mov(esi, snapshot)?;
    a.mov(edi, snapshot)?;
    a.xor(ebp, ebp)?;
    a.mov(ecx, count)?;
    a.test(ecx, ecx)?;
    a.jz(kept)?;
    a.set_label(&mut keep_loop)?;
    a.mov(eax, dword_ptr(esi + 8))?;
    a.or(eax, dword_ptr(esi + 12))?;
    a.jz(skip)?;
    for off in (0..MAP_ENTRY_SIZE).step_by(4) {
        a.mov(eax, dword_ptr(esi + off))?;
        a.mov(dword_ptr(edi + off), eax)?;
    }
    a.add(edi, next)?;
    a.inc(ebp)?;
    a.set_label(&mut skip)?;
    a.add(esi, next)?;
    a.dec(ecx)?;
    a.jnz(keep_loop)?;
    a.set_label(&mut kept)?;
    a.mov(count, ebp)?;
    a.cmp(count, 1u32)?;
    a.jbe(sorted)?;
    a.set_label(&mut pass)?;
    a.xor(ebp, ebp)?; // nothing swapped in this pass yet
    a.mov(ecx, count)?;
    a.dec(ecx)?; // adjacent pairs
    a.mov(esi, snapshot)?;
    a.set_label(&mut pair)?;
    // Compare the two 64-bit addresses, high dwords first.
    a.mov(eax, dword_ptr(esi + 4))?;
    a.cmp(eax, dword_ptr(esi + next + 4))?;
    a.jb(in_order)?;
    a.ja(swap)?;
    a.mov(eax, dword_ptr(esi))?;
    a.cmp(eax, dword_ptr(esi + next))?;
    a.jbe(in_order)?;
    a.set_label(&mut swap)?;
    for off in (0..MAP_ENTRY_SIZE).step_by(4) {
        a.mov(eax, dword_ptr(esi + off))?;
        a.mov(edx, dword_ptr(esi + next + off))?;
        a.mov(dword_ptr(esi + off), edx)?;
        a.mov(dword_ptr(esi + next + off), eax)?;
    }
    a.mov(ebp, 1u32)?;
    a.set_label(&mut in_order)?;
    a.add(esi, next)?;
    a.dec(ecx)?;
    a.jnz(pair)?;
    a.test(ebp, ebp)?;
    a.jnz(pass)?;
    a.set_label(&mut sorted)?;
    Ok(())
}

/// Loads DS, ES, FS, GS and SS from AX.
fn load_data_segments(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.mov(ds, ax)?;
    a.mov(es, ax)?;
    a.mov(fs, ax)?;
    a.mov(gs, ax)?;
    a.mov(ss, ax)
}

/// The 64-bit tail: the plan's data segments and registers, then a jump to its RIP.
fn tail64(p: &StubParams) -> Result<CodeAssembler, ExportError> {
    let e = &p.plan.entry;
    let mut a = CodeAssembler::new(64)?;
    let mut target = a.create_label();
    a.mov(eax, u32::from(e.ds.selector))?;
    load_data_segments(&mut a)?;
    a.mov(rax, e.rax)?;
    a.mov(rbx, e.rbx)?;
    a.mov(rcx, e.rcx)?;
    a.mov(rdx, e.rdx)?;
    a.mov(rsi, e.rsi)?;
    a.mov(rdi, e.rdi)?;
    a.mov(rbp, e.rbp)?;
    a.mov(rsp, e.rsp)?;
    a.jmp(qword_ptr(target))?;
    a.set_label(&mut target)?;
    a.dq(&[e.rip])?;
    Ok(a)
}

/// RFLAGS for the entry: the plan's, with interrupts, single-step, nested-task, resume
/// and virtual-8086 forced off, and the always-one bit on.
pub fn entry_rflags(rflags: u64) -> u32 {
    const CLEAR: u64 = (1 << 8) | (1 << 9) | (1 << 14) | (1 << 16) | (1 << 17);
    ((rflags & !CLEAR & 0xFFFF_FFFF) | 2) as u32
}

/// Unsigned 64-bit compare of two (low dword, high dword) memory pairs in 32-bit code:
/// `cmp` the low halves, `sbb` the high halves, so CF is set exactly when `lhs < rhs`.
/// Clobbers the two scratch registers.
fn cmp64(
    a: &mut CodeAssembler,
    scratch_lo: AsmRegister32,
    scratch_hi: AsmRegister32,
    lhs: (AsmMemoryOperand, AsmMemoryOperand),
    rhs: (AsmMemoryOperand, AsmMemoryOperand),
) -> Result<(), IcedError> {
    a.mov(scratch_lo, lhs.0)?;
    a.mov(scratch_hi, lhs.1)?;
    a.cmp(scratch_lo, rhs.0)?;
    a.sbb(scratch_hi, rhs.1)
}

/// The 32-bit main part. Returns the assembler and the label after the CS reload.
fn main32(p: &StubParams, reload_target: u32) -> Result<(CodeAssembler, CodeLabel), ExportError> {
    let l = p.layout;
    let e = &p.plan.entry;
    let mut a = CodeAssembler::new(32)?;
    let abs = |off: u64| dword_ptr(p.d(off));

    // 1. Own GDT and stack.
    let mut reload = a.create_label();
    a.cli()?;
    a.cld()?;
    a.lgdt(ptr(p.d(D_STUB_GDTR)))?;
    a.add_instruction(Instruction::with_far_branch(
        Code::Jmp_ptr1632,
        STUB_CS,
        reload_target,
    )?)?;
    a.set_label(&mut reload)?;
    a.mov(eax, STUB_DS)?;
    load_data_segments(&mut a)?;
    a.mov(esp, p.d(l.stack_top) as u32)?;

    // 2. Snapshot the loader's hvm_start_info memory map and RSDP.
    let mut no_info = a.create_label();
    let mut count_ok = a.create_label();
    a.xor(eax, eax)?;
    a.mov(abs(D_MAP_COUNT), eax)?;
    a.mov(abs(D_RSDP), eax)?;
    a.mov(abs(D_RSDP + 4), eax)?;
    a.test(ebx, ebx)?;
    a.jz(no_info)?;
    a.cmp(dword_ptr(ebx + SI_MAGIC), HVM_START_MAGIC)?;
    a.jne(no_info)?;
    a.mov(eax, dword_ptr(ebx + SI_RSDP))?;
    a.mov(abs(D_RSDP), eax)?;
    a.mov(eax, dword_ptr(ebx + SI_RSDP + 4))?;
    a.mov(abs(D_RSDP + 4), eax)?;
    a.cmp(dword_ptr(ebx + SI_VERSION), 1u32)?;
    a.jb(no_info)?;
    // A memory map above 4 GiB is out of reach with paging off.
    a.cmp(dword_ptr(ebx + SI_MEMMAP_PADDR + 4), 0u32)?;
    a.jne(no_info)?;
    a.mov(esi, dword_ptr(ebx + SI_MEMMAP_PADDR))?;
    a.test(esi, esi)?;
    a.jz(no_info)?;
    a.mov(ecx, dword_ptr(ebx + SI_MEMMAP_ENTRIES))?;
    a.test(ecx, ecx)?;
    a.jz(no_info)?;
    a.cmp(ecx, MAX_MAP_ENTRIES)?;
    a.jbe(count_ok)?;
    a.mov(ecx, MAX_MAP_ENTRIES)?;
    a.set_label(&mut count_ok)?;
    a.mov(abs(D_MAP_COUNT), ecx)?;
    a.lea(ecx, ecx + ecx * 2)?;
    a.shl(ecx, 1)?; // dwords: entries * 6
    a.mov(edi, p.d(l.snapshot) as u32)?;
    a.rep().movsd()?;
    a.set_label(&mut no_info)?;
    sort_snapshot(&mut a, p.d(l.snapshot) as u32, abs(D_MAP_COUNT))?;

    // 3. Every segment, reservation and the stub itself must be RAM in the adopted map.
    let mut checked = a.create_label();
    let mut item_loop = a.create_label();
    let mut cover_loop = a.create_label();
    let mut entry_loop = a.create_label();
    let mut next_entry = a.create_label();
    let mut next_item = a.create_label();
    let mut no_overflow = a.create_label();
    let mut fail = a.create_label();
    let cur = (abs(D_CUR), abs(D_CUR + 4));
    a.cmp(abs(D_MAP_COUNT), 0u32)?;
    a.je(checked)?;
    a.mov(ebp, p.d(l.items) as u32)?;
    a.set_label(&mut item_loop)?;
    a.cmp(ebp, p.d(l.items_end) as u32)?;
    a.jae(checked)?;
    a.mov(eax, dword_ptr(ebp))?;
    a.mov(cur.0, eax)?;
    a.mov(eax, dword_ptr(ebp + 4))?;
    a.mov(cur.1, eax)?;
    a.set_label(&mut cover_loop)?;
    // cur >= item end: covered.
    cmp64(
        &mut a,
        eax,
        edx,
        cur,
        (dword_ptr(ebp + 8), dword_ptr(ebp + 12)),
    )?;
    a.jae(next_item)?;
    a.mov(esi, p.d(l.snapshot) as u32)?;
    a.mov(ecx, abs(D_MAP_COUNT))?;
    a.set_label(&mut entry_loop)?;
    a.test(ecx, ecx)?;
    a.jz(fail)?;
    a.cmp(dword_ptr(esi + 16), 1u32)?;
    a.jne(next_entry)?;
    // cur < entry address: not this entry.
    cmp64(&mut a, eax, edx, cur, (dword_ptr(esi), dword_ptr(esi + 4)))?;
    a.jb(next_entry)?;
    // EDX:EAX = entry end (saturating).
    a.mov(eax, dword_ptr(esi))?;
    a.mov(edx, dword_ptr(esi + 4))?;
    a.add(eax, dword_ptr(esi + 8))?;
    a.adc(edx, dword_ptr(esi + 12))?;
    a.jnc(no_overflow)?;
    a.mov(eax, u32::MAX)?;
    a.mov(edx, u32::MAX)?;
    a.set_label(&mut no_overflow)?;
    // cur >= entry end: not this entry.
    a.mov(ebx, cur.0)?;
    a.cmp(ebx, eax)?;
    a.mov(ebx, cur.1)?;
    a.sbb(ebx, edx)?;
    a.jae(next_entry)?;
    a.mov(cur.0, eax)?;
    a.mov(cur.1, edx)?;
    a.jmp(cover_loop)?;
    a.set_label(&mut next_entry)?;
    a.add(esi, MAP_ENTRY_SIZE)?;
    a.dec(ecx)?;
    a.jmp(entry_loop)?;
    a.set_label(&mut next_item)?;
    a.add(ebp, ITEM_SIZE as u32)?;
    a.jmp(item_loop)?;

    // Does not fit: say so on COM1 and the debug console, then triple-fault.
    a.set_label(&mut fail)?;
    let mut print = a.create_label();
    let mut wait = a.create_label();
    let mut ready = a.create_label();
    let mut halt = a.create_label();
    a.mov(esi, dword_ptr(ebp + 16))?;
    a.mov(ecx, dword_ptr(ebp + 20))?;
    a.set_label(&mut print)?;
    a.mov(edx, COM1_LSR)?;
    a.mov(ebx, 0x10000u32)?;
    a.set_label(&mut wait)?;
    a.in_(al, dx)?;
    a.test(al, 0x20u32)?;
    a.jnz(ready)?;
    a.dec(ebx)?;
    a.jnz(wait)?;
    a.set_label(&mut ready)?;
    a.mov(al, byte_ptr(esi))?;
    a.mov(edx, COM1)?;
    a.out(dx, al)?;
    a.mov(edx, DEBUGCON)?;
    a.out(dx, al)?;
    a.inc(esi)?;
    a.dec(ecx)?;
    a.jnz(print)?;
    // A failing exit status where the debug-exit device exists; the triple fault after it
    // ends the VM everywhere else (QEMU -no-reboot then exits 0).
    a.mov(edx, u32::from(DEBUG_EXIT_PORT))?;
    a.mov(al, u32::from(NO_RAM_EXIT))?;
    a.out(dx, al)?;
    a.lidt(ptr(p.d(D_ZERO_IDTR)))?;
    a.int3()?;
    a.set_label(&mut halt)?;
    a.hlt()?;
    a.jmp(halt)?;

    // 4. Copy the segments that live below 1 MiB into place.
    a.set_label(&mut checked)?;
    if !p.staged.is_empty() {
        let mut stage_loop = a.create_label();
        let mut staged = a.create_label();
        a.mov(ebp, p.d(l.staged) as u32)?;
        a.set_label(&mut stage_loop)?;
        a.cmp(ebp, p.d(l.staged_end) as u32)?;
        a.jae(staged)?;
        a.mov(esi, dword_ptr(ebp))?;
        a.mov(edi, dword_ptr(ebp + 4))?;
        a.mov(ecx, dword_ptr(ebp + 8))?;
        a.rep().movsb()?;
        a.mov(ecx, dword_ptr(ebp + 12))?;
        a.xor(eax, eax)?;
        a.rep().stosb()?;
        a.add(ebp, STAGED_SIZE as u32)?;
        a.jmp(stage_loop)?;
        a.set_label(&mut staged)?;
    }

    // 5. Hand the adopted memory map and RSDP to the kernel.
    let mut no_map = a.create_label();
    let mut no_rsdp = a.create_label();
    a.cmp(abs(D_MAP_COUNT), 0u32)?;
    a.je(no_map)?;
    let rsdp_at = match p.patch {
        Patch::Linux { boot_params } => {
            let zero_page = u64::from(boot_params);
            let mut copy = a.create_label();
            a.mov(ecx, abs(D_MAP_COUNT))?;
            a.mov(byte_ptr(zero_page + u64::from(BP_E820_ENTRIES)), cl)?;
            a.mov(esi, p.d(l.snapshot) as u32)?;
            a.mov(edi, (zero_page + u64::from(BP_E820_TABLE)) as u32)?;
            a.set_label(&mut copy)?;
            for off in (0..E820_ENTRY_SIZE).step_by(4) {
                a.mov(eax, dword_ptr(esi + off))?;
                a.mov(dword_ptr(edi + off), eax)?;
            }
            a.add(esi, MAP_ENTRY_SIZE)?;
            a.add(edi, E820_ENTRY_SIZE)?;
            a.dec(ecx)?;
            a.jnz(copy)?;
            zero_page + u64::from(BP_ACPI_RSDP)
        }
        Patch::Pvh { start_info, memmap } => {
            let info = u64::from(start_info);
            if let Some((table, capacity)) = memmap.filter(|&(_, c)| c > 0) {
                let mut fits = a.create_label();
                let mut versioned = a.create_label();
                a.mov(ecx, abs(D_MAP_COUNT))?;
                a.cmp(ecx, capacity)?;
                a.jbe(fits)?;
                a.mov(ecx, capacity)?;
                a.set_label(&mut fits)?;
                a.mov(dword_ptr(info + u64::from(SI_MEMMAP_ENTRIES)), ecx)?;
                a.mov(dword_ptr(info + u64::from(SI_MEMMAP_PADDR)), table)?;
                a.mov(dword_ptr(info + u64::from(SI_MEMMAP_PADDR) + 4), 0u32)?;
                a.cmp(dword_ptr(info + u64::from(SI_VERSION)), 1u32)?;
                a.jae(versioned)?;
                a.mov(dword_ptr(info + u64::from(SI_VERSION)), 1u32)?;
                a.set_label(&mut versioned)?;
                a.mov(esi, p.d(l.snapshot) as u32)?;
                a.mov(edi, table)?;
                a.lea(ecx, ecx + ecx * 2)?;
                a.shl(ecx, 1)?;
                a.rep().movsd()?;
            }
            info + u64::from(SI_RSDP)
        }
    };
    a.set_label(&mut no_map)?;
    a.mov(eax, abs(D_RSDP))?;
    a.or(eax, abs(D_RSDP + 4))?;
    a.jz(no_rsdp)?;
    a.mov(eax, abs(D_RSDP))?;
    a.mov(dword_ptr(rsdp_at), eax)?;
    a.mov(eax, abs(D_RSDP + 4))?;
    a.mov(dword_ptr(rsdp_at + 4), eax)?;
    a.set_label(&mut no_rsdp)?;

    // 6. Mask both 8259s. Firmware leaves its timer (PIT, IRQ 0) and keyboard unmasked with
    // IRQ 0 at vector 8. A kernel that drives the 8259 (Linux with an MP table or full ACPI)
    // reprograms it anyway; one told the platform is hardware-reduced ACPI (domboot's own
    // tables say so) never touches it, and the firmware's next tick would arrive as a double
    // fault once it enables interrupts. Masked is also how domboot's KVM backend hands over
    // its PIC.
    a.mov(al, 0xFFu32)?;
    for port in [PIC_MASTER_DATA, PIC_SLAVE_DATA] {
        a.mov(edx, port)?;
        a.out(dx, al)?;
    }

    virtual_wire_mode(&mut a)?;

    // 7. The plan's entry state.
    a.lgdt(ptr(p.d(D_PLAN_GDTR)))?;
    a.push(entry_rflags(e.rflags))?;
    a.popfd()?;
    match e.mode {
        CpuMode::Protected32 => {
            a.mov(eax, e.cr4 as u32)?;
            a.mov(cr4, eax)?;
            a.mov(eax, e.cr0 as u32)?;
            a.mov(cr0, eax)?;
            a.mov(eax, u32::from(e.ds.selector))?;
            load_data_segments(&mut a)?;
            a.mov(eax, e.rax as u32)?;
            a.mov(ebx, e.rbx as u32)?;
            a.mov(ecx, e.rcx as u32)?;
            a.mov(edx, e.rdx as u32)?;
            a.mov(esi, e.rsi as u32)?;
            a.mov(edi, e.rdi as u32)?;
            a.mov(ebp, e.rbp as u32)?;
            a.mov(esp, e.rsp as u32)?;
            a.add_instruction(Instruction::with_far_branch(
                Code::Jmp_ptr1632,
                e.cs.selector,
                e.rip as u32,
            )?)?;
        }
        CpuMode::Long64 => {
            a.mov(eax, e.cr4 as u32)?;
            a.mov(cr4, eax)?;
            a.mov(eax, e.cr3 as u32)?;
            a.mov(cr3, eax)?;
            a.mov(ecx, MSR_EFER)?;
            a.mov(eax, (e.efer & !EFER_LMA) as u32)?;
            a.mov(edx, (e.efer >> 32) as u32)?;
            a.wrmsr()?;
            a.mov(eax, e.cr0 as u32)?;
            a.mov(cr0, eax)?;
            // Compatibility mode now; the plan's 64-bit CS takes us to the tail at the base.
            a.add_instruction(Instruction::with_far_branch(
                Code::Jmp_ptr1632,
                e.cs.selector,
                p.base,
            )?)?;
        }
    }
    Ok((a, reload))
}
