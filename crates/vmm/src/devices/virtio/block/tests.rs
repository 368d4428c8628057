//! The block device against queues built in guest memory with virtio-queue's mock
//! (the layout a driver makes), on real files.

use super::*;
use proptest::prelude::*;
use std::io::Write as _;
use virtio_queue::QueueT;
use virtio_queue::desc::{RawDescriptor, split::Descriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

const NEXT: u16 = 1;
const WRITE: u16 = 2;
const HDR: u64 = 0x10_0000;
const DATA: u64 = 0x11_0000;
const STATUS: u64 = 0x12_0000;

fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x20_0000)]).unwrap()
}

fn disk(bytes: usize) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let data: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    f.write_all(&data).unwrap();
    f.flush().unwrap();
    f
}

fn desc(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
    RawDescriptor::from(Descriptor::new(addr, len, flags, next))
}

/// Puts a header+data+status request in memory and in a queue; returns the queue.
fn request(mem: &GuestMemoryMmap, kind: u32, sector: u64, data_len: u32, write: bool) -> Queue {
    let mut hdr = [0u8; 16];
    hdr[..4].copy_from_slice(&kind.to_le_bytes());
    hdr[8..].copy_from_slice(&sector.to_le_bytes());
    mem.write_slice(&hdr, GuestAddress(HDR)).unwrap();
    mem.write_obj(0xAAu8, GuestAddress(STATUS)).unwrap();
    let data_flags = if write { NEXT } else { NEXT | WRITE };
    let descs = if data_len > 0 {
        vec![
            desc(HDR, 16, NEXT, 1),
            desc(DATA, data_len, data_flags, 2),
            desc(STATUS, 1, WRITE, 0),
        ]
    } else {
        vec![desc(HDR, 16, NEXT, 1), desc(STATUS, 1, WRITE, 0)]
    };
    let q = MockSplitQueue::new(mem, 16);
    q.add_desc_chains(&descs, 0).unwrap();
    q.create_queue::<Queue>().unwrap()
}

fn status(mem: &GuestMemoryMmap) -> u8 {
    mem.read_obj(GuestAddress(STATUS)).unwrap()
}

#[test]
fn writes_reach_the_file_and_read_back() {
    let file = disk(8192);
    let mem = memory();
    let mut blk = Block::open(file.path(), false, "vda").unwrap();
    let payload: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    mem.write_slice(&payload, GuestAddress(DATA)).unwrap();
    let mut q = request(&mem, 1, 2, 1024, true);
    assert!(blk.process_queue(0, &mut q, &mem).unwrap());
    assert_eq!(status(&mem), 0);
    let on_disk = std::fs::read(file.path()).unwrap();
    assert_eq!(&on_disk[1024..2048], &payload[..]);
    assert_eq!(
        on_disk[1023],
        (1023 % 251) as u8,
        "the bytes before are untouched"
    );

    mem.write_slice(&[0u8; 1024], GuestAddress(DATA)).unwrap();
    let mut q = request(&mem, 0, 2, 1024, false);
    assert!(blk.process_queue(0, &mut q, &mem).unwrap());
    assert_eq!(status(&mem), 0);
    let mut back = vec![0u8; 1024];
    mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
    assert_eq!(back, payload);
    assert_eq!(blk.state().capacity, 16);
}

const INDIRECT: u16 = 4;
const TABLE: u64 = 0x13_0000;

/// One request through an indirect table: header, `pieces` data descriptors of 512 bytes
/// each at DATA, DATA + 0x1000, ..., and the status.
fn indirect_request(mem: &GuestMemoryMmap, kind: u32, sector: u64, pieces: u16) -> Queue {
    let mut hdr = [0u8; 16];
    hdr[..4].copy_from_slice(&kind.to_le_bytes());
    hdr[8..].copy_from_slice(&sector.to_le_bytes());
    mem.write_slice(&hdr, GuestAddress(HDR)).unwrap();
    let data_flags = if kind == 1 { NEXT } else { NEXT | WRITE };
    let mut table = vec![desc(HDR, 16, NEXT, 1)];
    for i in 0..pieces {
        table.push(desc(DATA + u64::from(i) * 0x1000, 512, data_flags, i + 2));
    }
    table.push(desc(STATUS, 1, WRITE, 0));
    for (i, d) in table.iter().enumerate() {
        mem.write_obj(*d, GuestAddress(TABLE + 16 * i as u64))
            .unwrap();
    }
    let q = MockSplitQueue::new(mem, 16);
    q.add_desc_chains(&[desc(TABLE, 16 * table.len() as u32, INDIRECT, 0)], 0)
        .unwrap();
    q.create_queue::<Queue>().unwrap()
}

