//! How a run ends, and the process exit status each ending maps to.

use crate::{CrashReport, devices, kvm};
use std::time::Duration;

/// Exit status for a guest that crashed (triple fault, KVM internal error, unhandled exit).
pub const EXIT_CRASH: u8 = 125;
/// Exit status for a guest kernel that panicked (its panic line is quoted in the report).
pub const EXIT_GUEST_PANIC: u8 = 123;
/// Exit status for `--timeout` (as timeout(1) uses).
pub const EXIT_TIMEOUT: u8 = 124;
/// Exit status for a run the VMM could not carry on: a device's host-side backend went
/// away (the status of domboot's own failures).
pub const EXIT_BACKEND_GONE: u8 = 2;

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
    /// A device's host-side backend went away for good (a virtiofsd that exited or was
    /// killed): the guest's requests to it would never be answered, so the VM was
    /// stopped. Says which device and why.
    BackendGone(String),
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
    /// | `BackendGone`      | 2 ([`EXIT_BACKEND_GONE`])    |
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::PowerOff | Outcome::Reset => 0,
            Outcome::DebugExit(v) => *v,
            Outcome::Timeout(_) => EXIT_TIMEOUT,
            Outcome::Interrupted(sig) => 128u8.wrapping_add(*sig as u8),
            Outcome::Crash(_) => EXIT_CRASH,
            Outcome::Panic(_) => EXIT_GUEST_PANIC,
            Outcome::BackendGone(_) => EXIT_BACKEND_GONE,
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
            Outcome::BackendGone(why) => format!("stopped the VM: {why}"),
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
