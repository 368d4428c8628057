//! `domboot run`: build the plan and boot it — on KVM when this host's KVM can run the guest,
//! under QEMU's TCG otherwise — with the guest's COM1 as the console and its end mapped to
//! domboot's exit status.
//!
//! Exit statuses: see [`EXIT_STATUSES`] (shown by `run --help`) and the README's table.

pub mod channels;
mod child;
pub mod console;
pub mod devices;
pub mod exec;
mod exec_run;
mod interactive;
pub mod kvm;
mod mmio_cmdline;
pub mod modules;
mod preflight;
mod pvh_kernel;
pub mod rootfs;
pub mod tcg;
mod tcg_tuning;
mod tcg_vsock;
pub mod watch;

use crate::commands::boot_args::BootArgs;
use crate::commands::domain_config::FromConfig;
pub use devices::Devices;
pub use preflight::BadInitrd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::AtomicI32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What `run --help` says about exit statuses (the README's "How a run ends" table).
pub const EXIT_STATUSES: &str = "\
Exit status:
  0      the guest powered off or reset
  v      the guest wrote v to the debug-exit port 0xf4
  CMD's  --exec: the command's own status, when it finished
  118    --exec: the guest reset before printing anything
  119    an initrd the kernel could not unpack (not cpio, no known compression): not booted
  120    the kernel found no init to run (\"No working init found\" quoted)
  121    --exec: the kernel oopsed and the guest stopped before the command finished
  122    --exec: the guest stopped before the command finished (no panic; last kernel lines quoted)
  123    the guest kernel panicked (the panic line quoted)
  124    still running at --timeout
  125    the VM crashed (triple fault, KVM error)
  128+N  stopped by signal N (Ctrl-A x: 130; --exec: 141 when the reader of its output left)
  2      domboot failed: bad input, no QEMU or KVM";

/// `--exec`: the guest reset before printing anything (a kernel that cannot run on this
/// machine or in this much memory, or one without a 16550 console).
pub const EXIT_SILENT_RESET: u8 = 118;
/// An initrd the kernel could not unpack, refused before booting ([`preflight::BadInitrd`]).
pub const EXIT_BAD_INITRD: u8 = 119;
/// The kernel panicked because it found nothing to run as init.
pub const EXIT_NO_INIT: u8 = 120;
/// `--exec`: the kernel oopsed, and the guest stopped before the command finished.
pub const EXIT_OOPS: u8 = 121;

/// Boot a kernel: serial console on stdio, KVM or QEMU TCG.
#[derive(clap::Args)]
#[command(after_help = EXIT_STATUSES)]
pub struct Args {
    #[command(flatten)]
    pub boot: BootArgs,
    /// Virtual CPUs (default: the configuration's, else 1). QEMU's spelling --smp works too.
    #[arg(long, visible_alias = "smp", value_parser = clap::value_parser!(u8).range(1..=64))]
    pub cpus: Option<u8>,
    /// Where the guest's COM1 goes: stdio, file:PATH or none. On an interactive stdio
    /// console keystrokes go to the guest (Ctrl-C too); Ctrl-A x stops the VM.
    #[arg(long, default_value = "stdio", value_name = "stdio|file:PATH|none")]
    pub serial: SerialArg,
    /// kvm, tcg (QEMU), or auto: KVM when this host's KVM can run the guest, TCG otherwise.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
    /// Stop a guest that runs longer than this many seconds (exit status 124).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// KVM: give the guest no ACPI tables (only the MP table). It then cannot power off
    /// (Linux halts instead: end it with --timeout or Ctrl-A x), but can still reset, and
    /// finds its virtio devices only through --virtio-mmio-cmdline's words, which this
    /// turns on. Under TCG, QEMU's firmware supplies its own tables either way.
    #[arg(long)]
    pub no_acpi: bool,
    /// KVM: announce each virtio device on the guest's kernel command line as
    /// `virtio_mmio.device=4K@ADDR:IRQ` (one word per device, in the order of their slots:
    /// a virtio console, the disks, the interfaces, the rng, the vsock), for kernels built
    /// with VIRTIO_MMIO_CMDLINE_DEVICES. On by default with --no-acpi: without the DSDT it
    /// is the only way the guest finds the devices. Debian's kernels lack that option and
    /// ignore the words. A kernel with both ACPI and the option finds each device twice
    /// when ACPI is on; the second probe fails (EBUSY), the device works. Under TCG the
    /// devices are QEMU's PCI devices: nothing is added (a notice says so).
    #[arg(long)]
    pub virtio_mmio_cmdline: bool,
    /// With --exec under TCG: boot the kernel as given, with the command line as given.
    /// Otherwise a bzImage with a PVH entry is booted as its own vmlinux (decompressed once,
    /// cached in ~/.cache/domboot/vmlinux), and the kernel options that shorten an emulated
    /// boot are added where --cmdline does not set the same parameter: `cryptomgr.notests`,
    /// `initcall_blacklist=crypto_kdf108_init` (a self-test) and `no_timer_check`, and
    /// `acpi=off` for one vCPU and no PCI devices. --verbose names what was done.
    #[arg(long, requires = "exec")]
    pub no_boot_tuning: bool,
    /// Explain decisions (which accelerator and why, the QEMU command line); with --exec,
    /// also show the kernel's messages (on stderr).
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Run this shell command in a throwaway VM and exit with its status (see --rootfs
    /// for its userland). Its stdout, stderr and stdin are domboot's, live and byte-exact
    /// (end of input included), on both backends.
    #[arg(long, short = 'e', value_name = "CMD")]
    pub exec: Option<String>,
    /// With --exec: the guest's userland. `host`: the host's / read-only through
    /// virtio-fs, writes kept in memory (a tmpfs overlay), the command run by the host's
    /// /bin/sh in the current directory; needs virtiofsd and a kernel with
    /// virtiofs and overlay. `busybox`: a generated busybox initramfs. Default: host where
    /// it works, else busybox with a one-line notice saying why.
    #[arg(long, value_enum, value_name = "host|busybox", requires = "exec")]
    pub rootfs: Option<rootfs::RootfsArg>,
    /// With --exec: share the host's folder DIR read-write with the guest, at the same
    /// path (writes land on the host); repeat for several. Implies --rootfs host.
    #[arg(long, value_name = "DIR", requires = "exec")]
    pub rwdir: Vec<PathBuf>,
    /// With --exec: share the host's folder DIR read-only, at the same path (its own
    /// virtio-fs: writes fail instead of going to memory); repeat for several. Implies
    /// --rootfs host.
    #[arg(long, value_name = "DIR", requires = "exec")]
    pub rodir: Vec<PathBuf>,
    /// With --exec: run the command as the calling user (its uid and gid, no
    /// supplementary groups, HOME kept) instead of root. Implies --rootfs host.
    #[arg(long, requires = "exec")]
    pub user: bool,
    /// With --exec: the modules tree to take --module from (default: the one matching the
    /// kernel, /lib/modules/RELEASE or the cache's copy).
    #[arg(long, value_name = "DIR", requires = "exec")]
    pub modules: Option<PathBuf>,
    /// With --exec: load this module (and what it depends on) before the command; repeat
    /// for several.
    #[arg(long, value_name = "NAME", requires = "exec")]
    pub module: Vec<String>,
    /// The kernel is built to run as a PVM guest: let `--accel kvm` use this host's PVM
    /// /dev/kvm for it. Without this, `--accel kvm` refuses a Linux kernel on a PVM host at
    /// once (a stock kernel would crawl through KVM's instruction emulator and never boot).
    #[arg(long)]
    pub pvm_guest: bool,
    /// With --exec: print {"status", "boot_ms", "command_ms"} as JSON on a line of its own
    /// on stderr after the run (with "reason" when the command has no status: timeout,
    /// stopped, kernel-panic, no-working-init, kernel-oops, reset-before-output, crash,
    /// guest-stopped, virtiofsd-gone).
    #[arg(long, requires = "exec")]
    pub json: bool,
    /// With --exec: write that JSON object to FILE instead of stderr.
    #[arg(long, value_name = "FILE", requires = "exec")]
    pub json_file: Option<PathBuf>,
    /// A network interface (repeat for several; the first is eth0): `tap:NAME` (the host's
    /// tap NAME, created and brought up when absent, which needs CAP_NET_ADMIN), `user`
    /// (passt's user-mode network: no root, DHCP, the guest reaches what the host
    /// reaches; QEMU's user network under TCG) or `none`. Add `,mac=52:54:00:12:34:56` to
    /// choose the MAC (random in 52:54:00:xx:xx:xx otherwise).
    #[arg(long, value_name = "tap:NAME|user|none[,mac=MAC]", value_parser = devices::parse_net)]
    pub net: Vec<devices::NetArg>,
    /// The guest's console: `serial` (COM1, ttyS0) or `virtio` (a virtio console, hvc0:
    /// the guest needs virtio_console built in or loaded by its initramfs). Adds
    /// console=ttyS0 or console=hvc0 to the command line unless it has a console=.
    /// Standard input goes to that console; output of both goes to --serial's place.
    #[arg(long, value_enum, default_value_t = ConsoleArg::Serial, conflicts_with = "exec")]
    pub console: ConsoleArg,
    /// Give the guest a virtio-rng device (entropy from the host's /dev/urandom); on by
    /// default when the guest has disks or network interfaces.
    #[arg(long, overrides_with = "no_rng")]
    pub rng: bool,
    /// No virtio-rng device, even with disks.
    #[arg(long)]
    pub no_rng: bool,
    /// A virtio-vsock device for the guest CID (3 or more) on Firecracker's hybrid vsock:
    /// host programs connect to the Unix socket SOCKET and write `CONNECT <port>\n` (the
    /// answer is `OK <port>\n`); the guest's connections to the host's (CID 2) port P go
    /// to the Unix socket `SOCKET_P`. SOCKET must not exist; it goes when the VM ends.
    /// The same device on either accelerator (under TCG served to QEMU's
    /// vhost-user-vsock-pci from domboot itself): half-close (shutdown SHUT_WR) passes
    /// both ways, the answer's port is the host side's (1 << 30 and up), and a guest's
    /// connection to a port nobody listens on is reset at once.
    #[arg(long, value_name = "CID,SOCKET", value_parser = devices::parse_vsock)]
    pub vsock: Option<devices::VsockArg>,
}

impl Args {
    /// The guest's virtio devices as --disk, --net, --rng, --no-rng, --console and --vsock ask;
    /// where the command line names none of a kind, from the configuration:
    /// --disk replaces the file's disks, --net its interfaces. Says the configuration's
    /// notes on the disks and interfaces it takes (one a run: call it once).
    pub fn devices_with(&self, config: Option<&FromConfig>) -> Devices {
        let disks = match config {
            Some(c) if self.boot.disk.is_empty() => {
                c.disk_notes.iter().for_each(|n| eprintln!("{n}"));
                &c.disks[..]
            }
            _ => &self.boot.disk[..],
        };
        let nets = match config {
            Some(c) if self.net.is_empty() => {
                c.net_notes.iter().for_each(|n| eprintln!("{n}"));
                &c.nets[..]
            }
            _ => &self.net[..],
        };
        let mut d =
            Devices::from_args(disks, nets, self.rng, self.no_rng).with_vsock(self.vsock.clone());
        if let Some(c) = config {
            d = d.with_config(c.vsock.clone(), c.rng, self.no_rng);
        }
        d.virtio_console = self.console == ConsoleArg::Virtio;
        d
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsoleArg {
    #[default]
    Serial,
    Virtio,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    Auto,
    Kvm,
    Tcg,
}

#[derive(Clone, Debug)]
pub enum SerialArg {
    Stdio,
    File(PathBuf),
    None,
}

impl FromStr for SerialArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stdio" => Ok(SerialArg::Stdio),
            "none" | "null" => Ok(SerialArg::None),
            _ => match s.strip_prefix("file:") {
                Some(p) if !p.is_empty() => Ok(SerialArg::File(PathBuf::from(p))),
                _ => Err(format!("{s:?}: expected stdio, file:PATH or none")),
            },
        }
    }
}

/// Receives the guest's console output (for `--exec`, which strips its own markers).
pub trait ConsoleFilter: Send {
    fn write(&mut self, bytes: &[u8]);
    fn finish(&mut self);
}

/// Where the guest's serial output goes.
#[derive(Clone)]
pub enum SerialSink {
    Stdout,
    File(PathBuf),
    None,
    Filter(Arc<Mutex<dyn ConsoleFilter>>),
}

impl SerialSink {
    pub fn write(&mut self, bytes: &[u8]) {
        use std::io::Write;
        match self {
            SerialSink::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(bytes);
                let _ = out.flush();
            }
            SerialSink::Filter(f) => {
                if let Ok(mut f) = f.lock() {
                    f.write(bytes);
                }
            }
            SerialSink::File(_) | SerialSink::None => {}
        }
    }

    pub fn finish(&mut self) {
        if let SerialSink::Filter(f) = self
            && let Ok(mut f) = f.lock()
        {
            f.finish();
        }
    }
}

/// How a run is wired.
pub struct RunConfig {
    pub cpus: u8,
    pub serial: SerialSink,
    pub forward_stdin: bool,
    pub timeout: Option<Duration>,
    pub verbose: bool,
    /// ACPI tables on KVM (`--no-acpi` clears it).
    pub acpi: bool,
    /// Set to a signal number by the SIGINT/SIGTERM handlers, or to [`QUIT`] by Ctrl-A x.
    pub signal: Arc<AtomicI32>,
    /// TCG: Unix sockets QEMU connects the guest's ttyS1, ttyS2, ... to.
    pub extra_serials: Vec<PathBuf>,
    /// TCG: sees the console stream, to recognise a kernel panic and quote it.
    pub watch: watch::ConsoleWatch,
    /// Disks, interfaces, the rng and vsock devices.
    pub devices: Devices,
    /// The virtiofsd processes serving the guest's virtio-fs devices: one that ends while
    /// the guest runs ends the run ([`Outcome::BackendGone`]).
    pub backends: Option<rootfs::ServerWatch>,
}

/// The value Ctrl-A x leaves in [`RunConfig::signal`]: the user quit the console.
pub const QUIT: i32 = -1;

/// How a guest run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Power-off or reset.
    Ended,
    /// The guest wrote this status to the debug-exit port.
    DebugExit(u8),
    Timeout(Duration),
    Interrupted(i32),
    /// Triple fault, KVM internal error or an unhandled exit, with the report.
    Crash(String),
    /// The guest kernel panicked, with the panic line (and the lines before it).
    Panic(String),
    /// The user quit the console with Ctrl-A x.
    Quit,
    /// A helper process the guest depends on went away (a virtiofsd serving its files),
    /// so domboot stopped the VM: which one, and how it ended.
    BackendGone(String),
}

