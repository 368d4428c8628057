//! The PC's legacy devices as bus devices, and their registration on the port bus.
//!
//! | ports         | device                                                            |
//! |---------------|-------------------------------------------------------------------|
//! | 0x3F8-0x3FF   | COM1 16550A, IRQ 4 through an irqfd ([`serial`])                  |
//! | 0x2F8, 0x3E8, 0x2E8 | COM2-COM4 (IRQ 3, 4, 3), only when linked to sockets ([`crate::devices::serial_link`], added by [`super::DeviceManager::link_serial_ports`]) |
//! | 0x60, 0x64    | i8042 with nothing attached, IRQ 1; 0xFE to 0x64 resets ([`i8042`]) |
//! | 0xF4-0xF7     | debug exit, QEMU isa-debug-exit convention ([`debug_exit`])      |
//! | 0x70, 0x71    | CMOS RTC with the host's time ([`cmos`])                          |
//! | 0xCF8-0xCFF   | PCI configuration mechanism #1: a lone host bridge ([`pci_host`]); a byte write to 0xCF9 is the reset control register (bit 2, RST_CPU, resets) |
//! | 0x80          | POST code: ignored                                                |
//! | 0x600, 0x601  | ACPI sleep control/status, with ACPI on: S5 powers off ([`acpi_sleep`]) |
//! | in KVM        | PIC 0x20/0xA0, PIT 0x40-0x43, speaker 0x61, ELCR, IOAPIC, LAPIC   |

use crate::Outcome;
use crate::bus::{Bus, BusDevice, BusError, Flow};
use crate::devices::{acpi_sleep, cmos, debug_exit, i8042, pci_host, serial};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use vmm_sys_util::eventfd::EventFd;

pub const RESET_CONTROL_PORT: u16 = 0xCF9;
const RESET_CONTROL_RST_CPU: u8 = 1 << 2;
pub const POST_PORT: u16 = 0x80;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A device is plain state: if a thread panicked holding it, the state is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// COM1.
pub struct SerialPort {
    pub uart: Mutex<serial::Uart>,
    /// Output bytes the sink refused (a closed stdout, a full disk).
    pub lost: AtomicU64,
}

impl BusDevice for SerialPort {
    fn read(&self, offset: u64, data: &mut [u8]) {
        serial::bus_read(&self.uart, offset, data);
    }
    fn write(&self, offset: u64, data: &[u8]) -> Flow {
        serial::bus_write(&self.uart, &self.lost, offset, data);
        Flow::Continue
    }
}

/// The i8042 keyboard controller, at 0x60 and 0x64 (two ranges, one device).
pub struct Keyboard {
    pub state: Mutex<i8042::I8042>,
    /// Raises IRQ 1 (an irqfd).
    pub irq: EventFd,
}

impl Keyboard {
    fn port(offset: u64, base: u16) -> u16 {
        base + offset as u16
    }
}

/// The i8042's data port (0x60) and command port (0x64) are one device seen at two places.
struct KeyboardPort {
    kbd: Arc<Keyboard>,
    port: u16,
}

impl BusDevice for KeyboardPort {
    fn read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
        if let Some(b) = data.first_mut() {
            *b = lock(&self.kbd.state).read(Keyboard::port(offset, self.port));
        }
    }
    fn write(&self, offset: u64, data: &[u8]) -> Flow {
        let value = data.first().copied().unwrap_or(0);
        let fx = lock(&self.kbd.state).write(Keyboard::port(offset, self.port), value);
        if fx.reset {
            return Flow::Stop(Outcome::Reset);
        }
        if fx.kbd_irq {
            let _ = self.kbd.irq.write(1);
        }
        Flow::Continue
    }
}

struct Rtc(Mutex<cmos::Cmos>);

impl BusDevice for Rtc {
    fn read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
        if let Some(b) = data.first_mut() {
            *b = lock(&self.0).read(cmos::INDEX_PORT + offset as u16);
        }
    }
    fn write(&self, offset: u64, data: &[u8]) -> Flow {
        let value = data.first().copied().unwrap_or(0);
        lock(&self.0).write(cmos::INDEX_PORT + offset as u16, value);
        Flow::Continue
    }
}

