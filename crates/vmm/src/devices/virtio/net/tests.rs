//! The net device against queues in guest memory (virtio-queue's mock) and a backend
//! that records frames.

use super::*;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use virtio_queue::desc::{RawDescriptor, split::Descriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

#[derive(Clone, Default)]
struct Wire {
    to_guest: Arc<Mutex<VecDeque<Vec<u8>>>>,
    from_guest: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl NetBackend for Wire {
    fn fd(&self) -> RawFd {
        -1
    }
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        Ok(self.to_guest.lock().unwrap().pop_front().map(|f| {
            buf[..f.len()].copy_from_slice(&f);
            f.len()
        }))
    }
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.from_guest.lock().unwrap().push(frame.to_vec());
        Ok(())
    }
    fn describe(&self) -> String {
        "wire".into()
    }
}

fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x20_0000)]).unwrap()
}

fn desc(addr: u64, len: u32, flags: u16) -> RawDescriptor {
    RawDescriptor::from(Descriptor::new(addr, len, flags, 0))
}

#[test]
fn frames_both_ways() {
    let mem = memory();
    let wire = Wire::default();
    let mut net = Net::new(Box::new(wire.clone()), [0x52, 0x54, 0, 1, 2, 3], "eth0");
    // Transmit: header + frame in one readable buffer.
    let mut tx = vec![0u8; HEADER];
    tx.extend_from_slice(b"frame-from-guest");
    mem.write_slice(&tx, GuestAddress(0x10_0000)).unwrap();
    let q = MockSplitQueue::new(&mem, 16);
    q.add_desc_chains(&[desc(0x10_0000, tx.len() as u32, 0)], 0)
        .unwrap();
    let mut queue = q.create_queue::<Queue>().unwrap();
    assert!(net.process_queue(TX, &mut queue, &mem).unwrap());
    assert_eq!(
        wire.from_guest.lock().unwrap().as_slice(),
        &[b"frame-from-guest".to_vec()]
    );

    // Receive: a frame waits for a buffer, then lands after a zeroed header.
    wire.to_guest
        .lock()
        .unwrap()
        .push_back(b"frame-to-guest".to_vec());
    let q = MockSplitQueue::create(&mem, GuestAddress(0x8000), 16);
    let mut rx = q.create_queue::<Queue>().unwrap();
    rx.set_ready(true);
    assert!(!net.receive(&mut rx, &mem).unwrap());
    assert!(net.pending.is_some());
    q.add_desc_chains(&[desc(0x11_0000, 2048, 2)], 0).unwrap();
    let mut rx = q.create_queue::<Queue>().unwrap();
    assert!(net.receive(&mut rx, &mem).unwrap());
    let mut got = vec![0u8; HEADER + 14];
    mem.read_slice(&mut got, GuestAddress(0x11_0000)).unwrap();
    assert_eq!(got[10], 1, "num_buffers");
    assert_eq!(&got[HEADER..], b"frame-to-guest");
    let mut cfg = [0u8; 8];
    net.read_config(0, &mut cfg);
    assert_eq!(cfg, [0x52, 0x54, 0, 1, 2, 3, 1, 0]);
}

#[test]
fn bad_transmit_buffers_fail_the_device() {
    let mem = memory();
    let mut net = Net::new(Box::new(Wire::default()), random_mac(), "eth0");
    let q = MockSplitQueue::new(&mem, 16);
    // Shorter than the header.
    q.add_desc_chains(&[desc(0x10_0000, 4, 0)], 0).unwrap();
    let mut queue = q.create_queue::<Queue>().unwrap();
    assert!(net.process_queue(TX, &mut queue, &mem).is_err());
}

#[test]
fn macs() {
    assert_eq!(
        parse_mac("52:54:00:AB:cd:01"),
        Some([0x52, 0x54, 0, 0xab, 0xcd, 1])
    );
    for bad in [
        "",
        "52:54:00:ab:cd",
        "52:54:00:ab:cd:01:02",
        "01:00:00:00:00:00",
        "5:54:00:ab:cd:01",
        "zz:54:00:ab:cd:01",
        "52:54:00:ab:cd:+1",
        "+2:54:00:ab:cd:01",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad}");
    }
    let m = random_mac();
    assert_eq!(&m[..3], &[0x52, 0x54, 0]);
    assert_eq!(format_mac(&m).len(), 17);
    assert_eq!(parse_mac(&format_mac(&m)), Some(m));
}

/// A vnet-header backend (a tap with IFF_VNET_HDR) on one end of a datagram socket pair:
/// frames keep their boundaries, as a tap's do.
struct VnetPair(std::os::unix::net::UnixDatagram);

impl NetBackend for VnetPair {
    fn fd(&self) -> RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.0)
    }
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.0.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.0.send(frame).map(|_| ())
    }
    fn describe(&self) -> String {
        "vnet pair".into()
    }
    fn vnet_hdr(&self) -> bool {
        true
    }
}

#[test]
fn a_vnet_header_backend_gets_the_drivers_header_and_offers_tso() {
    let mem = memory();
    let (ours, host) = std::os::unix::net::UnixDatagram::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let mut net = Net::new(Box::new(VnetPair(ours)), random_mac(), "eth0");
    let f = net.features();
    assert_eq!(
        f & (F_CSUM | F_HOST_TSO4 | F_HOST_TSO6),
        F_CSUM | F_HOST_TSO4 | F_HOST_TSO6
    );
    // A GSO header (flags NEEDS_CSUM, gso TCPV4) and a frame split over two descriptors
    // of an indirect table go to the backend as they are, in one message.
    let mut hdr = [0u8; HEADER];
    hdr[0] = 1;
    hdr[1] = 1;
    mem.write_slice(&hdr, GuestAddress(0x10_0000)).unwrap();
    let big = vec![0x5au8; 60_000];
    mem.write_slice(&big, GuestAddress(0x12_0000)).unwrap();
    for (i, d) in [
        Descriptor::new(0x10_0000, HEADER as u32, 1, 1),
        Descriptor::new(0x12_0000, big.len() as u32, 0, 0),
    ]
    .into_iter()
    .enumerate()
    {
        mem.write_obj(
            RawDescriptor::from(d),
            GuestAddress(0x18_0000 + 16 * i as u64),
        )
        .unwrap();
    }
    let q = MockSplitQueue::new(&mem, 16);
    q.add_desc_chains(&[desc(0x18_0000, 32, 4)], 0).unwrap();
    let mut queue = q.create_queue::<Queue>().unwrap();
    assert!(net.process_queue(TX, &mut queue, &mem).unwrap());
    let mut got = vec![0u8; 70_000];
    let n = host.recv(&mut got).unwrap();
    assert_eq!(n, HEADER + big.len());
    assert_eq!(&got[..HEADER], &hdr);
    assert!(got[HEADER..n].iter().all(|&b| b == 0x5a));

    // Received: the backend's header is replaced by a zeroed one (no receive offloads).
    let mut from_host = vec![0xffu8; HEADER];
    from_host.extend_from_slice(b"frame-to-guest");
    host.send(&from_host).unwrap();
    let q = MockSplitQueue::create(&mem, GuestAddress(0x8000), 16);
    q.add_desc_chains(&[desc(0x11_0000, 2048, 2)], 0).unwrap();
    let mut rx = q.create_queue::<Queue>().unwrap();
    assert!(net.receive(&mut rx, &mem).unwrap());
    let mut back = vec![0u8; HEADER + 14];
    mem.read_slice(&mut back, GuestAddress(0x11_0000)).unwrap();
    assert_eq!(&back[..HEADER], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert_eq!(&back[HEADER..], b"frame-to-guest");
}