impl Outcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Ended => 0,
            Outcome::DebugExit(v) => *v,
            Outcome::Timeout(_) => 124,
            Outcome::Interrupted(sig) => 128u8.saturating_add(*sig as u8),
            // As if Ctrl-C had stopped it (which the guest receives instead).
            Outcome::Quit => 128 + libc::SIGINT as u8,
            Outcome::Crash(_) => domboot_vmm::EXIT_CRASH,
            Outcome::Panic(report) if found_no_init(report) => EXIT_NO_INIT,
            Outcome::Panic(_) => domboot_vmm::EXIT_GUEST_PANIC,
            Outcome::BackendGone(_) => domboot_vmm::EXIT_BACKEND_GONE,
        }
    }
}

/// A panic report whose panic line is the kernel's "No working init found" (init/main.c):
/// the kernel booted, but neither the initramfs nor the root filesystem had an init.
pub fn found_no_init(report: &str) -> bool {
    report
        .lines()
        .any(|l| l.contains("Kernel panic - not syncing: No working init found"))
}

/// --cpus, else the configuration's vcpus, else 1.
fn cpu_count(flag: Option<u8>, config: Option<u32>) -> anyhow::Result<u8> {
    match (flag, config) {
        (Some(n), _) => Ok(n),
        (None, Some(n)) => u8::try_from(n)
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| {
                anyhow::anyhow!("the configuration asks for {n} vCPUs; domboot runs 1 to 64")
            }),
        (None, None) => Ok(1),
    }
}