#[test]
fn indirect_chains_of_many_segments() {
    let file = disk(8192);
    let mem = memory();
    let mut blk = Block::open(file.path(), false, "vda").unwrap();
    assert_ne!(blk.features() & F_INDIRECT_DESC, 0);
    for i in 0..3u64 {
        mem.write_slice(&[i as u8 + 1; 512], GuestAddress(DATA + i * 0x1000))
            .unwrap();
    }
    let mut q = indirect_request(&mem, 1, 4, 3);
    assert!(blk.process_queue(0, &mut q, &mem).unwrap());
    assert_eq!(status(&mem), 0);
    let on_disk = std::fs::read(file.path()).unwrap();
    for i in 0..3 {
        let at = 2048 + i * 512;
        assert!(on_disk[at..at + 512].iter().all(|&b| b == i as u8 + 1));
    }
    assert_eq!(on_disk[2048 + 1536], ((2048 + 1536) % 251) as u8);

    for i in 0..3u64 {
        mem.write_slice(&[0u8; 512], GuestAddress(DATA + i * 0x1000))
            .unwrap();
    }
    let mut q = indirect_request(&mem, 0, 5, 3);
    assert!(blk.process_queue(0, &mut q, &mem).unwrap());
    assert_eq!(status(&mem), 0);
    let mut back = [0u8; 512];
    mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
    assert!(back.iter().all(|&b| b == 2), "sector 5 came back");
    mem.read_slice(&mut back, GuestAddress(DATA + 0x1000))
        .unwrap();
    assert!(back.iter().all(|&b| b == 3), "sector 6 came back");
    mem.read_slice(&mut back, GuestAddress(DATA + 0x2000))
        .unwrap();
    assert_eq!(&back[..], &on_disk[3584..4096], "sector 7 came back");
    let used_len: u32 = mem.read_obj(GuestAddress(q.used_ring() + 4 + 4)).unwrap();
    assert_eq!(used_len, 3 * 512 + 1, "the data and the status");
}

#[test]
fn event_idx_asks_for_the_next_notification_where_the_device_stopped() {
    let file = disk(8192);
    let mem = memory();
    let mut blk = Block::open(file.path(), false, "vda").unwrap();
    assert_ne!(blk.features() & F_EVENT_IDX, 0);
    let q = MockSplitQueue::new(&mem, 16);
    mem.write_slice(&[0u8; 16], GuestAddress(HDR)).unwrap();
    q.add_desc_chains(
        &[
            desc(HDR, 16, NEXT, 1),
            desc(STATUS, 1, WRITE, 0),
            desc(HDR, 16, NEXT, 3),
            desc(STATUS, 1, WRITE, 0),
        ],
        0,
    )
    .unwrap();
    let mut queue = q.create_queue::<Queue>().unwrap();
    queue.set_event_idx(true);
    assert!(blk.process_queue(0, &mut queue, &mem).unwrap());
    assert_eq!(queue.next_avail(), 2);
    // avail_event follows the used ring's 16 elements.
    let avail_event: u16 = mem
        .read_obj(GuestAddress(queue.used_ring() + 4 + 8 * 16))
        .unwrap();
    assert_eq!(avail_event, 2);
    // The driver asked for an interrupt after its first used buffer (used_event 0).
    assert!(queue.needs_notification(&mem).unwrap());
    assert!(
        !queue.needs_notification(&mem).unwrap(),
        "nothing new since"
    );
}

#[test]
fn read_only_disks_refuse_writes_and_stay_intact() {
    let file = disk(4096);
    let before = std::fs::read(file.path()).unwrap();
    let mem = memory();
    let mut blk = Block::open(file.path(), true, "vda").unwrap();
    assert_ne!(blk.features() & F_RO, 0);
    let mut q = request(&mem, 1, 0, 512, true);
    blk.process_queue(0, &mut q, &mem).unwrap();
    assert_eq!(status(&mem), 1, "IOERR");
    assert_eq!(std::fs::read(file.path()).unwrap(), before);
}

