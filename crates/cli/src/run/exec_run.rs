//! `run --exec`: assemble the throwaway VM (kernel, the configuration's settings, the exec
//! initramfs), boot it, and turn what happened into domboot's exit status.
//!
//! The command's stdin/stdout, its stderr and the control messages each have a serial port
//! of their own (see [`super::channels`]): QEMU's under TCG, COM2-COM4 on the KVM backend.

use super::channels::{Channels, Control};
use super::{
    Accel, Args, ConsoleFilter, Outcome, RunConfig, SerialSink, boot, choose_accel, cpu_count,
    exec, linux_version, modules, pvh_kernel, rootfs, tcg_tuning, watch::ConsoleWatch,
};
use anyhow::Context as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The guest stopped before the command finished, without a kernel panic.
pub const EXIT_NO_STATUS: u8 = 122;

pub(super) fn run_exec(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let cmd = args.exec.clone().unwrap_or_default();
    let progress = Progress::new();
    let config = args.boot.config_settings()?;
    let kernel = match (&args.boot.kernel, &config) {
        (Some(k), _) => k.clone(),
        (None, Some(c)) => c.kernel.clone().with_context(|| {
            "run --exec boots a kernel with its own initramfs; this configuration boots from \
             its disk's boot loader: give --kernel"
        })?,
        (None, None) => exec::default_kernel()?,
    };
    let devices = args.devices_with(config.as_ref());
    let modules_dir = args
        .modules
        .clone()
        .or_else(|| exec::default_modules(&kernel));
    let user_initrds = match &config {
        Some(c) => !c.initrds.is_empty(),
        None => !args.boot.initrd.is_empty(),
    };
    let rootfs = rootfs::for_run(&args, &kernel, modules_dir.as_deref(), user_initrds)?;
    let host = rootfs.host();
    let (extra_modules, transports): (&[&str], &[&str]) = if host.is_some() {
        (&rootfs::MODULES, &rootfs::TRANSPORTS)
    } else {
        (&[], &[])
    };
    let modules = module_files(
        &args,
        &devices,
        &kernel,
        modules_dir,
        extra_modules,
        transports,
    )?;
    progress.say("building the initramfs");
    let initrds = exec::prepare(&cmd, &modules, &kernel, host.map(|h| h.guest_script()))?;
    let user_cmdline = match &config {
        Some(c) => c.cmdline.clone(),
        None => args.boot.cmdline.clone(),
    };
    let mut all_initrds = match &config {
        Some(c) => c.initrds.clone(),
        None => args.boot.initrd.clone(),
    };
    all_initrds.extend_from_slice(&initrds.files);
    let base_cmdline = format!(
        "{}{}console=ttyS0 panic=-1 {}",
        user_cmdline.as_deref().unwrap_or(""),
        if user_cmdline.is_some() { " " } else { "" },
        // loglevel=2 still prints panics (EMERG) and oopses (ALERT), so a failure can be
        // explained, without the cost of the whole boot log on an emulated UART.
        if args.verbose {
            "loglevel=7"
        } else {
            "loglevel=2"
        },
    );
    let memory = config.as_ref().and_then(|c| c.memory);
    let pvh = config.as_ref().is_some_and(|c| c.pvh);
    let mut image =
        args.boot
            .image_from(&kernel, &all_initrds, Some(&base_cmdline), memory, pvh)?;
    super::preflight::check_initrds(&image)?;
    let (accel, why) = choose_accel(args.accel, || linux_version(&image), args.pvm_guest)?;
    let devices = devices.checked()?;
    let cpus = cpu_count(args.cpus, config.as_ref().and_then(|c| c.vcpus))?;
    if accel == Accel::Tcg && !args.no_boot_tuning {
        let machine = tcg_tuning::Machine {
            cpus,
            // virtio-fs is a PCI device too; its servers start below.
            pci_devices: devices.any_pci() || host.is_some(),
        };
        let inputs = (all_initrds.as_slice(), base_cmdline.as_str(), memory);
        image = tune_for_tcg(&args, image, inputs, machine, &progress)?;
    }
    // The virtio-fs devices get their sockets when their servers start, below; their
    // slots, all the words need, follow from the shares alone.
    let mut planned = devices.clone();
    if let Some(h) = host {
        planned.virtiofs = h
            .shares
            .iter()
            .map(|s| (s.tag.clone(), PathBuf::new()))
            .collect();
    }
    let announced = super::mmio_cmdline::apply(
        &mut image,
        &planned,
        args.virtio_mmio_cmdline,
        args.no_acpi,
        accel,
        args.verbose,
    )?;
    let plan = super::mmio_cmdline::build(&image, &announced)?;
    super::preflight::warn_interrupt_options(&image.cmdline, accel, !args.no_acpi);
    if args.verbose {
        eprintln!(
            "domboot: kernel {}; accelerator {accel:?}: {why}",
            kernel.display()
        );
    }
    progress.say("booting");
    // Stopped when this goes, after the VMM or QEMU (their frontend) has gone.
    let servers = match host {
        Some(h) => Some(rootfs::Servers::start(
            &h.virtiofsd,
            &h.shares,
            args.verbose,
        )?),
        None => None,
    };
    let mut devices = devices;
    if let Some(s) = &servers {
        devices.virtiofs = s.devices();
    }
    let backends = servers.as_ref().map(rootfs::Servers::watch);
    let ended = on_serial_ports(
        accel, &args, &devices, backends, &plan, cpus, started, &progress,
    )?;
    drop(servers);
    drop(initrds);
    let code = exit_status(&ended);
    if args.json || args.json_file.is_some() {
        write_json(&args, &ended, ended.stderr_mid_line)?;
    }
    Ok(ExitCode::from(code))
}

