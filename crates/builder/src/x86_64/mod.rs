//! x86 boot protocols: each turns a [`DomainImage`] into a [`BootPlan`].
//!
//! - linux64 / linux32: a bzImage's protected-mode code at its load address, boot_params,
//!   command line, initrd, setup_data, and (64-bit) identity page tables;
//! - pvh: the ELF's PT_LOADs at their physical addresses and an hvm_start_info;
//! - ELF kernels without the PVH note: entered like the decompressed kernel is by its own
//!   decompressor (64-bit at e_entry with RSI = boot_params, as Firecracker does; 32-bit
//!   at e_entry with ESI = boot_params).

mod gdt;
mod hook;
mod linux;
mod paging;
pub mod pvh;
pub mod zero_page;

pub use hook::Relocation;

use crate::error::BuildError;
use crate::image::{DomainImage, ProtocolChoice};
use crate::layout::{Layout, Prefer, Range};
use crate::memory::{GIB, MIB};
use crate::plan::{BootPlan, BootProtocol, CpuMode, EntryState, PatchPoints, Reservation, Segment};
use bytes::Bytes;
use domboot_formats::{Chain, Format, bzimage::BzImage, elf::ElfImage};

/// Linux's COMMAND_LINE_SIZE on x86, for kernels that do not declare cmdline_size.
pub const DEFAULT_CMDLINE_SIZE: u32 = 2048;
/// Boot structures go at 1 MiB or above: loaders' firmware writes low memory before the
/// entry runs (see DESIGN.md), and they must stay below 4 GiB for 32-bit code.
const BOOT_DATA: Range<'static> = Range {
    min: MIB,
    max_end: 4 * GIB,
    describe: "between 1 MiB and 4 GiB",
};

const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const RFLAGS_RESERVED: u64 = 1 << 1;

/// The kernel the plan boots, as selected from the image's chain.
enum Kernel<'a> {
    BzImage { data: &'a Bytes, image: &'a BzImage },
    Elf { data: Bytes, image: Box<ElfImage> },
}

pub fn build(img: &DomainImage) -> Result<BootPlan, BuildError> {
    let choice = img.options.protocol;
    let elf_chain: Chain;
    let kernel = match (choice, img.kernel.bzimage()) {
        (ProtocolChoice::Pvh, _) | (_, None) => {
            elf_chain = img.kernel_elf()?;
            let layer = elf_chain.kernel_elf().ok_or_else(|| {
                BuildError::Unsupported(format!(
                    "{}: no ELF kernel inside (layers: {})",
                    img.kernel_path.display(),
                    img.layer_names()
                ))
            })?;
            Kernel::Elf {
                data: layer.data.clone(),
                image: layer.elf().cloned().map(Box::new).ok_or_else(|| {
                    BuildError::Unsupported("ELF layer without ELF details".into())
                })?,
            }
        }
        (_, Some(layer)) if img.options.verify_payload => {
            // The linux protocols hand the kernel its compressed payload; decompress it once
            // here so a corrupt or oversized one is an error now, not a halt in the guest.
            img.check_payload()?;
            bzimage_kernel(layer)?
        }
        (_, Some(layer)) => bzimage_kernel(layer)?,
    };
    let mut b = PlanBuilder::new(img);
    match kernel {
        Kernel::BzImage { data, image } => {
            let long = match choice {
                ProtocolChoice::Auto => image.xloadflags.kernel_64(),
                ProtocolChoice::Linux64 if !image.xloadflags.kernel_64() => {
                    return Err(BuildError::Unsupported(format!(
                        "{}: --boot-protocol linux64 needs a 64-bit entry point, and this bzImage does not set XLF_KERNEL_64 (use linux32)",
                        img.kernel_path.display()
                    )));
                }
                ProtocolChoice::Linux64 => true,
                _ => false,
            };
            linux::bzimage(&mut b, data, image, long)?;
        }
        Kernel::Elf { data, image } => {
            let is64 = image.class.format() == Format::Elf64;
            match (choice, image.pvh_entry) {
                (ProtocolChoice::Pvh | ProtocolChoice::Auto, Some(entry)) => {
                    pvh::elf(&mut b, &data, &image, entry)?
                }
                (ProtocolChoice::Pvh, None) => {
                    return Err(BuildError::Unsupported(format!(
                        "{}: --boot-protocol pvh needs the XEN_ELFNOTE_PHYS32_ENTRY note, and this kernel has none (it was built without CONFIG_PVH)",
                        img.kernel_path.display()
                    )));
                }
                (ProtocolChoice::Linux32, _) if is64 => {
                    return Err(BuildError::Unsupported(format!(
                        "{}: a 64-bit ELF kernel has no 32-bit boot protocol entry; use linux64, pvh, or the bzImage",
                        img.kernel_path.display()
                    )));
                }
                (ProtocolChoice::Linux64, _) if !is64 => {
                    return Err(BuildError::Unsupported(format!(
                        "{}: a 32-bit ELF kernel cannot be entered in 64-bit mode; use linux32",
                        img.kernel_path.display()
                    )));
                }
                _ => linux::elf(&mut b, &data, &image, is64)?,
            }
        }
    }
    b.finish()
}

