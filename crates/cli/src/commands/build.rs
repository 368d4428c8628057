//! `domboot build`: one self-contained PVH ELF that any PVH-capable loader boots (QEMU
//! `-kernel`, Firecracker, Cloud Hypervisor, Xen): the plan's segments, a PVH note and a
//! boot stub that adopts the loader's memory map and enters the kernel. A 32-bit kernel's
//! image is an ELF32, which `qemu-system-i386` loads too.

use super::boot_args::BootArgs;
use crate::table::human_size;
use anyhow::Context;
use domboot_builder::{BootPlan, CpuMode, DomainImage};
use domboot_export::ElfClass;
use std::path::PathBuf;
use std::process::ExitCode;

/// Build a bootable PVH ELF image from a kernel, initrds and a command line.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub boot: BootArgs,
    /// Where to write the image (replaced atomically).
    #[arg(long, short = 'o', value_name = "IMAGE")]
    pub output: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let image = args.boot.image()?;
    let plan = image.build()?;
    let class = image_class(&image, &plan);
    let elf = domboot_export::pvh_elf_as(&plan, class)
        .with_context(|| format!("cannot export {}", image.kernel_path.display()))?;
    crate::atomic::write_with(&args.output, |mut w| elf.write_to(&mut w))?;
    eprintln!(
        "domboot: wrote {} ({}, {} protocol, {}); {}",
        args.output.display(),
        human_size(elf.size()),
        plan.protocol.name(),
        match class {
            ElfClass::Elf64 => "ELF64",
            ElfClass::Elf32 => "ELF32",
        },
        ram_note(&plan),
    );
    Ok(ExitCode::SUCCESS)
}

/// ELF32 for a 32-bit kernel (an i386 ELF, or a bzImage without XLF_KERNEL_64) entered in
/// 32-bit mode; ELF64, which linux-loader based VMMs need, for everything else.
fn image_class(image: &DomainImage, plan: &BootPlan) -> ElfClass {
    let is32 = match (image.kernel.kernel_elf(), image.kernel.bzimage()) {
        (Some(elf), _) => elf.elf().is_some_and(|e| e.class.bits() == 32),
        (None, Some(bz)) => bz.bzimage().is_some_and(|b| !b.xloadflags.kernel_64()),
        (None, None) => false,
    };
    if is32 && plan.entry.mode == CpuMode::Protected32 {
        ElfClass::Elf32
    } else {
        ElfClass::Elf64
    }
}

/// What RAM the image needs, and why: the initrd sits near the top of the RAM the plan
/// was made for, so the image needs all of it, while the kernel alone needs far less.
fn ram_note(plan: &BootPlan) -> String {
    let is_initrd = |name: &str| name.starts_with("initrd");
    let image_needs = minimum_ram(plan, |_| true);
    let kernel_needs = minimum_ram(plan, |name| !is_initrd(name));
    let initrd = plan.segments.iter().filter(|s| is_initrd(&s.name)).fold(
        None,
        |acc: Option<(u64, u64)>, s| {
            Some(acc.map_or((s.addr, s.end()), |(lo, hi)| {
                (lo.min(s.addr), hi.max(s.end()))
            }))
        },
    );
    match initrd {
        Some((lo, hi)) if image_needs > kernel_needs => format!(
            "it needs {} of RAM or more: the initrd was placed at {lo:#x}-{hi:#x}, near the top of the {} it was built for; the kernel and its boot data alone need {} (build with a smaller --memory for a smaller guest)",
            human_size(image_needs),
            human_size(plan.memory_size),
            human_size(kernel_needs),
        ),
        _ => format!(
            "it needs {} of RAM or more (the kernel with the room it needs to start, and its boot data)",
            human_size(image_needs)
        ),
    }
}

/// The least RAM a loader must give for the segments and reservations `keep` selects to
/// be RAM, rounded up to MiB (the stub checks this at run time and says so if it is not).
fn minimum_ram(plan: &BootPlan, keep: impl Fn(&str) -> bool) -> u64 {
    const GAP_START: u64 = 3 << 30;
    const GAP_END: u64 = 4 << 30;
    let end = plan
        .segments
        .iter()
        .filter(|s| keep(&s.name))
        .map(|s| s.end())
        .chain(
            plan.reservations
                .iter()
                .filter(|r| keep(&r.name))
                .map(|r| r.address + r.size),
        )
        .max()
        .unwrap_or(0);
    let ram = if end > GAP_END {
        end - (GAP_END - GAP_START)
    } else {
        end
    };
    ram.next_multiple_of(1 << 20)
}
