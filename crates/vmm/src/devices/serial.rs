//! COM1: a 16550A (vm-superio) at I/O ports 0x3F8-0x3FF on IRQ 4, raised through an irqfd.
//! Output goes to the [`SerialSink`]; with [`SerialSink::Stdout`], standard input is fed to
//! the receive FIFO.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use vm_superio::{Serial, Trigger, serial::NoEvents};
use vmm_sys_util::eventfd::EventFd;

pub const COM1_BASE: u16 = 0x3F8;
pub const COM1_IRQ: u32 = 4;

/// A caller's writer that receives the console as the guest prints it.
pub type SharedWriter = Arc<Mutex<dyn Write + Send>>;

/// Where the guest's serial console goes.
#[derive(Clone, Default)]
pub enum SerialSink {
    /// Standard output, and standard input into the guest (raw terminal when interactive).
    #[default]
    Stdout,
    /// A file, created or truncated.
    File(PathBuf),
    /// Discarded.
    None,
    /// Appended to a shared buffer (for tests and embedding).
    Capture(Arc<Mutex<Vec<u8>>>),
    /// Written, as the guest prints it, to the caller's writer (e.g. a console filter).
    Writer(SharedWriter),
}

impl std::fmt::Debug for SerialSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SerialSink::Stdout => f.write_str("Stdout"),
            SerialSink::File(p) => f.debug_tuple("File").field(p).finish(),
            SerialSink::None => f.write_str("None"),
            SerialSink::Capture(_) => f.write_str("Capture"),
            SerialSink::Writer(_) => f.write_str("Writer"),
        }
    }
}

/// The writer behind the UART.
pub enum SinkWriter {
    Stdout(io::Stdout),
    File(File),
    Null,
    Capture(Arc<Mutex<Vec<u8>>>),
    Writer(SharedWriter),
}

impl SinkWriter {
    pub fn open(sink: &SerialSink) -> io::Result<SinkWriter> {
        Ok(match sink {
            SerialSink::Stdout => SinkWriter::Stdout(io::stdout()),
            SerialSink::File(p) => SinkWriter::File(File::create(p)?),
            SerialSink::None => SinkWriter::Null,
            SerialSink::Capture(buf) => SinkWriter::Capture(buf.clone()),
            SerialSink::Writer(w) => SinkWriter::Writer(w.clone()),
        })
    }
}

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            SinkWriter::Stdout(s) => s.write(buf),
            SinkWriter::File(f) => f.write(buf),
            SinkWriter::Null => Ok(buf.len()),
            SinkWriter::Capture(c) => {
                c.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(buf);
                Ok(buf.len())
            }
            SinkWriter::Writer(w) => w.lock().unwrap_or_else(|p| p.into_inner()).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            SinkWriter::Stdout(s) => s.flush(),
            // A file is flushed by the kernel's page cache; flushing each byte costs nothing
            // here since File is unbuffered.
            SinkWriter::File(f) => f.flush(),
            SinkWriter::Writer(w) => w.lock().unwrap_or_else(|p| p.into_inner()).flush(),
            SinkWriter::Null | SinkWriter::Capture(_) => Ok(()),
        }
    }
}

/// Raises IRQ 4 by writing the irqfd.
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// One sink written by several devices (COM1 and the virtio console share the guest's
/// console output), each write whole.
#[derive(Clone)]
pub struct SharedSink(pub Arc<Mutex<SinkWriter>>);

impl SharedSink {
    pub fn new(w: SinkWriter) -> SharedSink {
        SharedSink(Arc::new(Mutex::new(w)))
    }
}

impl Write for SharedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).flush()
    }
}

/// A port read of a 16550 (COM1 or a linked COM2-COM4): one register byte; wider
/// accesses read the rest as all ones.
pub fn bus_read<W: Write>(
    uart: &Mutex<Serial<IrqTrigger, NoEvents, W>>,
    offset: u64,
    data: &mut [u8],
) {
    data.fill(0xFF);
    if let Some(b) = data.first_mut() {
        *b = uart
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .read(offset as u8);
    }
}

/// A port write to a 16550: its first byte; output the writer refused counts in `lost`.
pub fn bus_write<W: Write>(
    uart: &Mutex<Serial<IrqTrigger, NoEvents, W>>,
    lost: &std::sync::atomic::AtomicU64,
    offset: u64,
    data: &[u8],
) {
    let value = data.first().copied().unwrap_or(0);
    let mut uart = uart.lock().unwrap_or_else(|p| p.into_inner());
    if uart.write(offset as u8, value).is_err() {
        lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// COM1 as the VMM runs it: output passes the panic watcher on its way to the sink.
pub type Uart = Serial<IrqTrigger, NoEvents, super::panic_watch::Watched<SharedSink>>;

pub fn contains(port: u16) -> bool {
    (COM1_BASE..COM1_BASE + 8).contains(&port)
}

/// Ctrl-A, then `x`: leave (like QEMU's -nographic). Ctrl-A twice sends one Ctrl-A.
pub const ESCAPE: u8 = 0x01;

/// Splits interactive input on the escape sequence.
#[derive(Default)]
pub struct EscapeFilter {
    pending: bool,
}

impl EscapeFilter {
    /// Returns the bytes for the guest and whether the user asked to quit.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.pending {
                self.pending = false;
                match b {
                    b'x' | b'X' => return (out, true),
                    ESCAPE => out.push(ESCAPE),
                    other => {
                        out.push(ESCAPE);
                        out.push(other);
                    }
                }
            } else if b == ESCAPE {
                self.pending = true;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequence() {
        let mut f = EscapeFilter::default();
        assert_eq!(f.feed(b"ab"), (b"ab".to_vec(), false));
        assert_eq!(f.feed(b"\x01\x01c"), (b"\x01c".to_vec(), false));
        assert_eq!(f.feed(b"\x01"), (vec![], false));
        assert_eq!(f.feed(b"q"), (b"\x01q".to_vec(), false));
        assert_eq!(f.feed(b"z\x01x rest"), (b"z".to_vec(), true));
    }

    #[test]
    fn capture_sink_collects() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let mut w = SinkWriter::open(&SerialSink::Capture(buf.clone())).unwrap();
        w.write_all(b"hi").unwrap();
        assert_eq!(&*buf.lock().unwrap(), b"hi");
    }
}
