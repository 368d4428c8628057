//! virtio-net (virtio 1.2, section 5.1): one receive and one transmit queue, a MAC
//! address. Frames go to and come from a [`NetBackend`]: a host tap device ([`tap`]) or
//! passt's user-mode network ([`passt`]).
//!
//! Every buffer starts with the 12-byte `virtio_net_hdr_v1` (VERSION_1 makes
//! `num_buffers` part of it). On a tap (opened with IFF_VNET_HDR) the device offers the
//! transmit offloads: checksums left to the host (CSUM) and TCP segmentation
//! (HOST_TSO4/6), so a guest sends 64 KiB per buffer instead of 1.5 KiB, each with the
//! driver's header passed to the tap as it is, straight from guest memory (`writev`).
//! Received frames get a zeroed header (num_buffers 1): no receive offloads.

pub mod passt;
pub mod tap;

use super::iov::{self, split_chain};
use super::{DeviceError, F_VERSION_1, TYPE_NET, VirtioDevice, read_config_bytes};
use std::io;
use std::io::{Read, Write};
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
/// The largest transmit buffer: the header and a 64 KiB GSO packet with its Ethernet and
/// VLAN headers.
const MAX_TX: usize = HEADER + 65536 + 18;
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
        // Two hex digits: from_str_radix alone would take a sign ("+1").
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
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
    /// A frame read from the backend that found no receive buffer yet.
    pending: Option<Vec<u8>>,
    queue_sizes: [u16; 2],
    guest_name: String,
}

impl Net {
    pub fn new(backend: Box<dyn NetBackend>, mac: [u8; 6], guest_name: &str) -> Net {
        Net {
            backend,
            mac,
            pending: None,
            queue_sizes: [QUEUE_SIZE; 2],
            guest_name: guest_name.to_owned(),
        }
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
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
        let mut used = false;
        let mut buf = vec![0u8; 65536];
        // A vnet-header backend's frames start with its header, which is not passed on:
        // no receive offloads are negotiated, so the guest gets a zeroed one.
        let skip = if self.backend.vnet_hdr() { HEADER } else { 0 };
        loop {
            let frame = match self.pending.take() {
                Some(f) => f,
                None => match self.backend.read_frame(&mut buf) {
                    Ok(Some(n)) => buf.get(skip..n).unwrap_or_default().to_vec(),
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!(
                            "domboot-vmm: virtio-net {}: {}: {e}",
                            self.guest_name,
                            self.backend.describe()
                        );
                        break;
                    }
                },
            };
            let Some(chain) = super::next_chain(queue, mem)? else {
                self.pending = Some(frame);
                break;
            };
            let head = chain.head_index();
            let mut writer = chain
                .writer(mem)
                .map_err(|e| DeviceError(format!("malformed receive buffer: {e}")))?;
            if writer.available_bytes() < HEADER + frame.len() {
                // Too small for this frame (the driver sizes buffers for its MTU): the
                // frame is dropped, the buffer returned empty.
                queue.add_used(mem, head, 0)?;
                used = true;
                continue;
            }
            let mut header = [0u8; HEADER];
            header[10] = 1; // num_buffers
            writer
                .write_all(&header)
                .and_then(|_| writer.write_all(&frame))
                .map_err(|e| DeviceError(format!("malformed receive buffer: {e}")))?;
            queue.add_used(mem, head, (HEADER + frame.len()) as u32)?;
            used = true;
        }
        Ok(used)
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        TYPE_NET
    }
    fn state(&self) -> super::state::DeviceState {
        super::state::DeviceState::Net(super::state::NetState {
            mac: self.mac,
            backend: self.backend.describe(),
        })
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
            F_CSUM | F_HOST_TSO4 | F_HOST_TSO6
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
    fn reset(&mut self) {
        self.pending = None;
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

#[cfg(test)]
mod tests;
