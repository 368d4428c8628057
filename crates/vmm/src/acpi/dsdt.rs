//! The DSDT: the AML namespace. It holds what the fixed tables cannot say:
//!
//! - `\_S5_`, the soft-off sleep state, whose first element is the `SLP_TYP` a guest
//!   writes to the sleep control register to power off. Linux's `acpi_sleep_init` looks
//!   the package up; without it there is no `acpi_power_off`.
//! - `\_SB_.COM1`, the 16550 at 0x3F8–0x3FF on IRQ 4 (`PNP0501`), so the guest's serial
//!   driver finds it through ACPI as it would on real firmware.
//! - `\_SB_.COM2`-`COM4` when linked ([`crate::devices::serial_link`]): the same, at
//!   their PC ports and IRQs. On this hardware-reduced platform an ISA IRQ a device does
//!   not name is never set up, so legacy probing finds the UARTs but cannot open them
//!   (EIO). COM1 and COM3 share IRQ 4 (and COM2 and COM4 IRQ 3), so with COM3 or COM4
//!   described, the interrupts say they are shared.
//! - `\_SB_.RTC_`, the CMOS RTC at 0x70–0x71 on IRQ 8 (`PNP0B00`). Linux's rtc_cmos
//!   needs the device described: on a hardware-reduced platform no ISA interrupt is set
//!   up unless a device names it, and the fallback platform device fails to get IRQ 8
//!   ("probe of rtc_cmos failed with error -22", seen on the nested bench).
//! - `\_SB_.VR00`, `VR01`, ...: one `LNRO0005` device per virtio-mmio slot, its 4 KiB
//!   register window in `Memory32Fixed` and its interrupt in `_CRS`: what Linux's
//!   virtio_mmio driver matches through ACPI (Debian's kernels lack
//!   VIRTIO_MMIO_CMDLINE_DEVICES, so the command line cannot describe them).

use super::{OEM_ID, OEM_REVISION, table_id};
use crate::device_manager::virtio::Slot;
use crate::devices::{acpi_sleep, cmos, serial, serial_link};
use acpi_tables::Aml;
use acpi_tables::aml::{
    Device, EISAName, IO, Interrupt, Memory32Fixed, Name, Package, Path, ResourceTemplate, Scope,
};
use acpi_tables::sdt::Sdt;

/// Revision 2 and above: AML integers are 64 bits wide.
const REVISION: u8 = 2;
const HEADER_LEN: u32 = 36;
/// Bytes of I/O ports the 16550 decodes.
const COM_PORTS: u8 = 8;

/// AML already encoded (acpi_tables' objects borrow their children, so a helper that
/// builds a whole device hands back its bytes).
struct Encoded(Vec<u8>);

impl Aml for Encoded {
    fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
        sink.vec(&self.0);
    }
}

/// A `PNP0501` 16550 device named `name` at `base` on `irq`.
fn uart(name: &str, uid: u8, base: u16, irq: u32, shared: bool) -> Encoded {
    let io = IO::new(base, base, 1, COM_PORTS);
    // Consumer, edge-triggered, active-high: an ISA interrupt as the IOAPIC pin (GSI =
    // ISA IRQ, identity routing; see the MADT) sees it.
    let irq = Interrupt::new(true, true, false, shared, irq);
    let crs = Name::new(Path::new("_CRS"), &ResourceTemplate::new(vec![&io, &irq]));
    let hid = Name::new(Path::new("_HID"), &EISAName::new("PNP0501"));
    let uid = Name::new(Path::new("_UID"), &uid);
    let mut bytes = Vec::new();
    Device::new(Path::new(name), vec![&hid, &uid, &crs]).to_aml_bytes(&mut bytes);
    Encoded(bytes)
}

