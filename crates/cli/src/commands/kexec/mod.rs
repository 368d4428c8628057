//! `domboot kexec`: load a kernel into the running Linux for `kexec`, boot it, or unload it.
//!
//! `load` builds the plan with the same builder as every other backend, for the machine it
//! runs on (its firmware memory map, its ACPI RSDP, its console), and hands it to
//! `kexec_load` with the export stub as the purgatory; `--file` uses `kexec_file_load`,
//! where the running kernel itself loads a bzImage (the path that works under lockdown).

use super::boot_args::{BootArgs, Protocol};
use crate::table::{Table, human_size};
use crate::units::parse_size;
use anyhow::{Context, bail};
use domboot_export::{KexecImage, Machine, MachineMapEntry};
use std::path::PathBuf;
use std::process::ExitCode;
mod machine;
mod syscalls;

use machine::*;
use syscalls::*;

/// Load a kernel for kexec, boot it (replacing the running kernel), or unload it.
#[derive(clap::Args)]
#[command(
    long_about = "Load a kernel into the running Linux for kexec, boot it, or unload it.\n\n\
`load` changes nothing on its own: it only stages the kernel in the running kernel's memory \
(and prints what it loaded and where). `exec` then replaces the running kernel AT ONCE, like \
`kexec -e`: services are not stopped and filesystems not unmounted (exec only syncs them \
first). Shut down cleanly first where that matters. Both need root (CAP_SYS_BOOT)."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    Load(LoadArgs),
    Exec(ExecArgs),
    /// Unload the kernel staged by `load`.
    Unload,
}

/// Stage a kernel (with initrds and a command line) for `domboot kexec exec`; the running
/// system goes on unchanged.
#[derive(clap::Args)]
pub struct LoadArgs {
    /// Kernel image: bzImage, vmlinux ELF (with a PVH note), UKI or a compressed kernel
    /// (--file: a bzImage only).
    #[arg(
        long,
        short = 'k',
        value_name = "FILE",
        required_unless_present = "bootloader"
    )]
    pub kernel: Option<PathBuf>,
    /// Initial ramdisk; repeat to concatenate several (in order).
    #[arg(long, short = 'i', value_name = "FILE")]
    pub initrd: Vec<PathBuf>,
    /// The next kernel's command line. Without console=, the running kernel's console=
    /// options are added.
    #[arg(long, short = 'c', visible_alias = "append", value_name = "TEXT")]
    pub cmdline: Option<String>,
    /// Use the running kernel's command line (/proc/cmdline, without BOOT_IMAGE=).
    #[arg(long, conflicts_with = "cmdline")]
    pub reuse_cmdline: bool,
    /// How to enter the kernel: auto picks linux64 for a 64-bit bzImage, linux32 for a
    /// 32-bit one, pvh for an ELF with the PVH note.
    #[arg(long, value_enum, default_value_t = Protocol::Auto)]
    pub boot_protocol: Protocol,
    /// Physical load address of the kernel (relocatable: a kernel_alignment multiple;
    /// non-relocatable: anywhere, through a code32_start hook). Hex with 0x.
    #[arg(long, value_name = "ADDR", value_parser = parse_size)]
    pub load_address: Option<u64>,
    /// Use kexec_file_load: the running kernel loads and checks the bzImage itself (its
    /// signature too, under lockdown). Takes only a 64-bit bzImage; --boot-protocol and
    /// --load-address do not apply.
    #[arg(long, conflicts_with_all = ["boot_protocol", "load_address"])]
    pub file: bool,
    /// Print the plan and the segments that would be loaded; load nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --bootloader: the disk (image or block device) whose boot loader entries to
    /// read (read only, never mounted).
    #[arg(long, value_name = "FILE", requires = "bootloader")]
    pub disk: Option<PathBuf>,
    /// Load what the --disk's boot loader would boot (BLS, UKI, grub.cfg, extlinux,
    /// menu.lst; `domboot boot-entries DISK` lists them) instead of --kernel.
    #[arg(long, requires = "disk", conflicts_with_all = ["kernel", "file"])]
    pub bootloader: bool,
    /// With --bootloader: the entry, by index (from 0), title or id (default: the boot
    /// loader's default).
    #[arg(long, value_name = "N|TITLE", requires = "bootloader")]
    pub boot_entry: Option<String>,
}

/// Boot the loaded kernel now. This replaces the running kernel at once, like `kexec -e`:
/// services are not stopped and filesystems not unmounted (only `sync` runs first; the
/// running kernel shuts its devices down before the jump).
#[derive(clap::Args)]
pub struct ExecArgs {}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Load(a) => load(a),
        Command::Exec(_) => exec(),
        Command::Unload => unload(),
    }
}

