//! A stock Linux kernel (the tiny tinyconfig build in shared/kernels) on this machine's KVM.
//!
//! On a PVM host it cannot boot: PVM runs a guest that is not PVM-aware through KVM's
//! instruction emulator. Measured here: the 64-bit entry and the decompressor run (slowly:
//! about 50 s), the kernel prints its boot log up to `x86/fpu: Supporting XSAVE feature`,
//! then at about 65-70 s KVM fails to emulate `xrstor64 [rdi]` (KVM_EXIT_INTERNAL_ERROR,
//! emulation failure), which domboot reports as a crash with a PVM note. Within a
//! practical timeout the user sees the timeout message naming PVM, which this test checks.
//! On a host with VMX/SVM the kernel boots and prints its banner within the same timeout.

mod common;

use common::*;
use domboot_builder::{BuildOptions, DomainImage};
use domboot_vmm::{Outcome, kvm_status};
use std::time::Duration;

#[test]
fn stock_kernel_on_this_kvm() {
    let kernel = domboot_testkit::shared_kernel("bzImage-x64-pvh-gzip");
    let image = DomainImage::new(
        &kernel,
        &[],
        Some("console=ttyS0 earlyprintk=serial,ttyS0 panic=-1 reboot=k"),
        BuildOptions {
            memory: 256 * MIB,
            ..Default::default()
        },
    )
    .unwrap();
    let plan = image.build().unwrap();
    let timeout = Duration::from_secs(8);
    let r = run(&plan, 1, timeout);
    if kvm_status().is_pvm() {
        assert_eq!(r.outcome, Outcome::Timeout(timeout), "{}", r.serial);
        let text = r.outcome.describe();
        assert!(text.contains("PVM") && text.contains("TCG"), "{text}");
    } else {
        assert!(r.serial.contains("Linux version"), "{}", r.serial);
    }
}

#[test]
fn this_host_is_described_plainly() {
    let status = kvm_status();
    eprintln!("{status:?}: {}", status.advice());
    let pvm_module = std::path::Path::new("/sys/module/kvm_pvm").exists();
    assert_eq!(status.is_pvm(), pvm_module && status.is_usable());
    if status.is_pvm() {
        let advice = status.advice();
        assert!(advice.contains("PVM (the kvm_pvm module)"), "{advice}");
        assert!(
            advice.contains("stock Linux kernels cannot run on it"),
            "{advice}"
        );
        assert!(advice.contains("TCG"), "{advice}");
    }
}
