//! The KVM backend: runs a [`BootPlan`] on `/dev/kvm`.
//!
//! ```no_run
//! use domboot_vmm::{run, SerialSink, VmConfig};
//! # let plan: domboot_builder::BootPlan = unimplemented!();
//! let cfg = VmConfig { cpus: 2, serial: SerialSink::Stdout, ..Default::default() };
//! let outcome = run(&plan, &cfg)?;
//! eprintln!("{}", outcome.describe());
//! std::process::exit(outcome.exit_code().into());
//! # Ok::<(), domboot_vmm::VmmError>(())
//! ```
//!
//! One VM per call: in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT, guest RAM from the
//! plan's e820, the plan's segments copied in, an MP table and ACPI tables for the vCPUs
//! (see [`acpi`]: the guest can power off through them), COM1, i8042 and the debug-exit
//! port (see [`devices`]). vCPU 0 starts in the plan's entry state; the others
//! wait for INIT/SIPI. The run ends with an [`Outcome`]; see [`Outcome::exit_code`] for
//! the process exit status each one maps to.

pub mod acpi;
pub mod devices;
pub mod exit;
mod irqchip;
pub mod kvm;
pub mod memory;
pub mod mptable;
pub mod reset_vector;
pub mod signals;
pub mod terminal;
pub mod vcpu;

pub use devices::serial::SerialSink;
pub use exit::{CrashReport, Registers};
pub use kvm::{KvmStatus, kvm_status};

