//! ACPI on this machine's /dev/kvm: a freestanding guest finds the RSDP by scanning the
//! BIOS area, checks it against what its boot protocol handed over, walks the XSDT with
//! every checksum, counts the MADT's processors, and powers the machine off through the
//! FADT's sleep control register; the run must end as a power-off with status 0. Also:
//! the tables as ACPICA's disassembler (`iasl -d`) reads them.

mod common;

use common::*;
use domboot_builder::{BootPlan, ProtocolChoice};
use domboot_conformance::acpi::{AcpiBoot, SleepWrite, acpi_guest};
use domboot_vmm::Outcome;
use domboot_vmm::acpi;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CMDLINE: &str = "console=ttyS0 domboot.test=acpi";

fn plan(kind: AcpiBoot, cpus: u32, sleep: SleepWrite) -> BootPlan {
    let dir = tempfile::tempdir().unwrap();
    let stack = (GUEST_ADDR + IMAGE_MEMSZ) as u32;
    let (kernel, protocol) = match kind {
        AcpiBoot::Linux64 => {
            let code = acpi_guest(kind, GUEST_ADDR, cpus, sleep, stack).assemble();
            (elf64(&code, GUEST_ADDR, IMAGE_MEMSZ), ProtocolChoice::Auto)
        }
        AcpiBoot::Pvh => {
            let code = acpi_guest(kind, GUEST_ADDR, cpus, sleep, stack).assemble();
            (
                elf32_pvh(&code, GUEST_ADDR as u32, IMAGE_MEMSZ as u32),
                ProtocolChoice::Auto,
            )
        }
    };
    build_plan(dir.path(), &kernel, b"initrd", CMDLINE, 128 * MIB, protocol)
}

fn run_with(plan: &BootPlan, cpus: u8, acpi: bool) -> Run {
    run_acpi(plan, cpus, Duration::from_secs(30), acpi)
}

fn powers_off(kind: AcpiBoot, cpus: u8) {
    let p = plan(kind, cpus.into(), SleepWrite::PowerOff);
    let r = run_with(&p, cpus, true);
    assert_eq!(
        r.outcome,
        Outcome::PowerOff,
        "{kind:?} with {cpus} vCPU(s): {}\n{}",
        r.outcome.describe(),
        r.serial
    );
    assert_eq!(r.outcome.exit_code(), 0);
    assert!(r.outcome.describe().contains("power-off"));
    assert!(r.serial.contains("ACPI OK"), "{}", r.serial);
    assert!(
        r.serial
            .contains(&format!("MADT enabled local APICs={cpus:08X}")),
        "{}",
        r.serial
    );
    assert!(!r.serial.contains("FAIL"), "{}", r.serial);
}

#[test]
fn linux64_guest_powers_off_through_the_fadt_with_1_vcpu() {
    powers_off(AcpiBoot::Linux64, 1);
}

#[test]
fn linux64_guest_powers_off_through_the_fadt_with_4_vcpus() {
    powers_off(AcpiBoot::Linux64, 4);
}

#[test]
fn pvh_guest_powers_off_through_the_fadt_with_1_vcpu() {
    powers_off(AcpiBoot::Pvh, 1);
}

#[test]
fn pvh_guest_powers_off_through_the_fadt_with_4_vcpus() {
    powers_off(AcpiBoot::Pvh, 4);
}

/// Other sleep types, SLP_EN without S5, S5 without SLP_EN and all-ones do not stop the
/// VM; the guest goes on and leaves through the debug-exit port.
#[test]
fn garbage_to_the_sleep_registers_does_not_stop_the_vm() {
    for kind in [AcpiBoot::Linux64, AcpiBoot::Pvh] {
        let p = plan(kind, 2, SleepWrite::Garbage);
        let r = run_with(&p, 2, true);
        assert_eq!(
            r.outcome,
            Outcome::DebugExit(OK),
            "{kind:?}: {}\n{}",
            r.outcome.describe(),
            r.serial
        );
        assert!(r.serial.contains("ACPI OK"), "{}", r.serial);
        assert!(r.serial.contains("still running"), "{}", r.serial);
    }
}

/// `VmConfig::acpi = false`: no RSDP anywhere, nothing in boot_params, and the guest says
/// so.
#[test]
fn without_acpi_there_is_no_rsdp() {
    let p = plan(AcpiBoot::Linux64, 1, SleepWrite::PowerOff);
    let r = run_with(&p, 1, false);
    assert_eq!(r.outcome, Outcome::DebugExit(BAD), "{}", r.serial);
    assert!(r.serial.contains("FAIL: no RSDP"), "{}", r.serial);
}

/// Runs an ACPICA tool (Debian package acpica-tools); a missing tool fails the test with
/// what to do, it never skips.
fn acpica(tool: &str, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(tool)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {tool} ({e}): it comes with ACPICA's tools (Debian package \
                 acpica-tools); run scripts/setup.sh, or apt-get install acpica-tools"
            )
        });
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}\n{log}",
        out.status
    );
    log
}

