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
use domboot_export::{KEXEC_SEGMENT_MAX, KexecImage, Machine, MachineMapEntry};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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

const PROC_CMDLINE: &str = "/proc/cmdline";

/// The next kernel's command line: the given one, or the running one, with the running
/// kernel's console= options added when it names none.
fn next_cmdline(args: &LoadArgs) -> anyhow::Result<String> {
    let running = std::fs::read_to_string(PROC_CMDLINE).unwrap_or_default();
    let running: Vec<&str> = running
        .split_whitespace()
        .filter(|w| !w.starts_with("BOOT_IMAGE="))
        .collect();
    let mut cmdline = if args.reuse_cmdline {
        if running.is_empty() {
            bail!("--reuse-cmdline: {PROC_CMDLINE} is empty or unreadable");
        }
        running.join(" ")
    } else {
        args.cmdline.clone().unwrap_or_default()
    };
    let has_console = cmdline
        .split_whitespace()
        .any(|w| w.starts_with("console="));
    if !has_console {
        for w in running.iter().filter(|w| w.starts_with("console=")) {
            if !cmdline.is_empty() {
                cmdline.push(' ');
            }
            cmdline.push_str(w);
        }
    }
    Ok(cmdline)
}

/// e820 type of a `/sys/firmware/memmap` or `/proc/iomem` name.
fn map_kind(name: &str) -> Option<u32> {
    Some(match name.trim() {
        "System RAM" => 1,
        "Reserved" | "reserved" => 2,
        "ACPI Tables" => 3,
        "ACPI Non-volatile Storage" => 4,
        "Unusable memory" => 5,
        "Persistent Memory (legacy)" => 12,
        "Persistent Memory" => 7,
        "Soft Reserved" => 0xefff_ffff,
        _ => return None,
    })
}

fn parse_hex(text: &str, what: &Path) -> anyhow::Result<u64> {
    let t = text.trim();
    u64::from_str_radix(t.trim_start_matches("0x"), 16)
        .with_context(|| format!("{}: {t:?} is not a hex address", what.display()))
}

/// The firmware memory map: /sys/firmware/memmap, else the top level of /proc/iomem.
fn machine_map() -> anyhow::Result<Vec<MachineMapEntry>> {
    let mut map = Vec::new();
    let dir = Path::new("/sys/firmware/memmap");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let read = |f: &str| {
                std::fs::read_to_string(p.join(f))
                    .with_context(|| format!("{}", p.join(f).display()))
            };
            let start = parse_hex(&read("start")?, &p.join("start"))?;
            let end = parse_hex(&read("end")?, &p.join("end"))?;
            let Some(kind) = map_kind(&read("type")?) else {
                continue;
            };
            if end >= start {
                map.push(MachineMapEntry {
                    addr: start,
                    size: end - start + 1,
                    kind,
                });
            }
        }
    }
    if map.is_empty() {
        let iomem = Path::new("/proc/iomem");
        let text = std::fs::read_to_string(iomem)
            .with_context(|| format!("{} (no /sys/firmware/memmap either)", iomem.display()))?;
        for line in text.lines().filter(|l| !l.starts_with(' ')) {
            let Some((range, name)) = line.split_once(" : ") else {
                continue;
            };
            let Some((s, e)) = range.split_once('-') else {
                continue;
            };
            let (start, end) = (parse_hex(s, iomem)?, parse_hex(e, iomem)?);
            if let Some(kind) = map_kind(name) {
                map.push(MachineMapEntry {
                    addr: start,
                    size: end.saturating_sub(start) + 1,
                    kind,
                });
            }
        }
    }
    let map = merge_map(map);
    if !map.iter().any(|e| e.kind == 1 && e.addr + e.size > 0) || map.iter().all(|e| e.addr == 0) {
        bail!(
            "cannot read this machine's memory map from /sys/firmware/memmap or /proc/iomem (as root, /proc/iomem shows real addresses)"
        );
    }
    Ok(map)
}