use devices::{Devices, Flow, serial};
use domboot_builder::BootPlan;
use kvm_bindings::{KVM_PIT_SPEAKER_DUMMY, kvm_pit_config};
use kvm_ioctls::{Cap, VcpuExit, VcpuFd, VmFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use vmm_sys_util::signal::Killable;

/// Exit status for a guest that crashed (triple fault, KVM internal error, unhandled exit).
pub const EXIT_CRASH: u8 = 125;
/// Exit status for a guest kernel that panicked (its panic line is quoted in the report).
pub const EXIT_GUEST_PANIC: u8 = 123;
/// Exit status for `--timeout` (as timeout(1) uses).
pub const EXIT_TIMEOUT: u8 = 124;

/// How to run the VM.
#[derive(Clone, Debug)]
pub struct VmConfig {
    /// vCPUs, 1 to [`mptable::MAX_CPUS`].
    pub cpus: u8,
    pub serial: SerialSink,
    /// End a guest that is still running after this long.
    pub timeout: Option<Duration>,
    /// Log set-up steps and unhandled device accesses to stderr.
    pub verbose: bool,
    /// ACPI tables (RSDP, XSDT, FADT, MADT, DSDT) and the ACPI sleep registers, through
    /// which the guest powers off (see [`acpi`]). On by default; off, the guest has only
    /// the MP table and can reset but not power off.
    pub acpi: bool,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            cpus: 1,
            serial: SerialSink::Stdout,
            timeout: None,
            verbose: false,
            acpi: true,
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The guest powered off: S5 through the ACPI sleep control register, or
    /// KVM_SYSTEM_EVENT_SHUTDOWN.
    PowerOff,
    /// The guest reset the machine: i8042 command 0xFE, reset control 0xCF9, or
    /// KVM_SYSTEM_EVENT_RESET. domboot does not reboot; the run ends.
    Reset,
    /// The guest wrote this value to the debug-exit port 0xF4.
    DebugExit(u8),
    /// Still running when `VmConfig::timeout` (this long) ran out.
    Timeout(Duration),
    /// Stopped by this signal (SIGINT, SIGTERM, SIGHUP; Ctrl-A x on an interactive
    /// console counts as SIGINT).
    Interrupted(i32),
    /// Triple fault, KVM internal error, failed VM entry, or an exit domboot does not handle.
    Crash(Box<CrashReport>),
    /// The guest kernel panicked (seen on its console); whatever it did next (reset,
    /// spin) does not matter.
    Panic(Box<devices::panic_watch::PanicReport>),
}

impl Outcome {
    /// The process exit status for this outcome:
    ///
    /// | outcome            | status                       |
    /// |--------------------|------------------------------|
    /// | `PowerOff`, `Reset`| 0                            |
    /// | `DebugExit(v)`     | `v`                          |
    /// | `Timeout`          | 124 ([`EXIT_TIMEOUT`])       |
    /// | `Interrupted(sig)` | 128 + sig (130 for SIGINT)   |
    /// | `Crash`            | 125 ([`EXIT_CRASH`])         |
    /// | `Panic`            | 123 ([`EXIT_GUEST_PANIC`])   |
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::PowerOff | Outcome::Reset => 0,
            Outcome::DebugExit(v) => *v,
            Outcome::Timeout(_) => EXIT_TIMEOUT,
            Outcome::Interrupted(sig) => 128u8.wrapping_add(*sig as u8),
            Outcome::Crash(_) => EXIT_CRASH,
            Outcome::Panic(_) => EXIT_GUEST_PANIC,
        }
    }

    /// A message for the user (multi-line for a crash).
    pub fn describe(&self) -> String {
        match self {
            Outcome::PowerOff => "power-off: the guest switched the machine off".into(),
            Outcome::Reset => "guest reset the machine".into(),
            Outcome::DebugExit(v) => {
                format!("guest exited through the debug-exit port with status {v}")
            }
            Outcome::Timeout(t) => {
                let mut s = format!(
                    "guest still running after the {} s timeout: stopped",
                    t.as_secs_f64()
                );
                if kvm::pvm_loaded(&kvm::ProbePaths::default()) {
                    s.push_str(
                        " (this host's /dev/kvm is PVM: a stock Linux kernel crawls through \
                         KVM's instruction emulator there and never finishes booting; use the \
                         TCG fallback for it)",
                    );
                }
                s
            }
            Outcome::Interrupted(sig) => format!("stopped by signal {sig} ({})", signal_name(*sig)),
            Outcome::Panic(r) => {
                let mut s = String::from("the guest kernel panicked:\n");
                for l in &r.context {
                    s.push_str(&format!("  | {l}\n"));
                }
                s.push_str(&format!("  > {}", r.line));
                s
            }
            Outcome::Crash(r) => {
                let mut s = format!("guest crashed: {r}");
                if r.reason.contains("emulation failed")
                    && kvm::pvm_loaded(&kvm::ProbePaths::default())
                {
                    s.push_str(
                        "note: this host's /dev/kvm is PVM, which runs a guest that is not \
                         PVM-aware through KVM's instruction emulator; it cannot emulate the \
                         instruction at rip (stock Linux kernels end like this, e.g. at XRSTOR). \
                         Use the TCG fallback for them.\n",
                    );
                }
                s
            }
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error("{}", .0.advice())]
    Kvm(KvmStatus),
    #[error("{what} failed: {error}")]
    Ioctl {
        what: &'static str,
        error: kvm_ioctls::Error,
    },
    #[error("guest memory: {0}")]
    Memory(String),
    #[error("the plan does not fit this VM: {0}")]
    Layout(String),
    #[error("VM set-up: {0}")]
    Setup(String),
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
}