/// Under TCG: `image` with the kernel's cached vmlinux in place of its bzImage (see
/// [`pvh_kernel`]; `inputs` are the image's initrds, command line and memory, to build it
/// again) and the boot options of [`tcg_tuning`] appended to its command line.
fn tune_for_tcg(
    args: &Args,
    mut image: domboot_builder::DomainImage,
    (initrds, cmdline, memory): (&[PathBuf], &str, Option<u64>),
    machine: tcg_tuning::Machine,
    progress: &Progress,
) -> anyhow::Result<domboot_builder::DomainImage> {
    if let Some(vmlinux) = tcg_vmlinux(args, &image, progress)? {
        image = args
            .boot
            .image_from(&vmlinux, initrds, Some(cmdline), memory, true)
            .with_context(|| {
                format!(
                    "the cached vmlinux of {} ({}; delete it, or run with --no-boot-tuning)",
                    image.kernel_path.display(),
                    vmlinux.display()
                )
            })?;
        if args.verbose {
            eprintln!(
                "domboot: booting the kernel's vmlinux through PVH under TCG: {}",
                vmlinux.display()
            );
        }
    }
    let added = tcg_tuning::options(&image.cmdline, machine);
    if args.verbose && !added.is_empty() {
        eprintln!(
            "domboot: added for a faster boot under TCG (--no-boot-tuning leaves them out): {}",
            added.join(" ")
        );
    }
    for option in added {
        image.cmdline.push(' ');
        image.cmdline.push_str(option);
    }
    Ok(image)
}

/// The cached vmlinux to boot instead of `image`'s bzImage under TCG (see
/// [`pvh_kernel`]), when nothing the user asked for depends on the bzImage's own entry: the
/// boot protocol left to domboot, no --load-address or --kaslr.
fn tcg_vmlinux(
    args: &Args,
    image: &domboot_builder::DomainImage,
    progress: &Progress,
) -> anyhow::Result<Option<PathBuf>> {
    let b = &args.boot;
    let bzimage = image
        .kernel
        .layers
        .first()
        .is_some_and(|l| l.format == domboot_formats::Format::BzImage);
    if !bzimage
        || !matches!(b.boot_protocol, crate::commands::boot_args::Protocol::Auto)
        || b.load_address.is_some()
        || b.kaslr
    {
        return Ok(None);
    }
    pvh_kernel::cached_vmlinux(&image.kernel_path, b.max_decompressed, || {
        progress.say("decompressing the kernel once for faster boots (cached)")
    })
}

