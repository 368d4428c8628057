//! The Linux 32-bit and 64-bit boot protocols, for bzImages and for bare ELF kernels.

use super::hook::{self, Relocation};
use super::zero_page::{self, ZeroPage};
use super::{
    BOOT_DATA, DEFAULT_CMDLINE_SIZE, PlanBuilder, check_cmdline, entry_state, place_gdt,
    place_page_tables,
};
use crate::error::BuildError;
use crate::layout::{Prefer, Range, mib};
use crate::memory::{GIB, MIB};
use crate::plan::{BootProtocol, PatchPoints};
use bytes::Bytes;
use domboot_formats::bzimage::BzImage;
use domboot_formats::elf::ElfImage;

/// Lowest address --kaslr picks (where x86 kernels are linked to run by default).
const KASLR_MIN: u64 = 16 * MIB;
/// initrd_addr_max of current x86 kernels, used for ELF kernels that carry no header.
const ELF_INITRD_ADDR_MAX: u64 = 0x7FFF_FFFF;
/// Room for a hook: it is about 40 bytes.
const HOOK_SIZE: u64 = 64;

/// Enters a bzImage through the 64-bit (`long`) or 32-bit boot protocol.
pub(super) fn bzimage(
    b: &mut PlanBuilder<'_>,
    data: &Bytes,
    image: &BzImage,
    long: bool,
) -> Result<(), BuildError> {
    let opts = b.img.options.clone();
    let pm = data.slice(image.setup_size as usize..);
    let pm_len = pm.len() as u64;
    // Before 2.10 kernels do not say how much memory they need; the decompressor needs
    // the compressed image plus the decompressed kernel, a few times its size.
    let init_size = match image.init_size {
        Some(size) => u64::from(size).max(pm_len),
        None => pm_len * 4,
    };
    if !image.loadflags.loaded_high() {
        return Err(BuildError::Unsupported(format!(
            "{}: a zImage (loadflags without LOADED_HIGH) must load below 1 MiB, which domboot does not support",
            b.img.kernel_path.display()
        )));
    }

    // A relocatable kernel decompresses at its load address rounded up to
    // kernel_alignment, but never below LOAD_PHYSICAL_ADDR (pref_address): head_32.S and
    // head_64.S raise the target to it. So init_size bytes from there must be RAM and free,
    // wherever the compressed image was loaded.
    let (load, relocation, decompress_at) = if image.relocatable {
        let align = u64::from(image.kernel_alignment.unwrap_or(2 << 20)).max(4096);
        let floor = image.pref_address.unwrap_or(0);
        let target = |load: u64| load.next_multiple_of(align).max(floor);
        let describe = format!(
            "at or above its pref_address {floor:#x}, where it decompresses (RAM up to {} at least)",
            mib(floor.max(MIB) + init_size)
        );
        let above_floor = Range {
            min: floor.max(MIB),
            max_end: u64::MAX,
            describe: &describe,
        };
        let load = match (opts.load_address, opts.kaslr) {
            (Some(a), _) => {
                if a % align != 0 {
                    return Err(BuildError::LoadAddress {
                        address: a,
                        why: format!(
                            "is not a multiple of the kernel's kernel_alignment {align:#x}"
                        ),
                    });
                }
                place_split(b, a, pm_len, target(a), init_size)?;
                a
            }
            (None, true) => kaslr_address(b, init_size, align, floor)?,
            (None, false) => {
                let pref = image.pref_address.unwrap_or(KASLR_MIN);
                if pref % align == 0 && b.layout.place_fixed("kernel", pref, init_size).is_ok() {
                    pref
                } else {
                    b.layout
                        .allocate("kernel", init_size, align, &above_floor, Prefer::Low)?
                }
            }
        };
        (load, None, target(load))
    } else {
        if opts.kaslr {
            return Err(BuildError::Unsupported(format!(
                "{}: --kaslr needs a relocatable kernel, and this one is not (relocatable_kernel = 0)",
                b.img.kernel_path.display()
            )));
        }
        let required = image
            .pref_address
            .unwrap_or(u64::from(image.entry_points.code32_start));
        b.layout.place_fixed("kernel", required, init_size)?;
        match opts.load_address {
            Some(a) if a != required => {
                let staged = pm_len.next_multiple_of(4096);
                b.layout
                    .place_fixed("kernel (staged for the hook)", a, staged)?;
                let relocation = Relocation {
                    from: a,
                    to: required,
                    len: pm_len,
                    entry_offset: if long { 0x200 } else { 0 },
                };
                (a, Some((required, relocation)), required)
            }
            _ => (required, None, required),
        }
    };
    b.segment("kernel", load, pm, pm_len.next_multiple_of(4));
    b.reserve("kernel (init_size)", decompress_at, init_size);

    let xl = image.xloadflags;
    if opts.initrd_above_4g && !xl.can_be_loaded_above_4g() {
        return Err(BuildError::Unsupported(format!(
            "{}: the initrd cannot go above 4 GiB: the kernel does not set XLF_CAN_BE_LOADED_ABOVE_4G",
            b.img.kernel_path.display()
        )));
    }
    let describe = format!("below initrd_addr_max {:#x}", image.initrd_addr_max);
    let range = if opts.initrd_above_4g {
        super::above_4g(b)?
    } else {
        Range {
            min: MIB,
            max_end: u64::from(image.initrd_addr_max) + 1,
            describe: &describe,
        }
    };
    let initrd = b.place_initrds(range)?;
    let cmdline = check_cmdline(&b.img.cmdline, image.cmdline_size)?;
    let zp = ZeroPage::from_bzimage(data, image.header_end);
    let with_setup_data = image.setup_header.setup_data.is_some();

    let hook_ip = match &relocation {
        Some(_) => {
            Some(
                b.layout
                    .allocate("code32_start hook", HOOK_SIZE, 16, &BOOT_DATA, Prefer::Low)?,
            )
        }
        None => None,
    };
    let entry32 = hook_ip.unwrap_or(load);
    finish_linux(
        b,
        zp,
        cmdline,
        initrd,
        with_setup_data,
        long,
        |b, long| {
            if let (Some(ip), Some((_, r))) = (hook_ip, &relocation) {
                let code = if long {
                    hook::hook64(r, ip)?
                } else {
                    hook::hook32(r, ip)?
                };
                b.segment("code32_start hook", ip, Bytes::from(code), HOOK_SIZE);
                return Ok(ip);
            }
            Ok(if long { load + 0x200 } else { load })
        },
        Some(entry32),
    )
}