fn ioctl(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmmError {
    move |error| VmmError::Ioctl { what, error }
}

enum VmEvent {
    Stop(Outcome),
}

/// Runs `plan` until the guest ends it, it crashes, the timeout passes or a stop signal
/// arrives.
pub fn run(plan: &BootPlan, cfg: &VmConfig) -> Result<Outcome, VmmError> {
    if cfg.cpus == 0 || cfg.cpus > mptable::MAX_CPUS {
        return Err(VmmError::Setup(format!(
            "--cpus must be 1 to {}, not {}",
            mptable::MAX_CPUS,
            cfg.cpus
        )));
    }
    let verbose = cfg.verbose;
    let log = |s: &str| {
        if verbose {
            eprintln!("domboot-vmm: {s}");
        }
    };
    let (kvm, pvm) = kvm::open()?;
    if pvm {
        log("/dev/kvm is PVM (kvm_pvm): only PVM-aware kernels and freestanding guests run");
    }
    let max = kvm.get_max_vcpus();
    if usize::from(cfg.cpus) > max {
        return Err(VmmError::Setup(format!(
            "KVM allows at most {max} vCPUs, {} asked for",
            cfg.cpus
        )));
    }
    // Memory is made before the VM so that it is also dropped after it, on every path.
    let mem = Arc::new(memory::allocate(plan)?);
    let loaded = memory::load_segments(&mem, plan)?;
    log(&format!(
        "segments: {} KiB copied, {} KiB mapped copy-on-write from their files",
        loaded.copied >> 10,
        loaded.mapped >> 10
    ));
    let vm = kvm.create_vm().map_err(ioctl("KVM_CREATE_VM"))?;
    // Memory slots go in before the irqchip: on this kernel (PVM host) the first slot added
    // after KVM_CREATE_IRQCHIP costs 3-8 ms (measured with strace -T), the same slot added
    // before it ~0.1 ms — most of domboot's start-up.
    memory::register(&vm, &mem)?;
    if kvm.check_extension(Cap::SetIdentityMapAddr) {
        vm.set_identity_map_address(vcpu::KVM_IDENTITY_MAP_ADDR)
            .map_err(ioctl("KVM_SET_IDENTITY_MAP_ADDR"))?;
    }
    if kvm.check_extension(Cap::SetTssAddr) {
        vm.set_tss_address(vcpu::KVM_TSS_ADDR as usize)
            .map_err(ioctl("KVM_SET_TSS_ADDR"))?;
    }
    vm.create_irq_chip().map_err(ioctl("KVM_CREATE_IRQCHIP"))?;
    irqchip::mask_8259s(&vm)?;
    vm.create_pit2(kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    })
    .map_err(ioctl("KVM_CREATE_PIT2"))?;

    let template = vcpu::supported_cpuid(&kvm)?;
    let signature = template
        .as_slice()
        .iter()
        .find(|e| e.function == 1)
        .map_or(0, |e| e.eax);
    write_mptable(&mem, plan, cfg.cpus, signature)?;
    reset_vector::install(&mem, plan)?;
    if cfg.acpi {
        let tables = acpi::install(&mem, plan, cfg.cpus)?;
        log(&format!(
            "ACPI: RSDP at {:#x}, tables {}",
            tables.rsdp_addr(),
            tables
                .tables
                .iter()
                .map(|t| format!("{} {:#x}+{}", t.name, t.addr, t.bytes.len()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    log(&format!(
        "memory {}, {} segment(s), {} vCPU(s)",
        memory::ram_ranges(plan)?
            .iter()
            .map(|(s, e)| format!("{s:#x}-{e:#x}"))
            .collect::<Vec<_>>()
            .join(" "),
        plan.segments.len(),
        cfg.cpus
    ));

    let irq = EventFd::new(EFD_NONBLOCK).map_err(|error| VmmError::Io {
        what: "eventfd for the COM1 interrupt".into(),
        error,
    })?;
    vm.register_irqfd(&irq, serial::COM1_IRQ)
        .map_err(ioctl("KVM_IRQFD"))?;
    let writer = serial::SinkWriter::open(&cfg.serial).map_err(|error| VmmError::Io {
        what: match &cfg.serial {
            SerialSink::File(p) => format!("serial output file {}", p.display()),
            _ => "serial output".into(),
        },
        error,
    })?;
    let watch = devices::panic_watch::PanicWatch::default();
    let writer = devices::panic_watch::Watched {
        inner: writer,
        watch: watch.clone(),
    };
    let uart = vm_superio::Serial::new(serial::IrqTrigger(irq), writer);
    let kbd_irq = EventFd::new(EFD_NONBLOCK).map_err(|error| VmmError::Io {
        what: "eventfd for the i8042 interrupt".into(),
        error,
    })?;
    vm.register_irqfd(&kbd_irq, devices::i8042::KBD_IRQ)
        .map_err(ioctl("KVM_IRQFD"))?;
    let devices = Arc::new(
        Devices::new(uart, verbose)
            .with_acpi_sleep(cfg.acpi)
            .with_kbd_irq(kbd_irq),
    );

    let mut vcpus = Vec::with_capacity(cfg.cpus.into());
    for i in 0..cfg.cpus {
        vcpus.push(create_vcpu(&vm, &template, i, cfg.cpus, plan)?);
    }

    let outcome = {
        // Handlers first, terminal second: dropped in reverse, so no stop signal can find
        // the terminal raw and the default (killing) disposition back in place.
        let signals = StopSignals::install()?;
        let terminal_guard = match cfg.serial {
            SerialSink::Stdout => terminal::RawTerminal::new(libc::STDIN_FILENO)
                .ok()
                .flatten(),
            _ => None,
        };
        supervise(
            vcpus,
            &mem,
            &devices,
            cfg,
            &signals,
            terminal_guard.is_some(),
            &watch,
        )?
    };
    if verbose {
        if let Some(kib) = peak_rss_kib() {
            // VmHWM is this process's own high-water mark (getrusage's ru_maxrss would also
            // count the parent's RSS at the moment of exec); scripts/bench/startup.sh reads it.
            log(&format!("peak RSS of this process: {kib} KiB (VmHWM)"));
        }
        let pio = devices.unhandled_pio.load(Ordering::Relaxed);
        let mmio = devices.unhandled_mmio.load(Ordering::Relaxed);
        if pio + mmio > 0 {
            log(&format!(
                "{pio} unhandled port access(es), {mmio} unhandled MMIO access(es)"
            ));
        }
    }
    // The VM (and its memory slots) goes before the memory it maps.
    drop(vm);
    drop(mem);
    Ok(outcome)
}

use signals::StopSignals;

/// VmHWM from /proc/self/status, in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl From<std::io::Error> for VmmError {
    fn from(error: std::io::Error) -> Self {
        VmmError::Io {
            what: "signal handling".into(),
            error,
        }
    }
}

fn write_mptable(
    mem: &GuestMemoryMmap,
    plan: &BootPlan,
    cpus: u8,
    signature: u32,
) -> Result<(), VmmError> {
    let table = mptable::build(cpus, mptable::MPTABLE_START, signature)?;
    let start = mptable::MPTABLE_START;
    let end = start + table.len() as u64;
    if let Some(seg) = plan
        .segments
        .iter()
        .find(|s| s.addr < end && s.end() > start)
    {
        return Err(VmmError::Layout(format!(
            "segment {} at {:#x}-{:#x} overlaps the MP table at {start:#x}-{end:#x}",
            seg.name,
            seg.addr,
            seg.end()
        )));
    }
    mem.write_slice(&table, GuestAddress(start))
        .map_err(|e| VmmError::Memory(format!("writing the MP table: {e}")))
}

fn create_vcpu(
    vm: &VmFd,
    template: &kvm_bindings::CpuId,
    index: u8,
    count: u8,
    plan: &BootPlan,
) -> Result<VcpuFd, VmmError> {
    let fd = vm
        .create_vcpu(index.into())
        .map_err(ioctl("KVM_CREATE_VCPU"))?;
    let cpuid = vcpu::cpuid_for(template, index.into(), count.into());
    fd.set_cpuid2(&cpuid).map_err(ioctl("KVM_SET_CPUID2"))?;
    vcpu::set_msrs(&fd)?;
    vcpu::set_fpu(&fd)?;
    vcpu::set_lint(&fd)?;
    if index == 0 {
        vcpu::set_entry_state(&fd, &plan.entry)?;
    }
    Ok(fd)
}

/// Starts the vCPU (and console input) threads, waits for the end, stops everything.
fn supervise(
    vcpus: Vec<VcpuFd>,
    mem: &Arc<GuestMemoryMmap>,
    devices: &Arc<Devices>,
    cfg: &VmConfig,
    signals: &StopSignals,
    raw_terminal: bool,
    watch: &devices::panic_watch::PanicWatch,
) -> Result<Outcome, VmmError> {
    let kick = signals::kick_signal()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<VmEvent>();
    let start = Instant::now();
    let mut handles: Vec<JoinHandle<()>> = Vec::new();
    for (index, fd) in vcpus.into_iter().enumerate() {
        let tx = tx.clone();
        let flag = stop.clone();
        let devices = devices.clone();
        let mem = mem.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("vcpu{index}"))
            .spawn(move || vcpu_loop(index, fd, &devices, &mem, &flag, &tx));
        match spawned {
            Ok(h) => handles.push(h),
            Err(error) => {
                stop_all(&stop, handles, kick);
                return Err(VmmError::Io {
                    what: format!("starting the thread of vCPU {index}"),
                    error,
                });
            }
        }
    }
    let input = match cfg.serial {
        SerialSink::Stdout => {
            let tx = tx.clone();
            let flag = stop.clone();
            let devices = devices.clone();
            std::thread::Builder::new()
                .name("console-in".into())
                .spawn(move || console_input(&devices, &flag, &tx, raw_terminal))
                .ok()
        }
        _ => None,
    };
    drop(tx);
    let deadline = cfg.timeout.map(|t| start + t);
    let outcome = loop {
        let wait = deadline.map_or(Duration::from_millis(50), |d| {
            d.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50))
        });
        match rx.recv_timeout(wait) {
            Ok(VmEvent::Stop(o)) => break o,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                break Outcome::Crash(Box::new(CrashReport {
                    vcpu: 0,
                    reason: "every vCPU thread ended without a reason".into(),
                    registers: None,
                    code: None,
                }));
            }
        }
        if let Some(sig) = signals.received() {
            break Outcome::Interrupted(sig);
        }
        if let Some(panic) = panicked(watch) {
            break panic;
        }
        if let (Some(d), Some(t)) = (deadline, cfg.timeout)
            && Instant::now() >= d
        {
            break Outcome::Timeout(t);
        }
    };
    stop_all(&stop, handles, kick);
    if let Some(h) = input {
        let _ = h.join();
    }
    // A kernel that panicked and then reset (panic=N) or crashed on the way: the panic is
    // what the user needs to hear about.
    Ok(match (outcome, watch.report()) {
        (Outcome::Reset | Outcome::Crash(_), Some((report, _))) => Outcome::Panic(Box::new(report)),
        (outcome, _) => outcome,
    })
}

