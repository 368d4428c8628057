//! Xen's PVH direct boot ABI: the ELF's PT_LOADs at their physical addresses, entered in
//! 32-bit protected mode at the XEN_ELFNOTE_PHYS32_ENTRY address with EBX pointing at an
//! `hvm_start_info` (version 1: with a memory map), the initrd as module 0.

use super::linux::place_elf_segments;
use super::{DEFAULT_CMDLINE_SIZE, PlanBuilder, check_cmdline, entry_state, place_gdt};
use crate::error::BuildError;
use crate::layout::Range;
use crate::memory::MIB;
use crate::plan::{BootProtocol, E820Entry, PatchPoints};
use bytes::Bytes;
use domboot_formats::elf::ElfImage;

pub const START_INFO_MAGIC: u32 = 0x336E_C578;
pub const START_INFO_SIZE: usize = 56;
/// Offsets of `struct hvm_start_info` fields.
pub const MAGIC: usize = 0;
pub const VERSION: usize = 4;
pub const NR_MODULES: usize = 12;
pub const MODLIST_PADDR: usize = 16;
pub const CMDLINE_PADDR: usize = 24;
pub const RSDP_PADDR: usize = 32;
pub const MEMMAP_PADDR: usize = 40;
pub const MEMMAP_ENTRIES: usize = 48;
const MODLIST_OFFSET: usize = 64;
const MODLIST_ENTRY_SIZE: usize = 32;
const MEMMAP_OFFSET: usize = MODLIST_OFFSET + MODLIST_ENTRY_SIZE;
pub const MEMMAP_ENTRY_SIZE: usize = 24;
/// Room for a loader's memory map to be adopted at run time.
pub const MEMMAP_CAPACITY: u32 = 128;
/// Below 4 GiB: module addresses are 64-bit, but Linux's PVH code keeps the initrd where
/// it is and early boot maps only low memory.
const INITRD_MAX_END: u64 = 0x8000_0000;

pub(super) fn elf(
    b: &mut PlanBuilder<'_>,
    data: &Bytes,
    image: &ElfImage,
    entry: u64,
) -> Result<(), BuildError> {
    if b.img.options.initrd_above_4g {
        return Err(BuildError::Unsupported(
            "the initrd cannot go above 4 GiB with the pvh protocol".into(),
        ));
    }
    // The entry must be code the plan loads: linux-loader and Xen refuse an entry outside
    // every PT_LOAD, and a VM started there runs whatever RAM holds.
    if !image
        .segments
        .iter()
        .any(|s| s.filesz > 0 && s.paddr <= entry && entry < s.paddr + s.filesz)
    {
        let ranges: Vec<String> = image
            .segments
            .iter()
            .filter(|s| s.filesz > 0)
            .map(|s| format!("{:#x}-{:#x}", s.paddr, s.paddr + s.filesz))
            .collect();
        return Err(BuildError::Unsupported(format!(
            "{}: the PVH entry (XEN_ELFNOTE_PHYS32_ENTRY) {entry:#x} lies in no PT_LOAD segment's file bytes (loaded: {})",
            b.img.kernel_path.display(),
            if ranges.is_empty() {
                "nothing".to_string()
            } else {
                ranges.join(", ")
            }
        )));
    }
    place_elf_segments(b, data, image)?;
    let initrd = b.place_initrds(Range {
        min: MIB,
        max_end: INITRD_MAX_END,
        describe: "below 2 GiB (pvh)",
    })?;
    let cmdline = check_cmdline(&b.img.cmdline, DEFAULT_CMDLINE_SIZE)?;
    let cmdline_addr = b.boot_data("cmdline", cmdline, 16)?;

    // start_info, module list and memory map share one page; their addresses depend on
    // where it lands, so reserve it first and fill it in after.
    let size = (MEMMAP_OFFSET + MEMMAP_CAPACITY as usize * MEMMAP_ENTRY_SIZE) as u64;
    let base = b.layout.allocate(
        "start_info",
        size,
        4096,
        &super::BOOT_DATA,
        crate::layout::Prefer::Low,
    )?;
    let bytes = start_info(base, cmdline_addr, initrd, &b.img.memory.e820);
    b.segment("start_info", base, Bytes::from(bytes), size);
    let gdt = place_gdt(b, false)?;
    let mut state = entry_state(false, entry, gdt, 0);
    state.rbx = base;
    b.enter(
        BootProtocol::Pvh,
        state,
        PatchPoints {
            start_info: Some(base),
            pvh_memmap: Some((base + MEMMAP_OFFSET as u64, MEMMAP_CAPACITY)),
            ..Default::default()
        },
    );
    Ok(())
}

/// The start_info page as the kernel reads it.
fn start_info(base: u64, cmdline: u64, initrd: Option<(u64, u64)>, e820: &[E820Entry]) -> Vec<u8> {
    let mut p = vec![0u8; MEMMAP_OFFSET + e820.len() * MEMMAP_ENTRY_SIZE];
    let put32 = |p: &mut [u8], at: usize, v: u32| p[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 = |p: &mut [u8], at: usize, v: u64| p[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put32(&mut p, MAGIC, START_INFO_MAGIC);
    put32(&mut p, VERSION, 1);
    put64(&mut p, CMDLINE_PADDR, cmdline);
    if let Some((addr, size)) = initrd {
        put32(&mut p, NR_MODULES, 1);
        put64(&mut p, MODLIST_PADDR, base + MODLIST_OFFSET as u64);
        put64(&mut p, MODLIST_OFFSET, addr);
        put64(&mut p, MODLIST_OFFSET + 8, size);
    }
    put64(&mut p, MEMMAP_PADDR, base + MEMMAP_OFFSET as u64);
    put32(&mut p, MEMMAP_ENTRIES, e820.len() as u32);
    for (i, e) in e820.iter().enumerate() {
        let at = MEMMAP_OFFSET + i * MEMMAP_ENTRY_SIZE;
        put64(&mut p, at, e.address);
        put64(&mut p, at + 8, e.size);
        put32(&mut p, at + 16, e.kind as u32);
    }
    p
}
