//! A built VM and its run: the vCPU threads, the virtio device threads and console input
//! start; the supervising thread waits for the guest to end the run, a crash, a panic on
//! the console, the timeout or a stop signal; then everything stops in order.

use crate::device_manager::DeviceManager;
use crate::device_manager::virtio::Workers;
use crate::devices::panic_watch::PanicWatch;
use crate::signals::{self, StopSignals};
use crate::vcpu_thread::{VmEvent, stop_all, vcpu_loop};
use crate::{CrashReport, Outcome, SerialSink, VmConfig, VmmError, console_in, terminal};
use kvm_ioctls::{VcpuFd, VmFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vm_memory::GuestMemoryMmap;

pub struct Vm {
    // Field order is drop order: the VM (and its memory slots) goes before the memory it
    // maps.
    vm: VmFd,
    vcpus: Vec<VcpuFd>,
    devices: Arc<DeviceManager>,
    mem: Arc<GuestMemoryMmap>,
    watch: PanicWatch,
    cfg: VmConfig,
}

impl Vm {
    pub(crate) fn new(
        vm: VmFd,
        mem: Arc<GuestMemoryMmap>,
        devices: DeviceManager,
        vcpus: Vec<VcpuFd>,
        watch: PanicWatch,
        cfg: VmConfig,
    ) -> Vm {
        Vm {
            vm,
            vcpus,
            devices: Arc::new(devices),
            mem,
            watch,
            cfg,
        }
    }

    /// The devices (for tests and embedding).
    pub fn devices(&self) -> &DeviceManager {
        &self.devices
    }

    /// Runs the guest until the run ends.
    pub fn run(mut self) -> Result<Outcome, VmmError> {
        let vcpus = std::mem::take(&mut self.vcpus);
        let workers = Workers::start(&self.devices.virtio)?;
        let outcome = {
            // Handlers first, terminal second: dropped in reverse, so no stop signal can
            // find the terminal raw and the default (killing) disposition back in place.
            let signals = StopSignals::install()?;
            let terminal_guard = match self.cfg.serial {
                SerialSink::Stdout => terminal::RawTerminal::new(libc::STDIN_FILENO)
                    .ok()
                    .flatten(),
                _ => None,
            };
            self.supervise(vcpus, &signals, terminal_guard.is_some())
        };
        workers.stop();
        let outcome = outcome?;
        if self.cfg.verbose {
            self.log_statistics();
        }
        // The VM goes before the memory (field order), explicitly here for the reader.
        drop(self.vm);
        drop(self.mem);
        Ok(outcome)
    }

    fn log_statistics(&self) {
        if let Some(kib) = peak_rss_kib() {
            // VmHWM is this process's own high-water mark (getrusage's ru_maxrss would also
            // count the parent's RSS at the moment of exec); scripts/bench/startup.sh reads it.
            eprintln!("domboot-vmm: peak RSS of this process: {kib} KiB (VmHWM)");
        }
        let pio = self.devices.unhandled_pio.load(Ordering::Relaxed);
        let mmio = self.devices.unhandled_mmio.load(Ordering::Relaxed);
        if pio + mmio > 0 {
            eprintln!(
                "domboot-vmm: {pio} unhandled port access(es), {mmio} unhandled MMIO access(es)"
            );
        }
    }

    /// Starts the vCPU (and console input) threads, waits for the end, stops everything.
    fn supervise(
        &self,
        vcpus: Vec<VcpuFd>,
        signals: &StopSignals,
        raw_terminal: bool,
    ) -> Result<Outcome, VmmError> {
        let kick = signals::kick_signal()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<VmEvent>();
        let start = Instant::now();
        let mut handles: Vec<JoinHandle<()>> = Vec::new();
        for (index, fd) in vcpus.into_iter().enumerate() {
            let tx = tx.clone();
            let flag = stop.clone();
            let devices = self.devices.clone();
            let mem = self.mem.clone();
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
        let input = match self.cfg.serial {
            SerialSink::Stdout => {
                let tx = tx.clone();
                let flag = stop.clone();
                let devices = self.devices.clone();
                std::thread::Builder::new()
                    .name("console-in".into())
                    .spawn(move || console_in::forward(&devices, &flag, &tx, raw_terminal))
                    .ok()
            }
            _ => None,
        };
        drop(tx);
        // COM2-COM4's input, each from its socket (they end with the socket or the stop).
        let pumps: Vec<JoinHandle<()>> = self
            .devices
            .links
            .iter()
            .filter_map(|link| {
                let link = link.clone();
                let flag = stop.clone();
                std::thread::Builder::new()
                    .name(format!("{}-in", link.name))
                    .spawn(move || link.pump_input(&flag))
                    .ok()
            })
            .collect();
        let deadline = self.cfg.timeout.map(|t| start + t);
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
            if let Some(panic) = panicked(&self.watch) {
                break panic;
            }
            if let Some(why) = self
                .devices
                .virtio
                .iter()
                .find_map(|s| s.transport.backend_gone())
            {
                break Outcome::BackendGone(why);
            }
            if let (Some(d), Some(t)) = (deadline, self.cfg.timeout)
                && Instant::now() >= d
            {
                break Outcome::Timeout(t);
            }
        };
        stop_all(&stop, handles, kick);
        if let Some(h) = input {
            let _ = h.join();
        }
        for h in pumps {
            let _ = h.join();
        }
        // A kernel that panicked and then reset (panic=N) or crashed on the way: the panic
        // is what the user needs to hear about.
        Ok(match (outcome, self.watch.report()) {
            (Outcome::Reset | Outcome::Crash(_), Some((report, _))) => {
                Outcome::Panic(Box::new(report))
            }
            (outcome, _) => outcome,
        })
    }
}

/// A panic the guest has finished reporting (or has been reporting for a while: a
/// kernel whose console is slow or that hangs in the report), as an outcome.
fn panicked(watch: &PanicWatch) -> Option<Outcome> {
    let (report, seen) = watch.report()?;
    let grace = if report.complete {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };
    (seen.elapsed() >= grace).then(|| Outcome::Panic(Box::new(report)))
}

/// VmHWM from /proc/self/status, in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