/// A panic the guest has finished reporting (or has been reporting for a while: a
/// kernel whose console is slow or that hangs in the report), as an outcome.
fn panicked(watch: &devices::panic_watch::PanicWatch) -> Option<Outcome> {
    let (report, seen) = watch.report()?;
    let grace = if report.complete {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };
    (seen.elapsed() >= grace).then(|| Outcome::Panic(Box::new(report)))
}

/// Sets the stop flag, kicks every vCPU thread until it has left KVM_RUN, and joins them.
/// A thread still in KVM_RUN after 5 s is left behind (it owns its vCPU and a reference
/// to guest memory, so nothing it uses is freed under it).
fn stop_all(stop: &AtomicBool, handles: Vec<JoinHandle<()>>, kick: i32) {
    stop.store(true, Ordering::SeqCst);
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        let mut running = false;
        for h in &handles {
            if !h.is_finished() {
                running = true;
                // A signal that lands just before KVM_RUN is entered is lost, hence the loop.
                let _ = h.kill(kick);
            }
        }
        if !running {
            break;
        }
        if Instant::now() > give_up {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for h in handles {
        let _ = h.join();
    }
}

/// What one KVM_RUN ended with, once the borrow of the vCPU is over.
enum Step {
    Continue,
    Stop(Outcome),
    Crash(String),
    InternalError,
}

fn vcpu_loop(
    index: usize,
    mut fd: VcpuFd,
    devices: &Devices,
    mem: &GuestMemoryMmap,
    stop: &AtomicBool,
    tx: &Sender<VmEvent>,
) {
    loop {
        if stop.load(Ordering::SeqCst) {
            if devices.verbose {
                let state = CrashReport::capture(index, "stopped by domboot".into(), &fd, mem);
                eprint!("domboot-vmm: {state}");
            }
            return;
        }
        let step = match fd.run() {
            Ok(exit) => match exit {
                VcpuExit::IoIn(port, data) => {
                    devices.pio_read(port, data);
                    Step::Continue
                }
                VcpuExit::IoOut(port, data) => match devices.pio_write(port, data) {
                    Flow::Continue => Step::Continue,
                    Flow::Stop(o) => Step::Stop(o),
                },
                VcpuExit::MmioRead(addr, data) => {
                    devices.mmio_read(addr, data);
                    Step::Continue
                }
                VcpuExit::MmioWrite(addr, data) => {
                    devices.mmio_write(addr, data);
                    Step::Continue
                }
                VcpuExit::Intr => Step::Continue,
                VcpuExit::Shutdown => Step::Crash("triple fault (KVM_EXIT_SHUTDOWN)".into()),
                VcpuExit::SystemEvent(kind, _) => match kind {
                    kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN => Step::Stop(Outcome::PowerOff),
                    kvm_bindings::KVM_SYSTEM_EVENT_RESET => Step::Stop(Outcome::Reset),
                    other => Step::Crash(format!("system event {other} (KVM_EXIT_SYSTEM_EVENT)")),
                },
                VcpuExit::Hlt => {
                    Step::Crash("halted with nothing to wake it (KVM_EXIT_HLT)".into())
                }
                VcpuExit::FailEntry(reason, cpu) => Step::Crash(format!(
                    "VM entry failed (KVM_EXIT_FAIL_ENTRY, hardware reason {reason:#x}, host CPU {cpu})"
                )),
                VcpuExit::InternalError => Step::InternalError,
                other => Step::Crash(format!("unhandled exit {other:?}")),
            },
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Step::Continue,
            Err(e) => Step::Crash(format!("KVM_RUN failed: {e}")),
        };
        let outcome = match step {
            Step::Continue => continue,
            Step::Stop(o) => o,
            Step::Crash(reason) => {
                Outcome::Crash(Box::new(CrashReport::capture(index, reason, &fd, mem)))
            }
            Step::InternalError => {
                let reason = internal_error(&mut fd);
                Outcome::Crash(Box::new(CrashReport::capture(index, reason, &fd, mem)))
            }
        };
        let _ = tx.send(VmEvent::Stop(outcome));
        return;
    }
}

/// Describes KVM_EXIT_INTERNAL_ERROR from kvm_run's `internal` member.
fn internal_error(fd: &mut VcpuFd) -> String {
    let run = fd.get_kvm_run();
    if run.exit_reason != kvm_bindings::KVM_EXIT_INTERNAL_ERROR {
        return "KVM internal error".into();
    }
    // SAFETY: exit_reason is KVM_EXIT_INTERNAL_ERROR, for which the kernel fills the
    // `internal` member of the union; it is plain integers, valid for any bit pattern.
    let internal = unsafe { run.__bindgen_anon_1.internal };
    let what = match internal.suberror {
        kvm_bindings::KVM_INTERNAL_ERROR_EMULATION => "instruction emulation failed",
        kvm_bindings::KVM_INTERNAL_ERROR_SIMUL_EX => "exception while delivering an exception",
        kvm_bindings::KVM_INTERNAL_ERROR_DELIVERY_EV => "event delivery failed",
        kvm_bindings::KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON => "unexpected exit reason",
        _ => "unknown",
    };
    let n = (internal.ndata as usize).min(internal.data.len());
    format!(
        "KVM internal error, suberror {} ({what}), data {:x?}",
        internal.suberror,
        &internal.data[..n]
    )
}

/// Holds piped input until the guest enables COM1's receive interrupt, which Linux does
/// when a program opens the console, at the end of the 8250 driver's start-up. Bytes put
/// in the FIFO before that are lost: the driver's probe and start-up read and discard
/// the receive register ("hello" piped in arrived as "lo"). A person at a terminal types
/// after the guest asks, so terminal input is not held (and a polling guest that never
/// enables the interrupt still gets its keystrokes). Returns false when the VM stopped.
fn wait_for_receiver(devices: &Devices, stop: &AtomicBool) -> bool {
    const IER_RDA: u8 = 1;
    while !stop.load(Ordering::SeqCst) {
        let enabled = devices
            .serial
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .state()
            .interrupt_enable
            & IER_RDA
            != 0;
        if enabled {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Feeds standard input to COM1 until stopped or EOF; Ctrl-A x stops the VM when the
/// console is a raw terminal.
fn console_input(devices: &Devices, stop: &AtomicBool, tx: &Sender<VmEvent>, raw: bool) {
    let mut filter = serial::EscapeFilter::default();
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd and we pass a count of 1.
        let n = unsafe { libc::poll(&mut pfd, 1, 100) };
        if n <= 0 {
            continue;
        }
        // SAFETY: `buf` is valid for writes of its length.
        let got = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
        if got <= 0 {
            // EOF or error: nothing more to read; the guest keeps running.
            return;
        }
        let input = &buf[..got as usize];
        if !raw && !wait_for_receiver(devices, stop) {
            return;
        }
        let (bytes, quit) = if raw {
            filter.feed(input)
        } else {
            (input.to_vec(), false)
        };
        let mut rest = &bytes[..];
        while !rest.is_empty() && !stop.load(Ordering::SeqCst) {
            let taken = devices
                .serial
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .enqueue_raw_bytes(rest)
                .unwrap_or(0);
            rest = &rest[taken..];
            if !rest.is_empty() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        if quit {
            let _ = tx.send(VmEvent::Stop(Outcome::Interrupted(libc::SIGINT)));
            return;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use domboot_builder::{
        BootProtocol, CpuMode, EntryState, PatchPoints, SegmentRegister, memory::MemoryMap,
    };

    pub fn empty_plan() -> BootPlan {
        let seg = SegmentRegister {
            selector: 0,
            base: 0,
            limit: 0,
            type_: 0,
            dpl: 0,
            present: false,
            s: false,
            db: false,
            l: false,
            g: false,
        };
        BootPlan {
            protocol: BootProtocol::Linux32,
            memory_size: 64 << 20,
            e820: MemoryMap::new(64 << 20).unwrap().e820,
            segments: vec![],
            reservations: vec![],
            entry: EntryState {
                mode: CpuMode::Protected32,
                rip: 0,
                rsp: 0,
                rax: 0,
                rbx: 0,
                rcx: 0,
                rdx: 0,
                rsi: 0,
                rdi: 0,
                rbp: 0,
                rflags: 2,
                cr0: 0x11,
                cr3: 0,
                cr4: 0,
                efer: 0,
                cs: seg,
                ds: seg,
                gdt_base: 0,
                gdt_limit: 0,
            },
            patch_points: PatchPoints::default(),
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Outcome::PowerOff.exit_code(), 0);
        assert_eq!(Outcome::Reset.exit_code(), 0);
        assert_eq!(Outcome::DebugExit(0x10).exit_code(), 0x10);
        assert_eq!(Outcome::Timeout(Duration::from_secs(1)).exit_code(), 124);
        assert_eq!(Outcome::Interrupted(libc::SIGINT).exit_code(), 130);
        assert_eq!(Outcome::Interrupted(libc::SIGTERM).exit_code(), 143);
        let crash = Outcome::Crash(Box::new(CrashReport {
            vcpu: 0,
            reason: "x".into(),
            registers: None,
            code: None,
        }));
        assert_eq!(crash.exit_code(), 125);
        assert!(crash.describe().contains("crashed"));
    }

    #[test]
    fn bad_cpu_counts_are_refused_before_kvm() {
        let plan = empty_plan();
        for cpus in [0, 255] {
            let cfg = VmConfig {
                cpus,
                serial: SerialSink::None,
                ..Default::default()
            };
            assert!(matches!(run(&plan, &cfg), Err(VmmError::Setup(_))));
        }
    }

    #[test]
    fn mp_table_overlap_is_an_error() {
        let mut plan = empty_plan();
        plan.segments.push(domboot_builder::Segment {
            name: "low".into(),
            addr: 0xF_0000,
            mem_size: 16,
            data: vec![0u8; 16].into(),
            backing: None,
        });
        let mem = memory::allocate(&plan).unwrap();
        let err = write_mptable(&mem, &plan, 1, 0).unwrap_err().to_string();
        assert!(err.contains("overlaps the MP table"), "{err}");
    }
}