fn bzimage_kernel(layer: &domboot_formats::Layer) -> Result<Kernel<'_>, BuildError> {
    Ok(Kernel::BzImage {
        data: &layer.data,
        image: layer.bzimage().ok_or_else(|| {
            BuildError::Unsupported("bzImage layer without bzImage details".into())
        })?,
    })
}

/// Accumulates segments and reservations on top of the layout allocator.
pub(crate) struct PlanBuilder<'a> {
    pub img: &'a DomainImage,
    pub layout: Layout,
    segments: Vec<Segment>,
    reservations: Vec<Reservation>,
    entry: Option<EntryState>,
    protocol: Option<BootProtocol>,
    patch: PatchPoints,
}

impl<'a> PlanBuilder<'a> {
    fn new(img: &'a DomainImage) -> Self {
        PlanBuilder {
            img,
            layout: Layout::new(img.memory.clone()),
            segments: Vec::new(),
            reservations: Vec::new(),
            entry: None,
            protocol: None,
            patch: PatchPoints::default(),
        }
    }

    /// Adds bytes at a fixed address (the layout must already hold the region).
    pub fn segment(&mut self, name: &str, addr: u64, data: Bytes, mem_size: u64) {
        self.segments.push(Segment {
            name: name.to_string(),
            addr,
            mem_size: mem_size.max(data.len() as u64),
            data,
            backing: None,
        });
    }

    /// Allocates room for `data` among the boot structures and adds it.
    pub fn boot_data(&mut self, name: &str, data: Vec<u8>, align: u64) -> Result<u64, BuildError> {
        let size = data.len() as u64;
        let addr = self
            .layout
            .allocate(name, size, align, &BOOT_DATA, Prefer::Low)?;
        self.segment(name, addr, Bytes::from(data), size);
        Ok(addr)
    }

    pub fn reserve(&mut self, name: &str, address: u64, size: u64) {
        self.reservations.push(Reservation {
            name: name.to_string(),
            address,
            size,
        });
    }

    /// Places the initrds contiguously (each starting 4-byte aligned, the kernel skips the
    /// zero padding between archives) as high as `max_end` allows. Returns (address, size).
    pub fn place_initrds(&mut self, range: Range<'_>) -> Result<Option<(u64, u64)>, BuildError> {
        if self.img.initrds.is_empty() {
            return Ok(None);
        }
        let sizes: Vec<u64> = self
            .img
            .initrds
            .iter()
            .map(|i| (i.data.len() as u64).next_multiple_of(4))
            .collect();
        let total: u64 = sizes.iter().sum();
        let name = if self.img.initrds.len() == 1 {
            "initrd".to_string()
        } else {
            format!("initrd ({} files)", self.img.initrds.len())
        };
        let base = self
            .layout
            .allocate(&name, total, 4096, &range, Prefer::High)?;
        let mut at = base;
        let initrds = self.img.initrds.clone();
        for (i, (initrd, size)) in initrds.iter().zip(&sizes).enumerate() {
            let seg_name = if initrds.len() == 1 {
                "initrd".to_string()
            } else {
                format!("initrd {i}")
            };
            self.segment(&seg_name, at, initrd.data.clone(), *size);
            at += size;
        }
        // The kernel sees exactly the bytes, not the last archive's padding.
        let last_pad =
            sizes.last().copied().unwrap_or(0) - initrds.last().map_or(0, |i| i.data.len() as u64);
        Ok(Some((base, total - last_pad)))
    }

    /// The highest address anything in the plan occupies.
    pub fn highest_end(&self) -> u64 {
        let seg = self.segments.iter().map(Segment::end).max().unwrap_or(0);
        let res = self
            .reservations
            .iter()
            .map(|r| r.address + r.size)
            .max()
            .unwrap_or(0);
        seg.max(res)
    }

