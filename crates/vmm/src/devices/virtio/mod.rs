//! Virtio 1.x devices (modern interface only) on the virtio-mmio transport.
//!
//! A device ([`VirtioDevice`]) knows its type, features, configuration space and how to
//! serve its queues; the transport ([`mmio::MmioTransport`]) owns the register file the
//! driver programs, the queues (virtio-queue's split rings) and the interrupt. The device
//! manager runs each device's queues on a thread of its own, woken through ioeventfds.
//!
//! A guest that hands a device malformed descriptor chains (loops, addresses outside RAM,
//! lengths beyond the request, wrong directions) gets that device put into virtio's
//! DEVICE_NEEDS_RESET state and a log line; domboot and the other devices carry on.

pub mod block;
pub mod console;
pub mod fs;
pub mod iov;
pub mod mmio;
pub mod net;
pub mod rng;
pub mod state;
pub mod vsock;

use std::fmt;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::GuestMemoryMmap;

/// Virtio device types (virtio 1.2, section 5).
pub const TYPE_NET: u32 = 1;
pub const TYPE_BLOCK: u32 = 2;
pub const TYPE_CONSOLE: u32 = 3;
pub const TYPE_RNG: u32 = 4;
pub const TYPE_VSOCK: u32 = 19;
pub const TYPE_FS: u32 = 26;

/// VIRTIO_F_VERSION_1: the modern interface, the only one domboot offers.
pub const F_VERSION_1: u64 = 1 << 32;
/// VIRTIO_RING_F_INDIRECT_DESC: a chain may be one descriptor pointing at a table of them
/// (virtio-queue follows it), so a request of many segments takes one ring slot.
pub const F_INDIRECT_DESC: u64 = 1 << 28;
/// VIRTIO_RING_F_EVENT_IDX: each side says at which ring index it next wants to be told
/// (avail_event, used_event), so notifications and interrupts come once per batch. A
/// device offering it takes every chain through [`next_chain`], which re-arms
/// avail_event when the queue runs dry.
pub const F_EVENT_IDX: u64 = 1 << 29;

/// Device status bits (virtio 1.2, 2.1).
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
    pub const FAILED: u32 = 0x80;
}

/// Interrupt status bits (virtio-mmio InterruptStatus).
pub const INT_VRING: u32 = 1;
pub const INT_CONFIG: u32 = 2;

/// Why a device gave up on what the guest handed it.
#[derive(Debug)]
pub struct DeviceError(pub String);

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl DeviceError {
    /// A queue the driver set up wrongly, found before it is served (every transport
    /// checks with `Queue::is_valid` first).
    pub fn invalid_queue(index: usize, queue: &Queue) -> DeviceError {
        DeviceError(format!(
            "queue {index}: size {} or ring addresses {:#x}/{:#x}/{:#x} are invalid \
             (not a power of two, misaligned or outside RAM)",
            queue.size(),
            queue.desc_table(),
            queue.avail_ring(),
            queue.used_ring()
        ))
    }
}

impl From<virtio_queue::Error> for DeviceError {
    fn from(e: virtio_queue::Error) -> Self {
        DeviceError(format!("virtqueue: {e}"))
    }
}

