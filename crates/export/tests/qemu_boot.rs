//! Boots exported images under QEMU (TCG) and checks what the freestanding guests report.
//!
//! Command used (plus `-device isa-debug-exit,iobase=0xf4,iosize=0x04` so the guest ends
//! QEMU with a status):
//! `qemu-system-x86_64 -accel tcg -M pc -m 512 -no-reboot -nographic -nodefaults -serial stdio -kernel image.elf`

mod common;

use common::*;

macro_rules! require_qemu {
    () => {
        if !qemu_available() {
            eprintln!("qemu-system-x86_64 not installed: skipping");
            return;
        }
    };
}

/// Parses "top=XXXXXXXX" (hex) out of the guest's line.
fn field(serial: &str, key: &str) -> Option<u64> {
    let at = serial.find(&format!("{key}="))? + key.len() + 1;
    let hex: String = serial[at..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    u64::from_str_radix(&hex, 16).ok()
}

/// The highest RAM end the guest saw is the loader's, not the plan's: within the top
/// 1 MiB of the RAM QEMU was given (SeaBIOS reserves the last 128 KiB for its tables,
/// microvm's firmware the last page).
fn assert_top(serial: &str, mem_mib: u64) {
    let top = field(serial, "top").unwrap_or_else(|| panic!("no top= in {serial}"));
    assert!(
        (mem_mib - 1) * MIB <= top && top <= mem_mib * MIB,
        "guest saw RAM up to {top:#x} with -m {mem_mib}:\n{serial}"
    );
}

#[test]
fn linux32_guest_adopts_the_loaders_memory_map_at_any_ram_size() {
    require_qemu!();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("linux32.elf");
    // Built for 512 MiB; booted with 256 and 1024 the guest sees the loader's RAM size.
    let elf = export(&linux_plan(false, 512 * MIB), &image);
    assert!(elf.stub().staged.contains(&"boot_params".to_string()));
    for mem in [256u64, 512, 1024] {
        let run = qemu(&image, "pc", mem, &[]);
        assert!(!run.timed_out, "QEMU hung:\n{}", run.serial);
        assert_eq!(run.status, Some(QEMU_OK), "{}", run.serial);
        assert!(
            run.serial.contains("GUEST32 esi=00007000 ebp=12345678"),
            "{}",
            run.serial
        );
        assert!(run.serial.contains(" END"), "{}", run.serial);
        assert_top(&run.serial, mem);
        let count = field(&run.serial, "e820").unwrap();
        assert!((1..=128).contains(&count), "{}", run.serial);
        // QEMU's PVH ROM hands over the ACPI RSDP; the stub forwards it.
        assert_ne!(field(&run.serial, "rsdp"), Some(0), "{}", run.serial);
    }
}

#[test]
fn linux64_guest_enters_long_mode_with_the_plans_registers() {
    require_qemu!();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("linux64.elf");
    let elf = export(&linux_plan(true, 512 * MIB), &image);
    assert!(elf.stub().staged.contains(&"page_tables".to_string()));
    let run = qemu(&image, "pc", 512, &[]);
    assert!(!run.timed_out, "QEMU hung:\n{}", run.serial);
    assert_eq!(run.status, Some(QEMU_OK), "{}", run.serial);
    assert!(
        run.serial
            .contains("GUEST64 rsi=0000000000007000 ebp=12345678"),
        "{}",
        run.serial
    );
    assert_top(&run.serial, 512);
}

#[test]
fn pvh_guest_gets_start_info_with_the_loaders_memmap_and_its_cmdline() {
    require_qemu!();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("pvh.elf");
    export(&pvh_plan(512 * MIB, "console=ttyS0 hello-pvh"), &image);
    let run = qemu(&image, "pc", 384, &[]);
    assert!(!run.timed_out, "QEMU hung:\n{}", run.serial);
    assert_eq!(run.status, Some(QEMU_OK), "{}", run.serial);
    assert!(run.serial.contains("PVH magic ok"), "{}", run.serial);
    assert!(field(&run.serial, "memmap").unwrap() > 0, "{}", run.serial);
    assert_top(&run.serial, 384);
    assert!(
        run.serial.contains("cmdline=console=ttyS0 hello-pvh END"),
        "{}",
        run.serial
    );
}

#[test]
fn microvm_boots_the_same_image() {
    require_qemu!();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("linux64-microvm.elf");
    export(&linux_plan(true, 512 * MIB), &image);
    let run = qemu(&image, "microvm", 256, &[]);
    assert!(!run.timed_out, "QEMU hung:\n{}", run.serial);
    assert_eq!(run.status, Some(QEMU_OK), "{}", run.serial);
    assert!(
        run.serial.contains("GUEST64 rsi=0000000000007000"),
        "{}",
        run.serial
    );
    assert_top(&run.serial, 256);
}

#[test]
fn too_little_ram_is_reported_and_qemu_exits_by_itself() {
    require_qemu!();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("big.elf");
    let debugcon = dir.path().join("debugcon.txt");
    let mut plan = linux_plan(false, 1024 * MIB);
    plan.segments.push(segment(
        "initrd",
        600 * MIB,
        b"initrd bytes".to_vec(),
        0x1000,
    ));
    export(&plan, &image);
    let arg = format!("file:{}", debugcon.display());
    let run = qemu(&image, "pc", 256, &["-debugcon", &arg]);
    assert!(
        !run.timed_out,
        "QEMU did not exit by itself:\n{}",
        run.serial
    );
    // The stub ends QEMU through the debug-exit device with a failing status, not 0.
    let no_ram = i32::from(domboot_export::NO_RAM_EXIT) << 1 | 1;
    assert_eq!(run.status, Some(no_ram), "{}", run.serial);
    assert_ne!(run.status, Some(0));
    let expected = "domboot: this image needs RAM at 0x25800000-0x25801000 (initrd) but the loader's memory map has none there; give the VM at least 1024 MiB";
    assert!(run.serial.contains(expected), "{}", run.serial);
    assert!(!run.serial.contains("GUEST32"), "{}", run.serial);
    let port_e9 = std::fs::read_to_string(&debugcon).unwrap();
    assert!(port_e9.contains(expected), "{port_e9}");
    // The same image boots where it fits.
    let run = qemu(&image, "pc", 1024, &[]);
    assert_eq!(run.status, Some(QEMU_OK), "{}", run.serial);
    assert_top(&run.serial, 1024);
}

#[test]
fn segments_above_4gib_are_checked_with_64_bit_arithmetic() {
    require_qemu!();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("high.elf");
    // Built for 6 GiB: -M pc puts 3 GiB below 4 GiB and the rest at 4 GiB and up.
    let mut plan = linux_plan(false, 3072 * MIB);
    plan.memory_size = 6144 * MIB;
    plan.e820.push(domboot_builder::E820Entry {
        address: 4096 * MIB,
        size: 3072 * MIB,
        kind: domboot_builder::E820Type::Ram,
    });
    plan.segments.push(segment(
        "initrd",
        4608 * MIB,
        b"high initrd".to_vec(),
        0x1000,
    ));
    export(&plan, &image);
    let run = qemu(&image, "pc", 1024, &[]);
    assert!(
        !run.timed_out,
        "QEMU did not exit by itself:\n{}",
        run.serial
    );
    assert!(
        run.serial.contains(
            "needs RAM at 0x120000000-0x120001000 (initrd) but the loader's memory map has none there; give the VM at least 6144 MiB"
        ),
        "{}",
        run.serial
    );
    let run = qemu(&image, "pc", 6144, &[]);
    assert_eq!(run.status, Some(QEMU_OK), "{}", run.serial);
    assert!(
        run.serial.contains("GUEST32 esi=00007000"),
        "{}",
        run.serial
    );
}

#[test]
fn stub_placed_above_2gib_runs() {
    require_qemu!();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("stub-high.elf");
    let mut plan = linux_plan(false, 3072 * MIB);
    plan.reservations.push(domboot_builder::Reservation {
        name: "busy".into(),
        address: MIB,
        size: 2559 * MIB,
    });
    let elf = export(&plan, &image);
    assert_eq!(elf.stub().base, 2560 * MIB);
    let run = qemu(&image, "pc", 3072, &[]);
    assert_eq!(run.status, Some(QEMU_OK), "{}", run.serial);
    assert!(
        run.serial.contains("GUEST32 esi=00007000"),
        "{}",
        run.serial
    );
    assert_top(&run.serial, 3072);
}