/// Enters an ELF kernel without the PVH note as its decompressor would: at e_entry with
/// RSI/ESI = boot_params.
pub(super) fn elf(
    b: &mut PlanBuilder<'_>,
    data: &Bytes,
    image: &ElfImage,
    long: bool,
) -> Result<(), BuildError> {
    if b.img.options.initrd_above_4g {
        return Err(BuildError::Unsupported(format!(
            "{}: --initrd-above-4g needs a bzImage that sets XLF_CAN_BE_LOADED_ABOVE_4G; an ELF kernel carries no setup header to say so",
            b.img.kernel_path.display()
        )));
    }
    place_elf_segments(b, data, image)?;
    let initrd = b.place_initrds(Range {
        min: MIB,
        max_end: ELF_INITRD_ADDR_MAX + 1,
        describe: "below 0x7fffffff (the initrd_addr_max of x86 kernels)",
    })?;
    let cmdline = check_cmdline(&b.img.cmdline, DEFAULT_CMDLINE_SIZE)?;
    let zp = ZeroPage::synthesized(DEFAULT_CMDLINE_SIZE);
    let entry = image.entry;
    finish_linux(b, zp, cmdline, initrd, true, long, |_, _| Ok(entry), None)
}

/// Places an ELF's PT_LOAD segments at their physical addresses, as slices of `data`.
pub(super) fn place_elf_segments(
    b: &mut PlanBuilder<'_>,
    data: &Bytes,
    image: &ElfImage,
) -> Result<(), BuildError> {
    let opts = &b.img.options;
    let lowest = image.segments.iter().map(|s| s.paddr).min().unwrap_or(0);
    if let Some(a) = opts.load_address.filter(|&a| a != lowest) {
        return Err(BuildError::LoadAddress {
            address: a,
            why: format!(
                "cannot apply to an ELF kernel: its segments load at their physical addresses (from {lowest:#x})"
            ),
        });
    }
    if opts.kaslr {
        return Err(BuildError::Unsupported(
            "--kaslr applies to relocatable bzImages; an ELF kernel loads at its physical addresses"
                .into(),
        ));
    }
    if image.segments.is_empty() {
        return Err(BuildError::Unsupported(format!(
            "{}: the ELF kernel has no PT_LOAD segment",
            b.img.kernel_path.display()
        )));
    }
    for seg in &image.segments {
        let name = format!("kernel segment {}", seg.index);
        b.layout.place_fixed(&name, seg.paddr, seg.memsz)?;
        // Validated by the ELF parser: offset + filesz lies inside the file.
        seg.bytes(data).map_err(|e| {
            BuildError::Unsupported(format!("{}: {name}: {e}", b.img.kernel_path.display()))
        })?;
        let bytes = data.slice(seg.offset as usize..(seg.offset + seg.filesz) as usize);
        b.segment(&name, seg.paddr, bytes, seg.memsz);
    }
    Ok(())
}