/// The modules --module names and `extra` (the host rootfs's), resolved in `dir` (--modules
/// or the kernel's own tree); and the drivers of the guest's devices (--disk, --rng) and
/// `optional` (the host rootfs's virtio transports) that the tree has as modules (a kernel
/// without them in its tree has them built in, or cannot use the device either way).
fn module_files(
    args: &Args,
    devices: &super::Devices,
    kernel: &std::path::Path,
    dir: Option<PathBuf>,
    extra: &[&str],
    optional: &[&str],
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut device_modules = devices.modules();
    for m in optional {
        if !device_modules.iter().any(|d| d == m) {
            device_modules.push(m.to_string());
        }
    }
    if args.module.is_empty() && device_modules.is_empty() && extra.is_empty() {
        return Ok(Vec::new());
    }
    let dir = match dir {
        Some(d) => d,
        None if args.module.is_empty() && extra.is_empty() => return Ok(Vec::new()),
        None => anyhow::bail!(
            "--module needs a modules tree: none matches {} (give one with --modules DIR)",
            kernel.display()
        ),
    };
    let mut wanted = args.module.clone();
    for m in extra {
        if !wanted.iter().any(|w| w == m) {
            wanted.push(m.to_string());
        }
    }
    for m in device_modules {
        if !wanted.contains(&m) && modules::resolve(&dir, std::slice::from_ref(&m)).is_ok() {
            wanted.push(m);
        }
    }
    modules::resolve(&dir, &wanted)
}

/// How an exec run ended.
struct Ended {
    outcome: Outcome,
    control: Control,
    /// The kernel's console as the run streamed it.
    watch: Option<ConsoleWatch>,
    /// The guest's stderr ended without a newline (the JSON line then starts a new one).
    stderr_mid_line: bool,
}

fn run_config(
    args: &Args,
    cpus: u8,
    serial: SerialSink,
    devices: &super::Devices,
    backends: Option<rootfs::ServerWatch>,
) -> anyhow::Result<RunConfig> {
    Ok(RunConfig {
        cpus,
        serial,
        forward_stdin: false,
        timeout: args.timeout.map(Duration::from_secs_f64),
        verbose: args.verbose,
        acpi: !args.no_acpi,
        signal: super::catch_signals()?,
        extra_serials: Vec::new(),
        watch: ConsoleWatch::default(),
        devices: devices.clone(),
        backends,
    })
}

/// The kernel's console on ttyS0 (on stderr with --verbose), the command on its own ports.
#[allow(clippy::too_many_arguments)]
fn on_serial_ports(
    accel: Accel,
    args: &Args,
    devices: &super::Devices,
    backends: Option<rootfs::ServerWatch>,
    plan: &domboot_builder::BootPlan,
    cpus: u8,
    started: Instant,
    progress: &Progress,
) -> anyhow::Result<Ended> {
    let console: Arc<Mutex<dyn ConsoleFilter>> =
        Arc::new(Mutex::new(KernelLog(args.verbose, progress.0.clone())));
    let mut cfg = run_config(args, cpus, SerialSink::Filter(console), devices, backends)?;
    let channels = Channels::open(started, progress.0.clone(), cfg.signal.clone())?;
    cfg.extra_serials = channels.paths.clone();
    let outcome = boot(accel, plan, &cfg);
    let stderr_mid_line = channels.stderr_mid_line();
    let control = channels.finish();
    progress.clear();
    Ok(Ended {
        outcome: outcome?,
        control,
        watch: Some(cfg.watch),
        stderr_mid_line,
    })
}