/// Sorts the map and merges entries of one type that touch or overlap (EFI machines list
/// many small ones; the next kernel's boot_params hold at most 128).
fn merge_map(mut map: Vec<MachineMapEntry>) -> Vec<MachineMapEntry> {
    map.sort_by_key(|e| (e.addr, e.kind));
    let mut out: Vec<MachineMapEntry> = Vec::with_capacity(map.len());
    for e in map.into_iter().filter(|e| e.size > 0) {
        match out.last_mut() {
            Some(last) if last.kind == e.kind && e.addr <= last.addr + last.size => {
                let end = (last.addr + last.size).max(e.addr.saturating_add(e.size));
                last.size = end - last.addr;
            }
            _ => out.push(e),
        }
    }
    out
}

/// Ranges the running kernel keeps for itself that kexec must not load into ("Crash
/// kernel" in /proc/iomem).
fn crash_ranges() -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/iomem").unwrap_or_default();
    text.lines()
        .filter(|l| l.trim_start().contains(": Crash kernel"))
        .filter_map(|l| {
            let (range, _) = l.trim().split_once(" : ")?;
            let (s, e) = range.split_once('-')?;
            let s = u64::from_str_radix(s, 16).ok()?;
            let e = u64::from_str_radix(e, 16).ok()?;
            (e > s).then_some((s, e + 1))
        })
        .collect()
}

/// The ACPI RSDP: the EFI system table's, else the one the running kernel was handed in
/// its boot_params; 0 when neither knows (the next kernel then searches the BIOS areas,
/// as it did on this boot).
fn machine_rsdp() -> u64 {
    if let Ok(text) = std::fs::read_to_string("/sys/firmware/efi/systab") {
        for key in ["ACPI20=", "ACPI="] {
            if let Some(v) = text
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| u64::from_str_radix(v.trim().trim_start_matches("0x"), 16).ok())
            {
                return v;
            }
        }
    }
    const BP_ACPI_RSDP: usize = 0x70;
    match std::fs::read("/sys/kernel/boot_params/data") {
        Ok(bp) if bp.len() >= BP_ACPI_RSDP + 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bp[BP_ACPI_RSDP..BP_ACPI_RSDP + 8]);
            u64::from_le_bytes(b)
        }
        _ => 0,
    }
}

const RAM: u32 = 1;
const MIB: u64 = 1 << 20;
/// The least RAM from 0 a crash kernel's reservation must leave below it for the domain
/// to be laid out there instead of around it.
const MIN_BELOW_CRASH: u64 = 256 * MIB;

fn in_ram(map: &[MachineMapEntry], start: u64, end: u64) -> bool {
    // RAM entries may be split; walk them in order.
    let mut cur = start;
    loop {
        if cur >= end {
            return true;
        }
        match map
            .iter()
            .find(|e| e.kind == RAM && e.addr <= cur && cur < e.addr + e.size)
        {
            Some(e) => cur = e.addr + e.size,
            None => return false,
        }
    }
}

fn load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let cmdline = next_cmdline(&args)?;
    if args.file {
        return load_file(&args, &cmdline);
    }
    let map = machine_map()?;
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
        cmdline: Some(cmdline.clone()),
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
    let domain = if args.bootloader {
        let mut b = boot.clone();
        // The entry's own command line unless one was given.
        if args.cmdline.is_none() && !args.reuse_cmdline {
            b.cmdline = None;
        }
        b.image()?
    } else {
        boot.image_of(kernel_path(&args)?, &[], Some(&cmdline))?
    };
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
        print!("{}", render(&what, &plan, &image, &machine));
        println!("dry run: nothing loaded");
        return Ok(ExitCode::SUCCESS);
    }
    kexec_load(&image)?;
    print!("{}", render(&what, &plan, &image, &machine));
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
        "entry {:#x} (domboot purgatory: checks the segments' checksums, then enters the kernel at {:#x} through {}); memory map: {} entries from this machine; RSDP {}\n",
        image.entry,
        plan.entry.rip,
        plan.protocol.name(),
        machine.memmap.len(),
        if machine.rsdp == 0 {
            "found by the next kernel".to_string()
        } else {
            format!("{:#x}", machine.rsdp)
        }
    ));
    out
}

/// `struct kexec_segment` of the kexec_load system call.
#[repr(C)]
struct RawSegment {
    buf: *const libc::c_void,
    bufsz: libc::size_t,
    mem: libc::size_t,
    memsz: libc::size_t,
}

const KEXEC_ARCH_DEFAULT: libc::c_ulong = 0;
const KEXEC_FILE_UNLOAD: libc::c_ulong = 1;
const KEXEC_FILE_NO_INITRAMFS: libc::c_ulong = 4;

