//! The legacy devices and the I/O bus that dispatches port and MMIO exits to them.
//!
//! | ports         | device                                                            |
//! |---------------|-------------------------------------------------------------------|
//! | 0x3F8-0x3FF   | COM1 16550A, IRQ 4 through an irqfd ([`serial`])                  |
//! | 0x60, 0x64    | i8042 with nothing attached, IRQ 1; 0xFE to 0x64 resets ([`i8042`]) |
//! | 0xF4-0xF7     | debug exit, QEMU isa-debug-exit convention ([`debug_exit`])      |
//! | 0x70, 0x71    | CMOS RTC with the host's time ([`cmos`])                          |
//! | 0xCF8, 0xCFC-0xCFF | PCI configuration mechanism #1: a lone host bridge ([`pci_host`]) |
//! | 0xCF9         | reset control register: a write with bit 2 (RST_CPU) set resets   |
//! | 0x80          | POST code: ignored                                                |
//! | 0x600, 0x601  | ACPI sleep control/status, with ACPI on: S5 powers off ([`acpi_sleep`]) |
//! | in KVM        | PIC 0x20/0xA0, PIT 0x40-0x43, speaker 0x61, ELCR, IOAPIC, LAPIC   |
//!
//! Anything else reads as all ones and ignores writes, like an empty ISA bus; such accesses
//! are counted (and logged with `verbose`), never fatal.

pub mod acpi_sleep;
pub mod cmos;
pub mod debug_exit;
pub mod i8042;
pub mod panic_watch;
pub mod pci_host;
pub mod serial;

use crate::Outcome;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub const RESET_CONTROL_PORT: u16 = 0xCF9;
const RESET_CONTROL_RST_CPU: u8 = 1 << 2;
pub const POST_PORT: u16 = 0x80;
/// How many unhandled accesses `verbose` logs one by one.
const LOG_LIMIT: u64 = 32;

/// What the vCPU does after an access.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop(Outcome),
}

pub struct Devices {
    pub serial: Mutex<serial::Uart>,
    pub i8042: Mutex<i8042::I8042>,
    /// Raises IRQ 1 (the i8042's keyboard interrupt) when set.
    pub kbd_irq: Option<vmm_sys_util::eventfd::EventFd>,
    pub cmos: Mutex<cmos::Cmos>,
    pub pci_host: Mutex<pci_host::PciHost>,
    /// Serial output bytes the sink refused (a closed stdout, a full disk).
    pub serial_lost: AtomicU64,
    pub unhandled_pio: AtomicU64,
    pub unhandled_mmio: AtomicU64,
    pub verbose: bool,
    /// The ACPI sleep registers answer (set when the VM has ACPI tables that name them).
    pub acpi_sleep: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A device is plain state: if a thread panicked holding it, the state is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Devices {
    pub fn new(uart: serial::Uart, verbose: bool) -> Devices {
        Devices {
            serial: Mutex::new(uart),
            i8042: Mutex::new(i8042::I8042::default()),
            kbd_irq: None,
            cmos: Mutex::new(cmos::Cmos::default()),
            pci_host: Mutex::new(pci_host::PciHost::default()),
            serial_lost: AtomicU64::new(0),
            unhandled_pio: AtomicU64::new(0),
            unhandled_mmio: AtomicU64::new(0),
            verbose,
            acpi_sleep: false,
        }
    }

    /// IRQ 1 goes through this eventfd (an irqfd).
    pub fn with_kbd_irq(mut self, irq: vmm_sys_util::eventfd::EventFd) -> Devices {
        self.kbd_irq = Some(irq);
        self
    }

    /// With `on`, the ACPI sleep registers ([`acpi_sleep`]) are present.
    pub fn with_acpi_sleep(mut self, on: bool) -> Devices {
        self.acpi_sleep = on;
        self
    }

    fn unhandled(&self, counter: &AtomicU64, what: &str, addr: u64, data: &[u8], write: bool) {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        if self.verbose && n < LOG_LIMIT {
            let dir = if write { "write" } else { "read" };
            eprintln!(
                "domboot-vmm: unhandled {what} {dir} at {addr:#x} ({} bytes{})",
                data.len(),
                if write {
                    format!(", value {data:02x?}")
                } else {
                    String::new()
                }
            );
        }
    }

    pub fn pio_read(&self, port: u16, data: &mut [u8]) {
        data.fill(0xFF);
        if serial::contains(port) {
            if let Some(b) = data.first_mut() {
                *b = lock(&self.serial).read((port - serial::COM1_BASE) as u8);
            }
        } else if i8042::I8042::contains(port) {
            if let Some(b) = data.first_mut() {
                *b = lock(&self.i8042).read(port);
            }
        } else if cmos::Cmos::contains(port) {
            if let Some(b) = data.first_mut() {
                *b = lock(&self.cmos).read(port);
            }
        } else if pci_host::PciHost::contains(port)
            && !(port == RESET_CONTROL_PORT && data.len() == 1)
        {
            lock(&self.pci_host).read(port, data);
        } else if self.acpi_sleep && acpi_sleep::contains(port) {
            acpi_sleep::read(data);
        } else if debug_exit::contains(port) || port == POST_PORT {
        } else {
            self.unhandled(&self.unhandled_pio, "port", port.into(), data, false);
        }
    }

    pub fn pio_write(&self, port: u16, data: &[u8]) -> Flow {
        let value = data.first().copied().unwrap_or(0);
        if serial::contains(port) {
            if lock(&self.serial)
                .write((port - serial::COM1_BASE) as u8, value)
                .is_err()
            {
                self.serial_lost.fetch_add(1, Ordering::Relaxed);
            }
        } else if i8042::I8042::contains(port) {
            let fx = lock(&self.i8042).write(port, value);
            if fx.reset {
                return Flow::Stop(Outcome::Reset);
            }
            if let (true, Some(irq)) = (fx.kbd_irq, &self.kbd_irq) {
                let _ = irq.write(1);
            }
        } else if debug_exit::contains(port) {
            return Flow::Stop(Outcome::DebugExit(debug_exit::status(data)));
        } else if self.acpi_sleep && acpi_sleep::contains(port) {
            match acpi_sleep::write(port, data) {
                acpi_sleep::Request::PowerOff => return Flow::Stop(Outcome::PowerOff),
                acpi_sleep::Request::Ignored(what) if self.verbose => {
                    eprintln!("domboot-vmm: ignored {what}");
                }
                _ => {}
            }
        } else if port == RESET_CONTROL_PORT && data.len() == 1 {
            if value & RESET_CONTROL_RST_CPU != 0 {
                return Flow::Stop(Outcome::Reset);
            }
        } else if cmos::Cmos::contains(port) {
            lock(&self.cmos).write(port, value);
        } else if pci_host::PciHost::contains(port) {
            lock(&self.pci_host).write(port, data);
        } else if port != POST_PORT {
            self.unhandled(&self.unhandled_pio, "port", port.into(), data, true);
        }
        Flow::Continue
    }

    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        data.fill(0xFF);
        self.unhandled(&self.unhandled_mmio, "MMIO", addr, data, false);
    }

