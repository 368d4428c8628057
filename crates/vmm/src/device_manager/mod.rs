//! The device manager: the port and MMIO buses with every device of the VM on them, and
//! the dispatch of vCPU exits to them.
//!
//! The legacy PC devices sit on the port bus ([`legacy`]); virtio devices each get a
//! virtio-mmio window and an interrupt ([`virtio`]) and are described to the guest in the
//! DSDT. Anything no device decodes reads as all ones and ignores writes, like an empty
//! ISA bus; such accesses are counted (and logged with `verbose`), never fatal.

pub mod legacy;
pub mod virtio;

use crate::VmmError;
use crate::bus::{Bus, Flow};
use crate::devices::serial::IrqTrigger;
use crate::devices::serial_link::{self, LinkedPort};
use crate::devices::virtio::VirtioDevice;
use crate::devices::virtio::console::ConsoleInput;
use kvm_ioctls::VmFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// How many unhandled accesses `verbose` logs one by one.
const LOG_LIMIT: u64 = 32;

pub struct DeviceManager {
    pub pio: Bus,
    pub mmio: Bus,
    /// COM1, which console input feeds unless the console is virtio.
    pub serial: Arc<legacy::SerialPort>,
    /// The virtio console's input, which console input feeds when the console is virtio.
    pub console_input: Option<Arc<ConsoleInput>>,
    /// COM2-COM4 when linked to sockets ([`crate::devices::serial_link`]).
    pub links: Vec<Arc<LinkedPort>>,
    pub virtio: Vec<virtio::VirtioSlot>,
    pub unhandled_pio: AtomicU64,
    pub unhandled_mmio: AtomicU64,
    pub verbose: bool,
}

impl DeviceManager {
    /// The legacy devices, on the port bus.
    pub fn new(
        serial: Arc<legacy::SerialPort>,
        kbd_irq: EventFd,
        acpi: bool,
        verbose: bool,
    ) -> Result<DeviceManager, VmmError> {
        let mut pio = Bus::default();
        legacy::register(&mut pio, serial.clone(), kbd_irq, acpi, verbose)
            .map_err(|e| VmmError::Setup(e.to_string()))?;
        Ok(DeviceManager {
            pio,
            mmio: Bus::default(),
            serial,
            console_input: None,
            links: Vec::new(),
            virtio: Vec::new(),
            unhandled_pio: AtomicU64::new(0),
            unhandled_mmio: AtomicU64::new(0),
            verbose,
        })
    }

    /// Connects COM2, COM3, ... to `sockets` (listened on by the caller), each with its
    /// own irqfd on its PC IRQ.
    pub fn link_serial_ports(
        &mut self,
        vm: &VmFd,
        sockets: &[std::path::PathBuf],
    ) -> Result<(), VmmError> {
        const NAMES: [&str; 3] = ["COM2", "COM3", "COM4"];
        if sockets.len() > serial_link::PORTS.len() {
            return Err(VmmError::Setup(format!(
                "{} serial links asked for; COM2-COM4 are at most {}",
                sockets.len(),
                serial_link::PORTS.len()
            )));
        }
        for ((path, (base, irq)), name) in sockets.iter().zip(serial_link::PORTS).zip(NAMES) {
            let io = |what: String| move |error| VmmError::Io { what, error };
            let stream = std::os::unix::net::UnixStream::connect(path)
                .map_err(io(format!("{name}: connecting to {}", path.display())))?;
            let fd = EventFd::new(libc::EFD_NONBLOCK)
                .map_err(io(format!("eventfd for the {name} interrupt")))?;
            vm.register_irqfd(&fd, irq)
                .map_err(|error| VmmError::Ioctl {
                    what: "KVM_IRQFD",
                    error,
                })?;
            let port = Arc::new(
                LinkedPort::new(name, stream, IrqTrigger(fd))
                    .map_err(io(format!("{name}: its socket {}", path.display())))?,
            );
            self.pio
                .insert(name, base.into(), 8, port.clone())
                .map_err(|e| VmmError::Setup(e.to_string()))?;
            self.links.push(port);
        }
        Ok(())
    }

