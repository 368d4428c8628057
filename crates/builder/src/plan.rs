//! The builder's output: what goes where in guest memory, the memory map, and the vCPU
//! state at the first instruction. Every backend (KVM, the PVH-ELF export, TCG through
//! that export, kexec later) consumes this and nothing else.

use bytes::Bytes;
use serde::{Serialize, Serializer};
use std::fs::File;
use std::sync::Arc;

/// A complete, backend-neutral description of how to start the guest.
#[derive(Clone, Debug, Serialize)]
pub struct BootPlan {
    pub protocol: BootProtocol,
    /// Guest RAM size the plan was made for.
    pub memory_size: u64,
    /// The memory map the guest is told about (also what a backend must back with RAM).
    pub e820: Vec<E820Entry>,
    /// Bytes to place in guest memory, sorted by address, never overlapping.
    pub segments: Vec<Segment>,
    /// Address ranges reserved for the kernel beyond its bytes (decompression space,
    /// init_size), which a loader must keep free of anything else.
    pub reservations: Vec<Reservation>,
    pub entry: EntryState,
    /// Where the structures a loader may patch at run time live (for the export stub,
    /// which adopts the memory map it is handed).
    pub patch_points: PatchPoints,
}

/// How the kernel is entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BootProtocol {
    /// 64-bit boot protocol: long mode, identity-mapped, RSI = boot_params.
    Linux64,
    /// 32-bit boot protocol: flat protected mode, ESI = boot_params.
    Linux32,
    /// Xen PVH direct boot: 32-bit protected mode, EBX = hvm_start_info.
    Pvh,
}

impl BootProtocol {
    pub fn name(self) -> &'static str {
        match self {
            BootProtocol::Linux64 => "linux64",
            BootProtocol::Linux32 => "linux32",
            BootProtocol::Pvh => "pvh",
        }
    }
}

/// One contiguous piece of guest memory contents.
#[derive(Clone, Debug, Serialize)]
pub struct Segment {
    /// What it is: "kernel", "initrd", "boot_params", "cmdline", "page_tables", ...
    pub name: String,
    /// Guest-physical address.
    #[serde(rename = "address")]
    pub addr: u64,
    /// Bytes in guest memory; `mem_size - data.len()` zero bytes follow.
    pub mem_size: u64,
    /// The contents. Large inputs are slices of a file mapping, not copies.
    #[serde(rename = "file_size", serialize_with = "len_only")]
    pub data: Bytes,
    /// Where `data` sits in an input file, when it is that file's bytes unchanged: a
    /// backend may then map it copy-on-write instead of copying it.
    #[serde(skip)]
    pub backing: Option<FileBacking>,
}

/// An open input file and the offset of a segment's bytes in it.
#[derive(Clone, Debug)]
pub struct FileBacking {
    pub file: Arc<File>,
    pub offset: u64,
}

fn len_only<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(b.len() as u64)
}

impl Segment {
    pub fn end(&self) -> u64 {
        self.addr + self.mem_size
    }
}

/// Memory the kernel will use after the loader is done (not loaded, but must be free RAM).
#[derive(Clone, Debug, Serialize)]
pub struct Reservation {
    pub name: String,
    pub address: u64,
    pub size: u64,
}

/// e820 memory types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum E820Type {
    Ram = 1,
    Reserved = 2,
    Acpi = 3,
    Nvs = 4,
    Unusable = 5,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct E820Entry {
    pub address: u64,
    pub size: u64,
    #[serde(rename = "type")]
    pub kind: E820Type,
}

impl E820Entry {
    pub fn end(&self) -> u64 {
        self.address + self.size
    }
}

/// Processor mode at the first instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuMode {
    /// 32-bit protected mode, paging off.
    Protected32,
    /// 64-bit long mode, paging on (CR3 = `cr3`).
    Long64,
}

/// A segment register as loaded from the GDT (what KVM's `kvm_segment` holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentRegister {
    pub selector: u16,
    pub base: u64,
    pub limit: u32,
    /// Access byte type field (e.g. 0xb = execute/read accessed, 0x3 = read/write accessed).
    pub type_: u8,
    /// Descriptor privilege level, always 0 here.
    pub dpl: u8,
    pub present: bool,
    /// S bit: code/data (true) or system (false).
    pub s: bool,
    /// D/B bit: 32-bit default operand size.
    pub db: bool,
    /// L bit: 64-bit code.
    pub l: bool,
    /// G bit: limit in 4 KiB units.
    pub g: bool,
}

/// Register state at the kernel's entry point (or the first instruction of a hook).
#[derive(Clone, Debug, Serialize)]
pub struct EntryState {
    pub mode: CpuMode,
    pub rip: u64,
    pub rsp: u64,
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub cs: SegmentRegister,
    /// DS, ES, FS, GS and SS all hold this.
    pub ds: SegmentRegister,
    /// Base and limit of the GDT (its bytes are a segment of the plan).
    pub gdt_base: u64,
    pub gdt_limit: u16,
}

/// Structures a loader may rewrite at run time, with their addresses.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PatchPoints {
    /// Linux boot_params (zero page), for linux32/linux64 and ELF entries.
    pub boot_params: Option<u64>,
    /// PVH hvm_start_info, for pvh.
    pub start_info: Option<u64>,
    /// The hvm_memmap_table_entry array the start_info points at, and its capacity.
    pub pvh_memmap: Option<(u64, u32)>,
}