/// The kernel's console during an exec run: shown only with --verbose; the progress line
/// clears at the first byte so the two do not interleave.
struct KernelLog(bool, Option<indicatif::ProgressBar>);

impl ConsoleFilter for KernelLog {
    fn write(&mut self, bytes: &[u8]) {
        if self.0 {
            if let Some(bar) = self.1.take() {
                bar.finish_and_clear();
            }
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(bytes);
            let _ = err.flush();
        }
    }
    fn finish(&mut self) {}
}

/// Why a command has no status of its own: the JSON `reason` and domboot's exit status
/// (README, "How a run ends"; `run --help`).
fn ending(e: &Ended) -> (&'static str, u8) {
    let code = e.outcome.exit_code();
    match &e.outcome {
        Outcome::Timeout(_) => ("timeout", code),
        Outcome::Interrupted(_) | Outcome::Quit => ("stopped", code),
        Outcome::Panic(report) if super::found_no_init(report) => ("no-working-init", code),
        Outcome::Panic(_) => ("kernel-panic", code),
        Outcome::Crash(_) => ("crash", code),
        Outcome::BackendGone(_) => ("virtiofsd-gone", code),
        Outcome::Ended | Outcome::DebugExit(_) if silent_reset(e) => {
            ("reset-before-output", super::EXIT_SILENT_RESET)
        }
        Outcome::Ended | Outcome::DebugExit(_)
            if e.watch.as_ref().is_some_and(|w| w.oops().is_some()) =>
        {
            ("kernel-oops", super::EXIT_OOPS)
        }
        Outcome::Ended | Outcome::DebugExit(_) => ("guest-stopped", EXIT_NO_STATUS),
    }
}

/// The guest ended before the command started and before its kernel printed anything.
fn silent_reset(e: &Ended) -> bool {
    e.control.boot_time.is_none() && e.watch.as_ref().is_some_and(|w| w.bytes() == 0)
}

/// The command's status when it finished; otherwise a message saying why it did not, and
/// the status for that ([`ending`]).
fn exit_status(e: &Ended) -> u8 {
    if let Some(status) = e.control.status {
        return (status & 0xff) as u8;
    }
    let (reason, code) = ending(e);
    let quote = e.watch.as_ref().map(|w| w.quote()).unwrap_or_default();
    match &e.outcome {
        Outcome::Timeout(d) => {
            eprintln!(
                "domboot: the command was still running after {:.1} s (--timeout); stopped the VM",
                d.as_secs_f64()
            );
        }
        Outcome::Quit => eprintln!("domboot: stopped the VM (Ctrl-A x)"),
        // Our stdout's reader left (`| head`): as quiet as a shell pipeline's writer.
        Outcome::Interrupted(libc::SIGPIPE) => {}
        Outcome::Interrupted(sig) => eprintln!("domboot: stopped the VM on signal {sig}"),
        Outcome::Panic(report) | Outcome::Crash(report) => eprintln!("domboot: {report}"),
        Outcome::BackendGone(why) => eprintln!("domboot: {why}; stopped the VM"),
        Outcome::Ended | Outcome::DebugExit(_) if reason == "reset-before-output" => {
            eprintln!(
                "domboot: the guest reset before printing anything (a kernel that cannot \
                 run on this machine or with this much memory, or one without a 16550 \
                 serial console; run with --verbose for QEMU's command line)"
            );
        }
        Outcome::Ended | Outcome::DebugExit(_) => {
            eprintln!(
                "domboot: the guest stopped before the command {}{}{}",
                if e.control.boot_time.is_none() {
                    "started"
                } else {
                    "finished"
                },
                if reason == "kernel-oops" {
                    " after a kernel oops"
                } else {
                    ""
                },
                if quote.is_empty() {
                    " (run with --verbose to see the kernel's messages)".to_string()
                } else {
                    format!("; the kernel's last lines:\n{}", quote.trim_end())
                }
            );
        }
    }
    code
}

