//! Exports a [`BootPlan`] as one self-contained PVH ELF that any loader implementing the
//! x86/HVM direct boot ABI boots: QEMU `-kernel`, Firecracker, Cloud Hypervisor, Xen.
//!
//! The image holds the plan's segments as `PT_LOAD`s at their guest-physical addresses,
//! a small boot stub (code, data and stack in `PT_LOAD`s of their own) and a `PT_NOTE`
//! with `XEN_ELFNOTE_PHYS32_ENTRY` pointing at the stub. The stub adopts the memory map
//! the loader hands over in `hvm_start_info` (so the image boots with whatever RAM it is
//! given, as long as the plan's segments fit, and says so clearly when they do not),
//! switches to the plan's entry state and enters the kernel.
//!
//! The stub (generated with iced-x86's code assembler) runs from the PVH entry, 32-bit
//! protected mode with paging off and EBX = `hvm_start_info`:
//! 1. `cli`, loads its own GDT (flat code 0x08, data 0x10) and stack.
//! 2. If the start_info magic is right: keeps its RSDP; if it is version 1 or later with a
//!    memory map below 4 GiB, copies up to [`MAX_MAP_ENTRIES`] entries to its own data
//!    (the loader's structures may sit where low segments go).
//! 3. With a map: checks that every segment, reservation and the stub itself lies in RAM
//!    (type 1) of it; if not, prints which range is missing and the RAM to give on COM1
//!    and port 0xE9, writes [`NO_RAM_EXIT`] to QEMU's debug-exit port (so QEMU with that
//!    device exits non-zero), then ends the VM with a triple fault. Without a map it trusts the
//!    plan's own e820 (already in the segments).
//! 4. Copies the plan segments that live below 1 MiB into place (firmware overwrites low
//!    memory before the entry, so they travel in the stub's region above 1 MiB).
//! 5. Writes the adopted map and RSDP into boot_params (linux protocols: 0x1E8, 0x2D0,
//!    0x070) or into the plan's start_info and its memory-map table (pvh, up to the
//!    table's capacity).
//! 6. Loads the plan's GDT, RFLAGS (interrupts off), CR4/CR3/EFER/CR0, data segments and
//!    general registers, and far-jumps to the plan's CS:RIP (Long64 through a 64-bit part
//!    of the stub at its base, which the plan's page tables must identity-map: checked
//!    here, and the stub is placed where they do).
//!
//! [`kexec_image`] turns the same plan into `kexec_load` segments with this stub as the
//! purgatory: a 64-bit entry, where Linux's relocate_kernel jumps, checks the SHA-256 of
//! every segment, leaves long mode and runs the path above with an `hvm_start_info` of its
//! own carrying the running machine's memory map and RSDP.
//!
//! ```no_run
//! # fn demo(plan: &domboot_builder::BootPlan) -> Result<(), Box<dyn std::error::Error>> {
//! let elf = domboot_export::pvh_elf(plan)?;
//! let mut out = std::io::BufWriter::new(std::fs::File::create("guest.elf")?);
//! elf.write_to(&mut out)?; // streams: the initrd is never copied into one buffer
//! # Ok(()) }
//! ```

mod elf;
mod error;
mod layout;
mod stub;

pub use elf::ElfClass;
pub use error::ExportError;
pub use stub::{
    BAD_SUM_EXIT, DEBUG_EXIT_PORT, HVM_START_MAGIC, KEXEC_BAD_SUM, MAX_MAP_ENTRIES, NO_RAM_EXIT,
};

use bytes::Bytes;
use domboot_builder::{BootPlan, BootProtocol, CpuMode};
use layout::{FOUR_GIB, LOW_LIMIT, MIB, PAGE, Span};
use std::io::{self, Write};
use stub::{CheckItem, DataLayout, Patch, Staged, StubParams};

/// One `PT_LOAD` of the exported image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    /// The plan segment's name, or `stub code` / `stub data` / `staged <name>`.
    pub name: String,
    /// Guest-physical (and virtual) address.
    pub addr: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub mem_size: u64,
    /// ELF `p_flags` (R = 4, W = 2, X = 1).
    pub flags: u32,
}

/// Where the boot stub went and what it does at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StubInfo {
    /// Start of the stub's region (code page first).
    pub base: u64,
    /// Bytes of guest memory the region occupies (code, data, stack, staged copies).
    pub size: u64,
    /// The PVH entry point (also `e_entry`).
    pub entry: u64,
    /// Plan segments below 1 MiB that the stub copies into place (firmware overwrites low
    /// memory before the stub runs, so they travel inside the stub's region).
    pub staged: Vec<String>,
}

