//! virtio-rng (virtio 1.2, section 5.4): fills each buffer the driver offers with bytes
//! from the host's getrandom pool (/dev/urandom, which never blocks once the host is up).

use super::{DeviceError, F_VERSION_1, TYPE_RNG, VirtioDevice};
use std::fs::File;
use std::io::{Read, Write};
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

const QUEUE_SIZE: u16 = 64;
/// Most bytes one buffer gets; the driver asks again for more.
const MAX_PER_BUFFER: usize = 64 << 10;

pub struct Rng {
    source: File,
    queue_sizes: [u16; 1],
}

impl Rng {
    pub fn new() -> std::io::Result<Rng> {
        Ok(Rng {
            source: File::open("/dev/urandom")?,
            queue_sizes: [QUEUE_SIZE],
        })
    }
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        TYPE_RNG
    }
    fn state(&self) -> super::state::DeviceState {
        super::state::DeviceState::Rng
    }
    fn name(&self) -> String {
        "virtio-rng".into()
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }
    fn features(&self) -> u64 {
        F_VERSION_1
    }
    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn process_queue(
        &mut self,
        _index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        let mut buf = vec![0u8; MAX_PER_BUFFER];
        let source = &mut self.source;
        super::drain_queue(queue, mem, |chain| {
            let mut writer = chain
                .writer(mem)
                .map_err(|e| DeviceError(format!("malformed buffer: {e}")))?;
            let n = writer.available_bytes().min(MAX_PER_BUFFER);
            source
                .read_exact(&mut buf[..n])
                .map_err(|e| DeviceError(format!("reading /dev/urandom: {e}")))?;
            writer
                .write_all(&buf[..n])
                .map_err(|e| DeviceError(format!("malformed buffer: {e}")))?;
            Ok(n as u32)
        })
    }
}
