//! Freestanding guests that drive a virtio-mmio disk by polling, on this machine's
//! /dev/kvm: one sets a queue up as a driver does, reads a sector and writes another;
//! one hands the device a chain that leaves RAM and loops. The first must see the host
//! file's bytes and leave its own in the file; the second must find the device in
//! DEVICE_NEEDS_RESET, able to reset it, with domboot still up and the file intact.

mod common;

use common::*;
use domboot_builder::{BootPlan, ProtocolChoice};
use domboot_vmm::{DiskConfig, Outcome, SerialSink, VmConfig};
use iced_x86::code_asm::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The first virtio-mmio slot (see domboot_vmm::device_manager::virtio).
const SLOT: u64 = 0xD000_0000;
const DESC: u64 = 0x30_0000;
const AVAIL: u64 = 0x30_1000;
const USED: u64 = 0x30_2000;
const HEADER: u64 = 0x30_3000;
const DATA: u64 = 0x30_4000;
const STATUS: u64 = 0x30_5000;
/// What the host puts at the start of sector 1, and what the guest writes to sector 2.
const SECTOR1: u64 = 0x1122_3344_5566_7788;
const SECTOR2: u64 = 0x0BAD_F00D_CAFE_D00D;

fn plan(code: impl FnOnce(&mut Guest)) -> BootPlan {
    let mut g = Guest::new(64, GUEST_ADDR, DATA_OFF);
    g.stack((GUEST_ADDR + IMAGE_MEMSZ) as u32);
    code(&mut g);
    let dir = tempfile::tempdir().unwrap();
    build_plan(
        dir.path(),
        &elf64(&g.assemble(), GUEST_ADDR, IMAGE_MEMSZ),
        b"",
        "virtio",
        64 * MIB,
        ProtocolChoice::Auto,
    )
}

/// A register write: `[rbx + offset] = value`.
fn reg(g: &mut Guest, offset: u32, value: u32) {
    g.a.mov(dword_ptr(rbx + offset), value).unwrap();
}

/// One descriptor at `DESC + 16 * index`.
fn descriptor(g: &mut Guest, index: u64, addr: u64, len: u32, flags: u16, next: u16) {
    let at = DESC + 16 * index;
    g.a.mov(rax, addr).unwrap();
    g.a.mov(qword_ptr(at), rax).unwrap();
    g.a.mov(dword_ptr(at + 8), len).unwrap();
    g.a.mov(
        dword_ptr(at + 12),
        u32::from(flags) | (u32::from(next) << 16),
    )
    .unwrap();
}

/// Driver start-up (virtio 1.2, 3.1.1) with queue 0 at DESC/AVAIL/USED, size 16.
fn start_device(g: &mut Guest) {
    g.a.mov(rbx, SLOT).unwrap();
    let bad = g.fail("not a virtio-mmio v2 block device");
    g.a.cmp(dword_ptr(rbx), 0x7472_6976).unwrap();
    g.a.jne(bad).unwrap();
    g.a.cmp(dword_ptr(rbx + 4), 2).unwrap();
    g.a.jne(bad).unwrap();
    g.a.cmp(dword_ptr(rbx + 8), 2).unwrap();
    g.a.jne(bad).unwrap();
    reg(g, 0x70, 0);
    reg(g, 0x70, 1 | 2);
    reg(g, 0x24, 1);
    reg(g, 0x20, 1); // VIRTIO_F_VERSION_1
    reg(g, 0x70, 1 | 2 | 8);
    let refused = g.fail("FEATURES_OK refused");
    g.a.test(dword_ptr(rbx + 0x70), 8).unwrap();
    g.a.jz(refused).unwrap();
    reg(g, 0x30, 0);
    reg(g, 0x38, 16);
    reg(g, 0x80, DESC as u32);
    reg(g, 0x84, 0);
    reg(g, 0x90, AVAIL as u32);
    reg(g, 0x94, 0);
    reg(g, 0xa0, USED as u32);
    reg(g, 0xa4, 0);
    reg(g, 0x44, 1);
    reg(g, 0x70, 1 | 2 | 4 | 8);
}

/// Makes request number `n` (1-based) available and waits (bounded) for the device to
/// use it.
fn submit_and_wait(g: &mut Guest, n: u16) {
    g.a.mov(word_ptr(AVAIL + 4 + 2 * u64::from(n - 1)), 0u32)
        .unwrap();
    g.a.mov(word_ptr(AVAIL + 2), u32::from(n)).unwrap();
    reg(g, 0x50, 0);
    g.a.mov(ecx, 100_000_000u32).unwrap();
    let mut poll = g.a.create_label();
    let mut done = g.a.create_label();
    g.a.set_label(&mut poll).unwrap();
    g.a.movzx(eax, word_ptr(USED + 2)).unwrap();
    g.a.cmp(eax, u32::from(n)).unwrap();
    g.a.je(done).unwrap();
    g.a.pause().unwrap();
    g.a.dec(ecx).unwrap();
    g.a.jnz(poll).unwrap();
    g.print("the device never used the request\n");
    g.exit(u32::from(BAD));
    g.a.set_label(&mut done).unwrap();
}