/// Command line, setup_data, boot_params, GDT, page tables and the entry state: the part
/// both Linux protocols share. `entry` gives the entry point once everything is placed.
#[allow(clippy::too_many_arguments)]
fn finish_linux(
    b: &mut PlanBuilder<'_>,
    mut zp: ZeroPage,
    cmdline: Vec<u8>,
    initrd: Option<(u64, u64)>,
    with_setup_data: bool,
    long: bool,
    entry: impl FnOnce(&mut PlanBuilder<'_>, bool) -> Result<u64, BuildError>,
    code32_start: Option<u64>,
) -> Result<(), BuildError> {
    let cmdline_addr = b.boot_data("cmdline", cmdline, 16)?;
    zp.set_cmdline(cmdline_addr);
    if let Some((addr, size)) = initrd {
        zp.set_ramdisk(addr, size);
    }
    let e820 = b.img.memory.e820.clone();
    let overflow = zp.set_e820(&e820).to_vec();

    // setup_data chain, built back to front so each node knows its successor.
    let mut next = 0u64;
    if with_setup_data {
        if !overflow.is_empty() {
            let table: Vec<u8> = overflow.iter().flat_map(zero_page::e820_bytes).collect();
            let node = zero_page::setup_data_node(next, zero_page::SETUP_E820_EXT, &table);
            next = b.boot_data("setup_data e820_ext", node, 8)?;
        }
        if b.img.options.rng_seed {
            let seed = fresh_entropy::<32>()?;
            let node = zero_page::setup_data_node(next, zero_page::SETUP_RNG_SEED, &seed);
            next = b.boot_data("setup_data rng_seed", node, 8)?;
        }
    } else if !overflow.is_empty() {
        return Err(BuildError::Unsupported(format!(
            "the memory map has {} entries, more than boot_params holds (128), and this kernel predates setup_data",
            e820.len()
        )));
    }
    if next != 0 {
        zp.set_setup_data(next);
    }
    let gdt = place_gdt(b, long)?;
    let rip = entry(b, long)?;
    if let Some(c) = code32_start {
        // The 32-bit entry point, also for a 64-bit entry: the kernel may read it.
        zp.set_code32_start(u32::try_from(c).map_err(|_| BuildError::LoadAddress {
            address: c,
            why: "is above 4 GiB, out of reach of the 32-bit code32_start".into(),
        })?);
    }
    let zp_addr = b.boot_data("boot_params", zp.into_bytes(), 4096)?;
    let cr3 = if long { place_page_tables(b)? } else { 0 };
    let mut state = entry_state(long, rip, gdt, cr3);
    state.rsi = zp_addr;
    let protocol = if long {
        BootProtocol::Linux64
    } else {
        BootProtocol::Linux32
    };
    b.enter(
        protocol,
        state,
        PatchPoints {
            boot_params: Some(zp_addr),
            ..Default::default()
        },
    );
    Ok(())
}

/// Places a relocatable kernel loaded at `load` (`len` bytes) that decompresses into
/// `size` bytes at `target`: one region when the two meet, two when RAM lies between.
fn place_split(
    b: &mut PlanBuilder<'_>,
    load: u64,
    len: u64,
    target: u64,
    size: u64,
) -> Result<(), BuildError> {
    if target <= load.saturating_add(len) {
        let end = target.saturating_add(size).max(load.saturating_add(len));
        return b.layout.place_fixed("kernel", load, end - load);
    }
    b.layout
        .place_fixed("kernel", load, len.next_multiple_of(4096))?;
    b.layout
        .place_fixed("kernel (decompressed at pref_address)", target, size)
}

/// Picks a random kernel_alignment-aligned load address at or above `floor` (and 16 MiB)
/// that fits (reproducible with --seed).
fn kaslr_address(
    b: &mut PlanBuilder<'_>,
    size: u64,
    align: u64,
    floor: u64,
) -> Result<u64, BuildError> {
    let mut rng = match b.img.options.seed {
        Some(seed) => SplitMix64(seed),
        None => SplitMix64(u64::from_le_bytes(fresh_entropy::<8>()?)),
    };
    let top = b.layout.memory().low_end().min(4 * GIB);
    let slots: Vec<u64> = (KASLR_MIN.max(floor).div_ceil(align)..)
        .map(|i| i * align)
        .take_while(|&a| a + size <= top.saturating_sub(crate::layout::FIRMWARE_MARGIN))
        .collect();
    if slots.is_empty() {
        return Err(BuildError::Placement(format!(
            "kernel ({}) leaves no room for --kaslr with {} of RAM",
            mib(size),
            mib(b.layout.memory().size)
        )));
    }
    let pick = slots[(rng.next() % slots.len() as u64) as usize];
    b.layout.place_fixed("kernel", pick, size)?;
    Ok(pick)
}

/// A small, well-known PRNG: reproducible placement from a seed, nothing cryptographic.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn fresh_entropy<const N: usize>() -> Result<[u8; N], BuildError> {
    use std::io::Read;
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|error| BuildError::Io {
            path: "/dev/urandom".into(),
            error,
        })?;
    Ok(buf)
}
