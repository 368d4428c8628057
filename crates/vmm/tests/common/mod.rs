//! The conformance guests (crate domboot-conformance) and a helper that runs a plan on this
//! machine's /dev/kvm with the console captured.
#![allow(dead_code)]

pub use domboot_conformance::*;

use domboot_builder::BootPlan;
use domboot_vmm::{Outcome, SerialSink, VmConfig};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Run {
    pub outcome: Outcome,
    pub serial: String,
}

pub fn run(plan: &BootPlan, cpus: u8, timeout: Duration) -> Run {
    run_acpi(plan, cpus, timeout, true)
}

/// [`run`] with the ACPI tables on or off.
pub fn run_acpi(plan: &BootPlan, cpus: u8, timeout: Duration, acpi: bool) -> Run {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let cfg = VmConfig {
        cpus,
        serial: SerialSink::Capture(buf.clone()),
        timeout: Some(timeout),
        verbose: true,
        acpi,
        ..Default::default()
    };
    let outcome = domboot_vmm::run(plan, &cfg).expect("domboot_vmm::run");
    let serial = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    eprintln!(
        "--- serial ---\n{serial}\n--- outcome: {} (exit code {})",
        outcome.describe(),
        outcome.exit_code()
    );
    Run { outcome, serial }
}
