//! `domboot build`: one self-contained PVH ELF that any PVH-capable loader boots (QEMU
//! `-kernel`, Firecracker, Cloud Hypervisor, Xen): the plan's segments, a PVH note and a
//! boot stub that adopts the loader's memory map and enters the kernel.

use super::boot_args::BootArgs;
use crate::table::human_size;
use anyhow::Context;
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
    let elf = domboot_export::pvh_elf(&plan)
        .with_context(|| format!("cannot export {}", image.kernel_path.display()))?;
    crate::atomic::write_with(&args.output, |mut w| elf.write_to(&mut w))?;
    eprintln!(
        "domboot: wrote {} ({}, {} protocol, needs {} of RAM or more)",
        args.output.display(),
        human_size(elf.size()),
        plan.protocol.name(),
        human_size(minimum_ram(&plan)),
    );
    Ok(ExitCode::SUCCESS)
}

/// The least RAM a loader must give for every segment and reservation to be RAM, rounded
/// up to MiB (the stub checks this at run time and says so if it is not).
fn minimum_ram(plan: &domboot_builder::BootPlan) -> u64 {
    const GAP_START: u64 = 3 << 30;
    const GAP_END: u64 = 4 << 30;
    let end = plan
        .segments
        .iter()
        .map(|s| s.end())
        .chain(plan.reservations.iter().map(|r| r.address + r.size))
        .max()
        .unwrap_or(0);
    let ram = if end > GAP_END {
        end - (GAP_END - GAP_START)
    } else {
        end
    };
    ram.next_multiple_of(1 << 20)
}