/// Registers SIGINT/SIGTERM to set `flag` instead of killing domboot, so the VM is stopped
/// and the terminal restored on the way out.
pub fn catch_signals() -> anyhow::Result<Arc<AtomicI32>> {
    let flag = Arc::new(AtomicI32::new(0));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let f = flag.clone();
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                f.store(sig, std::sync::atomic::Ordering::Relaxed)
            })
        }?;
    }
    Ok(flag)
}

/// Which accelerator to use, and why (for --verbose and for errors).
///
/// `linux` is the kernel's version when it is a Linux kernel (see [`linux_version`]): on a
/// PVM host `--accel kvm` refuses one at once unless `pvm_guest` says it is built for PVM.
pub fn choose_accel(
    requested: Accel,
    linux: impl FnOnce() -> Option<String>,
    pvm_guest: bool,
) -> anyhow::Result<(Accel, String)> {
    use domboot_vmm::KvmStatus;
    let status = domboot_vmm::kvm_status();
    match (requested, &status) {
        (Accel::Tcg, _) => Ok((Accel::Tcg, "TCG requested with --accel tcg".into())),
        (Accel::Kvm, KvmStatus::Usable { pvm: false }) => {
            Ok((Accel::Kvm, "KVM requested and usable".into()))
        }
        (Accel::Kvm, KvmStatus::Usable { pvm: true }) if !pvm_guest => {
            if let Some(version) = linux() {
                anyhow::bail!(
                    "--accel kvm: the kernel is Linux {version} and {} Run it with --accel \
                     tcg (or --accel auto, which picks TCG here); if this kernel is built as \
                     a PVM guest, add --pvm-guest.",
                    status.advice()
                )
            }
            Ok((Accel::Kvm, format!("KVM requested: {}", status.advice())))
        }
        (Accel::Kvm, KvmStatus::Usable { pvm: true }) => {
            Ok((Accel::Kvm, format!("KVM requested: {}", status.advice())))
        }
        (Accel::Kvm, _) => anyhow::bail!("--accel kvm: {}", status.advice()),
        (Accel::Auto, KvmStatus::Usable { pvm: false }) => {
            Ok((Accel::Kvm, "/dev/kvm is usable".into()))
        }
        (Accel::Auto, KvmStatus::Usable { pvm: true }) => Ok((
            Accel::Tcg,
            format!(
                "{} So domboot runs the guest under QEMU TCG (--accel kvm forces KVM for a PVM-aware kernel).",
                status.advice()
            ),
        )),
        (Accel::Auto, _) => Ok((
            Accel::Tcg,
            format!("{} Using QEMU TCG meanwhile.", status.advice()),
        )),
    }
}