/// A bootable PVH ELF image, ready to be streamed out.
#[derive(Clone, Debug)]
pub struct PvhElf {
    /// ELF header, program headers and note (the first chunk, at offset 0).
    header: Vec<u8>,
    /// `(file offset, bytes)`, sorted by offset, never overlapping.
    chunks: Vec<(u64, Bytes)>,
    size: u64,
    loads: Vec<LoadSegment>,
    stub: StubInfo,
}

impl PvhElf {
    /// Size of the file in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The `PT_LOAD`s, in program-header order (sorted by address).
    pub fn loads(&self) -> &[LoadSegment] {
        &self.loads
    }

    /// The boot stub's placement.
    pub fn stub(&self) -> &StubInfo {
        &self.stub
    }

    /// The PVH entry point.
    pub fn entry(&self) -> u64 {
        self.stub.entry
    }

    /// Writes the whole file. Segment bytes are streamed from the plan's buffers (a file
    /// mapping for a large initrd) without being gathered into one allocation.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.header)?;
        let mut pos = self.header.len() as u64;
        for (offset, bytes) in &self.chunks {
            write_zeros(w, offset - pos)?;
            w.write_all(bytes)?;
            pos = offset + bytes.len() as u64;
        }
        write_zeros(w, self.size - pos)
    }
}

fn write_zeros(w: &mut impl Write, mut n: u64) -> io::Result<()> {
    const ZEROS: [u8; 4096] = [0; 4096];
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        w.write_all(&ZEROS[..k])?;
        n -= k as u64;
    }
    Ok(())
}

fn mib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(MIB)
}

/// Builds the PVH ELF64 for `plan`: validates it, places the stub, generates its code.
pub fn pvh_elf(plan: &BootPlan) -> Result<PvhElf, ExportError> {
    pvh_elf_as(plan, ElfClass::Elf64)
}

/// Builds the PVH ELF for `plan` as an ELF of `class`. A 32-bit kernel's image should be
/// [`ElfClass::Elf32`], which `qemu-system-i386` loads as well as `qemu-system-x86_64`;
/// it cannot hold a 64-bit entry or anything above 4 GiB.
pub fn pvh_elf_as(plan: &BootPlan, class: ElfClass) -> Result<PvhElf, ExportError> {
    if class == ElfClass::Elf32 && plan.entry.mode == CpuMode::Long64 {
        return Err(ExportError::EntryState(
            "a 64-bit entry (linux64) cannot be exported as an ELF32 image for 32-bit loaders"
                .into(),
        ));
    }
    let parts = stub_parts(plan, None)?;
    let StubParts {
        base,
        region,
        image,
        data_mem_size,
        staged_loads,
        staged_names,
    } = parts;

    // Program headers: stub code, stub data, staged copies, and the plan's segments that
    // the loader places directly; all sorted by address.
    let mut loads: Vec<elf::Load> = vec![
        elf::Load {
            name: "stub code".into(),
            addr: base,
            data: Bytes::from(image.code),
            mem_size: stub::CODE_SIZE,
            flags: elf::PF_R | elf::PF_X,
        },
        elf::Load {
            name: "stub data".into(),
            addr: base + stub::CODE_SIZE,
            data: Bytes::from(image.data),
            mem_size: data_mem_size,
            flags: elf::PF_R | elf::PF_W,
        },
    ];
    for (name, addr, data) in staged_loads {
        let mem_size = data.len() as u64;
        loads.push(elf::Load {
            name,
            addr,
            data,
            mem_size,
            flags: elf::PF_R,
        });
    }
    for s in plan
        .segments
        .iter()
        .filter(|s| s.mem_size > 0 && s.addr >= LOW_LIMIT)
    {
        loads.push(elf::Load {
            name: s.name.clone(),
            addr: s.addr,
            data: s.data.clone(),
            mem_size: s.mem_size,
            flags: elf::PF_R | elf::PF_W | elf::PF_X,
        });
    }
    loads.sort_by_key(|l| l.addr);
    let file = elf::build(loads, image.entry, class)?;
    Ok(PvhElf {
        header: file.header,
        chunks: file.chunks,
        size: file.size,
        loads: file.loads,
        stub: StubInfo {
            base,
            size: region,
            entry: image.entry,
            staged: staged_names,
        },
    })
}

