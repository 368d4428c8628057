//! virtio-net (virtio 1.2, section 5.1): one receive and one transmit queue, a MAC
//! address. Frames go to and come from a [`NetBackend`]: a host tap device ([`tap`]) or
//! passt's user-mode network ([`passt`]).
//!
//! Every buffer starts with the 12-byte `virtio_net_hdr_v1` (VERSION_1 makes
//! `num_buffers` part of it). On a tap (opened with IFF_VNET_HDR) the device offers the
//! transmit offloads: checksums left to the host (CSUM) and TCP segmentation
//! (HOST_TSO4/6), so a guest sends 64 KiB per buffer instead of 1.5 KiB, each with the
//! driver's header passed to the tap as it is, straight from guest memory (`writev`).
//!
//! It offers the receive offloads too: checksums the host left undone or already checked
//! (GUEST_CSUM) and unsegmented TCP (GUEST_TSO4/6), with mergeable receive buffers
//! (MRG_RXBUF): the tap is told (TUNSETOFFLOAD) to hand over what the driver accepted,
//! and each frame is read (`readv`) straight into the driver's buffers, header and all,
//! spread over as many buffers as it needs; the device only writes `num_buffers`.
//! Mergeable buffers rather than the driver's "big packets" mode (GUEST_TSO without
//! MRG_RXBUF): in that mode Linux posts a 64 KiB chain of 17 pages for every receive
//! buffer, so each ACK of a guest → host transfer takes 64 KiB of guest memory and a
//! 19-descriptor chain, and a 256-entry ring pins 16 MiB of a small guest; mergeable
//! buffers are sized to the traffic (1.5 to 4 KiB each) and a 64 KiB frame takes the few
//! it needs. QEMU and Firecracker negotiate the same.
//!
//! A backend without a vnet header (passt) offers no offloads: its frames are copied into
//! each receive buffer after a zeroed header.

pub mod passt;
pub mod tap;

use super::iov::{self, Segments, split_chain};
use super::{DeviceError, F_VERSION_1, TYPE_NET, VirtioDevice, read_config_bytes};
use std::collections::VecDeque;
use std::io;
use std::io::Read;
use std::os::fd::RawFd;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

const RX: usize = 0;
const TX: usize = 1;
const QUEUE_SIZE: u16 = 256;
const HEADER: usize = 12;
/// VIRTIO_NET_F_MAC: the configuration space holds the MAC address.
const F_MAC: u64 = 1 << 5;
/// VIRTIO_NET_F_STATUS: the configuration space says the link is up.
const F_STATUS: u64 = 1 << 16;
/// VIRTIO_NET_F_CSUM: the driver may leave checksums to the device (the host's stack).
const F_CSUM: u64 = 1 << 0;
/// VIRTIO_NET_F_HOST_TSO4 / HOST_TSO6: the driver may hand over unsegmented TCP.
const F_HOST_TSO4: u64 = 1 << 11;
const F_HOST_TSO6: u64 = 1 << 12;
/// VIRTIO_NET_F_GUEST_CSUM: the device may hand over frames whose checksum is left to the
/// driver (NEEDS_CSUM) or already checked (DATA_VALID).
const F_GUEST_CSUM: u64 = 1 << 1;
/// VIRTIO_NET_F_GUEST_TSO4 / GUEST_TSO6: the device may hand over unsegmented TCP.
const F_GUEST_TSO4: u64 = 1 << 7;
const F_GUEST_TSO6: u64 = 1 << 8;
/// VIRTIO_NET_F_MRG_RXBUF: a received frame may take several receive buffers, the
/// header's `num_buffers` says how many.
const F_MRG_RXBUF: u64 = 1 << 15;
/// The tap's offload flags (linux/if_tun.h) for the receive offloads above.
const TUN_F_CSUM: u32 = 0x01;
const TUN_F_TSO4: u32 = 0x02;
const TUN_F_TSO6: u32 = 0x04;
/// The largest transmit buffer: the header and a 64 KiB GSO packet with its Ethernet and
/// VLAN headers.
const MAX_TX: usize = HEADER + 65536 + 18;
/// The largest frame a tap hands over with TSO on, with its header: as large as a
/// transmitted one.
const MAX_RX: usize = MAX_TX;
/// At most this many guest ranges held for one frame (each one or two iovecs of a
/// `readv`, which takes at most [`iov::IOV_MAX`] with the spill byte).
const MAX_RX_SEGMENTS: usize = (iov::IOV_MAX - 1) / 2;
const LINK_UP: u16 = 1;
/// The largest frame: a 1500-byte MTU, its Ethernet header and a VLAN tag.
pub const MAX_FRAME: usize = 1518;

