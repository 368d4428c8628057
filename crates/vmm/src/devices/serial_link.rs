//! COM2, COM3 and COM4, each linked to a Unix socket: 16550As (vm-superio) whose output is
//! written to the socket and whose receive FIFO is fed from it. domboot connects to a socket
//! its caller listens on, as QEMU's `-chardev socket,path=...` does, so one host side
//! (the CLI's `run --exec` channels: control, stdin/stdout, stderr) serves both backends.
//!
//! Writes block: a host reader that falls behind holds the guest's UART the way a slow
//! serial line would, and nothing is dropped. A host side that goes away loses the bytes
//! the guest still sends (counted in `lost`); it never stops the VM.

use super::serial::IrqTrigger;
use crate::bus::{BusDevice, Flow};
use crate::device_manager::legacy::lock;
use std::io::{ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use vm_superio::Serial;
use vm_superio::serial::NoEvents;

/// The ports after COM1, in order (base, IRQ): COM2 and COM4 share IRQ 3 and COM3 shares
/// IRQ 4 with COM1, as on a PC (Linux's 8250 driver chains ports that share an IRQ).
pub const PORTS: [(u16, u32); 3] = [(0x2F8, 3), (0x3E8, 4), (0x2E8, 3)];

/// A UART whose line is a Unix socket.
pub struct LinkedPort {
    /// "COM2" to "COM4", for messages.
    pub name: &'static str,
    pub uart: Mutex<Serial<IrqTrigger, NoEvents, UnixStream>>,
    /// The socket again, for the input pump.
    input: UnixStream,
    /// Output bytes the socket refused.
    pub lost: AtomicU64,
}

impl LinkedPort {
    /// `stream` is connected; `irq` raises the port's IRQ (an irqfd).
    pub fn new(
        name: &'static str,
        stream: UnixStream,
        irq: IrqTrigger,
    ) -> std::io::Result<LinkedPort> {
        let input = stream.try_clone()?;
        // The pump checks its stop flag between reads.
        input.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(LinkedPort {
            name,
            uart: Mutex::new(Serial::new(irq, stream)),
            input,
            lost: AtomicU64::new(0),
        })
    }

    /// Feeds what arrives on the socket to the receive FIFO, as fast as the guest drains
    /// it, until the socket ends or `stop` is set. The host side decides when the guest
    /// is ready to receive (the exec channels wait for the guest to say so), so nothing
    /// is held back here.
    pub fn pump_input(&self, stop: &AtomicBool) {
        let mut buf = [0u8; 4096];
        let mut reader = &self.input;
        while !stop.load(Ordering::SeqCst) {
            let n = match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let mut rest = &buf[..n];
            while !rest.is_empty() && !stop.load(Ordering::SeqCst) {
                let taken = lock(&self.uart).enqueue_raw_bytes(rest).unwrap_or(0);
                rest = &rest[taken..];
                if !rest.is_empty() {
                    // The FIFO is full: the guest has not read it yet.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

impl BusDevice for LinkedPort {
    fn read(&self, offset: u64, data: &mut [u8]) {
        super::serial::bus_read(&self.uart, offset, data);
    }
    fn write(&self, offset: u64, data: &[u8]) -> Flow {
        super::serial::bus_write(&self.uart, &self.lost, offset, data);
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use vmm_sys_util::eventfd::EventFd;

    #[test]
    fn bytes_go_both_ways_and_the_irq_is_raised() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let port = LinkedPort::new("COM2", ours, IrqTrigger(irq.try_clone().unwrap())).unwrap();
        // The guest sends "hi" through THR (offset 0).
        port.write(0, b"h");
        port.write(0, b"i");
        let mut got = [0u8; 2];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");
        // The host sends a line; with the receive interrupt enabled (IER bit 0) the guest
        // is interrupted and reads it from RBR.
        port.write(1, &[1]);
        theirs.write_all(b"ok").unwrap();
        drop(theirs);
        let stop = AtomicBool::new(false);
        port.pump_input(&stop);
        assert!(irq.read().unwrap() >= 1);
        let mut byte = [0u8];
        let mut line = Vec::new();
        for _ in 0..2 {
            port.read(0, &mut byte);
            line.push(byte[0]);
        }
        assert_eq!(line, b"ok");
    }

    #[test]
    fn a_host_side_that_left_loses_output_without_stopping_anything() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        let port = LinkedPort::new(
            "COM3",
            ours,
            IrqTrigger(EventFd::new(libc::EFD_NONBLOCK).unwrap()),
        )
        .unwrap();
        assert_eq!(port.write(0, b"x"), Flow::Continue);
        assert_eq!(port.lost.load(Ordering::Relaxed), 1);
    }
}