/// One virtio device behind a transport.
pub trait VirtioDevice: Send {
    /// The virtio device type ([`TYPE_BLOCK`], ...).
    fn device_type(&self) -> u32;
    /// A short name for logs ("virtio-blk vda").
    fn name(&self) -> String;
    /// The largest size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// The features the device offers, [`F_VERSION_1`] included.
    fn features(&self) -> u64;
    /// Reads the device-specific configuration space; bytes past its end read as 0.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Serves the available buffers of queue `index`. Returns whether any buffer was used
    /// (the driver is then interrupted); an error puts the device into NEEDS_RESET.
    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError>;
    /// The driver reset the device (wrote 0 to the status register).
    fn reset(&mut self) {}
    /// The device's own state, for a snapshot (see [`state`]).
    fn state(&self) -> state::DeviceState;
    /// A host-side file descriptor whose readiness the device's thread watches
    /// (edge-triggered) besides the queues: a tap device, a socket. A device with several
    /// (vsock's listener and streams) watches them with an epoll fd of its own and gives
    /// that (an epoll fd is readable while any of its fds is ready), draining its own
    /// events in [`VirtioDevice::process_backend`].
    fn backend_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    /// The backend has something for the guest (or can take more): serve it. Returns
    /// whether any buffer was used.
    fn process_backend(
        &mut self,
        _queues: &mut [Queue],
        _mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        Ok(false)
    }
    /// Why the device's backend is gone for good, if it is: a vhost-user backend that
    /// closed its socket (it exited or was killed). Nothing can bring it back within this
    /// VM (vhost-user has no reconnection here), and the guest's requests to the device
    /// would wait forever, so the VM ends with [`crate::Outcome::BackendGone`] instead of
    /// hanging until its timeout. Asked every few tens of milliseconds: must not block.
    fn backend_gone(&self) -> Option<String> {
        None
    }
    /// Whether another process serves the queues (a vhost-user backend): the device
    /// manager then leaves the queue notifications alone (they are the backend's kick
    /// eventfds) and the transport hands the queues over through
    /// [`VirtioDevice::activate`] instead of calling [`VirtioDevice::process_queue`].
    fn queues_served_elsewhere(&self) -> bool {
        false
    }
    /// The driver set DRIVER_OK with `features` accepted: hand the ready queues, guest
    /// memory and the queues' notification eventfds (`kicks[i]` for queue `i`) to whoever
    /// serves them. Called only for devices whose [`VirtioDevice::queues_served_elsewhere`];
    /// an error puts the device into NEEDS_RESET.
    fn activate(
        &mut self,
        _features: u64,
        _queues: &[Queue],
        _mem: &GuestMemoryMmap,
        _kicks: &[vmm_sys_util::eventfd::EventFd],
    ) -> Result<(), DeviceError> {
        Ok(())
    }
}

/// Serves every buffer the driver has made available on `queue`: `serve` handles one
/// descriptor chain and returns how many bytes it wrote into it (the used length).
/// Returns whether any buffer was used. An invalid available ring (an index running
/// ahead of the queue's size) is an error, not an empty queue.
pub fn drain_queue(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    mut serve: impl FnMut(DescriptorChain<&GuestMemoryMmap>) -> Result<u32, DeviceError>,
) -> Result<bool, DeviceError> {
    let mut used = false;
    loop {
        let Some(chain) = next_chain(queue, mem)? else {
            return Ok(used);
        };
        let head = chain.head_index();
        let len = serve(chain)?;
        queue.add_used(mem, head, len)?;
        used = true;
    }
}

/// The next chain the driver made available. When there is none, the driver is asked to
/// notify at the next one (with EVENT_IDX: avail_event set to where the device stopped;
/// while the device still has chains the driver does not notify) and the ring is looked
/// at once more, so a chain made available meanwhile is not left waiting.
pub fn next_chain<'m>(
    queue: &mut Queue,
    mem: &'m GuestMemoryMmap,
) -> Result<Option<DescriptorChain<&'m GuestMemoryMmap>>, DeviceError> {
    if let Some(chain) = queue.iter(mem)?.next() {
        return Ok(Some(chain));
    }
    if !queue.enable_notification(mem)? {
        return Ok(None);
    }
    match queue.iter(mem)?.next() {
        Some(chain) => Ok(Some(chain)),
        None => Err(DeviceError(
            "virtqueue: the available ring has entries that cannot be read".into(),
        )),
    }
}

/// Copies `bytes` (a configuration space) at `offset` into `data`, zeros beyond its end.
pub fn read_config_bytes(bytes: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    if let Some(src) = bytes.get(start..) {
        let n = src.len().min(data.len());
        data[..n].copy_from_slice(&src[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_are_bounded() {
        let cfg = [1u8, 2, 3, 4];
        let mut d = [9u8; 4];
        read_config_bytes(&cfg, 2, &mut d);
        assert_eq!(d, [3, 4, 0, 0]);
        read_config_bytes(&cfg, 100, &mut d);
        assert_eq!(d, [0; 4]);
        read_config_bytes(&cfg, u64::MAX, &mut d);
        assert_eq!(d, [0; 4]);
    }
}