/// Where frames go: a tap device or a user-mode network.
pub trait NetBackend: Send {
    /// Watched for readability (edge-triggered).
    fn fd(&self) -> RawFd;
    /// The next frame from the host into `buf`; `Ok(None)` when there is none now.
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// Sends a frame to the host.
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()>;
    /// For logs: "tap tap0", "passt".
    fn describe(&self) -> String;
    /// Frames through this backend carry the 12-byte `virtio_net_hdr_v1` first, both ways
    /// (a tap with IFF_VNET_HDR), and take one `writev` each on [`NetBackend::fd`]: the
    /// device then offers the transmit offloads and writes guest buffers straight to it.
    fn vnet_hdr(&self) -> bool {
        false
    }
    /// Which offloaded frames (`TUN_F_*`) the backend may hand over from now on (a
    /// vnet-header backend: what the driver accepted; 0 after a reset).
    fn set_offload(&mut self, _tun_flags: u32) -> io::Result<()> {
        Ok(())
    }
}

/// A locally administered unicast MAC in QEMU's 52:54:00 range, random below it.
pub fn random_mac() -> [u8; 6] {
    let mut r = [0u8; 3];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut r));
    [0x52, 0x54, 0x00, r[0], r[1], r[2]]
}

/// Parses `52:54:00:12:34:56`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    (parts.next().is_none() && mac[0] & 1 == 0).then_some(mac)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub struct Net {
    backend: Box<dyn NetBackend>,
    mac: [u8; 6],
    /// The features the driver accepted (0 until it does, and after a reset).
    acked: u64,
    /// A vnet-header backend's receive buffers, taken from the ring but not filled yet
    /// (head index, writable ranges), oldest first: a frame is read across as many as
    /// the largest frame needs, and those it leaves wait for the next one.
    held: VecDeque<(u16, Segments)>,
    /// Bytes and ranges of `held`.
    held_bytes: usize,
    held_segments: usize,
    iov: iov::Iovecs,
    /// A backend without a vnet header: the frame buffer, allocated once.
    frame: Vec<u8>,
    /// The length of a frame in `frame` that found no receive buffer yet.
    pending: Option<usize>,
    queue_sizes: [u16; 2],
    guest_name: String,
}

impl Net {
    pub fn new(backend: Box<dyn NetBackend>, mac: [u8; 6], guest_name: &str) -> Net {
        Net {
            backend,
            mac,
            acked: 0,
            held: VecDeque::new(),
            held_bytes: 0,
            held_segments: 0,
            iov: iov::Iovecs::default(),
            frame: Vec::new(),
            pending: None,
            queue_sizes: [QUEUE_SIZE; 2],
            guest_name: guest_name.to_owned(),
        }
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn log_backend_error(&self, e: &io::Error) {
        eprintln!(
            "domboot-vmm: virtio-net {}: {}: {e}",
            self.guest_name,
            self.backend.describe()
        );
    }

    /// Sends every frame the driver queued for transmission.
    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        let mut frame = Vec::with_capacity(HEADER + MAX_FRAME);
        let backend = &mut self.backend;
        let vnet_hdr = backend.vnet_hdr();
        super::drain_queue(queue, mem, |chain| {
            let (mut readable, _) = split_chain(chain, mem)
                .map_err(|e| DeviceError(format!("transmit buffer: {e}")))?;
            let len = readable.len();
            if !(HEADER..=MAX_TX).contains(&len) {
                return Err(DeviceError(format!(
                    "transmit buffer of {len} bytes: a frame with its {HEADER}-byte header is \
                     {HEADER} to {MAX_TX} bytes"
                )));
            }
            // A frame the host refuses (a tap that is down or full, a header the tap
            // finds invalid, passt gone) is dropped, as a wire drops it; the driver gets
            // its buffer back either way.
            if vnet_hdr {
                let _ = iov::writev(backend.fd(), mem, &readable)?;
            } else {
                readable.split_front(HEADER);
                frame.resize(len - HEADER, 0);
                readable.read_into(mem, &mut frame)?;
                let _ = backend.write_frame(&frame);
            }
            Ok(0)
        })
    }

