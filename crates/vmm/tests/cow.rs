//! Copy-on-write file-backed segments: the initrd is mapped from its file into guest RAM
//! (not copied), the guest reads the file's bytes through KVM, and guest writes never
//! reach the file.

mod common;

use common::*;
use domboot_builder::{BootPlan, ProtocolChoice};
use domboot_vmm::Outcome;
use domboot_vmm::memory::{allocate, load_segments};
use iced_x86::code_asm::*;
use std::time::Duration;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

const CMDLINE: &str = "console=ttyS0 domboot.test=cow";
const MEMORY: u64 = 256 * MIB;
/// Not a page multiple, so the last partial page is copied beside the mapped ones.
const INITRD_LEN: usize = (24 << 20) + 1234;
/// What the guest checksums: on this PVM host a freestanding guest runs through KVM's
/// instruction emulator (~10^6 loop iterations a second), so it reads a smaller file —
/// still many pages, mapped, with a copied partial last page.
const GUEST_INITRD_LEN: usize = (1 << 20) + 1234;

fn initrd_segment(plan: &BootPlan) -> &domboot_builder::Segment {
    plan.segments
        .iter()
        .find(|s| s.name == "initrd")
        .expect("an initrd segment")
}

/// The guest-RAM mapping line of /proc/self/maps that contains `addr`.
fn maps_line(addr: usize) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .find(|l| {
            let range = l.split_whitespace().next().unwrap();
            let (s, e) = range.split_once('-').unwrap();
            let (s, e) = (
                usize::from_str_radix(s, 16).unwrap(),
                usize::from_str_radix(e, 16).unwrap(),
            );
            (s..e).contains(&addr)
        })
        .unwrap_or_else(|| panic!("no mapping holds {addr:#x}:\n{maps}"))
        .to_string()
}

#[test]
fn initrd_is_mapped_from_its_file_and_writes_stay_private() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = initrd_bytes(INITRD_LEN, 99);
    let kernel = elf64(&[0xF4], GUEST_ADDR, IMAGE_MEMSZ);
    let plan = build_plan(
        dir.path(),
        &kernel,
        &initrd,
        CMDLINE,
        MEMORY,
        ProtocolChoice::Auto,
    );
    let seg = initrd_segment(&plan);
    let backing = seg
        .backing
        .as_ref()
        .expect("the plan marks the initrd file-backed");
    assert_eq!(backing.offset, 0);
    // Every segment the plan marks file-backed is exactly its file's bytes at that offset
    // (here: the initrd, and the kernel's PT_LOAD, a slice of the ELF file).
    let kernel_file = std::fs::read(dir.path().join("kernel")).unwrap();
    let mut backed = Vec::new();
    for s in &plan.segments {
        if let Some(b) = &s.backing {
            let file = if s.name == "initrd" {
                &initrd
            } else {
                &kernel_file
            };
            let at = b.offset as usize;
            assert!(file[at..at + s.data.len()] == s.data[..], "{}", s.name);
            backed.push(s.name.as_str());
        }
    }
    assert_eq!(
        backed,
        ["kernel segment 0", "initrd"],
        "file-backed segments"
    );

    let mem = allocate(&plan).unwrap();
    let stats = load_segments(&mem, &plan).unwrap();
    let tail = (seg.addr + INITRD_LEN as u64) % 4096;
    assert_eq!(
        stats.mapped,
        INITRD_LEN as u64 - tail,
        "all whole pages of the initrd mapped: {stats:?}"
    );
    assert!(
        stats.copied < 64 << 10,
        "only small segments and the initrd's partial page copied: {stats:?}"
    );

    // The host pages behind the initrd are the file's (private) mapping.
    let host = mem.get_host_address(GuestAddress(seg.addr + 8192)).unwrap() as usize;
    let line = maps_line(host);
    let path = dir.path().join("initrd");
    assert!(
        line.ends_with(path.to_str().unwrap()) && line.split_whitespace().nth(1) == Some("rw-p"),
        "{line}"
    );

    // Guest memory holds exactly the file's bytes, partial last page included.
    let mut back = vec![0u8; INITRD_LEN];
    mem.read_slice(&mut back, GuestAddress(seg.addr)).unwrap();
    assert!(back == initrd, "guest memory differs from the initrd file");

    // A write through guest memory gets a private page; the file keeps its bytes.
    mem.write_slice(&[0x5A; 4096], GuestAddress(seg.addr + 4096))
        .unwrap();
    mem.read_slice(&mut back[..8], GuestAddress(seg.addr + 4096))
        .unwrap();
    assert_eq!(&back[..8], &[0x5A; 8]);
    assert!(
        std::fs::read(&path).unwrap() == initrd,
        "the initrd file changed"
    );
}

#[test]
fn guest_reads_the_mapped_initrd_and_its_writes_do_not_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = initrd_bytes(GUEST_INITRD_LEN, 5);
    let want = checksum(&initrd);
    // A linux64 guest: checksum the initrd (read through KVM from the file's pages), then
    // overwrite its first 64 KiB, and report.
    let mut g = Guest::new(64, GUEST_ADDR, DATA_OFF);
    let bp_var = g.scratch(8);
    g.a.mov(dword_ptr(u64::from(bp_var)), esi).unwrap();
    g.stack((GUEST_ADDR + IMAGE_MEMSZ) as u32);
    let f = g.fail("initrd checksum");
    g.a.mov(ecx, dword_ptr(rsi + 0x21C)).unwrap();
    g.a.mov(esi, dword_ptr(rsi + 0x218)).unwrap();
    g.checksum();
    g.a.cmp(eax, want).unwrap();
    g.a.jne(f).unwrap();
    g.print("initrd checksum ok\n");
    g.a.mov(esi, dword_ptr(u64::from(bp_var))).unwrap();
    g.a.mov(edi, dword_ptr(rsi + 0x218)).unwrap();
    g.a.mov(ecx, 0x4000u32).unwrap();
    g.a.mov(eax, 0xDEAD_BEEFu32).unwrap();
    g.a.rep().stosd().unwrap();
    g.print("initrd overwritten\nALL OK\n");
    g.exit(u32::from(OK));
    let kernel = elf64(&g.assemble(), GUEST_ADDR, IMAGE_MEMSZ);
    let plan = build_plan(
        dir.path(),
        &kernel,
        &initrd,
        CMDLINE,
        MEMORY,
        ProtocolChoice::Auto,
    );
    let seg = initrd_segment(&plan);
    assert!(
        seg.backing.is_some() && seg.addr % 4096 == 0,
        "initrd will be mapped"
    );
    let r = run(&plan, 1, Duration::from_secs(60));
    assert_eq!(r.outcome, Outcome::DebugExit(OK), "{}", r.serial);
    assert!(r.serial.contains("initrd checksum ok"), "{}", r.serial);
    assert!(r.serial.contains("ALL OK"), "{}", r.serial);
    assert!(
        std::fs::read(dir.path().join("initrd")).unwrap() == initrd,
        "the guest's writes reached the initrd file"
    );
}
