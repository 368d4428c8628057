//! SMP on this machine's /dev/kvm: the SMP guest of crate domboot-conformance (also run
//! under `domboot run --accel tcg`, crates/cli/tests/conformance_tcg.rs) finds every vCPU
//! in domboot's MP table, starts the application processors with INIT/SIPI through its
//! LAPIC, and each AP reports its CPUID APIC ID from a real-mode trampoline below 1 MiB.

mod common;

use common::*;
use domboot_builder::ProtocolChoice;
use domboot_conformance::smp::{smp_kernel, smp_report};
use domboot_vmm::Outcome;
use std::time::Duration;

#[test]
fn four_vcpus_every_ap_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    let plan = build_plan(
        dir.path(),
        &smp_kernel(4, Some(4)),
        b"initrd",
        "smp",
        128 * MIB,
        ProtocolChoice::Auto,
    );
    let r = run(&plan, 4, Duration::from_secs(30));
    assert_eq!(r.outcome, Outcome::DebugExit(OK), "{}", r.serial);
    assert!(r.serial.contains(&smp_report(4)), "{}", r.serial);
}