    /// Adds a virtio device at `slot` (see [`virtio::layout`]).
    pub fn add_virtio(
        &mut self,
        vm: &VmFd,
        mem: &Arc<GuestMemoryMmap>,
        device: Box<dyn VirtioDevice>,
        slot: virtio::Slot,
    ) -> Result<(), VmmError> {
        let attached = virtio::attach(vm, mem, device, slot)?;
        self.mmio
            .insert(
                "virtio-mmio",
                slot.addr,
                slot.len,
                attached.transport.clone(),
            )
            .map_err(|e| VmmError::Setup(e.to_string()))?;
        self.virtio.push(attached);
        Ok(())
    }

    /// Where the virtio devices are, for the DSDT.
    pub fn virtio_slots(&self) -> Vec<virtio::Slot> {
        self.virtio.iter().map(|v| v.slot).collect()
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
        match self.pio.find(port.into()) {
            Some((dev, offset)) => dev.read(offset, data),
            None => {
                data.fill(0xFF);
                self.unhandled(&self.unhandled_pio, "port", port.into(), data, false);
            }
        }
    }

    pub fn pio_write(&self, port: u16, data: &[u8]) -> Flow {
        match self.pio.find(port.into()) {
            Some((dev, offset)) => dev.write(offset, data),
            None => {
                self.unhandled(&self.unhandled_pio, "port", port.into(), data, true);
                Flow::Continue
            }
        }
    }

    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        match self.mmio.find(addr) {
            Some((dev, offset)) => dev.read(offset, data),
            None => {
                data.fill(0xFF);
                self.unhandled(&self.unhandled_mmio, "MMIO", addr, data, false);
            }
        }
    }

    pub fn mmio_write(&self, addr: u64, data: &[u8]) -> Flow {
        match self.mmio.find(addr) {
            Some((dev, offset)) => dev.write(offset, data),
            None => {
                self.unhandled(&self.unhandled_mmio, "MMIO", addr, data, true);
                Flow::Continue
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use crate::devices::{panic_watch, serial};
    use std::sync::Mutex;
    use vm_superio::Serial;

    fn manager(acpi: bool) -> (DeviceManager, Arc<Mutex<Vec<u8>>>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = panic_watch::Watched {
            inner: serial::SharedSink::new(
                serial::SinkWriter::open(&serial::SerialSink::Capture(buf.clone())).unwrap(),
            ),
            watch: panic_watch::PanicWatch::default(),
        };
        let uart = Serial::new(serial::IrqTrigger(EventFd::new(0).unwrap()), w);
        let port = Arc::new(legacy::SerialPort {
            uart: Mutex::new(uart),
            lost: AtomicU64::new(0),
        });
        let dm = DeviceManager::new(port, EventFd::new(0).unwrap(), acpi, false).unwrap();
        (dm, buf)
    }

    #[test]
    fn dispatch() {
        let (d, buf) = manager(false);
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
        // A dword at 0xCF8 is the PCI address register, not a reset.
        assert_eq!(d.pio_write(0xCF8, &[0, 0, 0, 0x80]), Flow::Continue);
        let mut id = [0u8; 4];
        d.pio_read(0xCFC, &mut id);
        assert_eq!(
            id,
            [0x36, 0x1b, 0x08, 0x00],
            "the host bridge's vendor/device"
        );
        let mut v = [0u8; 4];
        d.pio_read(0x1234, &mut v);
        assert_eq!(v, [0xFF; 4]);
        assert_eq!(d.pio_write(0x1234, &[1, 2]), Flow::Continue);
        assert_eq!(d.unhandled_pio.load(Ordering::Relaxed), 2);
        d.mmio_read(0xD000_0000, &mut v);
        assert_eq!(v, [0xFF; 4]);
        assert_eq!(d.unhandled_mmio.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn acpi_sleep_registers_only_with_acpi() {
        let (d, _) = manager(false);
        // Without ACPI tables the ports are an empty bus.
        assert_eq!(d.pio_write(0x600, &[0x34]), Flow::Continue);
        let mut v = [0u8];
        d.pio_read(0x601, &mut v);
        assert_eq!(v, [0xFF]);
        let (d, _) = manager(true);
        d.pio_read(0x601, &mut v);
        assert_eq!(v, [0]);
        assert_eq!(d.pio_write(0x601, &[0x80]), Flow::Continue);
        assert_eq!(d.pio_write(0x600, &[0x2C]), Flow::Continue);
        assert_eq!(d.pio_write(0x600, &[0x34]), Flow::Stop(Outcome::PowerOff));
    }
}
