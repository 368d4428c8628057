//! virtio-fs (virtio 1.2, section 5.11) as a vhost-user frontend: the queues are served
//! by a vhost-user-fs backend (virtiofsd) over its Unix socket, the transport and the
//! configuration space are ours.
//!
//! What the backend gets (the order of Cloud Hypervisor's `vu_common_ctrl`): at start-up
//! SET_OWNER, GET_FEATURES and the protocol features; when the driver sets DRIVER_OK,
//! SET_FEATURES with what the driver accepted, SET_MEM_TABLE with the guest RAM's memfds
//! (guest RAM must come from [`crate::memory::allocate_shared`]), and per ready queue
//! SET_VRING_NUM/ADDR/BASE, SET_VRING_CALL, SET_VRING_KICK and SET_VRING_ENABLE. The kick
//! eventfds are the transport's queue notifiers (KVM ioeventfds on QueueNotify, matched on
//! the queue index), so a kick goes from the guest to virtiofsd without domboot. One call
//! eventfd serves every queue: the device manager's thread waits on it (the device's
//! [`VirtioDevice::backend_fd`]) and turns each signal into InterruptStatus' VRING bit and
//! the device's interrupt, as virtio-mmio drivers read the cause from the register.
//!
//! A driver that hands over rings outside RAM or of bad sizes gets the device put into
//! NEEDS_RESET (through [`VirtioDevice::activate`]'s error), never near the backend.

#[cfg(test)]
mod tests;

use super::{DeviceError, F_VERSION_1, TYPE_FS, VirtioDevice, read_config_bytes};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use vhost::vhost_user::message::VhostUserVirtioFeatures;
use vhost::vhost_user::{Frontend, VhostUserFrontend, VhostUserProtocolFeatures};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

/// The hiprio queue and one request queue.
pub const NUM_QUEUES: usize = 2;
/// Queue size offered to the driver (virtiofsd's own maximum).
pub const QUEUE_SIZE: u16 = 1024;
/// The tag field of the configuration space.
pub const TAG_LEN: usize = 36;
/// Ring features the backend may negotiate with the driver: everything else the backend
/// offers is left out (packed rings, IOMMU, notification data need transport support).
const PASSED_FEATURES: u64 = F_VERSION_1 | (1 << 28) | (1 << 29); // INDIRECT_DESC, EVENT_IDX
const PROTOCOL_FEATURES: u64 = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();

/// Why the device could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("tag {0:?}: 1 to 36 bytes, no NUL")]
    Tag(String),
    #[error("vhost-user socket {socket}: {what}: {error}")]
    Backend {
        socket: String,
        what: &'static str,
        error: vhost::Error,
    },
    #[error("vhost-user socket {0}: the backend does not offer VIRTIO_F_VERSION_1")]
    Legacy(String),
    #[error("call eventfd: {0}")]
    Eventfd(std::io::Error),
}

/// One virtio-fs device backed by a vhost-user-fs backend.
pub struct Fs {
    tag: String,
    /// The backend's vhost-user socket.
    socket: std::path::PathBuf,
    config: [u8; TAG_LEN + 4],
    frontend: Frontend,
    backend_features: u64,
    /// The vhost-user protocol was negotiated (rings then start disabled).
    protocol: bool,
    call: EventFd,
    sizes: [u16; NUM_QUEUES],
    /// Queues handed to the backend since the last reset.
    started: Vec<usize>,
}

impl Fs {
    /// Connects to the backend listening on `socket` and learns its features.
    pub fn connect(socket: &Path, tag: &str) -> Result<Fs, FsError> {
        let tag_bytes = tag.as_bytes();
        if tag_bytes.is_empty() || tag_bytes.len() > TAG_LEN || tag_bytes.contains(&0) {
            return Err(FsError::Tag(tag.into()));
        }
        let err = |what| {
            let socket = socket.display().to_string();
            move |error| FsError::Backend {
                socket,
                what,
                error,
            }
        };
        let mut frontend =
            Frontend::connect(socket, NUM_QUEUES as u64).map_err(err("connecting"))?;
        frontend.set_owner().map_err(err("SET_OWNER"))?;
        let backend_features = frontend.get_features().map_err(err("GET_FEATURES"))?;
        if backend_features & F_VERSION_1 == 0 {
            return Err(FsError::Legacy(socket.display().to_string()));
        }
        let protocol = backend_features & PROTOCOL_FEATURES != 0;
        if protocol {
            let offered = frontend
                .get_protocol_features()
                .map_err(err("GET_PROTOCOL_FEATURES"))?;
            // Multiqueue is all domboot needs named; replies and the rest stay off.
            frontend
                .set_protocol_features(offered & VhostUserProtocolFeatures::MQ)
                .map_err(err("SET_PROTOCOL_FEATURES"))?;
        }
        let mut config = [0u8; TAG_LEN + 4];
        config[..tag_bytes.len()].copy_from_slice(tag_bytes);
        config[TAG_LEN..].copy_from_slice(&1u32.to_le_bytes());
        Ok(Fs {
            tag: tag.into(),
            socket: socket.to_owned(),
            config,
            frontend,
            backend_features,
            protocol,
            call: EventFd::new(EFD_NONBLOCK).map_err(FsError::Eventfd)?,
            sizes: [QUEUE_SIZE; NUM_QUEUES],
            started: Vec::new(),
        })
    }