/// The DSDT's bytes, header and checksum included, describing the `virtio` devices and
/// the first `serial_links` of COM2-COM4 too.
pub fn build(virtio: &[Slot], serial_links: usize) -> Vec<u8> {
    let mut aml = Vec::new();
    // Package { SLP_TYPa, SLP_TYPb, reserved, reserved }: a hardware-reduced platform
    // uses only SLP_TYPa; the other entries are 0 as on real firmware.
    let s5_typ = acpi_sleep::S5_SLP_TYP;
    Name::new(
        Path::new("_S5_"),
        &Package::new(vec![&s5_typ, &0u8, &0u8, &0u8]),
    )
    .to_aml_bytes(&mut aml);

    let links = &serial_link::PORTS[..serial_links.min(serial_link::PORTS.len())];
    let shares_irq = |irq: u32| links.iter().filter(|&&(_, i)| i == irq).count() > 1;
    let com1 = uart(
        "COM1",
        0,
        serial::COM1_BASE,
        serial::COM1_IRQ,
        links.iter().any(|&(_, i)| i == serial::COM1_IRQ),
    );
    let coms: Vec<Encoded> = links
        .iter()
        .zip(["COM2", "COM3", "COM4"])
        .zip(1u8..)
        .map(|((&(base, irq), name), uid)| {
            uart(
                name,
                uid,
                base,
                irq,
                irq == serial::COM1_IRQ || shares_irq(irq),
            )
        })
        .collect();

    let rtc_hid = Name::new(Path::new("_HID"), &EISAName::new("PNP0B00"));
    let rtc_io = IO::new(cmos::INDEX_PORT, cmos::INDEX_PORT, 1, 2);
    let rtc_irq = Interrupt::new(true, true, false, false, cmos::RTC_IRQ);
    let rtc_crs = Name::new(
        Path::new("_CRS"),
        &ResourceTemplate::new(vec![&rtc_io, &rtc_irq]),
    );
    let rtc = Device::new(Path::new("RTC_"), vec![&rtc_hid, &rtc_crs]);
    let virtio_devices: Vec<VirtioMmio> = virtio.iter().enumerate().map(VirtioMmio::new).collect();
    let mut children: Vec<&dyn Aml> = vec![&com1];
    children.extend(coms.iter().map(|c| c as &dyn Aml));
    children.push(&rtc);
    children.extend(virtio_devices.iter().map(|d| d as &dyn Aml));
    Scope::new(Path::new("\\_SB_"), children).to_aml_bytes(&mut aml);

    let mut sdt = Sdt::new(
        *b"DSDT",
        HEADER_LEN,
        REVISION,
        OEM_ID,
        table_id(b"DSDT"),
        OEM_REVISION,
    );
    sdt.append_slice(&aml);
    sdt.as_slice().to_vec()
}

/// A virtio-mmio device node: `Device (VRnn) { _HID "LNRO0005", _UID n, _CRS { Memory32Fixed
/// (window), Interrupt (edge, active-high: the irqfd pulses the IOAPIC pin) } }`.
struct VirtioMmio {
    name: String,
    uid: u32,
    slot: Slot,
}

impl VirtioMmio {
    fn new((index, slot): (usize, &Slot)) -> VirtioMmio {
        VirtioMmio {
            // Two hex digits: the slots number far fewer than 256.
            name: format!("VR{:02X}", index & 0xFF),
            uid: index as u32,
            slot: *slot,
        }
    }
}

impl Aml for VirtioMmio {
    fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
        // The window lies below 4 GiB (the MMIO gap), so it fits a 32-bit descriptor.
        let window = Memory32Fixed::new(true, self.slot.addr as u32, self.slot.len as u32);
        let irq = Interrupt::new(true, true, false, false, self.slot.gsi);
        let hid = Name::new(Path::new("_HID"), &"LNRO0005");
        let uid = Name::new(Path::new("_UID"), &self.uid);
        let crs = Name::new(
            Path::new("_CRS"),
            &ResourceTemplate::new(vec![&window, &irq]),
        );
        Device::new(Path::new(&self.name), vec![&hid, &uid, &crs]).to_aml_bytes(sink);
    }
}