fn disk_file(bytes: usize) -> tempfile::NamedTempFile {
    let mut data = vec![0u8; bytes];
    data[512..520].copy_from_slice(&SECTOR1.to_le_bytes());
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &data).unwrap();
    f
}

fn run_with_disk(plan: &BootPlan, disk: &std::path::Path) -> (Outcome, String) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let cfg = VmConfig {
        serial: SerialSink::Capture(buf.clone()),
        timeout: Some(Duration::from_secs(30)),
        disks: vec![DiskConfig {
            path: disk.to_path_buf(),
            read_only: false,
        }],
        ..Default::default()
    };
    let outcome = domboot_vmm::run(plan, &cfg).expect("domboot_vmm::run");
    let serial = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    eprintln!("--- serial ---\n{serial}\n--- {}", outcome.describe());
    (outcome, serial)
}

#[test]
fn a_polling_driver_reads_and_writes_the_disk() {
    let file = disk_file(8192);
    let plan = plan(|g| {
        start_device(g);
        // Read sector 1: header, 512 writable bytes, status.
        g.a.mov(qword_ptr(HEADER), 0i32).unwrap();
        g.a.mov(qword_ptr(HEADER + 8), 1i32).unwrap();
        descriptor(g, 0, HEADER, 16, 1, 1);
        descriptor(g, 1, DATA, 512, 1 | 2, 2);
        descriptor(g, 2, STATUS, 1, 2, 0);
        g.a.mov(byte_ptr(STATUS), 0xFFu32).unwrap();
        submit_and_wait(g, 1);
        g.expect_eq(byte_ptr(STATUS), 0, "read status");
        g.a.mov(rax, SECTOR1).unwrap();
        let wrong = g.fail("sector 1 does not hold the host's bytes");
        g.a.cmp(qword_ptr(DATA), rax).unwrap();
        g.a.jne(wrong).unwrap();
        // Write sector 2 from the same buffer, now holding SECTOR2.
        g.a.mov(rax, SECTOR2).unwrap();
        g.a.mov(qword_ptr(DATA), rax).unwrap();
        g.a.mov(dword_ptr(HEADER), 1u32).unwrap();
        g.a.mov(qword_ptr(HEADER + 8), 2i32).unwrap();
        descriptor(g, 1, DATA, 512, 1, 2);
        g.a.mov(byte_ptr(STATUS), 0xFFu32).unwrap();
        submit_and_wait(g, 2);
        g.expect_eq(byte_ptr(STATUS), 0, "write status");
        g.print("virtio-blk read and write done\n");
        g.exit(u32::from(OK));
    });
    let (outcome, serial) = run_with_disk(&plan, file.path());
    assert_eq!(outcome, Outcome::DebugExit(OK), "{serial}");
    let data = std::fs::read(file.path()).unwrap();
    assert_eq!(&data[1024..1032], &SECTOR2.to_le_bytes());
    assert_eq!(&data[512..520], &SECTOR1.to_le_bytes());
}

#[test]
fn a_chain_out_of_ram_breaks_only_the_device() {
    let file = disk_file(8192);
    let before = std::fs::read(file.path()).unwrap();
    let plan = plan(|g| {
        start_device(g);
        // A write request whose data lies far outside RAM, and whose chain loops back.
        g.a.mov(qword_ptr(HEADER), 1i32).unwrap();
        g.a.mov(qword_ptr(HEADER + 8), 0i32).unwrap();
        descriptor(g, 0, HEADER, 16, 1, 1);
        descriptor(g, 1, 0x7F00_0000_0000, 0x1000, 1, 2);
        descriptor(g, 2, STATUS, 1, 1 | 2, 0);
        g.a.mov(word_ptr(AVAIL + 4), 0u32).unwrap();
        g.a.mov(word_ptr(AVAIL + 2), 1u32).unwrap();
        reg(g, 0x50, 0);
        // Wait (bounded) for DEVICE_NEEDS_RESET.
        g.a.mov(ecx, 100_000_000u32).unwrap();
        let mut poll = g.a.create_label();
        let mut broken = g.a.create_label();
        g.a.set_label(&mut poll).unwrap();
        g.a.test(dword_ptr(rbx + 0x70), 0x40).unwrap();
        g.a.jnz(broken).unwrap();
        g.a.pause().unwrap();
        g.a.dec(ecx).unwrap();
        g.a.jnz(poll).unwrap();
        g.print("the device never asked for a reset\n");
        g.exit(u32::from(BAD));
        g.a.set_label(&mut broken).unwrap();
        // The driver's way out: reset, after which the status reads 0 again.
        reg(g, 0x70, 0);
        g.expect_eq(dword_ptr(rbx + 0x70), 0, "status after reset");
        g.print("device needs reset; reset done\n");
        g.exit(u32::from(OK));
    });
    let (outcome, serial) = run_with_disk(&plan, file.path());
    assert_eq!(outcome, Outcome::DebugExit(OK), "{serial}");
    assert_eq!(std::fs::read(file.path()).unwrap(), before);
}
