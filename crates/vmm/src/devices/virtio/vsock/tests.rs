//! The vsock device against queues in guest memory (virtio-queue's mock) and real Unix
//! sockets in a temporary folder.

use super::connection::BUF_ALLOC;
use super::packet::{HOST_CID, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM};
use super::*;
use packet::Op;
use proptest::prelude::*;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;
use virtio_queue::desc::{RawDescriptor, split::Descriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

const CID: u64 = 3;
const RX_BUF: u32 = 4096 + HDR_LEN as u32;

fn desc(addr: u64, len: u32, flags: u16) -> RawDescriptor {
    RawDescriptor::from(Descriptor::new(addr, len, flags, 0))
}

/// A driver: guest memory, the device and fresh rings and buffers for each exchange.
struct Driver {
    mem: GuestMemoryMmap,
    dev: Vsock,
    dir: tempfile::TempDir,
}

impl Driver {
    fn new() -> Driver {
        let dir = tempfile::tempdir().unwrap();
        let dev = Vsock::new(CID, &dir.path().join("v.sock")).unwrap();
        Driver {
            mem: GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap(),
            dev,
            dir,
        }
    }

    fn path(&self, suffix: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("v.sock{suffix}"))
    }

    /// Sends raw transmit bytes as one buffer.
    fn send_raw(&mut self, bytes: &[u8]) -> Result<bool, DeviceError> {
        self.mem
            .write_slice(bytes, GuestAddress(0x10_0000))
            .unwrap();
        let q = MockSplitQueue::create(&self.mem, GuestAddress(0x1000), 16);
        q.add_desc_chains(&[desc(0x10_0000, bytes.len() as u32, 0)], 0)
            .unwrap();
        let mut queue = q.create_queue::<Queue>().unwrap();
        self.dev.process_queue(TX, &mut queue, &self.mem)
    }

    fn send(&mut self, h: Header, payload: &[u8]) {
        let mut bytes = h.to_bytes().to_vec();
        bytes.extend_from_slice(payload);
        self.send_raw(&bytes).unwrap();
    }

    /// Offers `n` receive buffers and returns the packets the device put there.
    fn receive(&mut self, n: u16) -> Vec<(Header, Vec<u8>)> {
        let q = MockSplitQueue::create(&self.mem, GuestAddress(0x8000), 16);
        let descs: Vec<_> = (0..u64::from(n))
            .map(|i| desc(0x20_0000 + i * 0x2000, RX_BUF, 2))
            .collect();
        q.add_desc_chains(&descs, 0).unwrap();
        let mut queues = [q.create_queue::<Queue>().unwrap()];
        queues[0].set_ready(true);
        self.dev.process_backend(&mut queues, &self.mem).unwrap();
        let used = q.used().idx().load();
        (0..used)
            .map(|i| {
                let e = q.used().ring().ref_at(i as usize).unwrap().load();
                let addr = 0x20_0000 + u64::from(e.id()) * 0x2000;
                let mut raw = [0u8; HDR_LEN];
                self.mem.read_slice(&mut raw, GuestAddress(addr)).unwrap();
                let h = Header::from_bytes(&raw);
                assert_eq!(e.len(), HDR_LEN as u32 + h.len);
                let mut data = vec![0u8; h.len as usize];
                self.mem
                    .read_slice(&mut data, GuestAddress(addr + HDR_LEN as u64))
                    .unwrap();
                (h, data)
            })
            .collect()
    }

    /// Waits (briefly) until the device has something and receives it.
    fn receive_soon(&mut self, n: u16) -> Vec<(Header, Vec<u8>)> {
        for _ in 0..100 {
            let got = self.receive(n);
            if !got.is_empty() {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Vec::new()
    }
}

/// A packet from guest port 1000 to host port `port`.
fn from_guest(port: u32, op: Op) -> Header {
    Header {
        src_cid: CID,
        dst_cid: HOST_CID,
        src_port: 1000,
        dst_port: port,
        type_: TYPE_STREAM,
        op: op as u16,
        buf_alloc: 64 * 1024,
        ..Header::default()
    }
}

fn ops(packets: &[(Header, Vec<u8>)]) -> Vec<u16> {
    packets.iter().map(|(h, _)| h.op).collect()
}

#[test]
fn config_space_holds_the_cid() {
    let d = Driver::new();
    let mut cfg = [0u8; 8];
    d.dev.read_config(0, &mut cfg);
    assert_eq!(u64::from_le_bytes(cfg), CID);
    assert_eq!(d.dev.device_type(), 19);
    assert_eq!(d.dev.queue_max_sizes().len(), 3);
    assert_eq!(d.dev.features(), F_VERSION_1);
}

#[test]
fn guest_connects_to_a_host_listener() {
    let mut d = Driver::new();
    let listener = UnixListener::bind(d.path("_5000")).unwrap();
    d.send(from_guest(5000, Op::Request), &[]);
    let got = d.receive(4);
    assert_eq!(ops(&got), [Op::Response as u16]);
    let (h, _) = &got[0];
    assert_eq!(
        (h.src_cid, h.dst_cid, h.src_port, h.dst_port),
        (2, CID, 5000, 1000)
    );
    assert_eq!(h.buf_alloc, BUF_ALLOC);
    let (mut host, _) = listener.accept().unwrap();

    d.send(
        Header {
            len: 5,
            ..from_guest(5000, Op::Rw)
        },
        b"hello",
    );
    let mut buf = [0u8; 5];
    host.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");

    host.write_all(b"world").unwrap();
    let got = d.receive_soon(4);
    assert_eq!(ops(&got), [Op::Rw as u16]);
    assert_eq!(got[0].1, b"world");
    assert_eq!(got[0].0.fwd_cnt, 5, "the 5 bytes forwarded to the host");

    // The host closes: SHUTDOWN (it sends no more); the guest closes both ways: RST.
    drop(host);
    let got = d.receive_soon(4);
    assert_eq!(ops(&got), [Op::Shutdown as u16]);
    assert_eq!(got[0].0.flags, SHUTDOWN_SEND);
    d.send(
        Header {
            flags: SHUTDOWN_RCV | SHUTDOWN_SEND,
            ..from_guest(5000, Op::Shutdown)
        },
        &[],
    );
    assert_eq!(ops(&d.receive(4)), [Op::Rst as u16]);
    assert_eq!(d.dev.muxer.connections(), 0);
}

#[test]
fn nothing_listening_is_a_reset() {
    let mut d = Driver::new();
    d.send(from_guest(5001, Op::Request), &[]);
    let got = d.receive(4);
    assert_eq!(ops(&got), [Op::Rst as u16]);
    assert_eq!((got[0].0.src_port, got[0].0.dst_port), (5001, 1000));
}

#[test]
fn host_connects_with_connect_and_gets_ok() {
    let mut d = Driver::new();
    let mut host = UnixStream::connect(d.path("")).unwrap();
    host.write_all(b"CONNECT 52\nearly").unwrap();
    let got = d.receive_soon(4);
    assert_eq!(ops(&got), [Op::Request as u16]);
    let h = got[0].0;
    assert_eq!((h.dst_cid, h.dst_port), (CID, 52));
    assert!(h.src_port >= 1 << 30);
    // The guest accepts.
    let answer = Header {
        src_port: 52,
        dst_port: h.src_port,
        ..from_guest(0, Op::Response)
    };
    d.send(answer, &[]);
    let mut line = [0u8; 14];
    host.read_exact(&mut line).unwrap();
    assert_eq!(&line, format!("OK {}\n", h.src_port).as_bytes());
    // What followed the CONNECT line is the connection's first data.
    let got = d.receive_soon(4);
    assert_eq!(ops(&got), [Op::Rw as u16]);
    assert_eq!(got[0].1, b"early");
    // A guest RST closes the host's stream.
    d.send(
        Header {
            op: Op::Rst as u16,
            ..answer
        },
        &[],
    );
    assert_eq!(host.read(&mut line).unwrap(), 0);
}

#[test]
fn an_unanswered_host_connect_times_out() {
    let mut d = Driver::new();
    let mut host = UnixStream::connect(d.path("")).unwrap();
    host.write_all(b"CONNECT 54\n").unwrap();
    let h = d.receive_soon(4)[0].0;
    assert_eq!(h.op, Op::Request as u16);
    // The guest never answers: after REQUEST_TIMEOUT the device's fd wakes its worker,
    // the host's stream closes and the guest gets a RST.
    let started = std::time::Instant::now();
    let watch = vmm_sys_util::epoll::Epoll::new().unwrap();
    let ev = vmm_sys_util::epoll::EpollEvent::new(vmm_sys_util::epoll::EventSet::IN, 0);
    watch
        .ctl(
            vmm_sys_util::epoll::ControlOperation::Add,
            d.dev.backend_fd().unwrap(),
            ev,
        )
        .unwrap();
    let mut events = [vmm_sys_util::epoll::EpollEvent::default(); 1];
    assert_eq!(watch.wait(5000, &mut events).unwrap(), 1);
    assert!(started.elapsed() >= connection::REQUEST_TIMEOUT - Duration::from_millis(100));
    let got = d.receive(4);
    assert_eq!(ops(&got), [Op::Rst as u16]);
    assert_eq!((got[0].0.src_port, got[0].0.dst_port), (h.src_port, 54));
    let mut b = [0u8; 4];
    assert_eq!(host.read(&mut b).unwrap(), 0);
    assert_eq!(d.dev.muxer.connections(), 0);
}

#[test]
fn connections_take_turns() {
    let mut d = Driver::new();
    let listener = UnixListener::bind(d.path("_8000")).unwrap();
    let mut hosts = Vec::new();
    for guest_port in [1000, 1001] {
        d.send(
            Header {
                src_port: guest_port,
                ..from_guest(8000, Op::Request)
            },
            &[],
        );
        hosts.push(listener.accept().unwrap().0);
    }
    assert_eq!(ops(&d.receive(4)), [Op::Response as u16; 2]);
    for h in &mut hosts {
        h.write_all(&[5u8; 20000]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    // Two buffers: one packet for each connection, not two for the first.
    let got = d.receive(2);
    let mut ports: Vec<u32> = got.iter().map(|(h, _)| h.dst_port).collect();
    ports.sort();
    assert_eq!(ports, [1000, 1001]);
}

#[test]
fn a_refused_host_connect_closes_the_stream() {
    let mut d = Driver::new();
    let mut host = UnixStream::connect(d.path("")).unwrap();
    host.write_all(b"CONNECT 53\n").unwrap();
    let h = d.receive_soon(4)[0].0;
    d.send(
        Header {
            src_port: 53,
            dst_port: h.src_port,
            ..from_guest(0, Op::Rst)
        },
        &[],
    );
    let mut b = [0u8; 4];
    assert_eq!(host.read(&mut b).unwrap(), 0);
    // A bad line gets the stream closed at once.
    let mut host = UnixStream::connect(d.path("")).unwrap();
    host.write_all(b"HELLO 1\n").unwrap();
    host.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..100 {
        d.receive(1);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(host.read(&mut b).unwrap(), 0);
}

#[test]
fn credit_bounds_what_the_guest_gets() {
    let mut d = Driver::new();
    let listener = UnixListener::bind(d.path("_6000")).unwrap();
    d.send(
        Header {
            buf_alloc: 100,
            ..from_guest(6000, Op::Request)
        },
        &[],
    );
    assert_eq!(ops(&d.receive(1)), [Op::Response as u16]);
    let (mut host, _) = listener.accept().unwrap();
    host.write_all(&[7u8; 1000]).unwrap();
    let got = d.receive_soon(8);
    let total: usize = got.iter().map(|p| p.1.len()).sum();
    assert_eq!(total, 100, "no more than the guest's buf_alloc");
    assert!(d.receive(8).is_empty());
    // The guest consumed 100 bytes and says so.
    d.send(
        Header {
            buf_alloc: 100,
            fwd_cnt: 100,
            ..from_guest(6000, Op::CreditUpdate)
        },
        &[],
    );
    let total: usize = d.receive(8).iter().map(|p| p.1.len()).sum();
    assert_eq!(total, 100);
}

#[test]
fn a_guest_beyond_its_credit_is_reset() {
    let mut d = Driver::new();
    let listener = UnixListener::bind(d.path("_6001")).unwrap();
    d.send(from_guest(6001, Op::Request), &[]);
    d.receive(1);
    let (host, _) = listener.accept().unwrap();
    // The host reads nothing: once its socket buffer is full, the device holds up to
    // BUF_ALLOC bytes; a guest that sends more is reset.
    let chunk = vec![1u8; 64 * 1024];
    for _ in 0..64 {
        d.send(
            Header {
                len: chunk.len() as u32,
                ..from_guest(6001, Op::Rw)
            },
            &chunk,
        );
    }
    let got = d.receive(16);
    assert!(ops(&got).contains(&(Op::Rst as u16)), "{:?}", ops(&got));
    drop(host);
}

#[test]
fn credit_request_gets_an_update() {
    let mut d = Driver::new();
    let _listener = UnixListener::bind(d.path("_6002")).unwrap();
    d.send(from_guest(6002, Op::Request), &[]);
    d.receive(1);
    d.send(from_guest(6002, Op::CreditRequest), &[]);
    let got = d.receive(4);
    assert_eq!(ops(&got), [Op::CreditUpdate as u16]);
    assert_eq!(got[0].0.buf_alloc, BUF_ALLOC);
}

#[test]
fn garbage_gets_resets() {
    let mut d = Driver::new();
    let bad = [
        Header {
            src_cid: 9,
            ..from_guest(1, Op::Request)
        },
        Header {
            dst_cid: 7,
            ..from_guest(1, Op::Request)
        },
        Header {
            type_: 2,
            ..from_guest(1, Op::Request)
        },
        Header {
            op: 99,
            ..from_guest(1, Op::Request)
        },
        Header {
            len: 3,
            ..from_guest(1, Op::Request)
        },
        // Data, a response, a shutdown for no connection.
        from_guest(1, Op::Response),
        from_guest(1, Op::Shutdown),
    ];
    for h in bad {
        let len = h.len as usize;
        d.send(h, &vec![0; len]);
    }
    assert_eq!(ops(&d.receive(16)), vec![Op::Rst as u16; bad.len()]);
    // A RST is never answered.
    d.send(from_guest(1, Op::Rst), &[]);
    d.send(
        Header {
            src_cid: 9,
            ..from_guest(1, Op::Rst)
        },
        &[],
    );
    assert!(d.receive(4).is_empty());
}

#[test]
fn malformed_buffers_need_a_reset() {
    let mut d = Driver::new();
    assert!(d.send_raw(&[0u8; HDR_LEN - 1]).is_err());
    let h = Header {
        len: 100,
        ..from_guest(1, Op::Rw)
    };
    let mut bytes = h.to_bytes().to_vec();
    bytes.extend_from_slice(&[0; 50]);
    assert!(d.send_raw(&bytes).is_err(), "a payload shorter than len");
}

#[test]
fn a_device_reset_drops_connections() {
    let mut d = Driver::new();
    let listener = UnixListener::bind(d.path("_7000")).unwrap();
    d.send(from_guest(7000, Op::Request), &[]);
    d.receive(1);
    let (mut host, _) = listener.accept().unwrap();
    assert_eq!(d.dev.muxer.connections(), 1);
    d.dev.reset();
    assert_eq!(d.dev.muxer.connections(), 0);
    let mut b = [0u8; 1];
    assert_eq!(host.read(&mut b).unwrap(), 0);
}

#[test]
fn the_socket_must_not_exist_and_goes_with_the_device() {
    let d = Driver::new();
    let path = d.path("");
    assert!(matches!(Vsock::new(CID, &path), Err(MuxerError::Exists(_))));
    drop(d.dev);
    assert!(!path.exists());
}

#[test]
fn guest_cids() {
    assert!(!valid_guest_cid(0) && !valid_guest_cid(2) && !valid_guest_cid(u64::from(u32::MAX)));
    assert!(valid_guest_cid(3) && valid_guest_cid(u64::from(u32::MAX) - 1));
    assert_eq!(muxer::parse_connect(b"CONNECT 1234"), Some(1234));
    assert_eq!(muxer::parse_connect(b"CONNECT 1234\r"), Some(1234));
    assert_eq!(muxer::parse_connect(b"CONNECT x"), None);
    assert_eq!(
        muxer::parse_connect(b"connect  7 "),
        Some(7),
        "as Firecracker reads it"
    );
    assert_eq!(muxer::parse_connect(b"CONNECT 1 2"), None);
    assert_eq!(muxer::parse_connect(b"CONNECT"), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever a guest transmits, the device answers (or needs a reset) and never
    /// panics; packets it sends back are well-formed stream packets to the guest.
    #[test]
    fn arbitrary_transmissions_never_panic(
        packets in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), HDR_LEN), 0u64..8, 0u32..4, 0u16..10,
             proptest::collection::vec(any::<u8>(), 0..64)),
            1..8),
    ) {
        let mut d = Driver::new();
        let _listener = UnixListener::bind(d.path("_1")).unwrap();
        for (raw, cid, port, op, payload) in packets {
            let raw: [u8; HDR_LEN] = raw.try_into().unwrap();
            // Some headers random, some close enough to valid to reach the muxer.
            let mut h = Header::from_bytes(&raw);
            if cid < 6 {
                h.src_cid = CID;
                h.dst_cid = HOST_CID;
                h.type_ = TYPE_STREAM;
                h.dst_port = port;
                h.op = op;
                h.len = if op == Op::Rw as u16 { payload.len() as u32 } else { h.len % 2 };
            }
            let mut bytes = h.to_bytes().to_vec();
            bytes.extend_from_slice(&payload);
            let _ = d.send_raw(&bytes);
            for (p, data) in d.receive(8) {
                prop_assert_eq!((p.src_cid, p.dst_cid, p.type_), (HOST_CID, CID, TYPE_STREAM));
                prop_assert!(Op::from_u16(p.op).is_some());
                prop_assert_eq!(p.len as usize, data.len());
            }
        }
    }
}