    pub fn enter(&mut self, protocol: BootProtocol, entry: EntryState, patch: PatchPoints) {
        self.protocol = Some(protocol);
        self.entry = Some(entry);
        self.patch = patch;
    }

    fn finish(mut self) -> Result<BootPlan, BuildError> {
        let (Some(protocol), Some(entry)) = (self.protocol, self.entry.take()) else {
            return Err(BuildError::Unsupported(
                "internal: the protocol set no entry state".into(),
            ));
        };
        self.segments.sort_by_key(|s| s.addr);
        for pair in self.segments.windows(2) {
            if pair[0].end() > pair[1].addr {
                return Err(BuildError::Placement(format!(
                    "{} at {:#x}-{:#x} overlaps {} at {:#x}",
                    pair[0].name,
                    pair[0].addr,
                    pair[0].end(),
                    pair[1].name,
                    pair[1].addr
                )));
            }
        }
        Ok(BootPlan {
            protocol,
            memory_size: self.img.memory.size,
            e820: self.img.memory.e820.clone(),
            segments: self.segments,
            reservations: self.reservations,
            entry,
            patch_points: self.patch,
        })
    }
}

/// Entry state shared by the protocols: flat segments from `gdt`, interrupts off.
fn entry_state(long_mode: bool, rip: u64, gdt_base: u64, cr3: u64) -> EntryState {
    let g = gdt::BootGdt::new(long_mode);
    EntryState {
        mode: if long_mode {
            CpuMode::Long64
        } else {
            CpuMode::Protected32
        },
        rip,
        rsp: 0,
        rax: 0,
        rbx: 0,
        rcx: 0,
        rdx: 0,
        rsi: 0,
        rdi: 0,
        rbp: 0,
        rflags: RFLAGS_RESERVED,
        cr0: if long_mode {
            CR0_PE | CR0_ET | CR0_PG
        } else {
            CR0_PE | CR0_ET
        },
        cr3,
        cr4: if long_mode { CR4_PAE } else { 0 },
        efer: if long_mode { EFER_LME | EFER_LMA } else { 0 },
        cs: g.cs(),
        ds: g.ds(),
        gdt_base,
        gdt_limit: g.limit(),
    }
}

/// Places the boot GDT and returns its address.
fn place_gdt(b: &mut PlanBuilder<'_>, long_mode: bool) -> Result<u64, BuildError> {
    b.boot_data("gdt", gdt::BootGdt::new(long_mode).bytes(), 16)
}

/// Places identity page tables covering everything in the plan; returns CR3.
fn place_page_tables(b: &mut PlanBuilder<'_>) -> Result<u64, BuildError> {
    // Cover the page tables' own worst-case location too (they go below 4 GiB, which
    // `covering` always maps).
    let mut map = paging::IdentityMap::covering(b.highest_end());
    let size = map.size();
    let addr = b
        .layout
        .allocate("page_tables", size, 4096, &BOOT_DATA, Prefer::Low)?;
    map.base = addr;
    b.segment("page_tables", addr, Bytes::from(map.bytes()), size);
    Ok(map.pml4())
}

/// Where `--initrd-above-4g` puts the initrd: RAM at 4 GiB or above, which a guest has only
/// when its memory exceeds the start of the MMIO gap.
fn above_4g(b: &PlanBuilder<'_>) -> Result<Range<'static>, BuildError> {
    let memory = b.layout.memory();
    if memory.top() <= 4 * GIB {
        return Err(BuildError::Unsupported(format!(
            "--initrd-above-4g: a guest with {} of RAM has none above 4 GiB (RAM beyond the first {} GiB goes above 4 GiB; give --memory more than that)",
            crate::layout::mib(memory.size),
            crate::memory::MMIO_GAP_START / GIB
        )));
    }
    Ok(Range {
        min: 4 * GIB,
        max_end: u64::MAX,
        describe: "above 4 GiB (--initrd-above-4g)",
    })
}

/// Checks a command line against the kernel's limit (which includes the NUL).
fn check_cmdline(cmdline: &str, cmdline_size: u32) -> Result<Vec<u8>, BuildError> {
    let max = cmdline_size.saturating_sub(1);
    if cmdline.len() as u64 > u64::from(max) {
        return Err(BuildError::CmdlineTooLong {
            len: cmdline.len(),
            max,
            size: cmdline_size,
        });
    }
    if cmdline.as_bytes().contains(&0) {
        return Err(BuildError::Unsupported(
            "the command line contains a NUL byte, which would cut it short".into(),
        ));
    }
    let mut bytes = cmdline.as_bytes().to_vec();
    bytes.push(0);
    Ok(bytes)
}
