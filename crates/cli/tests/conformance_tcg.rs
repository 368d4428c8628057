//! The freestanding conformance guests (crate domboot-conformance, the same ones
//! crates/vmm/tests runs on KVM) booted by the real binary with `domboot run --accel tcg`:
//! the plan is exported as a PVH ELF whose stub adopts the memory map QEMU's firmware hands
//! it, and QEMU's isa-debug-exit becomes domboot's exit status (0x10, all checks passed, is
//! 16). Each guest checks what its boot protocol handed it: entry registers and segment
//! state, GDTR, command line, initrd bytes, memory map, boot_params / start_info fields.
//!
//! The guests' expectations come from a plan the builder library makes with the same files
//! and options the command line gets; `domboot plan --json` must print that same plan, so
//! a divergence between the two shows up as such instead of as a puzzling guest failure.

use assert_cmd::Command;
use domboot_builder::{BootPlan, BootProtocol, ProtocolChoice};
use domboot_conformance::*;
use std::ops::RangeInclusive;

const CMDLINE: &str = "console=ttyS0 domboot.test=conformance-tcg quiet";
const TIMEOUT_SECS: &str = "60";

/// The RAM total the guest may see under QEMU for `plan`. `domboot run --accel tcg` gives
/// QEMU `-M pc` with qboot exactly the plan's memory, and the plan's e820 already leaves
/// out 0x9fc00-0x100000 as the firmware's does (the EBDA's KiB, the VGA/ROM hole, the
/// BIOS). qboot keeps its tables below 1 MiB (0xd0000-0xf0000, ACPI NVS), not at the top
/// of RAM as SeaBIOS does, so the totals agree to the byte; that the stub adopted the
/// firmware's map, not the plan's, shows in that NVS entry ([`FIRMWARE_ENTRY`]).
fn tcg_ram(plan: &BootPlan) -> RangeInclusive<u64> {
    let total = ram_total(plan);
    total..=total
}

/// The entry of qboot's map (its table area, ACPI NVS) the plan's own map does not have,
/// as the guests print it: present only if the stub handed on the firmware's map.
const FIRMWARE_ENTRY: &str = "00000000000D0000 0000000000020000 00000004";

/// The `--boot-protocol` value for a library [`ProtocolChoice`].
fn flag(protocol: ProtocolChoice) -> &'static str {
    match protocol {
        ProtocolChoice::Auto => "auto",
        ProtocolChoice::Linux64 => "linux64",
        ProtocolChoice::Linux32 => "linux32",
        ProtocolChoice::Pvh => "pvh",
    }
}

/// One guest: the kernel and initrd files in `dir` (written by [`build_plan`]), and the
/// options both the library plan and the command line use.
struct Case {
    dir: tempfile::TempDir,
    memory: u64,
    protocol: ProtocolChoice,
    cpus: u8,
    plan: BootPlan,
}