    pub fn mmio_write(&self, addr: u64, data: &[u8]) {
        self.unhandled(&self.unhandled_mmio, "MMIO", addr, data, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vm_superio::Serial;
    use vmm_sys_util::eventfd::EventFd;

    fn devices() -> (Devices, Arc<Mutex<Vec<u8>>>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = panic_watch::Watched {
            inner: serial::SinkWriter::open(&serial::SerialSink::Capture(buf.clone())).unwrap(),
            watch: panic_watch::PanicWatch::default(),
        };
        let uart = Serial::new(serial::IrqTrigger(EventFd::new(0).unwrap()), w);
        (Devices::new(uart, false), buf)
    }

    #[test]
    fn dispatch() {
        let (d, buf) = devices();
        assert_eq!(d.pio_write(0x3F8, b"A"), Flow::Continue);
        assert_eq!(&*buf.lock().unwrap(), b"A");
        let mut lsr = [0u8];
        d.pio_read(0x3FD, &mut lsr);
        assert_ne!(lsr[0] & 0x20, 0, "THR empty");
        assert_eq!(
            d.pio_write(0xF4, &[7, 0, 0, 0]),
            Flow::Stop(Outcome::DebugExit(7))
        );
        assert_eq!(d.pio_write(0x64, &[0xFE]), Flow::Stop(Outcome::Reset));
        assert_eq!(d.pio_write(0xCF9, &[0x06]), Flow::Stop(Outcome::Reset));
        assert_eq!(d.pio_write(0xCF9, &[0x02]), Flow::Continue);
        let mut v = [0u8; 4];
        d.pio_read(0x1234, &mut v);
        assert_eq!(v, [0xFF; 4]);
        assert_eq!(d.pio_write(0x1234, &[1, 2]), Flow::Continue);
        assert_eq!(d.unhandled_pio.load(Ordering::Relaxed), 2);
        d.mmio_read(0xD000_0000, &mut v);
        assert_eq!(v, [0xFF; 4]);
    }

    #[test]
    fn acpi_sleep_registers_only_with_acpi() {
        let (d, _) = devices();
        // Without ACPI tables the ports are an empty bus.
        assert_eq!(d.pio_write(0x600, &[0x34]), Flow::Continue);
        let mut v = [0u8];
        d.pio_read(0x601, &mut v);
        assert_eq!(v, [0xFF]);
        let d = d.with_acpi_sleep(true);
        d.pio_read(0x601, &mut v);
        assert_eq!(v, [0]);
        assert_eq!(d.pio_write(0x601, &[0x80]), Flow::Continue);
        assert_eq!(d.pio_write(0x600, &[0x2C]), Flow::Continue);
        assert_eq!(d.pio_write(0x600, &[0x34]), Flow::Stop(Outcome::PowerOff));
    }
}