/// The stub, placed and generated, and the staged copies that travel in its region.
struct StubParts {
    base: u64,
    region: u64,
    image: stub::StubImage,
    data_mem_size: u64,
    /// `(name, address in the stub's region, bytes)`.
    staged_loads: Vec<(String, u64, Bytes)>,
    staged_names: Vec<String>,
}

/// What a kexec stub adds: the running machine and the checksums of the kexec segments
/// outside the stub's region (the staged copies' are added here).
struct KexecInput<'a> {
    machine: &'a Machine,
    hashes: Vec<stub::HashRange>,
}

fn stub_parts(plan: &BootPlan, kexec: Option<KexecInput>) -> Result<StubParts, ExportError> {
    let ram = layout::plan_ram(plan);
    layout::validate_plan(plan, &ram)?;
    validate_entry(plan)?;
    let patch = patch_for(plan)?;

    // Segments below 1 MiB travel in the stub's region and are copied down at boot.
    let low: Vec<&domboot_builder::Segment> = plan
        .segments
        .iter()
        .filter(|s| s.mem_size > 0 && s.addr < LOW_LIMIT)
        .collect();
    for s in &low {
        if s.addr + s.mem_size > FOUR_GIB {
            return Err(ExportError::Above4GiB {
                what: format!("the end of segment `{}` (below 1 MiB)", s.name),
                addr: s.addr + s.mem_size,
            });
        }
    }
    let staged_bytes: u64 = low
        .iter()
        .map(|s| (s.data.len() as u64).next_multiple_of(PAGE))
        .sum();

    // The check table: one item per segment and reservation, and the stub region.
    let built_for = mib_ceil(plan.memory_size);
    let needs = |start: u64, end: u64, what: &str| {
        format!(
            "domboot: this image needs RAM at {start:#x}-{end:#x} ({what}) but the loader's memory map has none there; give the VM at least {built_for} MiB, the memory size it was built for\r\n"
        )
    };
    let mut items: Vec<CheckItem> = Vec::new();
    for s in plan.segments.iter().filter(|s| s.mem_size > 0) {
        let span = Span {
            start: s.addr,
            end: s.addr + s.mem_size,
        };
        items.push(CheckItem {
            span,
            message: needs(span.start, span.end, &s.name),
        });
    }
    for r in plan.reservations.iter().filter(|r| r.size > 0) {
        let span = Span {
            start: r.address,
            end: r.address + r.size,
        };
        items.push(CheckItem {
            span,
            message: needs(span.start, span.end, &format!("{}, kept free", r.name)),
        });
    }
    // The stub's own item, formatted at fixed width so its length does not depend on
    // where the stub goes (the data size must be known before the placement).
    let stub_message = |base: u64, end: u64| {
        format!(
            "domboot: this image's boot stub needs RAM at {base:#010x}-{end:#010x} but the loader's memory map has none there; give the VM at least {built_for} MiB, the memory size it was built for\r\n"
        )
    };
    items.push(CheckItem {
        span: Span { start: 0, end: 0 },
        message: stub_message(0, 0),
    });
    if let Some(k) = &kexec {
        if k.machine.memmap.len() > MAX_MAP_ENTRIES as usize {
            return Err(ExportError::MachineMap(format!(
                "{} entries, more than the {MAX_MAP_ENTRIES} the stub hands over",
                k.machine.memmap.len()
            )));
        }
    }
    let kexec_sizes = kexec
        .as_ref()
        .map(|k| (k.machine.memmap.len(), k.hashes.len() + low.len()));
    let data_layout = DataLayout::new(&items, low.len(), kexec_sizes);
    let region = stub::CODE_SIZE + data_layout.mem_size + staged_bytes;
    let mapped = match plan.entry.mode {
        CpuMode::Long64 => stub::CODE_SIZE,
        CpuMode::Protected32 => 0,
    };
    let base = layout::place_stub(plan, &ram, region, mapped)?;

    // Staged copies follow the data.
    let mut staged = Vec::with_capacity(low.len());
    let mut staged_loads = Vec::with_capacity(low.len());
    let mut staged_hashes = Vec::with_capacity(low.len());
    let mut at = base + stub::CODE_SIZE + data_layout.mem_size;
    for s in &low {
        let len = s.data.len() as u64;
        staged.push(Staged {
            src: at as u32,
            dst: s.addr as u32,
            len: len as u32,
            zero: (s.mem_size - len) as u32,
        });
        if len > 0 {
            staged_loads.push((format!("staged {}", s.name), at, s.data.clone()));
        }
        staged_hashes.push(stub::hash_range(at, &s.data));
        at += len.next_multiple_of(PAGE);
    }
    let stub_end = base + region;
    if let Some(last) = items.last_mut() {
        last.span = Span {
            start: base,
            end: stub_end,
        };
        last.message = stub_message(base, stub_end);
    }
    let kexec_data = kexec.map(|k| {
        let mut hashes = k.hashes;
        hashes.extend(staged_hashes);
        stub::KexecData {
            memmap: k
                .machine
                .memmap
                .iter()
                .map(|e| (e.addr, e.size, e.kind))
                .collect(),
            rsdp: k.machine.rsdp,
            hashes,
        }
    });

    let image = stub::generate(&StubParams {
        plan,
        base: base as u32,
        items: &items,
        staged: &staged,
        patch,
        layout: &data_layout,
        kexec: kexec_data.as_ref(),
    })?;
    Ok(StubParts {
        base,
        region,
        image,
        data_mem_size: data_layout.mem_size,
        staged_loads,
        staged_names: low.iter().map(|s| s.name.clone()).collect(),
    })
}