/// 0xCF8-0xCFF: the PCI configuration ports, and at 0xCF9 (byte access only) the reset
/// control register, which chipsets overlay on the address register.
struct PciConfigIo(Mutex<pci_host::PciHost>);

impl PciConfigIo {
    fn is_reset_control(port: u16, len: usize) -> bool {
        port == RESET_CONTROL_PORT && len == 1
    }
}

impl BusDevice for PciConfigIo {
    fn read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
        let port = pci_host::ADDRESS_PORT + offset as u16;
        if !Self::is_reset_control(port, data.len()) {
            lock(&self.0).read(port, data);
        }
    }
    fn write(&self, offset: u64, data: &[u8]) -> Flow {
        let port = pci_host::ADDRESS_PORT + offset as u16;
        if Self::is_reset_control(port, data.len()) {
            if data[0] & RESET_CONTROL_RST_CPU != 0 {
                return Flow::Stop(Outcome::Reset);
            }
        } else {
            lock(&self.0).write(port, data);
        }
        Flow::Continue
    }
}

struct DebugExit;

impl BusDevice for DebugExit {
    fn read(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
    }
    fn write(&self, _offset: u64, data: &[u8]) -> Flow {
        Flow::Stop(Outcome::DebugExit(debug_exit::status(data)))
    }
}

/// Port 0x80: firmware and old kernels write progress codes (and use it as a delay).
struct PostCode;

impl BusDevice for PostCode {
    fn read(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
    }
    fn write(&self, _offset: u64, _data: &[u8]) -> Flow {
        Flow::Continue
    }
}

struct AcpiSleep {
    verbose: bool,
}

impl BusDevice for AcpiSleep {
    fn read(&self, _offset: u64, data: &mut [u8]) {
        acpi_sleep::read(data);
    }
    fn write(&self, offset: u64, data: &[u8]) -> Flow {
        match acpi_sleep::write(acpi_sleep::SLEEP_CONTROL_PORT + offset as u16, data) {
            acpi_sleep::Request::PowerOff => return Flow::Stop(Outcome::PowerOff),
            acpi_sleep::Request::Ignored(what) if self.verbose => {
                eprintln!("domboot-vmm: ignored {what}");
            }
            _ => {}
        }
        Flow::Continue
    }
}

/// Puts the legacy devices on `pio`; the ACPI sleep registers only with `acpi` (the
/// FADT names them then).
pub fn register(
    pio: &mut Bus,
    serial: Arc<SerialPort>,
    kbd_irq: EventFd,
    acpi: bool,
    verbose: bool,
) -> Result<(), BusError> {
    pio.insert("COM1", serial::COM1_BASE.into(), 8, serial)?;
    let kbd = Arc::new(Keyboard {
        state: Mutex::new(i8042::I8042::default()),
        irq: kbd_irq,
    });
    for port in [i8042::DATA_PORT, i8042::COMMAND_PORT] {
        let dev = Arc::new(KeyboardPort {
            kbd: kbd.clone(),
            port,
        });
        pio.insert("i8042", port.into(), 1, dev)?;
    }
    pio.insert(
        "CMOS RTC",
        cmos::INDEX_PORT.into(),
        2,
        Arc::new(Rtc(Mutex::new(cmos::Cmos::default()))),
    )?;
    pio.insert(
        "PCI configuration ports",
        pci_host::ADDRESS_PORT.into(),
        8,
        Arc::new(PciConfigIo(Mutex::new(pci_host::PciHost::default()))),
    )?;
    pio.insert(
        "debug exit",
        debug_exit::DEBUG_EXIT_PORT.into(),
        debug_exit::DEBUG_EXIT_SIZE.into(),
        Arc::new(DebugExit),
    )?;
    pio.insert("POST code", POST_PORT.into(), 1, Arc::new(PostCode))?;
    if acpi {
        pio.insert(
            "ACPI sleep registers",
            acpi_sleep::SLEEP_CONTROL_PORT.into(),
            2,
            Arc::new(AcpiSleep { verbose }),
        )?;
    }
    Ok(())
}