/// `{"status", "boot_ms", "command_ms"}` (and `reason` when there is no status) as one line
/// on stderr, or into --json-file.
fn write_json(args: &Args, e: &Ended, mid_line: bool) -> anyhow::Result<()> {
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    let mut v = serde_json::json!({
        "status": e.control.status,
        "boot_ms": ms(e.control.boot_time),
        "command_ms": ms(e.control.command_time),
    });
    if e.control.status.is_none() {
        v["reason"] = ending(e).0.into();
    }
    match &args.json_file {
        Some(path) => crate::atomic::write_file(path, format!("{v}\n").as_bytes()),
        None => {
            eprintln!("{}{v}", if mid_line { "\n" } else { "" });
            Ok(())
        }
    }
}

/// A one-line status on stderr while the initramfs is built and the VM boots, only when
/// stderr is a terminal.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new() -> Progress {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress(Some(bar))
    }
    fn say(&self, what: &str) {
        if let Some(b) = &self.0 {
            b.set_message(format!("domboot: {what}…"));
        }
    }
    fn clear(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(outcome: Outcome, console: &[u8], started: bool) -> Ended {
        let watch = ConsoleWatch::default();
        watch.feed(console);
        Ended {
            outcome,
            control: Control {
                boot_time: started.then(|| Duration::from_secs(1)),
                ..Control::default()
            },
            watch: Some(watch),
            stderr_mid_line: false,
        }
    }

    /// Each way a command can fail to report its status has a reason and a status of its
    /// own (the statuses `run --help` lists).
    #[test]
    fn every_failure_has_its_own_reason_and_status() {
        let panic = |line: &str| Outcome::Panic(format!("the guest kernel panicked:\n  > {line}"));
        let cases = [
            (
                ended(Outcome::Ended, b"", false),
                ("reset-before-output", super::super::EXIT_SILENT_RESET),
            ),
            (
                ended(Outcome::Ended, b"[ 1.0] Linux version 6.1\n", true),
                ("guest-stopped", EXIT_NO_STATUS),
            ),
            (
                ended(
                    Outcome::Ended,
                    b"[ 2.0] BUG: kernel NULL pointer dereference, address: 0\n",
                    true,
                ),
                ("kernel-oops", super::super::EXIT_OOPS),
            ),
            (
                ended(
                    panic(
                        "[ 3.0] Kernel panic - not syncing: No working init found.  Try passing init= option to kernel. See Linux Documentation/admin-guide/init.rst for guidance.",
                    ),
                    b"x\n",
                    false,
                ),
                ("no-working-init", super::super::EXIT_NO_INIT),
            ),
            (
                ended(
                    panic("[ 3.0] Kernel panic - not syncing: sysrq triggered crash"),
                    b"x\n",
                    true,
                ),
                ("kernel-panic", domboot_vmm::EXIT_GUEST_PANIC),
            ),
            (
                ended(Outcome::Crash("triple fault".into()), b"", false),
                ("crash", domboot_vmm::EXIT_CRASH),
            ),
            (
                ended(Outcome::Timeout(Duration::from_secs(5)), b"", true),
                ("timeout", 124),
            ),
        ];
        let mut statuses = std::collections::BTreeSet::new();
        for (e, want) in &cases {
            assert_eq!(ending(e), *want, "{:?}", e.outcome);
            assert!(statuses.insert(want.1), "status {} twice", want.1);
        }
    }

    /// A command that finished has its own status, whatever the kernel printed.
    #[test]
    fn the_commands_status_wins() {
        let mut e = ended(Outcome::Ended, b"[ 2.0] Oops: 0002 [#1] SMP\n", true);
        e.control.status = Some(7);
        assert_eq!(exit_status(&e), 7);
    }
}