    fn backend_err(what: &str) -> impl FnOnce(vhost::Error) -> DeviceError + '_ {
        move |e| DeviceError(format!("vhost-user {what}: {e}"))
    }

    /// Hands queue `index` to the backend.
    fn start_queue(
        &mut self,
        index: usize,
        queue: &Queue,
        mem: &GuestMemoryMmap,
        kick: &EventFd,
    ) -> Result<(), DeviceError> {
        if !queue.is_valid(mem) {
            return Err(DeviceError::invalid_queue(index, queue));
        }
        let host = |addr: u64| -> Result<u64, DeviceError> {
            mem.get_host_address(GuestAddress(addr))
                .map(|p| p as u64)
                .map_err(|e| DeviceError(format!("queue {index}: ring at {addr:#x}: {e}")))
        };
        let ring = VringConfigData {
            queue_max_size: queue.max_size(),
            queue_size: queue.size(),
            flags: 0,
            desc_table_addr: host(queue.desc_table())?,
            used_ring_addr: host(queue.used_ring())?,
            avail_ring_addr: host(queue.avail_ring())?,
            log_addr: None,
        };
        let f = &mut self.frontend;
        f.set_vring_num(index, queue.size())
            .map_err(Self::backend_err("SET_VRING_NUM"))?;
        f.set_vring_addr(index, &ring)
            .map_err(Self::backend_err("SET_VRING_ADDR"))?;
        f.set_vring_base(index, queue.next_avail())
            .map_err(Self::backend_err("SET_VRING_BASE"))?;
        f.set_vring_call(index, &self.call)
            .map_err(Self::backend_err("SET_VRING_CALL"))?;
        f.set_vring_kick(index, kick)
            .map_err(Self::backend_err("SET_VRING_KICK"))?;
        self.started.push(index);
        if self.protocol {
            f.set_vring_enable(index, true)
                .map_err(Self::backend_err("SET_VRING_ENABLE"))?;
        }
        Ok(())
    }
}

/// The guest RAM regions as the backend maps them: each one's memfd and offset.
fn memory_table(mem: &GuestMemoryMmap) -> Result<Vec<VhostUserMemoryRegionInfo>, DeviceError> {
    mem.iter()
        .map(|r| {
            let file = r.file_offset().ok_or_else(|| {
                DeviceError(format!(
                    "guest RAM at {:#x} is not shareable (no memfd behind it)",
                    r.start_addr().0
                ))
            })?;
            let host = r
                .get_host_address(vm_memory::MemoryRegionAddress(0))
                .map_err(|e| DeviceError(e.to_string()))?;
            Ok(VhostUserMemoryRegionInfo {
                guest_phys_addr: r.start_addr().0,
                memory_size: r.len(),
                userspace_addr: host as u64,
                mmap_offset: file.start(),
                mmap_handle: file.file().as_raw_fd(),
            })
        })
        .collect()
}

impl VirtioDevice for Fs {
    fn device_type(&self) -> u32 {
        TYPE_FS
    }

    fn state(&self) -> super::state::DeviceState {
        super::state::DeviceState::Fs(super::state::FsState {
            tag: self.tag.clone(),
            socket: self.socket.clone(),
            backend_features: self.backend_features,
            protocol: self.protocol,
            started_queues: self.started.clone(),
        })
    }
    fn name(&self) -> String {
        format!("virtio-fs {}", self.tag)
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.sizes
    }

    fn features(&self) -> u64 {
        self.backend_features & PASSED_FEATURES
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data)
    }

    fn process_queue(
        &mut self,
        _index: usize,
        _queue: &mut Queue,
        _mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        // The backend serves the queues; the transport never asks (see
        // `queues_served_elsewhere`).
        Ok(false)
    }

    fn queues_served_elsewhere(&self) -> bool {
        true
    }

    fn activate(
        &mut self,
        features: u64,
        queues: &[Queue],
        mem: &GuestMemoryMmap,
        kicks: &[EventFd],
    ) -> Result<(), DeviceError> {
        let table = memory_table(mem)?;
        let acked = (features & PASSED_FEATURES) | (self.backend_features & PROTOCOL_FEATURES);
        self.frontend
            .set_features(acked)
            .map_err(Self::backend_err("SET_FEATURES"))?;
        self.frontend
            .set_mem_table(&table)
            .map_err(Self::backend_err("SET_MEM_TABLE"))?;
        for (index, (queue, kick)) in queues.iter().zip(kicks).enumerate() {
            if queue.ready() {
                self.start_queue(index, queue, mem, kick)?;
            }
        }
        Ok(())
    }

    fn reset(&mut self) {
        // GET_VRING_BASE stops a ring: the backend lets go of guest memory it may reuse.
        for index in std::mem::take(&mut self.started) {
            if let Err(e) = self.frontend.get_vring_base(index) {
                eprintln!(
                    "domboot-vmm: virtio-fs {}: stopping queue {index} (GET_VRING_BASE): {e}",
                    self.tag
                );
                break;
            }
        }
    }

    fn backend_fd(&self) -> Option<RawFd> {
        Some(self.call.as_raw_fd())
    }

    fn backend_gone(&self) -> Option<String> {
        // The backend never writes to this socket unasked (replies come while a request
        // is in flight, read by the requester), so only a hang-up is looked for: the
        // backend closed its end (it exited or was killed).
        let mut pfd = libc::pollfd {
            fd: self.frontend.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd that lives across the call; a zero timeout
        // makes the call return at once.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        let hung_up = libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR;
        (n > 0 && pfd.revents & hung_up != 0).then(|| {
            "its vhost-user backend closed the connection (it exited or was killed)".into()
        })
    }

    fn process_backend(
        &mut self,
        _queues: &mut [Queue],
        _mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        // The backend signalled used buffers on some queue: the transport raises
        // InterruptStatus' VRING bit and the interrupt.
        Ok(self.call.read().is_ok())
    }
}