fn kexec_error(call: &str, err: std::io::Error) -> anyhow::Error {
    let hint = match err.raw_os_error() {
        Some(libc::EPERM) => {
            " (needs root with CAP_SYS_BOOT and /proc/sys/kernel/kexec_load_disabled = 0; under lockdown only `--file` with a signed kernel works)"
        }
        Some(libc::ENOSYS) => " (this kernel is built without kexec support)",
        Some(libc::EBUSY) => " (another kexec load or unload is in progress)",
        Some(libc::EINVAL) => {
            " (the kernel rejected the segments: unaligned or overlapping, or more than half of its RAM)"
        }
        Some(libc::EADDRNOTAVAIL) => " (a segment lies beyond the memory kexec can load to)",
        Some(libc::EKEYREJECTED) | Some(libc::EBADMSG) => {
            " (the running kernel requires a signed kernel image)"
        }
        _ => "",
    };
    anyhow::anyhow!("{call} failed: {err}{hint}")
}

fn kexec_load(image: &KexecImage) -> anyhow::Result<()> {
    if image.segments.len() > KEXEC_SEGMENT_MAX {
        bail!(
            "{} kexec segments, more than the {KEXEC_SEGMENT_MAX} kexec_load takes",
            image.segments.len()
        );
    }
    let raw: Vec<RawSegment> = image
        .segments
        .iter()
        .map(|s| RawSegment {
            buf: s.data.as_ptr().cast(),
            bufsz: s.data.len(),
            mem: s.addr as libc::size_t,
            memsz: s.mem_size as libc::size_t,
        })
        .collect();
    // SAFETY: kexec_load reads `raw.len()` segment descriptors from `raw`, and from each
    // `bufsz` bytes at `buf`; both stay alive (borrowed from `image`) for the whole call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_load,
            image.entry as libc::c_ulong,
            raw.len() as libc::c_ulong,
            raw.as_ptr(),
            KEXEC_ARCH_DEFAULT,
        )
    };
    if rc != 0 {
        return Err(kexec_error("kexec_load", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn kernel_path(args: &LoadArgs) -> anyhow::Result<&Path> {
    args.kernel
        .as_deref()
        .context("--kernel FILE (or --disk DISK --bootloader) is required")
}

fn load_file(args: &LoadArgs, cmdline: &str) -> anyhow::Result<ExitCode> {
    use std::os::fd::AsRawFd;
    let kernel_file = kernel_path(args)?;
    let kernel = std::fs::File::open(kernel_file)
        .with_context(|| format!("opening the kernel {}", kernel_file.display()))?;
    let mut head = [0u8; 0x210];
    {
        use std::io::Read;
        let mut k = &kernel;
        k.read_exact(&mut head).ok();
    }
    if &head[0x202..0x206] != b"HdrS" {
        bail!(
            "--file: {} is not a bzImage (no \"HdrS\" at 0x202); kexec_file_load takes only a bzImage, load other formats without --file",
            kernel_file.display()
        );
    }
    let mut flags = 0;
    let initrd = match args.initrd.as_slice() {
        [] => {
            flags |= KEXEC_FILE_NO_INITRAMFS;
            None
        }
        [one] => Some(
            std::fs::File::open(one)
                .with_context(|| format!("opening the initrd {}", one.display()))?,
        ),
        several => {
            // Several initrds: concatenated into an anonymous file.
            let mut all = tempfile::tempfile().context("a temporary file for the initrds")?;
            for p in several {
                let mut f = std::fs::File::open(p)
                    .with_context(|| format!("opening the initrd {}", p.display()))?;
                std::io::copy(&mut f, &mut all)
                    .with_context(|| format!("reading the initrd {}", p.display()))?;
            }
            Some(all)
        }
    };
    let initrd_text: Vec<String> = args
        .initrd
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    if args.dry_run {
        println!(
            "kexec_file_load: kernel {}, initrd {}, command line {cmdline:?}\ndry run: nothing loaded",
            kernel_file.display(),
            if initrd_text.is_empty() {
                "none".into()
            } else {
                initrd_text.join(" + ")
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let c = std::ffi::CString::new(cmdline).context("the command line holds a NUL byte")?;
    let len = c.as_bytes_with_nul().len();
    // SAFETY: the descriptors are open for the call; `c` is a NUL-terminated string of
    // `len` bytes (NUL included) that lives across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            kernel.as_raw_fd(),
            initrd.as_ref().map_or(-1, |f| f.as_raw_fd()),
            len as libc::c_ulong,
            c.as_ptr(),
            flags,
        )
    };
    if rc != 0 {
        return Err(kexec_error(
            "kexec_file_load",
            std::io::Error::last_os_error(),
        ));
    }
    println!(
        "kexec: {} loaded by the running kernel (kexec_file_load), initrd {}, command line {cmdline:?}",
        kernel_file.display(),
        if initrd_text.is_empty() {
            "none".into()
        } else {
            initrd_text.join(" + ")
        }
    );
    println!(
        "loaded; nothing changes until `domboot kexec exec`, which replaces the running kernel at once"
    );
    Ok(ExitCode::SUCCESS)
}

fn exec() -> anyhow::Result<ExitCode> {
    let loaded = std::fs::read_to_string("/sys/kernel/kexec_loaded").unwrap_or_default();
    if loaded.trim() != "1" {
        bail!(
            "no kernel is loaded for kexec (/sys/kernel/kexec_loaded is not 1): run `domboot kexec load` first"
        );
    }
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    // SAFETY: reboot with LINUX_REBOOT_CMD_KEXEC takes no pointer; on success it does not
    // return (the loaded kernel runs).
    let rc = unsafe { libc::reboot(libc::LINUX_REBOOT_CMD_KEXEC) };
    let err = std::io::Error::last_os_error();
    if rc != 0 {
        return Err(kexec_error("reboot(LINUX_REBOOT_CMD_KEXEC)", err));
    }
    bail!("reboot(LINUX_REBOOT_CMD_KEXEC) returned without booting the loaded kernel")
}

fn unload() -> anyhow::Result<ExitCode> {
    // SAFETY: no segments: kexec_load reads no memory and unloads the loaded image.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_load,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            std::ptr::null::<RawSegment>(),
            KEXEC_ARCH_DEFAULT,
        )
    };
    if rc != 0 {
        let load_err = std::io::Error::last_os_error();
        // A kernel that refuses kexec_load (lockdown) still unloads through kexec_file_load.
        // SAFETY: KEXEC_FILE_UNLOAD ignores the descriptors and the (null) command line.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_kexec_file_load,
                -1,
                -1,
                0 as libc::c_ulong,
                std::ptr::null::<libc::c_char>(),
                KEXEC_FILE_UNLOAD,
            )
        };
        if rc != 0 {
            return Err(kexec_error("kexec_load (unload)", load_err));
        }
    }
    println!("kexec: unloaded");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(addr: u64, size: u64, kind: u32) -> MachineMapEntry {
        MachineMapEntry { addr, size, kind }
    }

    #[test]
    fn adjacent_entries_of_one_type_merge() {
        let map = merge_map(vec![
            e(0x10_0000, 0x10_0000, RAM),
            e(0, 0x9_f000, RAM),
            e(0x20_0000, 0x10_0000, RAM),
            e(0x30_0000, 0x1000, 2),
            e(0x30_1000, 0x1000, RAM),
        ]);
        assert_eq!(
            map,
            vec![
                e(0, 0x9_f000, RAM),
                e(0x10_0000, 0x20_0000, RAM),
                e(0x30_0000, 0x1000, 2),
                e(0x30_1000, 0x1000, RAM),
            ]
        );
    }

    #[test]
    fn ram_check_walks_split_entries_and_stops_at_holes() {
        let map = [
            e(0x10_0000, 0x10_0000, RAM),
            e(0x20_0000, 0x10_0000, RAM),
            e(0x30_0000, 0x1000, 2),
        ];
        assert!(in_ram(&map, 0x18_0000, 0x28_0000));
        assert!(!in_ram(&map, 0x28_0000, 0x30_1000));
        assert!(!in_ram(&map, 0, 0x1000));
        assert_eq!(map_kind("System RAM"), Some(RAM));
        assert_eq!(map_kind("ACPI Non-volatile Storage"), Some(4));
        assert_eq!(map_kind("PCI Bus 0000:00"), None);
    }
}