fn load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    // What --cmdline or --reuse-cmdline asks for; the running console is added to it, or
    // to a UKI's own command line when neither is given.
    let given = given_cmdline(&args)?;
    if args.file {
        let cmdline = with_running_console(given.as_deref().unwrap_or_default());
        return load_file(&args, &cmdline);
    }
    let (map, map_source) = machine_map()?;
    // The builder lays the domain out in the RAM that holds 1 MiB (below 3 GiB); the stub
    // hands the next kernel the whole map.
    let low_end = map
        .iter()
        .find(|e| e.kind == RAM && e.addr <= MIB && MIB < e.addr + e.size)
        .map(|e| e.addr + e.size)
        .context("this machine's memory map has no RAM at 1 MiB")?;
    let mut memory = low_end.min(3 << 30);
    // A crash kernel reserved high in that RAM: lay the domain out below it (the initrd
    // goes to the top), when that leaves room; check_fits reports any overlap left.
    for (start, _) in crash_ranges() {
        if (MIN_BELOW_CRASH..memory).contains(&start) {
            memory = start;
        }
    }
    let memory = memory & !(MIB - 1);
    let boot = BootArgs {
        config: None,
        strict: false,
        kernel: args.kernel.clone(),
        initrd: args.initrd.clone(),
        // A boot loader entry keeps its own command line unless one was given.
        cmdline: given.clone(),
        memory: Some(memory),
        boot_protocol: args.boot_protocol,
        load_address: args.load_address,
        kaslr: false,
        seed: None,
        initrd_above_4g: false,
        no_rng_seed: false,
        max_decompressed: None,
        disk: args
            .disk
            .iter()
            .map(|p| super::boot_entries::DiskArg {
                path: p.clone(),
                read_only: true,
            })
            .collect(),
        bootloader: args.bootloader,
        boot_entry: args.boot_entry.clone(),
    };
    let mut domain = if args.bootloader {
        boot.image()?
    } else {
        // Without a command line a UKI's own .cmdline, as systemd-stub uses it.
        boot.image_of(kernel_path(&args)?, &[], given.as_deref())?
    };
    domain.cmdline = with_running_console(&domain.cmdline);
    let what = domain.kernel_path.display().to_string();
    let plan = domain
        .build()
        .with_context(|| format!("building the plan for {what}"))?;
    let machine = Machine {
        memmap: map.clone(),
        rsdp: machine_rsdp(),
    };
    let image = domboot_export::kexec_image(&plan, &machine)
        .with_context(|| format!("preparing {what} for kexec_load"))?;
    check_fits(&plan, &image, &map)?;
    if args.dry_run {
        print!("{}", super::plan::render(&plan));
        println!();
        print!("{}", render(&what, &plan, &image, &machine, map_source));
        println!("dry run: nothing loaded");
        return Ok(ExitCode::SUCCESS);
    }
    kexec_load(&image)?;
    print!("{}", render(&what, &plan, &image, &machine, map_source));
    println!(
        "loaded; nothing changes until `domboot kexec exec`, which replaces the running kernel at once"
    );
    Ok(ExitCode::SUCCESS)
}

/// Every segment, reservation and the purgatory must be RAM of this machine, and clear of
/// the crash kernel's reservation.
fn check_fits(
    plan: &domboot_builder::BootPlan,
    image: &KexecImage,
    map: &[MachineMapEntry],
) -> anyhow::Result<()> {
    let crash = crash_ranges();
    let mut spans: Vec<(String, u64, u64)> = image
        .segments
        .iter()
        .map(|s| (format!("segment `{}`", s.name), s.addr, s.addr + s.mem_size))
        .collect();
    for r in plan.reservations.iter().filter(|r| r.size > 0) {
        spans.push((
            format!("`{}` (kept free for the kernel)", r.name),
            r.address,
            r.address + r.size,
        ));
    }
    for (what, start, end) in spans {
        if !in_ram(map, start, end) {
            bail!(
                "{what} at {start:#x}-{end:#x} is not RAM in this machine's memory map (/sys/firmware/memmap); choose another --load-address or smaller initrds"
            );
        }
        if let Some((cs, ce)) = crash.iter().find(|(cs, ce)| start < *ce && *cs < end) {
            bail!(
                "{what} at {start:#x}-{end:#x} overlaps the crash kernel's reservation {cs:#x}-{ce:#x} (/proc/iomem)"
            );
        }
    }
    Ok(())
}

fn render(
    what: &str,
    plan: &domboot_builder::BootPlan,
    image: &KexecImage,
    machine: &Machine,
    map_source: &str,
) -> String {
    let cmdline = plan
        .segments
        .iter()
        .find(|s| s.name == "cmdline")
        .map(|s| {
            String::from_utf8_lossy(&s.data)
                .trim_end_matches('\0')
                .to_string()
        })
        .unwrap_or_default();
    let mut out = format!(
        "kexec: {what} ({}), command line {cmdline:?}\n",
        plan.protocol.name()
    );
    let mut t = Table::new(&["kexec segment", "start", "end", "bytes", "in memory"]);
    for s in &image.segments {
        t.row(vec![
            s.name.clone(),
            format!("{:#x}", s.addr),
            format!("{:#x}", s.addr + s.mem_size),
            s.data.len().to_string(),
            human_size(s.mem_size),
        ]);
    }
    out.push_str(&t.render(0));
    out.push_str(&format!(
        "entry {:#x} (domboot purgatory: checks the segments' checksums, then enters the kernel at {:#x} through {}); memory map: {} entries from this machine's {}; RSDP {}\n",
        image.entry,
        plan.entry.rip,
        plan.protocol.name(),
        machine.memmap.len(),
        map_source,
        if machine.rsdp == 0 {
            "found by the next kernel".to_string()
        } else {
            format!("{:#x}", machine.rsdp)
        }
    ));
    out
}