/// Disassembles `bytes` (one table) with `iasl -d` in `dir`; returns the .dsl text.
fn disassemble(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let file = format!("{name}.dat");
    std::fs::write(dir.join(&file), bytes).unwrap();
    let log = acpica("iasl", dir, &["-d", &file]);
    let dsl = std::fs::read_to_string(dir.join(format!("{name}.dsl")))
        .unwrap_or_else(|e| panic!("iasl wrote no {name}.dsl ({e}):\n{log}"));
    // iasl reports a bad checksum or length as a warning and disassembles anyway.
    for bad in ["incorrect checksum", "invalid", "warning", "error"] {
        assert!(
            !log.to_lowercase().contains(bad),
            "iasl on {name}: {bad}:\n{log}"
        );
    }
    dsl
}

/// acpidump's text format, which acpixtract reads.
fn acpidump_text(tables: &acpi::AcpiTables) -> String {
    let mut out = String::new();
    for t in &tables.tables {
        out.push_str(&format!("{} @ 0x{:016X}\n", t.name, t.addr));
        for (i, chunk) in t.bytes.chunks(16).enumerate() {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02X}")).collect();
            let ascii: String = chunk
                .iter()
                .map(|&b| {
                    if (32..127).contains(&b) {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            out.push_str(&format!(
                "    {:04X}: {:<47}  {ascii}\n",
                i * 16,
                hex.join(" ")
            ));
        }
        out.push('\n');
    }
    out
}

/// The tables through ACPICA's own tools: iasl disassembles every table with a standard
/// header (iasl 20200925 refuses a bare RSDP, which has none: "does not contain a valid
/// ACPI table"), acpixtract lists all five from an acpidump-format file, and acpiexec
/// loads FADT, DSDT and MADT into a namespace and evaluates `\_S5`.
#[test]
fn acpica_tools_read_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    let cpus = 4u8;
    let tables = acpi::build(cpus, &[]).unwrap();
    let mut dsl = std::collections::HashMap::new();
    for t in tables.tables.iter().filter(|t| t.name != "RSDP") {
        dsl.insert(t.name, disassemble(dir.path(), t.name, &t.bytes));
    }

    let dsdt = &dsl["DSDT"];
    assert!(dsdt.contains("_S5_"), "{dsdt}");
    assert!(dsdt.contains("EisaId (\"PNP0501\")"), "{dsdt}");
    assert!(dsdt.contains("0x03F8"), "{dsdt}");
    // The CMOS RTC, so Linux's rtc_cmos gets its IRQ 8 on a hardware-reduced platform.
    assert!(dsdt.contains("EisaId (\"PNP0B00\")"), "{dsdt}");
    assert!(dsdt.contains("0x0070"), "{dsdt}");

    let madt = &dsl["APIC"];
    assert_eq!(
        madt.matches("[Processor Local APIC]").count(),
        usize::from(cpus),
        "{madt}"
    );
    assert_eq!(
        madt.matches("Processor Enabled : 1").count(),
        usize::from(cpus),
        "{madt}"
    );
    for id in 0..cpus {
        assert!(
            madt.contains(&format!("Local Apic ID : {id:02X}")),
            "APIC ID {id}:\n{madt}"
        );
    }
    for field in [
        "Local Apic Address : FEE00000",
        "PC-AT Compatibility : 1",
        "[I/O APIC]",
        "Address : FEC00000",
    ] {
        assert!(madt.contains(field), "{field}:\n{madt}");
    }
    assert!(!madt.contains("[Interrupt Source Override]"), "{madt}");

    let fadt = &dsl["FACP"];
    let dsdt_addr = tables.get("DSDT").unwrap().addr;
    for field in [
        "Revision : 06".to_string(),
        "Hardware Reduced (V5) : 1".into(),
        "Reset Register Supported (V2) : 1".into(),
        "Address : 0000000000000CF9".into(),
        "Value to cause reset : 06".into(),
        "Sleep Control Register : [Generic Address Structure]".into(),
        "Address : 0000000000000600".into(),
        "Address : 0000000000000601".into(),
        "8042 Present on ports 60/64 (V2) : 0".into(),
        "CMOS RTC Not Present (V5) : 0".into(),
        "VGA Not Present (V4) : 1".into(),
        format!("DSDT Address : {dsdt_addr:016X}"),
    ] {
        assert!(fadt.contains(&field), "{field}:\n{fadt}");
    }

    let xsdt = &dsl["XSDT"];
    for (i, name) in ["FACP", "APIC"].iter().enumerate() {
        let addr = tables.get(name).unwrap().addr;
        assert!(
            xsdt.contains(&format!("ACPI Table Address   {i} : {addr:016X}")),
            "{name}:\n{xsdt}"
        );
    }

    std::fs::write(dir.path().join("dump.txt"), acpidump_text(&tables)).unwrap();
    let list = acpica("acpixtract", dir.path(), &["-l", "dump.txt"]);
    assert!(list.contains("Found 5 ACPI tables"), "{list}");
    assert!(
        list.contains("RSDP  0x00000024  0x02  \"DOMBOT\""),
        "{list}"
    );

    let out = acpica(
        "acpiexec",
        dir.path(),
        &["-b", "evaluate \\_S5", "FACP.dat", "DSDT.dat", "APIC.dat"],
    );
    assert!(out.contains("[Package] Contains 4 Elements"), "{out}");
    assert!(out.contains("[Integer] = 0000000000000005"), "{out}");
}