/// At most this many segments go to `kexec_load` (the kernel's `KEXEC_SEGMENT_MAX`).
pub const KEXEC_SEGMENT_MAX: usize = 16;

/// One entry of the running machine's memory map (e820 types: 1 RAM, 2 reserved, 3 ACPI
/// data, 4 ACPI NVS, 5 unusable, 7 persistent memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineMapEntry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// What the kexec stub hands the next kernel about the machine it runs on.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    /// The firmware's memory map (`/sys/firmware/memmap`), handed to the next kernel.
    pub memmap: Vec<MachineMapEntry>,
    /// ACPI RSDP, or 0 (the kernel then finds it itself, as on a BIOS machine).
    pub rsdp: u64,
}

/// One segment for `kexec_load`: page-aligned address and size, `data` at its start.
#[derive(Clone, Debug)]
pub struct KexecSegment {
    /// The plan segments it holds, joined with `+`, or `purgatory` for the stub's region.
    pub name: String,
    pub addr: u64,
    pub mem_size: u64,
    pub data: Bytes,
}

/// A plan made ready for `kexec_load`.
#[derive(Clone, Debug)]
pub struct KexecImage {
    /// Sorted by address, page-aligned, at most [`KEXEC_SEGMENT_MAX`].
    pub segments: Vec<KexecSegment>,
    /// The stub's 64-bit kexec entry (the `entry` of `kexec_load`).
    pub entry: u64,
    pub stub: StubInfo,
}

