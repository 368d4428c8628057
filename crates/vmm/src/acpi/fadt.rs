//! The FADT ("FACP", revision 6.5): a hardware-reduced ACPI platform (no PM1 blocks, no
//! PM timer, no GPEs, no SCI, no FACS), whose power-off path is the sleep control register
//! and whose reset path is the reset register.

use super::{OEM_ID, OEM_REVISION, table_id};
use crate::devices::{RESET_CONTROL_PORT, acpi_sleep};
use acpi_tables::Aml;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};

/// Offsets in the FADT (ACPI 6.5 §5.2.9, Table 5.9), for readers and tests.
pub const OFF_DSDT: usize = 40;
pub const OFF_SCI_INT: usize = 46;
pub const OFF_IAPC_BOOT_ARCH: usize = 109;
pub const OFF_FLAGS: usize = 112;
pub const OFF_RESET_REG: usize = 116;
pub const OFF_RESET_VALUE: usize = 128;
pub const OFF_X_DSDT: usize = 140;
pub const OFF_SLEEP_CONTROL_REG: usize = 244;
pub const OFF_SLEEP_STATUS_REG: usize = 256;
/// Length of a revision 6 FADT (up to and including the hypervisor vendor identity).
pub const LEN: usize = 276;

pub const FLAG_RESET_REG_SUP: u32 = 1 << 10;
pub const FLAG_HW_REDUCED_ACPI: u32 = 1 << 20;

/// IA-PC boot architecture flags (Table 5.10).
pub const IAPC_LEGACY_DEVICES: u16 = 1 << 0;
pub const IAPC_8042: u16 = 1 << 1;
pub const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;
pub const IAPC_MSI_NOT_SUPPORTED: u16 = 1 << 3;
pub const IAPC_PCIE_ASPM_CONTROLS: u16 = 1 << 4;
pub const IAPC_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;

/// What the machine has, in IA-PC boot architecture terms:
///
/// - `LEGACY_DEVICES`: COM1 and the i8042 are ISA-style devices at fixed ports.
/// - `8042` is left clear, as Firecracker does: domboot's i8042 only takes the reset
///   command (0xFE to port 0x64) and has no controller configuration byte, so a guest that
///   probes it gets "Can't read CTR" after 1-4 s of retries (measured with Debian's kernel
///   on the nested bench). Without the flag Linux marks the controller absent and never
///   probes it; the reset command still works (and is what the reset vector uses).
/// - `VGA_NOT_PRESENT`: no VGA, so the guest must not poke 0x3C0 or 0xA0000 for one
///   (Firecracker and Xen's PVH tables set it too).
/// - `MSI_NOT_SUPPORTED` and `PCIE_ASPM_CONTROLS` (do not touch ASPM): there is no PCI at
///   all; Firecracker sets both for the same reason.
/// - `CMOS_RTC_NOT_PRESENT` is left clear: ports 0x70/0x71 are a CMOS RTC with the host's
///   time ([`crate::devices::cmos`]), which kernels without kvm-clock need for the date.
pub const IAPC_BOOT_ARCH: u16 =
    IAPC_LEGACY_DEVICES | IAPC_VGA_NOT_PRESENT | IAPC_MSI_NOT_SUPPORTED | IAPC_PCIE_ASPM_CONTROLS;

/// The value written to the reset register: RST_CPU | SYS_RST, a hard reset through
/// 0xCF9, which domboot ends the run on (bit 2 is what it looks at).
pub const RESET_VALUE: u8 = 0x06;

/// "DOMBOOT " as the 64-bit hypervisor vendor identity.
const HYPERVISOR_VENDOR: u64 = u64::from_le_bytes(*b"DOMBOOT ");

fn io_byte(port: u16) -> GAS {
    GAS::new(
        AddressSpace::SystemIo,
        8,
        0,
        AccessSize::ByteAccess,
        port.into(),
    )
}

/// The FADT pointing at the DSDT at `dsdt` (through X_DSDT only).
pub fn build(dsdt: u64) -> Vec<u8> {
    let mut f = FADTBuilder::new(OEM_ID, table_id(b"FACP"), OEM_REVISION)
        .dsdt_64(dsdt)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::ResetRegSup)
        // No fixed-feature power or sleep button (a HW-reduced platform has none).
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton);
    f.iapc_boot_arch = IAPC_BOOT_ARCH.into();
    f.reset_reg = io_byte(RESET_CONTROL_PORT);
    f.reset_value = RESET_VALUE;
    f.sleep_control_reg = io_byte(acpi_sleep::SLEEP_CONTROL_PORT);
    f.sleep_status_reg = io_byte(acpi_sleep::SLEEP_STATUS_PORT);
    f.hypervisor_vendor_identity = HYPERVISOR_VENDOR.into();
    let mut out = Vec::with_capacity(LEN);
    f.finalize().to_aml_bytes(&mut out);
    out
}
