//! virtio-console (virtio 1.2, section 5.3), one port, no multiport: the guest's hvc0.
//! What the guest writes goes to the same sink as COM1 (through the panic watcher);
//! what the host types (standard input) arrives through [`ConsoleInput`], which the
//! console-input thread fills and whose eventfd wakes the device's thread.

use super::{DeviceError, F_VERSION_1, TYPE_CONSOLE, VirtioDevice};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

const RECEIVE: usize = 0;
const TRANSMIT: usize = 1;
const QUEUE_SIZE: u16 = 64;
/// Input the guest has not taken yet is bounded; beyond this the oldest is dropped (a
/// guest that never reads its console must not grow domboot without end).
const INPUT_LIMIT: usize = 1 << 20;

/// Bytes from the host on their way to the guest.
pub struct ConsoleInput {
    buf: Mutex<VecDeque<u8>>,
    ready: EventFd,
}

impl ConsoleInput {
    pub fn new() -> std::io::Result<Arc<ConsoleInput>> {
        Ok(Arc::new(ConsoleInput {
            buf: Mutex::new(VecDeque::new()),
            ready: EventFd::new(EFD_NONBLOCK)?,
        }))
    }

    /// Queues `bytes` for the guest and wakes the device.
    pub fn push(&self, bytes: &[u8]) {
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        buf.extend(bytes);
        let excess = buf.len().saturating_sub(INPUT_LIMIT);
        buf.drain(..excess);
        drop(buf);
        let _ = self.ready.write(1);
    }
}

pub struct Console {
    output: Box<dyn Write + Send>,
    input: Arc<ConsoleInput>,
    queue_sizes: [u16; 2],
    /// The guest has written to the port: its console is set up and takes input.
    /// Without multiport there is no PORT_OPEN message, and Linux's virtio_console drops
    /// what arrives between filling its receive queue and connecting the port (seen on
    /// the nested bench: piped input vanished); the guest's first output comes after.
    spoke: bool,
}

impl Console {
    pub fn new(output: Box<dyn Write + Send>, input: Arc<ConsoleInput>) -> Console {
        Console {
            output,
            input,
            queue_sizes: [QUEUE_SIZE; 2],
            spoke: false,
        }
    }

    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        let mut bytes = Vec::new();
        let output = &mut self.output;
        let used = super::drain_queue(queue, mem, |chain| {
            let mut reader = chain
                .reader(mem)
                .map_err(|e| DeviceError(format!("malformed output buffer: {e}")))?;
            bytes.clear();
            reader
                .read_to_end(&mut bytes)
                .map_err(|e| DeviceError(format!("malformed output buffer: {e}")))?;
            // A sink that refuses (closed stdout) loses the bytes, as COM1 does.
            let _ = output.write_all(&bytes);
            Ok(0)
        })?;
        let _ = self.output.flush();
        if used && !self.spoke {
            self.spoke = true;
            // Wake the device's thread to deliver input held until now.
            let _ = self.input.ready.write(1);
        }
        Ok(used)
    }

    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        if !self.spoke {
            return Ok(false);
        }
        let _ = self.input.ready.read();
        let mut used = false;
        let mut pending = self.input.buf.lock().unwrap_or_else(|p| p.into_inner());
        while !pending.is_empty() {
            let chain = queue.iter(mem)?.next();
            let Some(chain) = chain else {
                break;
            };
            let head = chain.head_index();
            let mut writer = chain
                .writer(mem)
                .map_err(|e| DeviceError(format!("malformed input buffer: {e}")))?;
            let n = writer.available_bytes().min(pending.len());
            let chunk: Vec<u8> = pending.drain(..n).collect();
            writer
                .write_all(&chunk)
                .map_err(|e| DeviceError(format!("malformed input buffer: {e}")))?;
            queue.add_used(mem, head, n as u32)?;
            used = true;
        }
        Ok(used)
    }
}

impl VirtioDevice for Console {
    fn device_type(&self) -> u32 {
        TYPE_CONSOLE
    }
    fn state(&self) -> super::state::DeviceState {
        let pending = self.input.buf.lock().unwrap_or_else(|p| p.into_inner());
        super::state::DeviceState::Console(super::state::ConsoleState {
            pending_input: pending.iter().copied().collect(),
            spoke: self.spoke,
        })
    }
    fn name(&self) -> String {
        "virtio-console hvc0".into()
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }
    fn features(&self) -> u64 {
        F_VERSION_1
    }
    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        // No size, no multiport, no emergency write: nothing to read.
        data.fill(0);
    }
    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        match index {
            RECEIVE => self.receive(queue, mem),
            TRANSMIT => self.transmit(queue, mem),
            _ => Ok(false),
        }
    }
    fn reset(&mut self) {
        self.spoke = false;
    }
    fn backend_fd(&self) -> Option<RawFd> {
        Some(self.input.ready.as_raw_fd())
    }
    fn process_backend(
        &mut self,
        queues: &mut [Queue],
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        match queues.get_mut(RECEIVE) {
            Some(q) if q.ready() => self.receive(q, mem),
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_queue::desc::{RawDescriptor, split::Descriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress};

    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_and_input() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x20_0000)]).unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let input = ConsoleInput::new().unwrap();
        let mut con = Console::new(Box::new(Shared(out.clone())), input.clone());
        input.push(b"early");
        let q = MockSplitQueue::create(&mem, GuestAddress(0x8000), 16);
        q.add_desc_chains(
            &[RawDescriptor::from(Descriptor::new(0x11_0000, 8, 2, 0))],
            0,
        )
        .unwrap();
        let mut rx = q.create_queue::<Queue>().unwrap();
        assert!(
            !con.receive(&mut rx, &mem).unwrap(),
            "held until the guest speaks"
        );
        input.buf.lock().unwrap().clear();
        mem.write_slice(b"hvc0 says hi\n", GuestAddress(0x10_0000))
            .unwrap();
        let q = MockSplitQueue::new(&mem, 16);
        q.add_desc_chains(
            &[RawDescriptor::from(Descriptor::new(0x10_0000, 13, 0, 0))],
            0,
        )
        .unwrap();
        let mut tx = q.create_queue::<Queue>().unwrap();
        assert!(con.process_queue(TRANSMIT, &mut tx, &mem).unwrap());
        assert_eq!(out.lock().unwrap().as_slice(), b"hvc0 says hi\n");

        input.push(b"typed");
        // Input waits until the guest has written (it did, above).
        let q = MockSplitQueue::create(&mem, GuestAddress(0x8000), 16);
        q.add_desc_chains(
            &[RawDescriptor::from(Descriptor::new(0x11_0000, 3, 2, 0))],
            0,
        )
        .unwrap();
        let mut rx = q.create_queue::<Queue>().unwrap();
        assert!(con.receive(&mut rx, &mem).unwrap());
        let mut got = [0u8; 3];
        mem.read_slice(&mut got, GuestAddress(0x11_0000)).unwrap();
        assert_eq!(&got, b"typ");
        assert_eq!(input.buf.lock().unwrap().len(), 2, "the rest waits");
        input.push(&vec![b'x'; INPUT_LIMIT + 10]);
        assert_eq!(input.buf.lock().unwrap().len(), INPUT_LIMIT);
    }
}