/// Builds the `kexec_load` segments for `plan` on `machine`: the plan's segments (those
/// sharing a page merged into one), and the export stub as the purgatory, with a 64-bit
/// entry (where Linux's relocate_kernel jumps) that checksums every other segment and the
/// staged copies, leaves long mode and runs the stub's PVH path with the machine's memory
/// map and RSDP.
pub fn kexec_image(plan: &BootPlan, machine: &Machine) -> Result<KexecImage, ExportError> {
    // Group the plan's segments above 1 MiB by the pages they touch.
    let mut segs: Vec<&domboot_builder::Segment> = plan
        .segments
        .iter()
        .filter(|s| s.mem_size > 0 && s.addr >= LOW_LIMIT)
        .collect();
    segs.sort_by_key(|s| s.addr);
    let mut groups: Vec<(u64, u64, Vec<&domboot_builder::Segment>)> = Vec::new();
    for s in segs {
        let start = s.addr & !(PAGE - 1);
        let end = layout::align_up(s.addr.saturating_add(s.mem_size), PAGE).ok_or_else(|| {
            ExportError::AddressOverflow {
                what: "segment",
                name: s.name.clone(),
                start: s.addr,
                size: s.mem_size,
            }
        })?;
        match groups.last_mut() {
            Some((_, gend, members)) if start < *gend => {
                *gend = (*gend).max(end);
                members.push(s);
            }
            _ => groups.push((start, end, vec![s])),
        }
    }
    if groups.len() + 1 > KEXEC_SEGMENT_MAX {
        return Err(ExportError::TooManyKexecSegments {
            count: groups.len() + 1,
            limit: KEXEC_SEGMENT_MAX,
        });
    }
    let mut segments = Vec::with_capacity(groups.len() + 1);
    let mut hashes = Vec::with_capacity(groups.len());
    for (start, end, members) in groups {
        let data = match members.as_slice() {
            [only] if only.addr == start => only.data.clone(),
            _ => {
                let len = members
                    .iter()
                    .map(|s| s.addr - start + s.data.len() as u64)
                    .max()
                    .unwrap_or(0);
                let mut buf = vec![0u8; len as usize];
                for s in &members {
                    let off = (s.addr - start) as usize;
                    buf[off..off + s.data.len()].copy_from_slice(&s.data);
                }
                Bytes::from(buf)
            }
        };
        hashes.push(stub::hash_range(start, &data));
        segments.push(KexecSegment {
            name: members
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join("+"),
            addr: start,
            mem_size: end - start,
            data,
        });
    }
    let parts = stub_parts(plan, Some(KexecInput { machine, hashes }))?;
    let entry = parts.image.kexec_entry.ok_or_else(|| {
        ExportError::Assembler("the stub was generated without its kexec entry".into())
    })?;
    // The purgatory: code page, data, staged copies, in one buffer.
    let mut buf = vec![0u8; parts.region as usize];
    buf[..parts.image.code.len()].copy_from_slice(&parts.image.code);
    let data_at = stub::CODE_SIZE as usize;
    buf[data_at..data_at + parts.image.data.len()].copy_from_slice(&parts.image.data);
    for (_, addr, data) in &parts.staged_loads {
        let off = (addr - parts.base) as usize;
        buf[off..off + data.len()].copy_from_slice(data);
    }
    segments.push(KexecSegment {
        name: "purgatory".into(),
        addr: parts.base,
        mem_size: parts.region,
        data: Bytes::from(buf),
    });
    segments.sort_by_key(|s| s.addr);
    Ok(KexecImage {
        segments,
        entry,
        stub: StubInfo {
            base: parts.base,
            size: parts.region,
            entry: parts.image.entry,
            staged: parts.staged_names,
        },
    })
}

/// The structure the stub patches with the loader's memory map.
fn patch_for(plan: &BootPlan) -> Result<Patch, ExportError> {
    let pp = &plan.patch_points;
    match plan.protocol {
        BootProtocol::Linux64 | BootProtocol::Linux32 => {
            let bp = pp.boot_params.ok_or(ExportError::MissingPatchPoint {
                protocol: plan.protocol.name(),
                what: "boot_params",
            })?;
            layout::require_in_segment(plan, "boot_params", bp, 4096)?;
            Ok(Patch::Linux {
                boot_params: bp as u32,
            })
        }
        BootProtocol::Pvh => {
            let si = pp.start_info.ok_or(ExportError::MissingPatchPoint {
                protocol: "pvh",
                what: "start_info",
            })?;
            layout::require_in_segment(plan, "start_info", si, 56)?;
            let memmap = match pp.pvh_memmap {
                Some((table, cap)) => {
                    let cap = cap.min(MAX_MAP_ENTRIES);
                    layout::require_in_segment(
                        plan,
                        "the start_info memory map table",
                        table,
                        u64::from(cap) * 24,
                    )?;
                    Some((table as u32, cap))
                }
                None => None,
            };
            Ok(Patch::Pvh {
                start_info: si as u32,
                memmap,
            })
        }
    }
}

fn entry_error(msg: String) -> ExportError {
    ExportError::EntryState(msg)
}

