//! The device against a fake vhost-user backend: what it offers the driver, what it tells
//! the backend, and what a driver's garbage does (the device breaks, nothing else).

use super::*;
use crate::bus::BusDevice;
use crate::devices::virtio::mmio::MmioTransport;
use crate::devices::virtio::{INT_VRING, status};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vm_memory::FileOffset;

const GET_FEATURES: u32 = 1;
const SET_FEATURES: u32 = 2;
const SET_OWNER: u32 = 3;
const SET_MEM_TABLE: u32 = 5;
const SET_VRING_NUM: u32 = 8;
const SET_VRING_ADDR: u32 = 9;
const SET_VRING_BASE: u32 = 10;
const GET_VRING_BASE: u32 = 11;
const SET_VRING_KICK: u32 = 12;
const SET_VRING_CALL: u32 = 13;
const GET_PROTOCOL_FEATURES: u32 = 15;
const SET_PROTOCOL_FEATURES: u32 = 16;
const SET_VRING_ENABLE: u32 = 18;

/// What the fake backend offers: VERSION_1, PROTOCOL_FEATURES, EVENT_IDX and
/// ACCESS_PLATFORM (which the device must not pass on).
const OFFERED: u64 = F_VERSION_1 | PROTOCOL_FEATURES | (1 << 29) | (1 << 33);

type Seen = Arc<Mutex<Vec<(u32, Vec<u8>)>>>;

/// A vhost-user backend that records each request and answers the GETs.
fn fake_backend() -> (tempfile::TempDir, std::path::PathBuf, Seen) {
    fake_backend_for(usize::MAX)
}

/// [`fake_backend`] that hangs up after `requests` requests.
fn fake_backend_for(requests: usize) -> (tempfile::TempDir, std::path::PathBuf, Seen) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fs.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        for _ in 0..requests {
            let mut hdr = [0u8; 12];
            if s.read_exact(&mut hdr).is_err() {
                return;
            }
            let req = u32::from_le_bytes(hdr[0..4].try_into().unwrap());
            let size = u32::from_le_bytes(hdr[8..12].try_into().unwrap());
            let mut body = vec![0u8; size as usize];
            if s.read_exact(&mut body).is_err() {
                return;
            }
            let reply = match req {
                GET_FEATURES => Some(OFFERED.to_le_bytes().to_vec()),
                GET_PROTOCOL_FEATURES => Some(0x9u64.to_le_bytes().to_vec()),
                GET_VRING_BASE => Some([&body[0..4], &[0u8; 4][..]].concat()),
                _ => None,
            };
            log.lock().unwrap().push((req, body));
            if let Some(r) = reply {
                reply_to(&mut s, req, &r);
            }
        }
    });
    (dir, path, seen)
}

fn reply_to(s: &mut UnixStream, req: u32, body: &[u8]) {
    let mut msg = Vec::new();
    msg.extend_from_slice(&req.to_le_bytes());
    msg.extend_from_slice(&0x5u32.to_le_bytes()); // version 1, REPLY
    msg.extend_from_slice(&(body.len() as u32).to_le_bytes());
    msg.extend_from_slice(body);
    s.write_all(&msg).unwrap();
}

fn requests(seen: &Seen) -> Vec<u32> {
    seen.lock().unwrap().iter().map(|(r, _)| *r).collect()
}

/// Waits until the backend has seen `n` requests (the frontend does not wait for acks).
fn wait_for(seen: &Seen, n: usize) -> Vec<u32> {
    let start = Instant::now();
    while requests(seen).len() < n && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    requests(seen)
}

fn shared_memory() -> Arc<GuestMemoryMmap> {
    let file = crate::memory::memfd("test-ram", 1 << 20).unwrap();
    let mem = GuestMemoryMmap::from_ranges_with_files([(
        GuestAddress(0),
        1 << 20,
        Some(FileOffset::new(file, 0)),
    )])
    .unwrap();
    Arc::new(mem)
}

fn transport(fs: Fs, mem: Arc<GuestMemoryMmap>) -> MmioTransport {
    let notify = (0..NUM_QUEUES)
        .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
        .collect();
    MmioTransport::new(
        Box::new(fs),
        EventFd::new(EFD_NONBLOCK).unwrap(),
        notify,
        mem,
    )
    .unwrap()
}

fn r(t: &MmioTransport, off: u64) -> u32 {
    let mut d = [0u8; 4];
    t.read(off, &mut d);
    u32::from_le_bytes(d)
}

