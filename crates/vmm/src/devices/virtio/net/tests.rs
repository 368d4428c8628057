//! The net device against queues in guest memory (virtio-queue's mock) and a backend
//! that records frames.

use super::*;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use virtio_queue::desc::{RawDescriptor, split::Descriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Address, Bytes, GuestAddress};

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
    ] {
        assert_eq!(parse_mac(bad), None, "{bad}");
    }
    let m = random_mac();
    assert_eq!(&m[..3], &[0x52, 0x54, 0]);
    assert_eq!(format_mac(&m).len(), 17);
    assert_eq!(parse_mac(&format_mac(&m)), Some(m));
}

/// A vnet-header backend (a tap with IFF_VNET_HDR) on one end of a datagram socket pair:
/// frames keep their boundaries, as a tap's do. Records the offloads it is set to.
struct VnetPair(std::os::unix::net::UnixDatagram, Arc<Mutex<Vec<u32>>>);

impl NetBackend for VnetPair {
    fn fd(&self) -> RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.0)
    }
    fn set_offload(&mut self, tun_flags: u32) -> io::Result<()> {
        self.1.lock().unwrap().push(tun_flags);
        Ok(())
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
    let mut net = Net::new(
        Box::new(VnetPair(ours, Default::default())),
        random_mac(),
        "eth0",
    );
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

    // Received with no receive offloads accepted: the backend's header is replaced by a
    // zeroed one.
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

/// Where [`rx_queue`] puts the used ring.
const USED: GuestAddress = GuestAddress(0xa000);

/// The mock's queue with its used ring at [`USED`]: the mock puts it `size` bytes after
/// the available ring's entries, so the used entries of a queue more than half full
/// would overwrite available ones.
fn rx_queue(q: &MockSplitQueue<GuestMemoryMmap>) -> Queue {
    let mut queue = q.create_queue::<Queue>().unwrap();
    queue.set_ready(false);
    queue.set_used_ring_address(Some(USED.0 as u32), Some(0));
    queue.set_ready(true);
    queue
}

/// The used ring's entries (id, len), in order.
fn used(mem: &GuestMemoryMmap) -> Vec<(u32, u32)> {
    let idx: u16 = mem.read_obj(USED.unchecked_add(2)).unwrap();
    (0..u64::from(idx))
        .map(|i| {
            let at = USED.unchecked_add(4 + 8 * i);
            (
                mem.read_obj(at).unwrap(),
                mem.read_obj(at.unchecked_add(4)).unwrap(),
            )
        })
        .collect()
}

/// A vnet-header device whose driver accepted `features`, the host end of its backend,
/// and the offloads the backend was set to.
fn vnet_device(features: u64) -> (Net, std::os::unix::net::UnixDatagram, Arc<Mutex<Vec<u32>>>) {
    let (ours, host) = std::os::unix::net::UnixDatagram::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let offloads = Arc::new(Mutex::new(Vec::new()));
    let mut net = Net::new(
        Box::new(VnetPair(ours, offloads.clone())),
        random_mac(),
        "eth0",
    );
    assert_eq!(features & !net.features(), 0, "only offered features");
    net.ack_features(features).unwrap();
    (net, host, offloads)
}

/// A frame from the tap: `header` then `len` bytes counting up.
fn tap_frame(header: [u8; HEADER], len: usize) -> Vec<u8> {
    let mut f = header.to_vec();
    f.extend((0..len).map(|i| (i % 251) as u8));
    f
}

const OFFLOADS: u64 = F_VERSION_1 | F_GUEST_CSUM | F_GUEST_TSO4 | F_GUEST_TSO6 | F_MRG_RXBUF;

#[test]
fn offloads_go_to_the_tap_as_accepted_and_a_reset_takes_them_back() {
    let (mut net, _host, offloads) = vnet_device(OFFLOADS);
    assert_eq!(
        *offloads.lock().unwrap(),
        [TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6]
    );
    net.reset();
    assert_eq!(offloads.lock().unwrap().last(), Some(&0));
    net.ack_features(F_VERSION_1 | F_GUEST_CSUM).unwrap();
    assert_eq!(offloads.lock().unwrap().last(), Some(&TUN_F_CSUM));
    // A driver that accepts none leaves the tap with none.
    let (_net, _host, offloads) = vnet_device(F_VERSION_1);
    assert_eq!(*offloads.lock().unwrap(), [0]);
    // No vnet header, no receive offloads offered.
    let net = Net::new(Box::new(Wire::default()), random_mac(), "eth0");
    assert_eq!(net.features() & (F_GUEST_CSUM | F_MRG_RXBUF), 0);
}

#[test]
fn a_large_frame_spreads_over_mergeable_buffers_with_the_taps_header() {
    let mem = memory();
    let (mut net, host, _) = vnet_device(OFFLOADS);
    // A TCP GSO frame (NEEDS_CSUM, TCPV4, hdr_len 54, gso_size 1448, csum_start 34,
    // csum_offset 16) and the buffer's num_buffers left as garbage by the tap.
    let header = [1, 1, 54, 0, 0xa8, 5, 34, 0, 16, 0, 0xee, 0xee];
    let big = tap_frame(header, 5000);
    host.send(&big).unwrap();
    let small = tap_frame([0; HEADER], 60);
    host.send(&small).unwrap();
    let q = MockSplitQueue::create(&mem, GuestAddress(0x8000), 64);
    let mut rx = rx_queue(&q);
    // 48 buffers of 1536 bytes: room for the largest frame (44 of them) after the first
    // frame took 4.
    let bufs: Vec<_> = (0..48)
        .map(|i| desc(0x10_0000 + 0x1000 * i, 1536, 2))
        .collect();
    q.add_desc_chains(&bufs, 0).unwrap();
    assert!(net.receive(&mut rx, &mem).unwrap());
    // 5012 bytes: three full buffers and 404 bytes of a fourth; the next frame takes
    // the fifth.
    assert_eq!(
        used(&mem),
        [
            (0, 1536),
            (1, 1536),
            (2, 1536),
            (3, 404),
            (4, (HEADER + 60) as u32)
        ]
    );
    let mut got = Vec::new();
    for (i, len) in [(0u64, 1536usize), (1, 1536), (2, 1536), (3, 404)] {
        let mut b = vec![0u8; len];
        mem.read_slice(&mut b, GuestAddress(0x10_0000 + 0x1000 * i))
            .unwrap();
        got.extend(b);
    }
    let mut want = big.clone();
    want[10..12].copy_from_slice(&4u16.to_le_bytes());
    assert_eq!(
        got, want,
        "the tap's header with num_buffers 4, then the frame"
    );
    let mut b = vec![0u8; HEADER + 60];
    mem.read_slice(&mut b, GuestAddress(0x10_4000)).unwrap();
    let mut want = small.clone();
    want[10] = 1;
    assert_eq!(b, want);
    // The buffers the frames left stay held for the next ones.
    assert_eq!(net.held.len(), 43);
}

#[test]
fn mergeable_buffers_too_few_for_a_large_frame_wait_for_more() {
    let mem = memory();
    let (mut net, host, _) = vnet_device(OFFLOADS);
    host.send(&tap_frame([0; HEADER], 3000)).unwrap();
    let q = MockSplitQueue::create(&mem, GuestAddress(0x8000), 64);
    let mut rx = rx_queue(&q);
    let bufs: Vec<_> = (0..4)
        .map(|i| desc(0x10_0000 + 0x1000 * i, 1536, 2))
        .collect();
    q.add_desc_chains(&bufs, 0).unwrap();
    // 6 KiB held: a 64 KiB frame could come, so nothing is read yet.
    assert!(!net.receive(&mut rx, &mem).unwrap());
    assert!(used(&mem).is_empty());
    let bufs: Vec<_> = (4..44)
        .map(|i| desc(0x10_0000 + 0x1000 * i, 1536, 2))
        .collect();
    q.add_desc_chains(&bufs, 4).unwrap();
    assert!(net.receive(&mut rx, &mem).unwrap());
    assert_eq!(used(&mem), [(0, 1536), (1, 1476)]);
    let mut hdr = [0u8; HEADER];
    mem.read_slice(&mut hdr, GuestAddress(0x10_0000)).unwrap();
    assert_eq!(u16::from_le_bytes([hdr[10], hdr[11]]), 2, "num_buffers");
}

#[test]
fn without_offloads_a_tap_frame_takes_one_buffer_and_a_clean_header() {
    let mem = memory();
    let (mut net, host, _) = vnet_device(F_VERSION_1);
    // DATA_VALID from the tap: the driver did not accept GUEST_CSUM, so it must not see
    // it.
    let mut header = [0u8; HEADER];
    header[0] = 2;
    // Too big for the first buffer (dropped; the buffer takes the next frame), then two
    // that fit.
    host.send(&tap_frame(header, 1400)).unwrap();
    host.send(&tap_frame(header, 900)).unwrap();
    host.send(&tap_frame(header, 1500)).unwrap();
    let q = MockSplitQueue::create(&mem, GuestAddress(0x8000), 16);
    let mut rx = rx_queue(&q);
    q.add_desc_chains(&[desc(0x10_0000, 1000, 2), desc(0x11_0000, 1526, 2)], 0)
        .unwrap();
    assert!(net.receive(&mut rx, &mem).unwrap());
    assert_eq!(
        used(&mem),
        [(0, (HEADER + 900) as u32), (1, (HEADER + 1500) as u32)]
    );
    let mut b = vec![0u8; HEADER + 900];
    mem.read_slice(&mut b, GuestAddress(0x10_0000)).unwrap();
    let mut want = tap_frame([0; HEADER], 900);
    want[10] = 1;
    assert_eq!(b, want);
}

#[test]
fn malformed_receive_buffers_fail_the_device() {
    let mem = memory();
    for vnet in [true, false] {
        for (what, bad) in [
            ("device-readable", desc(0x10_0000, 2048, 0)),
            ("smaller than the header", desc(0x10_0000, 8, 2)),
            ("outside RAM", desc(0x1000_0000, 2048, 2)),
        ] {
            let mut net = if vnet {
                vnet_device(OFFLOADS).0
            } else {
                let wire = Wire::default();
                wire.to_guest.lock().unwrap().push_back(vec![1; 60]);
                Net::new(Box::new(wire), random_mac(), "eth0")
            };
            let q = MockSplitQueue::create(&mem, GuestAddress(0x8000), 16);
            let mut rx = rx_queue(&q);
            q.add_desc_chains(&[bad], 0).unwrap();
            assert!(
                net.process_queue(RX, &mut rx, &mem).is_err(),
                "{what} (vnet header: {vnet})"
            );
        }
    }
}