impl Case {
    /// Builds the plan twice: the first pass tells the guest what to expect (RAM, GDT); the
    /// guest's size does not depend on those values, so the second plan (whose files the
    /// command line gets) has the same layout, which is asserted.
    fn new(
        initrd: &[u8],
        memory: u64,
        protocol: ProtocolChoice,
        mut kernel: impl FnMut(&Expect) -> Vec<u8>,
        fill: impl Fn(&mut Expect, &BootPlan),
    ) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let mut e = Expect {
            cmdline: CMDLINE.into(),
            initrd: initrd.to_vec(),
            ram: 0..=0,
            gdt: None,
            code32_start: None,
        };
        let probe = build_plan(dir.path(), &kernel(&e), initrd, CMDLINE, memory, protocol);
        e.ram = tcg_ram(&probe);
        fill(&mut e, &probe);
        let plan = build_plan(dir.path(), &kernel(&e), initrd, CMDLINE, memory, protocol);
        assert_eq!(plan.entry.gdt_base, probe.entry.gdt_base);
        assert_eq!(plan.entry.rip, probe.entry.rip);
        Case {
            dir,
            memory,
            protocol,
            cpus: 1,
            plan,
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// `domboot <command>` with the case's kernel, initrd, command line, memory, protocol.
    fn domboot(&self, command: &str) -> Command {
        let mut cmd = Command::cargo_bin("domboot").unwrap();
        cmd.arg(command)
            .arg("--kernel")
            .arg(self.path("kernel"))
            .arg("--initrd")
            .arg(self.path("initrd"))
            .args(["--cmdline", CMDLINE])
            .args(["--memory", &format!("{}M", self.memory / MIB)])
            .args(["--boot-protocol", flag(self.protocol)]);
        cmd
    }

    /// `domboot plan --json` prints the plan the guest's expectations came from.
    fn cli_plan_matches(&self) {
        let out = self.domboot("plan").arg("--json").output().unwrap();
        assert!(
            out.status.success(),
            "domboot plan: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cli: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
        let lib = serde_json::to_value(&self.plan).unwrap();
        assert_eq!(cli["entry"], lib["entry"], "entry state (GDT, registers)");
        assert_eq!(cli, lib, "the CLI's plan differs from the library's");
    }

    /// Runs the guest under TCG; returns domboot's exit status, the guest's serial output
    /// and a description of the run (with that output) for assertion messages.
    fn run_tcg(&self, what: &str) -> (Option<i32>, String, String) {
        self.cli_plan_matches();
        let started = std::time::Instant::now();
        let out = self
            .domboot("run")
            .args(["--accel", "tcg", "--timeout", TIMEOUT_SECS])
            .args(["--cpus", &self.cpus.to_string()])
            .output()
            .unwrap();
        let serial = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ctx = format!(
            "{what}: exit status {:?} after {:.1?}\n--- serial ---\n{serial}\n--- stderr ---\n{stderr}",
            out.status.code(),
            started.elapsed()
        );
        eprintln!("{ctx}");
        (out.status.code(), serial, ctx)
    }

    /// Runs the guest under TCG and returns its serial output once every check passed.
    fn passes_under_tcg(&self, what: &str) -> String {
        let (status, serial, ctx) = self.run_tcg(what);
        assert_eq!(status, Some(i32::from(OK)), "{ctx}");
        assert!(serial.contains("ALL OK"), "{ctx}");
        assert!(!serial.contains("FAIL"), "{ctx}");
        serial
    }

    /// [`Case::passes_under_tcg`] for a guest that prints its memory map: the map must be
    /// the firmware's.
    fn passes_with_the_firmware_map(&self, what: &str) {
        let serial = self.passes_under_tcg(what);
        assert!(
            serial.contains(FIRMWARE_ENTRY),
            "{what}: the guest did not get the firmware's memory map:\n{serial}"
        );
    }
}

#[test]
fn linux64_elf_entry_under_tcg() {
    let case = Case::new(
        &initrd_bytes(300_001, 7),
        256 * MIB,
        ProtocolChoice::Linux64,
        linux64_elf,
        |e, p| e.gdt = Some((p.entry.gdt_base as u32, p.entry.gdt_limit)),
    );
    assert_eq!(case.plan.protocol, BootProtocol::Linux64);
    assert_eq!(case.plan.entry.rip, GUEST_ADDR);
    case.passes_with_the_firmware_map("linux64 ELF");
}

#[test]
fn pvh_elf32_entry_under_tcg() {
    let case = Case::new(
        &initrd_bytes(123_457, 11),
        128 * MIB,
        ProtocolChoice::Pvh,
        pvh_elf,
        |_, _| {},
    );
    assert_eq!(case.plan.protocol, BootProtocol::Pvh);
    case.passes_with_the_firmware_map("pvh ELF32");
}

fn bzimage_case(protocol: ProtocolChoice, memory: u64) -> Case {
    let case = Case::new(
        &initrd_bytes(77_777, 3),
        memory,
        protocol,
        conformance_bzimage,
        |e, p| {
            e.gdt = Some((p.entry.gdt_base as u32, p.entry.gdt_limit));
            e.code32_start = Some(BZ_LOAD as u32);
        },
    );
    let kernel = case
        .plan
        .segments
        .iter()
        .find(|s| s.name == "kernel")
        .unwrap();
    assert_eq!(kernel.addr, BZ_LOAD, "the builder honours pref_address");
    case
}

#[test]
fn bzimage_linux32_entry_under_tcg() {
    let case = bzimage_case(ProtocolChoice::Linux32, 512 * MIB);
    assert_eq!(case.plan.protocol, BootProtocol::Linux32);
    assert_eq!(case.plan.entry.rip, BZ_LOAD);
    case.passes_with_the_firmware_map("bzImage linux32");
}

#[test]
fn bzimage_linux64_entry_under_tcg() {
    let case = bzimage_case(ProtocolChoice::Linux64, 1024 * MIB);
    assert_eq!(case.plan.protocol, BootProtocol::Linux64);
    assert_eq!(case.plan.entry.rip, BZ_LOAD + 0x200);
    case.passes_with_the_firmware_map("bzImage linux64");
}

/// The harness can fail: a guest told to expect another command line reports the mismatch
/// and its failure status (0x11) becomes domboot's exit status 17.
#[test]
fn a_failing_guest_fails_under_tcg() {
    let case = Case::new(
        &initrd_bytes(1000, 5),
        128 * MIB,
        ProtocolChoice::Linux64,
        linux64_elf,
        |e, p| {
            e.gdt = Some((p.entry.gdt_base as u32, p.entry.gdt_limit));
            e.cmdline = "console=ttyS0 another command line".into();
        },
    );
    let (status, serial, ctx) = case.run_tcg("linux64 ELF expecting another command line");
    assert_eq!(status, Some(i32::from(BAD)), "{ctx}");
    assert!(serial.contains("FAIL: command line"), "{ctx}");
    assert!(!serial.contains("ALL OK"), "{ctx}");
}

/// The SMP guest with 4 vCPUs: under QEMU the MP table is qboot's (the guest scans the
/// BIOS area for it) and the APs, parked by the firmware, restart on the guest's INIT/SIPI.
#[test]
fn smp_four_vcpus_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let memory = 128 * MIB;
    let protocol = ProtocolChoice::Pvh;
    let plan = build_plan(
        dir.path(),
        &smp::smp_kernel(4, None),
        b"initrd",
        CMDLINE,
        memory,
        protocol,
    );
    assert_eq!(plan.protocol, BootProtocol::Pvh);
    let case = Case {
        dir,
        memory,
        protocol,
        cpus: 4,
        plan,
    };
    let serial = case.passes_under_tcg("smp, 4 vCPUs");
    assert!(serial.contains(&smp::smp_report(4)), "{serial}");
}
