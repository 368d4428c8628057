//! Linux itself powers off through domboot's ACPI tables.
//!
//! A stock kernel cannot run on this PVM host's /dev/kvm, so the very tables the KVM
//! backend installs (`domboot_vmm::acpi::build_at`) are handed to Debian's cloud kernel
//! under QEMU TCG instead: `-M pc,acpi=off` (firmware makes no ACPI tables of its own), the
//! tables in low RAM (Linux keeps the first MiB to itself), `boot_params.acpi_rsdp_addr`
//! pointing at them, and an isa-debug-exit device on the FADT's sleep control port standing
//! in for domboot's power-off register. `poweroff -f` in the guest goes through Linux's
//! acpi_power_off: \_S5_ from our DSDT gives SLP_TYP 5, written with SLP_EN (0x34) to that
//! port, and QEMU exits with status (0x34 << 1) | 1.

use domboot_builder::x86_64::zero_page;
use domboot_builder::{BootPlan, BuildOptions, DomainImage, ProtocolChoice, Segment};
use std::path::Path;
use std::time::Duration;

/// Where the test puts the tables: conventional RAM below the EBDA in SeaBIOS's map.
const TABLES_AT: u64 = 0x8_0000;
/// The FADT's sleep control register (domboot's power-off port).
const SLEEP_CONTROL_PORT: u16 = 0x600;
/// SLP_TYP 5 (\_S5_) << 2 | SLP_EN, as Linux writes it; QEMU's isa-debug-exit status.
const POWER_OFF_STATUS: i32 = ((5 << 2 | 1 << 5) << 1) | 1;

fn initramfs(dir: &Path) -> std::path::PathBuf {
    let init = "#!/bin/busybox sh\n\
                B=/bin/busybox\n\
                $B mount -t proc proc /proc\n\
                $B mount -t sysfs sys /sys\n\
                echo \"ACPI-TABLES: $($B ls /sys/firmware/acpi/tables | $B tr '\\n' ' ')\"\n\
                $B poweroff -f\n\
                echo STILL-RUNNING\n";
    domboot_testkit::busybox_initramfs(dir, &domboot_testkit::busybox(), "acpi", init, &[])
}

/// The TSC rate to tell the kernel. Under TCG there is no kvmclock, and a hardware-reduced
/// platform has no PIT/HPET clock event, so Linux times its TSC against the PIT by busy
/// waiting; on a loaded host (CI runs tests in parallel) that fails ("tsc: Unable to
/// calibrate against PIT"), and without a TSC rate nor a clock event the kernel never
/// ticks. `tsc_early_khz=` hands it the rate instead (QEMU's TCG TSC follows the host's); on
/// KVM the rate comes from kvmclock.
fn host_tsc_khz() -> u64 {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("cpu MHz"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map_or(2_000_000, |mhz| (mhz * 1000.0) as u64)
}

/// The plan for Debian's cloud kernel with domboot's ACPI tables added at [`TABLES_AT`] and
/// boot_params.acpi_rsdp_addr set, as the KVM backend sets it.
fn plan_with_acpi(dir: &Path, cpus: u8) -> BootPlan {
    let kernel = domboot_testkit::debian_kernel("cloud");
    let image = DomainImage::new(
        &kernel.vmlinuz,
        &[initramfs(dir)],
        Some(&format!(
            "console=ttyS0 panic=-1 tsc_early_khz={}",
            host_tsc_khz()
        )),
        BuildOptions {
            memory: 256 << 20,
            protocol: ProtocolChoice::Linux64,
            rng_seed: false,
            ..Default::default()
        },
    )
    .expect("domain image");
    let mut plan = image.build().expect("plan");
    let tables = domboot_vmm::acpi::build_at(TABLES_AT, cpus, &[], 0).expect("ACPI tables");
    let zp = plan
        .segments
        .iter_mut()
        .find(|s| s.name == "boot_params")
        .expect("a boot_params segment");
    let mut bytes = zp.data.to_vec();
    bytes[zero_page::ACPI_RSDP_ADDR..zero_page::ACPI_RSDP_ADDR + 8]
        .copy_from_slice(&tables.rsdp_addr().to_le_bytes());
    zp.data = bytes.into();
    for (i, t) in tables.tables.iter().enumerate() {
        plan.segments.insert(
            i,
            Segment {
                name: format!("ACPI {}", t.name),
                addr: t.addr,
                mem_size: t.bytes.len() as u64,
                data: t.bytes.clone().into(),
                backing: None,
            },
        );
    }
    plan
}

/// Boots the plan's export with `cpus` vCPUs; returns QEMU's exit status and the console.
fn boot(cpus: u8) -> (Option<std::process::ExitStatus>, String) {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_with_acpi(dir.path(), cpus);
    let elf = domboot_export::pvh_elf(&plan).expect("export");
    let image = dir.path().join("image.elf");
    elf.write_to(&mut std::fs::File::create(&image).unwrap())
        .unwrap();

    let device = format!("isa-debug-exit,iobase={SLEEP_CONTROL_PORT:#x},iosize=1");
    let smp = cpus.to_string();
    let args = [
        "-M",
        "pc,acpi=off",
        "-m",
        "256",
        "-smp",
        &smp,
        "-device",
        &device,
    ];
    domboot_testkit::qemu_run(&image, &args, Duration::from_secs(240))
}

fn powers_off(cpus: u8) -> String {
    let (status, console) = boot(cpus);
    let shown = format!("--- console and QEMU's messages ---\n{console}");
    let status = status.unwrap_or_else(|| panic!("the guest never powered off\n{shown}"));
    assert!(
        shown.contains("ACPI-TABLES: APIC DSDT FACP"),
        "Linux did not take our tables (QEMU exit: {status:?})\n{shown}"
    );
    assert!(!shown.contains("STILL-RUNNING"), "{shown}");
    assert!(shown.contains("reboot: Power down"), "{shown}");
    assert_eq!(
        status.code(),
        Some(POWER_OFF_STATUS),
        "QEMU's exit status is not the S5 write to the sleep control port\n{shown}"
    );
    shown
}

#[test]
fn debian_kernel_powers_off_through_the_acpi_tables() {
    powers_off(1);
}

#[test]
fn debian_kernel_brings_up_the_processors_the_madt_lists() {
    let shown = powers_off(2);
    assert!(
        shown.contains("smp: Brought up 1 node, 2 CPUs"),
        "Linux did not start both processors of the MADT\n{shown}"
    );
}
