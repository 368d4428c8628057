//! What a virtio device and its transport would need written down for a snapshot: plain
//! data, serialisable with serde, taken while the VM runs ([`super::mmio::MmioTransport::state`]).
//!
//! Saving and restoring whole VMs is not built yet; these types are its device half, kept
//! beside each device so that a device that grows state grows it here too. What lives on
//! the host and cannot be written down (open files, taps, sockets, a vhost-user backend's
//! own state) is named by what reopens it (a path, an interface name, a socket) and, for
//! connections that cannot survive (vsock streams), left out: Firecracker's snapshots
//! reset them too (VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on restore).

use super::block::BlockState;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use virtio_queue::{Queue, QueueState};

/// One virtqueue as the driver set it up and as far as the device has got through it:
/// virtio-queue's [`QueueState`], which has no serde support of its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSnapshot {
    pub max_size: u16,
    pub size: u16,
    pub ready: bool,
    pub desc_table: u64,
    pub avail_ring: u64,
    pub used_ring: u64,
    /// The next available-ring entry the device will take.
    pub next_avail: u16,
    /// The next used-ring entry the device will fill.
    pub next_used: u16,
    pub event_idx_enabled: bool,
}

impl QueueSnapshot {
    pub fn of(queue: &Queue) -> QueueSnapshot {
        let s = queue.state();
        QueueSnapshot {
            max_size: s.max_size,
            size: s.size,
            ready: s.ready,
            desc_table: s.desc_table,
            avail_ring: s.avail_ring,
            used_ring: s.used_ring,
            next_avail: s.next_avail,
            next_used: s.next_used,
            event_idx_enabled: s.event_idx_enabled,
        }
    }

    /// The queue again, checked as virtio-queue checks a restored one (sizes).
    pub fn restore(&self) -> Result<Queue, virtio_queue::Error> {
        Queue::try_from(QueueState {
            max_size: self.max_size,
            next_avail: self.next_avail,
            next_used: self.next_used,
            event_idx_enabled: self.event_idx_enabled,
            size: self.size,
            ready: self.ready,
            desc_table: self.desc_table,
            avail_ring: self.avail_ring,
            used_ring: self.used_ring,
        })
    }
}

/// The transport's registers, its queues and its device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportState {
    pub device_features_sel: u32,
    pub driver_features_sel: u32,
    /// The features the driver accepted.
    pub driver_features: u64,
    pub queue_sel: u32,
    /// The device status register (ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK,
    /// DEVICE_NEEDS_RESET, FAILED).
    pub status: u32,
    /// InterruptStatus: causes the driver has not acknowledged yet.
    pub interrupt_status: u32,
    pub queues: Vec<QueueSnapshot>,
    pub device: DeviceState,
}

/// Each device's own state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceState {
    Block(BlockState),
    Net(NetState),
    /// The entropy device has none: its source is the host's /dev/urandom.
    Rng,
    Console(ConsoleState),
    Vsock(VsockState),
    Fs(FsState),
}

/// A network interface: its address and the host side it is connected to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetState {
    pub mac: [u8; 6],
    /// The backend, as a restore would reopen it ("tap tap0", "passt").
    pub backend: String,
}

/// The virtio console: input not yet delivered, and whether the guest's console is up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleState {
    pub pending_input: Vec<u8>,
    /// The guest has written to the port (input is held until then).
    pub spoke: bool,
}

/// The vsock device: the guest's address and the host's Unix socket. Open connections are
/// not part of it (see the module's comment).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VsockState {
    pub guest_cid: u64,
    pub uds_path: PathBuf,
}

/// A virtio-fs device: what the guest mounts, which backend served it and what was agreed
/// with that backend. A restore connects to a new backend on `socket` and replays the
/// set-up (features, memory table, the started queues).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsState {
    pub tag: String,
    pub socket: PathBuf,
    /// The virtio features the backend offered.
    pub backend_features: u64,
    /// The vhost-user protocol features were negotiated.
    pub protocol: bool,
    /// Queues handed to the backend since the last reset.
    pub started_queues: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_queue::QueueT;

    #[test]
    fn a_queue_snapshot_restores_the_same_queue() {
        let mut q = Queue::new(256).unwrap();
        q.set_size(64);
        q.set_desc_table_address(Some(0x1000), Some(0));
        q.set_avail_ring_address(Some(0x2000), Some(0));
        q.set_used_ring_address(Some(0x3000), Some(0));
        q.set_event_idx(true);
        q.set_next_avail(17);
        q.set_next_used(15);
        q.set_ready(true);
        let snap = QueueSnapshot::of(&q);
        assert_eq!(
            (
                snap.size,
                snap.next_avail,
                snap.next_used,
                snap.event_idx_enabled
            ),
            (64, 17, 15, true)
        );
        assert_eq!(snap.restore().unwrap().state(), q.state());
        // A size that is not a power of two is refused on the way back, as on the way in.
        let bad = QueueSnapshot { size: 65, ..snap };
        assert!(bad.restore().is_err());
    }

    #[test]
    fn every_device_state_survives_serde() {
        let states = [
            DeviceState::Block(BlockState {
                path: "/var/lib/disk.img".into(),
                read_only: true,
                capacity: 2048,
                id: *b"domboot-disk-0000001",
            }),
            DeviceState::Net(NetState {
                mac: [0x52, 0x54, 0, 1, 2, 3],
                backend: "tap tap0".into(),
            }),
            DeviceState::Rng,
            DeviceState::Console(ConsoleState {
                pending_input: b"ls\n".to_vec(),
                spoke: true,
            }),
            DeviceState::Vsock(VsockState {
                guest_cid: 3,
                uds_path: "/tmp/v.sock".into(),
            }),
            DeviceState::Fs(FsState {
                tag: "root".into(),
                socket: "/tmp/fs.sock".into(),
                backend_features: 1 << 32,
                protocol: true,
                started_queues: vec![0, 1],
            }),
        ];
        for device in states {
            let t = TransportState {
                device_features_sel: 1,
                driver_features_sel: 0,
                driver_features: 1 << 32,
                queue_sel: 1,
                status: 15,
                interrupt_status: 1,
                queues: vec![QueueSnapshot::default(); 2],
                device,
            };
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<TransportState>(&json).unwrap(), t);
        }
    }
}