#[test]
fn out_of_range_unsupported_flush_and_id() {
    let file = disk(4096);
    let mem = memory();
    let mut blk = Block::open(file.path(), false, "vdb").unwrap();
    for sector in [7, 8, u64::MAX / 512, u64::MAX] {
        let mut q = request(&mem, 0, sector, 1024, false);
        blk.process_queue(0, &mut q, &mem).unwrap();
        assert_eq!(status(&mem), 1, "sector {sector} is past the end");
    }
    let mut q = request(&mem, 4, 0, 0, false);
    blk.process_queue(0, &mut q, &mem).unwrap();
    assert_eq!(status(&mem), 0, "flush");
    let mut q = request(&mem, 99, 0, 0, false);
    blk.process_queue(0, &mut q, &mem).unwrap();
    assert_eq!(status(&mem), 2, "UNSUPP");
    let mut q = request(&mem, 8, 0, 20, false);
    blk.process_queue(0, &mut q, &mem).unwrap();
    assert_eq!(status(&mem), 0);
    let mut id = [0u8; 20];
    mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    let name = file.path().file_name().unwrap().to_string_lossy();
    let n = name.len().min(20);
    assert_eq!(&id[..n], &name.as_bytes()[..n]);
}

#[test]
fn malformed_chains_are_device_errors() {
    let file = disk(4096);
    let before = std::fs::read(file.path()).unwrap();
    let mem = memory();
    let mut blk = Block::open(file.path(), false, "vda").unwrap();
    let q = MockSplitQueue::new(&mem, 16);
    // The data buffer lies outside guest RAM.
    q.add_desc_chains(
        &[
            desc(HDR, 16, NEXT, 1),
            desc(0x4000_0000, 512, NEXT, 2),
            desc(STATUS, 1, WRITE, 0),
        ],
        0,
    )
    .unwrap();
    let mut queue = q.create_queue::<Queue>().unwrap();
    let mut hdr = [0u8; 16];
    hdr[0] = 1;
    mem.write_slice(&hdr, GuestAddress(HDR)).unwrap();
    assert!(blk.process_queue(0, &mut queue, &mem).is_err());
    // No writable byte for the status.
    let q = MockSplitQueue::new(&mem, 16);
    q.add_desc_chains(&[desc(HDR, 16, 0, 0)], 0).unwrap();
    let mut queue = q.create_queue::<Queue>().unwrap();
    let err = blk.process_queue(0, &mut queue, &mem).unwrap_err();
    assert!(err.0.contains("status"), "{err}");
    assert_eq!(std::fs::read(file.path()).unwrap(), before);
}

#[test]
fn a_second_writer_is_refused() {
    let file = disk(4096);
    let first = Block::open(file.path(), false, "vda").unwrap();
    let err = Block::open(file.path(), false, "vda").err().unwrap();
    assert!(matches!(err, BlockError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    assert!(matches!(
        Block::open(file.path(), true, "vda"),
        Err(BlockError::Locked { .. })
    ));
    drop(first);
    let r1 = Block::open(file.path(), true, "vda").unwrap();
    let _r2 = Block::open(file.path(), true, "vdb").unwrap();
    assert!(Block::open(file.path(), false, "vdc").is_err());
    drop(r1);
}

#[test]
fn bad_files_are_named() {
    let empty = tempfile::NamedTempFile::new().unwrap();
    let err = Block::open(empty.path(), false, "vda")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("empty") && err.contains(&*empty.path().to_string_lossy()),
        "{err}"
    );
    let odd = disk(1000);
    let err = Block::open(odd.path(), false, "vda")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("512-byte sectors"), "{err}");
    let err = Block::open(Path::new("/nonexistent/disk.img"), true, "vda")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("/nonexistent/disk.img"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Whatever descriptors a guest writes, the device answers or fails; it never panics,
    /// and a read-only disk's file never changes.
    #[test]
    fn arbitrary_chains_never_panic(
        descs in proptest::collection::vec(
            (0u64..0x30_0000, 0u32..0x2_0000, 0u16..8, 0u16..20), 1..8),
        hdr in proptest::array::uniform16(any::<u8>()),
    ) {
        let file = disk(8192);
        let before = std::fs::read(file.path()).unwrap();
        let mem = memory();
        mem.write_slice(&hdr, GuestAddress(HDR)).unwrap();
        let mut blk = Block::open(file.path(), true, "vda").unwrap();
        let raw: Vec<RawDescriptor> =
            descs.iter().map(|&(a, l, f, n)| desc(a, l, f, n)).collect();
        let q = MockSplitQueue::new(&mem, 16);
        q.add_desc_chains(&raw, 0).unwrap();
        let mut queue = q.create_queue::<Queue>().unwrap();
        let _ = blk.process_queue(0, &mut queue, &mem);
        prop_assert_eq!(std::fs::read(file.path()).unwrap(), before);
    }
}
