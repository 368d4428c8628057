//! The block device against queues built in guest memory with virtio-queue's mock
//! (the layout a driver makes), on real files.

use super::*;
use proptest::prelude::*;
use std::io::Write as _;
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
