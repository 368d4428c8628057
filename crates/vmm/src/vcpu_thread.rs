//! A vCPU's thread: KVM_RUN in a loop, each exit handed to the device manager, until the
//! guest or the supervisor ends the run.

use crate::bus::Flow;
use crate::device_manager::DeviceManager;
use crate::{CrashReport, Outcome};
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::Duration;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::signal::Killable;

/// What a vCPU (or console input) tells the supervisor.
pub enum VmEvent {
    Stop(Outcome),
}

/// Sets the stop flag, kicks every vCPU thread until it has left KVM_RUN, and joins them.
/// A thread still in KVM_RUN after 5 s is left behind (it owns its vCPU and a reference
/// to guest memory, so nothing it uses is freed under it).
pub fn stop_all(stop: &AtomicBool, handles: Vec<JoinHandle<()>>, kick: i32) {
    stop.store(true, Ordering::SeqCst);
    let left = crate::threads::join_within(handles, Duration::from_secs(5), |h| {
        let _ = h.kill(kick);
    });
    if !left.is_empty() {
        eprintln!(
            "domboot-vmm: {} still in KVM_RUN 5 s after the run ended; leaving it",
            left.join(", ")
        );
    }
}

/// What one KVM_RUN ended with, once the borrow of the vCPU is over.
enum Step {
    Continue,
    Stop(Outcome),
    Crash(String),
    InternalError,
}

pub fn vcpu_loop(
    index: usize,
    mut fd: VcpuFd,
    devices: &DeviceManager,
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
                VcpuExit::MmioWrite(addr, data) => match devices.mmio_write(addr, data) {
                    Flow::Continue => Step::Continue,
                    Flow::Stop(o) => Step::Stop(o),
                },
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