/// Checks that the stub can establish the plan's entry state, and that the plan's GDT
/// holds the descriptors its selectors name (a wrong one would triple-fault silently).
fn validate_entry(plan: &BootPlan) -> Result<(), ExportError> {
    let e = &plan.entry;
    const CR0_PE: u64 = 1;
    const CR0_PG: u64 = 1 << 31;
    const CR4_PAE: u64 = 1 << 5;
    const CR4_LA57: u64 = 1 << 12;
    const EFER_LME: u64 = 1 << 8;
    if e.cr0 >> 32 != 0 || e.cr4 >> 32 != 0 {
        return Err(entry_error(format!(
            "CR0 {:#x} / CR4 {:#x} set bits above 31",
            e.cr0, e.cr4
        )));
    }
    if e.cr0 & CR0_PE == 0 {
        return Err(entry_error(format!(
            "CR0 {:#x} lacks PE (protected mode)",
            e.cr0
        )));
    }
    let gdt_end = e.gdt_base.saturating_add(u64::from(e.gdt_limit) + 1);
    if gdt_end > FOUR_GIB {
        return Err(ExportError::Above4GiB {
            what: "the plan's GDT".into(),
            addr: e.gdt_base,
        });
    }
    match e.mode {
        CpuMode::Protected32 => {
            if e.cr0 & CR0_PG != 0 {
                return Err(entry_error(
                    "32-bit entry with paging on is not supported (the boot protocols enter with paging off)".into(),
                ));
            }
            for (name, v) in [
                ("RIP", e.rip),
                ("RSP", e.rsp),
                ("RAX", e.rax),
                ("RBX", e.rbx),
                ("RCX", e.rcx),
                ("RDX", e.rdx),
                ("RSI", e.rsi),
                ("RDI", e.rdi),
                ("RBP", e.rbp),
            ] {
                if v > u64::from(u32::MAX) {
                    return Err(entry_error(format!(
                        "{name} {v:#x} does not fit a 32-bit entry"
                    )));
                }
            }
        }
        CpuMode::Long64 => {
            if e.cr0 & CR0_PG == 0 || e.cr4 & CR4_PAE == 0 || e.efer & EFER_LME == 0 {
                return Err(entry_error(format!(
                    "a 64-bit entry needs CR0.PG, CR4.PAE and EFER.LME (CR0 {:#x}, CR4 {:#x}, EFER {:#x})",
                    e.cr0, e.cr4, e.efer
                )));
            }
            if e.cr4 & CR4_LA57 != 0 {
                return Err(entry_error(
                    "5-level paging (CR4.LA57) is not supported".into(),
                ));
            }
            if e.cr3 > u64::from(u32::MAX) {
                return Err(ExportError::Above4GiB {
                    what: "the plan's page tables (CR3)".into(),
                    addr: e.cr3,
                });
            }
            let walk = layout::PageWalk::new(plan);
            if !walk.root_loaded() {
                return Err(ExportError::PageTables {
                    cr3: e.cr3,
                    reason: "are not in any segment of the plan".into(),
                });
            }
            // The far jump into 64-bit code reads the GDT through the new page tables.
            if let Err((at, _)) = walk.identity(e.gdt_base & !(PAGE - 1), gdt_end) {
                return Err(ExportError::PageTables {
                    cr3: e.cr3,
                    reason: format!(
                        "do not identity-map the GDT at {:#x} (first unmapped address {at:#x})",
                        e.gdt_base
                    ),
                });
            }
        }
    }
    let descriptor = |sel: u16, what: &str| -> Result<u64, ExportError> {
        if sel & 7 != 0 || sel == 0 {
            return Err(entry_error(format!(
                "{what} selector {sel:#x} must be a nonzero GDT selector with RPL 0"
            )));
        }
        if u64::from(sel) + 7 > u64::from(e.gdt_limit) {
            return Err(entry_error(format!(
                "{what} selector {sel:#x} lies beyond the GDT limit {:#x}",
                e.gdt_limit
            )));
        }
        layout::read_u64(plan, e.gdt_base.saturating_add(u64::from(sel))).ok_or_else(|| {
            entry_error(format!(
                "the GDT at {:#x} is not in any segment of the plan",
                e.gdt_base
            ))
        })
    };
    const PRESENT: u64 = 1 << 47;
    const S: u64 = 1 << 44;
    const CODE: u64 = 1 << 43;
    const L: u64 = 1 << 53;
    const DB: u64 = 1 << 54;
    let cs = descriptor(e.cs.selector, "CS")?;
    let ds = descriptor(e.ds.selector, "DS")?;
    if cs & (PRESENT | S | CODE) != (PRESENT | S | CODE) {
        return Err(entry_error(format!(
            "GDT entry {:#x} for CS is not a present code segment ({cs:#018x})",
            e.cs.selector
        )));
    }
    let want = match e.mode {
        CpuMode::Long64 => L,
        CpuMode::Protected32 => DB,
    };
    if cs & (L | DB) != want {
        return Err(entry_error(format!(
            "GDT entry {:#x} for CS ({cs:#018x}) is not a {} code segment",
            e.cs.selector,
            if want == L { "64-bit" } else { "32-bit" }
        )));
    }
    if ds & (PRESENT | S | CODE) != (PRESENT | S) {
        return Err(entry_error(format!(
            "GDT entry {:#x} for DS ({ds:#018x}) is not a present data segment",
            e.ds.selector
        )));
    }
    Ok(())
}