    /// Moves frames from the backend into receive buffers until either runs out.
    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        if self.backend.vnet_hdr() {
            self.receive_vnet(queue, mem)
        } else {
            self.receive_copy(queue, mem)
        }
    }

    /// The next receive buffer's writable ranges, checked: device-writable only, room
    /// for the header at least.
    fn rx_chain(
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<Option<(u16, Segments)>, DeviceError> {
        let Some(chain) = super::next_chain(queue, mem)? else {
            return Ok(None);
        };
        let head = chain.head_index();
        let (readable, writable) =
            split_chain(chain, mem).map_err(|e| DeviceError(format!("receive buffer: {e}")))?;
        if !readable.is_empty() {
            return Err(DeviceError(format!(
                "receive buffer {head}: {} bytes the device may only read; a receive buffer \
                 is device-writable only",
                readable.len()
            )));
        }
        if writable.len() < HEADER {
            return Err(DeviceError(format!(
                "receive buffer {head} of {} bytes: smaller than the {HEADER}-byte header",
                writable.len()
            )));
        }
        if writable.count() > MAX_RX_SEGMENTS {
            return Err(DeviceError(format!(
                "receive buffer {head} of {} descriptors: at most {MAX_RX_SEGMENTS}",
                writable.count()
            )));
        }
        Ok(Some((head, writable)))
    }

    /// A vnet-header backend: each frame, its header included, read straight into the
    /// guest's buffers.
    fn receive_vnet(
        &mut self,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        let mergeable = self.acked & F_MRG_RXBUF != 0;
        let need = if self.acked & (F_GUEST_TSO4 | F_GUEST_TSO6) != 0 {
            MAX_RX
        } else {
            HEADER + MAX_FRAME
        };
        let mut used = false;
        loop {
            // Hold buffers enough for the largest frame the tap may hand over (without
            // mergeable buffers: one, whatever its size).
            let mut all_held = false;
            while self.held.is_empty() || (mergeable && self.held_bytes < need) {
                let Some((head, segs)) = Self::rx_chain(queue, mem)? else {
                    break;
                };
                if self.held_segments + segs.count() > MAX_RX_SEGMENTS {
                    // Not for this frame: the ring gives it again next time.
                    queue.set_next_avail(queue.next_avail().wrapping_sub(1));
                    all_held = true;
                    break;
                }
                self.held_bytes += segs.len();
                self.held_segments += segs.count();
                self.held.push_back((head, segs));
            }
            if self.held.is_empty() {
                // The driver's next buffers (its notification) resume the receiving.
                break;
            }
            if mergeable
                && self.held_bytes < need
                && !all_held
                && self.held.len() < usize::from(queue.size())
            {
                // Too few buffers for a large frame, and the driver can still add more:
                // wait for them (next_chain asked for the notification) rather than
                // drop a frame that would not fit.
                break;
            }
            let mut spill = [0u8; 1];
            let fd = self.backend.fd();
            let read = iov::readv(
                fd,
                mem,
                self.held.iter().map(|(_, s)| s),
                &mut spill,
                &mut self.iov,
            )?;
            let n = match read {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.log_backend_error(&e);
                    break;
                }
            };
            if n > self.held_bytes || n < HEADER {
                // Larger than the buffers the driver gave (it sizes them for what it
                // accepted), or not a frame: dropped, as a wire drops it; the buffers
                // take the next frame.
                continue;
            }
            // How many buffers the frame took.
            let mut buffers = 0u16;
            let mut left = n;
            for (_, segs) in &self.held {
                if left == 0 {
                    break;
                }
                left -= left.min(segs.len());
                buffers += 1;
            }
            let first = &self.held[0].1;
            if self.acked & F_GUEST_CSUM == 0 {
                // No offloads accepted (the tap hands over none): not even DATA_VALID,
                // which the driver may only see with GUEST_CSUM.
                let mut header = [0u8; HEADER];
                header[10..].copy_from_slice(&buffers.to_le_bytes());
                first.write_from(mem, &header)?;
            } else {
                // The tap leaves num_buffers as the buffer had it.
                first.write_at(mem, HEADER - 2, &buffers.to_le_bytes())?;
            }
            let mut left = n;
            for _ in 0..buffers {
                let Some((head, segs)) = self.held.pop_front() else {
                    break;
                };
                let len = left.min(segs.len());
                left -= len;
                self.held_bytes -= segs.len();
                self.held_segments -= segs.count();
                queue.add_used(mem, head, len as u32)?;
            }
            used = true;
        }
        Ok(used)
    }

    /// A backend without a vnet header: each frame read into a buffer of domboot's, then
    /// copied into one receive buffer after a zeroed header.
    fn receive_copy(
        &mut self,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        if self.frame.is_empty() {
            self.frame = vec![0u8; 65536];
        }
        let mut used = false;
        loop {
            let len = match self.pending.take() {
                Some(len) => len,
                None => match self.backend.read_frame(&mut self.frame) {
                    Ok(Some(n)) => n.min(self.frame.len()),
                    Ok(None) => break,
                    Err(e) => {
                        self.log_backend_error(&e);
                        break;
                    }
                },
            };
            let Some((head, segs)) = Self::rx_chain(queue, mem)? else {
                self.pending = Some(len);
                break;
            };
            if segs.len() < HEADER + len {
                // Too small for this frame (the driver sizes buffers for its MTU): the
                // frame is dropped, the buffer returned empty.
                queue.add_used(mem, head, 0)?;
                used = true;
                continue;
            }
            let mut header = [0u8; HEADER];
            header[10] = 1; // num_buffers
            segs.write_from(mem, &header)?;
            segs.write_at(mem, HEADER, &self.frame[..len])?;
            queue.add_used(mem, head, (HEADER + len) as u32)?;
            used = true;
        }
        Ok(used)
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        TYPE_NET
    }
    fn name(&self) -> String {
        format!(
            "virtio-net {} ({}, {})",
            self.guest_name,
            self.backend.describe(),
            format_mac(&self.mac)
        )
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }
    fn features(&self) -> u64 {
        let offloads = if self.backend.vnet_hdr() {
            F_CSUM
                | F_HOST_TSO4
                | F_HOST_TSO6
                | F_GUEST_CSUM
                | F_GUEST_TSO4
                | F_GUEST_TSO6
                | F_MRG_RXBUF
        } else {
            0
        };
        F_VERSION_1 | F_MAC | F_STATUS | super::F_EVENT_IDX | super::F_INDIRECT_DESC | offloads
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let mut cfg = [0u8; 8];
        cfg[..6].copy_from_slice(&self.mac);
        cfg[6..8].copy_from_slice(&LINK_UP.to_le_bytes());
        read_config_bytes(&cfg, offset, data);
    }
    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        match index {
            RX => self.receive(queue, mem),
            TX => self.transmit(queue, mem),
            _ => Ok(false),
        }
    }
    fn ack_features(&mut self, features: u64) -> Result<(), DeviceError> {
        self.acked = features;
        self.backend
            .set_offload(tun_offload(features))
            .map_err(|e| {
                DeviceError(format!(
                    "{}: TUNSETOFFLOAD {:#x} for the receive offloads the driver accepted: {e}",
                    self.backend.describe(),
                    tun_offload(features)
                ))
            })
    }
    fn reset(&mut self) {
        self.pending = None;
        self.held.clear();
        self.held_bytes = 0;
        self.held_segments = 0;
        if self.acked != 0
            && tun_offload(self.acked) != 0
            && let Err(e) = self.backend.set_offload(0)
        {
            self.log_backend_error(&e);
        }
        self.acked = 0;
    }
    fn backend_fd(&self) -> Option<RawFd> {
        Some(self.backend.fd())
    }
    fn process_backend(
        &mut self,
        queues: &mut [Queue],
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        match queues.get_mut(RX) {
            Some(q) if q.ready() => self.receive(q, mem),
            _ => Ok(false),
        }
    }
}

/// The tap offloads (`TUN_F_*`) for the receive offloads among `features`.
fn tun_offload(features: u64) -> u32 {
    [
        (F_GUEST_CSUM, TUN_F_CSUM),
        (F_GUEST_TSO4, TUN_F_TSO4),
        (F_GUEST_TSO6, TUN_F_TSO6),
    ]
    .iter()
    .filter(|&&(f, _)| features & f != 0)
    .fold(0, |flags, &(_, tun)| flags | tun)
}

#[cfg(test)]
mod tests;
