//! Running a plan on KVM through `domboot-vmm`, with the CLI's console wiring.

use super::{Outcome, RunConfig, SerialSink};
use domboot_builder::BootPlan;
use domboot_vmm::{Outcome as VmOutcome, VmConfig};
use std::sync::{Arc, Mutex};

/// Feeds the UART's output to a console filter, and to the console watch (the kernel's
/// last lines, for messages about a run that ended early), as the guest prints it.
struct FilterWriter(SerialSink, super::watch::ConsoleWatch);

impl std::io::Write for FilterWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.1.feed(buf);
        self.0.write(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn run(plan: &BootPlan, cfg: &RunConfig) -> anyhow::Result<Outcome> {
    // The VMM owns the interactive console itself (raw terminal, Ctrl-A x, signals); a
    // console filter (--exec) gets the output streamed as the guest prints it.
    let serial = match &cfg.serial {
        SerialSink::Stdout => domboot_vmm::SerialSink::Stdout,
        SerialSink::File(p) => domboot_vmm::SerialSink::File(p.clone()),
        SerialSink::None => domboot_vmm::SerialSink::None,
        SerialSink::Filter(_) => domboot_vmm::SerialSink::Writer(Arc::new(Mutex::new(
            FilterWriter(cfg.serial.clone(), cfg.watch.clone()),
        ))),
    };
    let vm = VmConfig {
        cpus: cfg.cpus,
        serial,
        timeout: cfg.timeout,
        verbose: cfg.verbose,
        acpi: cfg.acpi,
        serial_links: cfg.extra_serials.clone(),
        ..cfg.devices.vmm_config()
    };
    let outcome = domboot_vmm::run(plan, &vm)?;
    if let SerialSink::Filter(_) = &cfg.serial {
        cfg.serial.clone().finish();
    }
    Ok(match outcome {
        VmOutcome::PowerOff | VmOutcome::Reset => Outcome::Ended,
        VmOutcome::DebugExit(v) => Outcome::DebugExit(v),
        VmOutcome::Timeout(d) => Outcome::Timeout(d),
        VmOutcome::Interrupted(sig) => Outcome::Interrupted(sig),
        crash @ VmOutcome::Crash(_) => Outcome::Crash(crash.describe()),
        panic @ VmOutcome::Panic(_) => Outcome::Panic(panic.describe()),
        // The VMM saw the device's socket close; the process behind it says how it ended
        // (its exit is reaped a moment after its socket closes).
        VmOutcome::BackendGone(device) => Outcome::BackendGone(
            cfg.backends
                .as_ref()
                .and_then(|b| b.gone_within(std::time::Duration::from_secs(2)))
                .unwrap_or(device),
        ),
    })
}