/// The kernel's version when it is a Linux kernel: the bzImage's version string, or the
/// "Linux version " banner in its ELF (a freestanding guest has neither).
pub fn linux_version(image: &domboot_builder::DomainImage) -> Option<String> {
    if let Some(v) = image
        .kernel
        .bzimage()
        .and_then(|l| l.bzimage())
        .and_then(|b| b.kernel_version.clone())
    {
        return Some(v);
    }
    let elf = image.kernel.kernel_elf()?;
    const BANNER: &[u8] = b"Linux version ";
    let at = memchr::memmem::find(&elf.data, BANNER)?;
    let rest = &elf.data[at + BANNER.len()..];
    let end = rest
        .iter()
        .position(|&b| b == b' ' || b == 0)
        .unwrap_or(0)
        .min(64);
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// Runs the plan on the chosen accelerator.
fn boot(
    accel: Accel,
    plan: &domboot_builder::BootPlan,
    cfg: &RunConfig,
) -> anyhow::Result<Outcome> {
    match accel {
        Accel::Kvm => kvm::run(plan, cfg),
        Accel::Tcg | Accel::Auto => {
            let _raw = cfg.forward_stdin.then(console::RawTerminal::enter);
            tcg::run(plan, cfg)
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.exec.is_some() {
        return exec_run::run_exec(args);
    }
    let domain = args.boot.domain(true)?;
    let mut image = domain.image;
    let cpus = cpu_count(args.cpus, domain.config.as_ref().and_then(|c| c.vcpus))?;
    let devices = args.devices_with(domain.config.as_ref());
    let interactive = matches!(args.serial, SerialArg::Stdio);
    let linux = linux_version(&image);
    // Before the command line is final: the virtio_mmio.device= words are KVM's only.
    let (accel, why) = choose_accel(args.accel, || linux.clone(), args.pvm_guest)?;
    let devices = devices.checked()?;
    // Only Linux gives an initrd a meaning to check and a command line to complete: a
    // freestanding guest's "initrd" is whatever data it wants.
    if linux.is_some() {
        preflight::check_initrds(&image)?;
        let console = match args.console {
            ConsoleArg::Serial => "ttyS0",
            ConsoleArg::Virtio => "hvc0",
        };
        interactive::apply_defaults(&mut image, interactive, console)?;
    }
    // Any guest's: the words are how it finds its devices without ACPI, whatever it is.
    let announced = mmio_cmdline::apply(
        &mut image,
        &devices,
        args.virtio_mmio_cmdline,
        args.no_acpi,
        accel,
        args.verbose,
    )?;
    let plan = mmio_cmdline::build(&image, &announced)?;
    if linux.is_some() {
        preflight::warn_interrupt_options(&image.cmdline, accel, !args.no_acpi);
    }
    devices.announce_vsock();
    if args.verbose {
        eprintln!("domboot: accelerator {accel:?}: {why}");
    }
    if interactive {
        interactive::banner(&image.kernel_path, accel);
    }
    let serial = match &args.serial {
        SerialArg::Stdio => SerialSink::Stdout,
        SerialArg::File(p) => SerialSink::File(p.clone()),
        SerialArg::None => SerialSink::None,
    };
    let cfg = RunConfig {
        cpus,
        serial,
        forward_stdin: interactive,
        timeout: args.timeout.map(Duration::from_secs_f64),
        verbose: args.verbose,
        acpi: !args.no_acpi,
        signal: catch_signals()?,
        extra_serials: Vec::new(),
        watch: watch::ConsoleWatch::default(),
        devices,
        backends: None,
    };
    let outcome = boot(accel, &plan, &cfg)?;
    report(&outcome, args.verbose);
    Ok(ExitCode::from(outcome.exit_code()))
}

/// One line on stderr for endings the user did not obviously cause.
pub fn report(outcome: &Outcome, verbose: bool) {
    match outcome {
        Outcome::Timeout(d) => eprintln!(
            "domboot: the guest was still running after {:.1} s (--timeout); stopped it",
            d.as_secs_f64()
        ),
        Outcome::Interrupted(sig) => eprintln!("domboot: stopped the guest on signal {sig}"),
        Outcome::Quit => eprintln!("domboot: stopped the guest (Ctrl-A x)"),
        Outcome::Crash(report) | Outcome::Panic(report) => eprintln!("domboot: {report}"),
        Outcome::BackendGone(why) => eprintln!("domboot: {why}; stopped the VM"),
        Outcome::DebugExit(v) if verbose => {
            eprintln!("domboot: the guest exited through the debug-exit port with status {v}")
        }
        Outcome::Ended if verbose => eprintln!("domboot: the guest powered off or reset"),
        _ => {}
    }
}
