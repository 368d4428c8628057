//! virtio-vsock (virtio 1.2, section 5.10): stream sockets between the guest (its CID,
//! 3 or more) and the host (CID 2), carried on the host over Unix sockets the way
//! Firecracker's hybrid vsock does it ([`muxer`]), so tools written for Firecracker and
//! Kata Containers work unchanged.
//!
//! Three queues: rx (packets to the guest), tx (packets from it) and event (transport
//! events, which domboot never sends). Every packet starts with the 44-byte header
//! ([`packet`]); credit flow control ([`connection`]) bounds the bytes in flight both ways.
//!
//! A packet with wrong CIDs, an unknown type or operation, or a length on an operation
//! without payload is answered with a RST; a transmit buffer shorter than a header, or
//! shorter than the payload its header announces, puts the device into NEEDS_RESET.

pub mod connection;
pub mod muxer;
pub mod packet;

use super::{DeviceError, F_VERSION_1, TYPE_VSOCK, VirtioDevice, read_config_bytes};
use muxer::{Muxer, MuxerError};
use packet::{HDR_LEN, Header};
use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::path::Path;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::GuestMemoryMmap;

const RX: usize = 0;
const TX: usize = 1;
const QUEUE_SIZE: u16 = 256;

pub use muxer::valid_guest_cid;

pub struct Vsock {
    muxer: Muxer,
    queue_sizes: [u16; 3],
}

impl Vsock {
    /// A device for the guest `cid` whose host side listens on the Unix socket `path`
    /// (which must not exist yet; it is removed when the device goes).
    pub fn new(cid: u64, path: &Path) -> Result<Vsock, MuxerError> {
        Ok(Vsock {
            muxer: Muxer::new(cid, path)?,
            queue_sizes: [QUEUE_SIZE; 3],
        })
    }

    /// Takes every packet the driver queued for transmission.
    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        let mut used = false;
        let mut data = Vec::new();
        loop {
            let chain = queue.iter(mem)?.next();
            let Some(chain) = chain else {
                break;
            };
            let head = chain.head_index();
            let malformed = |e| DeviceError(format!("malformed transmit buffer: {e}"));
            let mut reader = chain.reader(mem).map_err(malformed)?;
            let available = reader.available_bytes();
            if available < HDR_LEN {
                return Err(DeviceError(format!(
                    "transmit buffer of {available} bytes, shorter than the {HDR_LEN}-byte header"
                )));
            }
            let mut raw = [0u8; HDR_LEN];
            reader
                .read_exact(&mut raw)
                .map_err(|e| DeviceError(format!("malformed transmit buffer: {e}")))?;
            let h = Header::from_bytes(&raw);
            match packet::validate(&h, self.muxer.guest_cid()) {
                Ok(op) => {
                    let len = h.len as usize;
                    if available - HDR_LEN < len {
                        return Err(DeviceError(format!(
                            "transmit packet announces {len} bytes and carries {}",
                            available - HDR_LEN
                        )));
                    }
                    data.resize(len, 0);
                    reader
                        .read_exact(&mut data)
                        .map_err(|e| DeviceError(format!("malformed transmit buffer: {e}")))?;
                    self.muxer.from_guest(&h, op, &data);
                }
                Err(why) => self.muxer.refuse(&h, why),
            }
            queue.add_used(mem, head, 0)?;
            used = true;
        }
        Ok(used)
    }

    /// Fills receive buffers with what the muxer has for the guest, until either runs out.
    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        let mut used = false;
        while self.muxer.has_rx() {
            let chain = queue.iter(mem)?.next();
            let Some(chain) = chain else {
                break;
            };
            let head = chain.head_index();
            let malformed = |e| DeviceError(format!("malformed receive buffer: {e}"));
            let mut writer = chain.writer(mem).map_err(malformed)?;
            let room = writer.available_bytes();
            if room < HDR_LEN {
                return Err(DeviceError(format!(
                    "receive buffer of {room} bytes, shorter than the {HDR_LEN}-byte header"
                )));
            }
            let Some((h, payload)) = self.muxer.next_rx(room - HDR_LEN) else {
                queue.go_to_previous_position();
                break;
            };
            writer
                .write_all(&h.to_bytes())
                .and_then(|_| writer.write_all(&payload))
                .map_err(|e| DeviceError(format!("malformed receive buffer: {e}")))?;
            queue.add_used(mem, head, (HDR_LEN + payload.len()) as u32)?;
            used = true;
        }
        Ok(used)
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        TYPE_VSOCK
    }
    fn state(&self) -> super::state::DeviceState {
        super::state::DeviceState::Vsock(super::state::VsockState {
            guest_cid: self.muxer.guest_cid(),
            uds_path: self.muxer.path().to_owned(),
        })
    }
    fn name(&self) -> String {
        format!(
            "virtio-vsock (CID {}, {})",
            self.muxer.guest_cid(),
            self.muxer.path().display()
        )
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }
    fn features(&self) -> u64 {
        F_VERSION_1
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.muxer.guest_cid().to_le_bytes(), offset, data);
    }
    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        self.muxer.poll();
        match index {
            RX => self.receive(queue, mem),
            TX => {
                let used = self.transmit(queue, mem)?;
                // What the guest sent may have answers, or freed credit: the worker fills
                // the receive queue (which this call cannot reach) in process_backend.
                if self.muxer.has_rx() {
                    self.muxer.kick();
                }
                Ok(used)
            }
            _ => Ok(false),
        }
    }
    fn reset(&mut self) {
        self.muxer.reset();
    }
    fn backend_fd(&self) -> Option<RawFd> {
        Some(self.muxer.fd())
    }
    fn process_backend(
        &mut self,
        queues: &mut [Queue],
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        self.muxer.poll();
        match queues.get_mut(RX) {
            Some(q) if q.ready() => self.receive(q, mem),
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests;