fn w(t: &MmioTransport, off: u64, v: u32) {
    t.write(off, &v.to_le_bytes());
}

/// Programs queue `q` of 16 entries with its rings at `base`.
fn setup_queue(t: &MmioTransport, q: u32, base: u64) {
    w(t, 0x30, q);
    w(t, 0x38, 16);
    for (reg, addr) in [(0x80, base), (0x90, base + 0x1000), (0xa0, base + 0x2000)] {
        w(t, reg, addr as u32);
        w(t, reg + 4, (addr >> 32) as u32);
    }
    w(t, 0x44, 1);
}

/// Accepts VERSION_1 and EVENT_IDX and sets DRIVER_OK.
fn drive(t: &MmioTransport) {
    w(t, 0x70, status::ACKNOWLEDGE | status::DRIVER);
    w(t, 0x24, 0);
    w(t, 0x20, 1 << 29);
    w(t, 0x24, 1);
    w(t, 0x20, 1);
    w(
        t,
        0x70,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
    w(
        t,
        0x70,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK,
    );
}

#[test]
fn bad_tags_are_refused_before_connecting() {
    let nowhere = Path::new("/nonexistent/fs.sock");
    for tag in ["", "a\0b", &"x".repeat(37)] {
        assert!(matches!(Fs::connect(nowhere, tag), Err(FsError::Tag(_))));
    }
    assert!(matches!(
        Fs::connect(nowhere, "root"),
        Err(FsError::Backend { .. })
    ));
}

#[test]
fn config_space_and_features() {
    let (_dir, path, seen) = fake_backend();
    let fs = Fs::connect(&path, "hostroot").unwrap();
    assert_eq!(
        wait_for(&seen, 4),
        [
            SET_OWNER,
            GET_FEATURES,
            GET_PROTOCOL_FEATURES,
            SET_PROTOCOL_FEATURES
        ]
    );
    // Only MQ of the offered MQ | REPLY_ACK.
    assert_eq!(seen.lock().unwrap()[3].1, 1u64.to_le_bytes());
    assert_eq!(fs.features(), F_VERSION_1 | (1 << 29));
    let t = transport(fs, shared_memory());
    assert_eq!(r(&t, 0x8), TYPE_FS);
    assert_eq!(r(&t, 0x34), u32::from(QUEUE_SIZE));
    let mut tag = [0u8; TAG_LEN];
    t.read(0x100, &mut tag);
    assert_eq!(&tag[..8], b"hostroot");
    assert!(tag[8..].iter().all(|&b| b == 0));
    assert_eq!(r(&t, 0x100 + TAG_LEN as u64), 1, "num_request_queues");
    assert_eq!(r(&t, 0x100 + 40), 0, "past the end");
    // Config writes are ignored.
    t.write(0x100, b"evil");
    t.read(0x100, &mut tag[..4]);
    assert_eq!(&tag[..4], b"host");
}

#[test]
fn driver_ok_hands_the_queues_to_the_backend_and_calls_interrupt() {
    let (_dir, path, seen) = fake_backend();
    let fs = Fs::connect(&path, "root").unwrap();
    let call = fs.call.try_clone().unwrap();
    let t = transport(fs, shared_memory());
    setup_queue(&t, 0, 0x10000);
    setup_queue(&t, 1, 0x20000);
    drive(&t);
    assert_eq!(t.status() & status::DEVICE_NEEDS_RESET, 0);
    let per_queue = [
        SET_VRING_NUM,
        SET_VRING_ADDR,
        SET_VRING_BASE,
        SET_VRING_CALL,
        SET_VRING_KICK,
        SET_VRING_ENABLE,
    ];
    let mut expected = vec![SET_FEATURES, SET_MEM_TABLE];
    expected.extend(per_queue);
    expected.extend(per_queue);
    let got = wait_for(&seen, 4 + expected.len());
    assert_eq!(got[4..], expected[..]);
    let acked = seen.lock().unwrap()[4].1.clone();
    assert_eq!(
        acked,
        (F_VERSION_1 | PROTOCOL_FEATURES | (1 << 29)).to_le_bytes()
    );
    // The backend signals used buffers: the driver sees VRING in InterruptStatus.
    assert_eq!(r(&t, 0x60), 0);
    call.write(1).unwrap();
    t.process_backend();
    assert_eq!(r(&t, 0x60), INT_VRING);
    // A reset stops both rings.
    w(&t, 0x70, 0);
    let got = wait_for(&seen, 4 + expected.len() + 2);
    assert_eq!(got[4 + expected.len()..], [GET_VRING_BASE, GET_VRING_BASE]);
}

#[test]
fn rings_outside_ram_break_the_device_not_the_backend() {
    let (_dir, path, seen) = fake_backend();
    let t = transport(Fs::connect(&path, "root").unwrap(), shared_memory());
    setup_queue(&t, 0, 0x10000);
    setup_queue(&t, 1, 0xFFFF_F000_0000);
    drive(&t);
    assert_ne!(t.status() & status::DEVICE_NEEDS_RESET, 0);
    std::thread::sleep(Duration::from_millis(50));
    let got = requests(&seen);
    assert_eq!(
        got.iter().filter(|&&r| r == SET_VRING_ADDR).count(),
        1,
        "only queue 0's ring reached the backend: {got:?}"
    );
    // More garbage: registers and notifies of queues that do not exist.
    for off in (0..0x200).step_by(4) {
        w(&t, off, 0xFFFF_FFFF);
    }
    assert_ne!(t.status() & status::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn private_ram_is_refused_at_driver_ok() {
    let (_dir, path, _seen) = fake_backend();
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    let t = transport(Fs::connect(&path, "root").unwrap(), Arc::new(mem));
    setup_queue(&t, 0, 0x10000);
    setup_queue(&t, 1, 0x20000);
    drive(&t);
    assert_ne!(t.status() & status::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn a_backend_that_went_away_breaks_the_device_only() {
    // Gone after the handshake: DRIVER_OK's messages find a closed socket.
    let (_dir, path, seen) = fake_backend_for(4);
    let t = transport(Fs::connect(&path, "root").unwrap(), shared_memory());
    wait_for(&seen, 4);
    std::thread::sleep(Duration::from_millis(50));
    setup_queue(&t, 0, 0x10000);
    setup_queue(&t, 1, 0x20000);
    drive(&t);
    assert_ne!(t.status() & status::DEVICE_NEEDS_RESET, 0);
    // A reset and another try fail the same way, without a panic.
    w(&t, 0x70, 0);
    setup_queue(&t, 0, 0x10000);
    drive(&t);
    assert_ne!(t.status() & status::DEVICE_NEEDS_RESET, 0);
}

/// A device "root" on [`fake_backend`] with both queues set up and DRIVER_OK set.
fn running_on_fake_backend() -> (tempfile::TempDir, std::path::PathBuf, MmioTransport) {
    let (dir, path, seen) = fake_backend();
    let t = transport(Fs::connect(&path, "root").unwrap(), shared_memory());
    wait_for(&seen, 4);
    setup_queue(&t, 0, 0x10000);
    setup_queue(&t, 1, 0x20000);
    drive(&t);
    (dir, path, t)
}

#[test]
fn a_backend_that_hangs_up_is_reported_gone_and_a_live_one_is_not() {
    // Replies while requests are in flight are not a hang-up.
    let (_dir, _path, live) = running_on_fake_backend();
    assert_eq!(live.backend_gone(), None);

    let (_dir, path, seen) = fake_backend_for(4);
    let t = transport(Fs::connect(&path, "root").unwrap(), shared_memory());
    wait_for(&seen, 4);
    let until = Instant::now() + Duration::from_secs(5);
    while t.backend_gone().is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        t.backend_gone().as_deref(),
        Some(
            "virtio-fs root: its vhost-user backend closed the connection (it exited or was \
             killed)"
        )
    );
}

#[test]
fn state_names_the_backend_and_the_started_queues_and_survives_serde() {
    use crate::devices::virtio::state::{DeviceState, FsState, TransportState};
    let (_dir, path, t) = running_on_fake_backend();
    let state = t.state();
    assert_eq!(
        state.status,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK
    );
    assert_eq!(state.driver_features, F_VERSION_1 | (1 << 29));
    assert_eq!(
        state.device,
        DeviceState::Fs(FsState {
            tag: "root".into(),
            socket: path.clone(),
            backend_features: OFFERED,
            protocol: true,
            started_queues: vec![0, 1],
        })
    );
    let q = state.queues[1];
    assert_eq!((q.size, q.ready, q.desc_table), (16, true, 0x20000));
    assert_eq!((q.avail_ring, q.used_ring), (0x21000, 0x22000));
    let json = serde_json::to_string(&state).unwrap();
    let back: TransportState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state);
    // A reset stops the queues: the state says none are started.
    w(&t, 0x70, 0);
    let DeviceState::Fs(fs) = t.state().device else {
        panic!("not an fs state")
    };
    assert_eq!(fs.started_queues, Vec::<usize>::new());
}
