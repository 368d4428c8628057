//! The adapter with domboot's vsock: what a frontend learns about the device, a real
//! vhost-user conversation over a socket, the server's end, and a guest's garbage.

use super::backend::{DeviceBackend, Memory};
use super::server::Server;
use crate::devices::virtio::F_VERSION_1;
use crate::devices::virtio::vsock::Vsock;
use crate::devices::virtio::vsock::packet::{HDR_LEN, HOST_CID, Header, Op, TYPE_STREAM};
use std::path::Path;
use std::time::{Duration, Instant};
use vhost::VhostBackend;
use vhost::vhost_user::message::{
    VhostUserConfigFlags, VhostUserProtocolFeatures, VhostUserVirtioFeatures,
};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_queue::desc::{RawDescriptor, split::Descriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;

const CID: u64 = 0x1_0000_0005;
const TX: u16 = 1;

fn vsock(dir: &Path) -> Box<Vsock> {
    Box::new(Vsock::new(CID, &dir.join("v.sock")).unwrap())
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < until, "{what}: not within 10 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_frontend_sees_the_device_as_the_kvm_transport_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let mem = Memory::new(GuestMemoryMmap::new());
    let b = DeviceBackend::new(vsock(dir.path()), mem);
    assert_eq!(b.num_queues(), 3, "rx, tx and event");
    assert_eq!(b.max_queue_size(), 256);
    assert_eq!(
        b.features(),
        F_VERSION_1 | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    );
    assert!(
        b.protocol_features()
            .contains(VhostUserProtocolFeatures::CONFIG)
    );
    // The config space is the guest CID, a le64; reads past it are zeros.
    assert_eq!(b.get_config(0, 8), CID.to_le_bytes());
    assert_eq!(b.get_config(4, 8), [1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(b.get_config(0, 1 << 20).len(), 256, "bounded");
    // Past the queues and the crate's own exit event.
    assert_eq!(b.backend_token(), 4);
    assert!(b.backend_fd().is_some());
}

/// QEMU's first steps with vhost-user-vsock: features, protocol features, the number of
/// queues and the CID from the config space. Then it goes: the server says so, and the
/// device (its hybrid socket) goes with it.
#[test]
fn a_frontend_reads_the_cid_and_its_leaving_ends_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let hybrid = dir.path().join("v.sock");
    let socket = dir.path().join("vhost.sock");
    let mut server = Server::start(vsock(dir.path()), &socket).unwrap();
    let mut fe = Frontend::connect(&socket, 3).unwrap();
    fe.set_owner().unwrap();
    let features = fe.get_features().unwrap();
    assert_eq!(features & F_VERSION_1, F_VERSION_1);
    fe.set_features(features).unwrap();
    let proto = fe.get_protocol_features().unwrap();
    assert!(proto.contains(VhostUserProtocolFeatures::CONFIG | VhostUserProtocolFeatures::MQ));
    fe.set_protocol_features(proto).unwrap();
    assert_eq!(fe.get_queue_num().unwrap(), 3);
    let (_, cfg) = fe
        .get_config(0, 8, VhostUserConfigFlags::WRITABLE, &[0; 8])
        .unwrap();
    assert_eq!(cfg, CID.to_le_bytes());
    assert!(server.gone().is_none(), "still serving");
    assert!(hybrid.exists());

    drop(fe);
    let mut why = None;
    wait_until("the server noticing", || {
        why = server.gone();
        why.is_some()
    });
    let why = why.unwrap();
    assert!(why.contains("closed its connection"), "{why}");
    assert!(why.contains("virtio-vsock"), "{why}");
    assert!(!hybrid.exists(), "the device went with the daemon");
    assert!(server.gone().is_none(), "said once");
}

/// A run that ends before QEMU connects (it failed to start) stops the server at once.
#[test]
fn a_server_nobody_connects_to_stops_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let hybrid = dir.path().join("v.sock");
    let server = Server::start(vsock(dir.path()), &dir.path().join("vhost.sock")).unwrap();
    assert!(hybrid.exists());
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!hybrid.exists());
}

/// The vsock's vrings as the daemon would have them after QEMU set them up: guest memory
/// in one region, each ring laid out by virtio-queue's mock.
struct Rings {
    mem: GuestMemoryMmap,
    atomic: Memory,
    vrings: Vec<VringRwLock<Memory>>,
    tx: MockSplitQueue<'static, GuestMemoryMmap>,
}

impl Rings {
    fn new() -> Rings {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
        let atomic = Memory::new(mem.clone());
        // The mock borrows the memory for its life; a test's worth of leak.
        let leaked: &'static GuestMemoryMmap = Box::leak(Box::new(mem.clone()));
        let tx = MockSplitQueue::create(leaked, GuestAddress(0x1000), 16);
        let vrings: Vec<_> = (0..3)
            .map(|i| {
                let v = VringRwLock::new(atomic.clone(), 256).unwrap();
                if i == usize::from(TX) {
                    v.set_queue_size(16);
                    v.set_queue_info(tx.desc_table_addr().0, tx.avail_addr().0, tx.used_addr().0)
                        .unwrap();
                    v.set_queue_ready(true);
                    v.set_enabled(true);
                }
                v
            })
            .collect();
        Rings {
            mem,
            atomic,
            vrings,
            tx,
        }
    }

    /// Makes `bytes` one transmit buffer (the `n`th, each at its own address).
    fn transmit(&self, n: u16, bytes: &[u8]) {
        let addr = 0x10_0000 + u64::from(n) * 0x1000;
        self.mem.write_slice(bytes, GuestAddress(addr)).unwrap();
        let d = RawDescriptor::from(Descriptor::new(addr, bytes.len() as u32, 0, 0));
        self.tx.add_desc_chains(&[d], n).unwrap();
    }

    fn tx_used(&self) -> u16 {
        self.tx.used().idx().load()
    }
}

#[test]
fn garbage_from_the_guest_breaks_the_device_until_it_is_reset() {
    let dir = tempfile::tempdir().unwrap();
    let rings = Rings::new();
    let b = DeviceBackend::new(vsock(dir.path()), rings.atomic.clone());
    let kick = |b: &DeviceBackend| b.handle_event(TX, EventSet::IN, &rings.vrings, 0).unwrap();
    let request = Header {
        src_cid: CID,
        dst_cid: HOST_CID,
        src_port: 1000,
        dst_port: 9,
        type_: TYPE_STREAM,
        op: Op::Request as u16,
        buf_alloc: 64 * 1024,
        ..Header::default()
    }
    .to_bytes();

    // Shorter than a header: the device stops, domboot does not.
    rings.transmit(0, &[0xff; HDR_LEN - 4]);
    kick(&b);
    assert_eq!(rings.tx_used(), 0);
    rings.transmit(1, &request);
    kick(&b);
    assert_eq!(rings.tx_used(), 0, "a broken device serves nothing");

    // The frontend stopping the rings resets the device; the queue restarts where the
    // guest's driver set it up again.
    b.stop_vring(0).unwrap();
    rings.vrings[usize::from(TX)].set_queue_next_avail(1);
    kick(&b);
    assert_eq!(rings.tx_used(), 1, "served again after the reset");
}
