//! Hand-built BootPlans for tiny freestanding guests (assembled with iced-x86), and a
//! QEMU runner with a timeout.
#![allow(dead_code)]

use bytes::Bytes;
use domboot_builder::{
    BootPlan, BootProtocol, CpuMode, E820Entry, E820Type, EntryState, PatchPoints, Reservation,
    Segment, SegmentRegister,
};
use iced_x86::code_asm::*;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const MIB: u64 = 1 << 20;
/// isa-debug-exit: QEMU exits with (value << 1) | 1.
pub const EXIT_PORT: u32 = 0xF4;
pub const EXIT_OK: u32 = 0x10;
pub const EXIT_BAD: u32 = 0x11;
pub const QEMU_OK: i32 = ((EXIT_OK << 1) | 1) as i32;

pub const GUEST_ADDR: u64 = 0x20_0000;
pub const BOOT_PARAMS: u64 = 0x7000;
pub const GDT_ADDR: u64 = 0x6000;
pub const PAGE_TABLES: u64 = 0x9000;
pub const CS_SEL: u16 = 0x10;
pub const DS_SEL: u16 = 0x18;

/// QEMU -M pc's e820 for `mem` bytes (below 3.5 GiB).
pub fn e820_for(mem: u64) -> Vec<E820Entry> {
    vec![
        E820Entry {
            address: 0,
            size: 0x9_fc00,
            kind: E820Type::Ram,
        },
        E820Entry {
            address: 0x9_fc00,
            size: 0x400,
            kind: E820Type::Reserved,
        },
        E820Entry {
            address: 0xf_0000,
            size: 0x1_0000,
            kind: E820Type::Reserved,
        },
        E820Entry {
            address: MIB,
            size: mem - MIB,
            kind: E820Type::Ram,
        },
    ]
}

/// A zero page whose e820 table holds `e820` (what a builder would write).
pub fn boot_params(e820: &[E820Entry]) -> Vec<u8> {
    let mut zp = vec![0u8; 4096];
    zp[0x1E8] = e820.len() as u8;
    for (i, e) in e820.iter().enumerate() {
        let at = 0x2D0 + 20 * i;
        zp[at..at + 8].copy_from_slice(&e.address.to_le_bytes());
        zp[at + 8..at + 16].copy_from_slice(&e.size.to_le_bytes());
        zp[at + 16..at + 20].copy_from_slice(&(e.kind as u32).to_le_bytes());
    }
    zp
}

fn descriptor(access: u8, flags: u8) -> u64 {
    0xFFFF | (u64::from(access) << 40) | (0xF << 48) | (u64::from(flags) << 52)
}

/// Null, null, code at 0x10 (64-bit or 32-bit), data at 0x18: Linux's boot GDT.
pub fn gdt(long: bool) -> Vec<u8> {
    let code = if long {
        descriptor(0x9B, 0xA)
    } else {
        descriptor(0x9B, 0xC)
    };
    let data = descriptor(0x93, 0xC);
    [0u64, 0, code, data]
        .iter()
        .flat_map(|d| d.to_le_bytes())
        .collect()
}

pub fn seg(selector: u16, code: bool, long: bool) -> SegmentRegister {
    SegmentRegister {
        selector,
        base: 0,
        limit: 0xFFFF_FFFF,
        type_: if code { 0xB } else { 0x3 },
        dpl: 0,
        present: true,
        s: true,
        db: !long || !code,
        l: long && code,
        g: true,
    }
}

/// Identity map of the first 1 GiB with 2 MiB pages: PML4, PDPT, PD.
pub fn page_tables(at: u64) -> Vec<u8> {
    let mut t = vec![0u8; 3 * 4096];
    t[0..8].copy_from_slice(&((at + 0x1000) | 3).to_le_bytes());
    t[0x1000..0x1008].copy_from_slice(&((at + 0x2000) | 3).to_le_bytes());
    for i in 0..512u64 {
        let e = (i << 21) | 0x83;
        let o = 0x2000 + 8 * i as usize;
        t[o..o + 8].copy_from_slice(&e.to_le_bytes());
    }
    t
}

pub fn segment(name: &str, addr: u64, data: Vec<u8>, mem_size: u64) -> Segment {
    Segment {
        name: name.into(),
        addr,
        mem_size: mem_size.max(data.len() as u64),
        data: Bytes::from(data),
        backing: None,
    }
}

pub fn entry(mode: CpuMode, rip: u64, stack: u64) -> EntryState {
    let long = mode == CpuMode::Long64;
    EntryState {
        mode,
        rip,
        rsp: stack,
        rax: 0,
        rbx: 0,
        rcx: 0,
        rdx: 0,
        rsi: 0,
        rdi: 0,
        rbp: 0,
        rflags: 2,
        cr0: if long { 0x8000_0011 } else { 0x11 },
        cr3: if long { PAGE_TABLES } else { 0 },
        cr4: if long { 0x20 } else { 0 },
        efer: if long { 0x500 } else { 0 },
        cs: seg(CS_SEL, true, long),
        ds: seg(DS_SEL, false, long),
        gdt_base: GDT_ADDR,
        gdt_limit: 31,
    }
}

/// Emits `out dx, al` for every byte of `text` (DX must hold the port).
pub fn print(a: &mut CodeAssembler, text: &str) {
    a.mov(edx, 0x3F8u32).unwrap();
    for b in text.bytes() {
        a.mov(al, u32::from(b)).unwrap();
        a.out(dx, al).unwrap();
    }
}

/// A subroutine printing EAX as 8 hex digits on COM1; clobbers EBX, ECX, EDX.
pub fn hex32_routine(a: &mut CodeAssembler, label: &mut CodeLabel) {
    a.set_label(label).unwrap();
    a.mov(edx, 0x3F8u32).unwrap();
    a.mov(ecx, 8u32).unwrap();
    let mut lp = a.create_label();
    let mut digit = a.create_label();
    a.set_label(&mut lp).unwrap();
    a.rol(eax, 4).unwrap();
    a.mov(ebx, eax).unwrap();
    a.and(ebx, 0xFu32).unwrap();
    a.add(ebx, u32::from(b'0')).unwrap();
    a.cmp(ebx, u32::from(b'9')).unwrap();
    a.jbe(digit).unwrap();
    a.add(ebx, u32::from(b'a' - b'9' - 1)).unwrap();
    a.set_label(&mut digit).unwrap();
    // out dx, al needs the digit in AL: swap it through.
    a.xchg(eax, ebx).unwrap();
    a.out(dx, al).unwrap();
    a.xchg(eax, ebx).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(lp).unwrap();
    a.ret().unwrap();
}

pub fn exit(a: &mut CodeAssembler, value: u32) {
    a.mov(edx, EXIT_PORT).unwrap();
    a.mov(eax, value).unwrap();
    a.out(dx, eax).unwrap();
    let mut spin = a.create_label();
    a.set_label(&mut spin).unwrap();
    a.hlt().unwrap();
    a.jmp(spin).unwrap();
}

/// Linux-protocol guest (32- or 64-bit): prints its boot_params pointer, EBP, the e820
/// count, the highest RAM end below 4 GiB, and the RSDP address, then exits through
/// isa-debug-exit.
pub fn linux_guest(long: bool) -> Vec<u8> {
    let mut a = CodeAssembler::new(if long { 64 } else { 32 }).unwrap();
    let mut hex = a.create_label();
    // Keep the boot_params pointer in EDI (the identity map keeps it below 4 GiB).
    a.mov(edi, esi).unwrap();
    print(&mut a, if long { "GUEST64 rsi=" } else { "GUEST32 esi=" });
    if long {
        a.mov(rax, rsi).unwrap();
        a.shr(rax, 32).unwrap();
        a.call(hex).unwrap();
    }
    a.mov(eax, esi).unwrap();
    a.call(hex).unwrap();
    print(&mut a, " ebp=");
    a.mov(eax, ebp).unwrap();
    a.call(hex).unwrap();
    print(&mut a, " e820=");
    if long {
        a.movzx(eax, byte_ptr(rdi + 0x1E8)).unwrap();
    } else {
        a.movzx(eax, byte_ptr(edi + 0x1E8)).unwrap();
    }
    a.call(hex).unwrap();
    // Highest end of a RAM entry below 4 GiB: ESI walks the table, ECX counts, EBP = top.
    print(&mut a, " top=");
    let mut lp = a.create_label();
    let mut next = a.create_label();
    let mut done = a.create_label();
    if long {
        a.movzx(ecx, byte_ptr(rdi + 0x1E8)).unwrap();
        a.lea(rsi, qword_ptr(rdi + 0x2D0)).unwrap();
    } else {
        a.movzx(ecx, byte_ptr(edi + 0x1E8)).unwrap();
        a.lea(esi, dword_ptr(edi + 0x2D0)).unwrap();
    }
    a.xor(ebp, ebp).unwrap();
    a.set_label(&mut lp).unwrap();
    a.test(ecx, ecx).unwrap();
    a.jz(done).unwrap();
    let m = |off: u32| {
        if long {
            dword_ptr(rsi + off)
        } else {
            dword_ptr(esi + off)
        }
    };
    a.cmp(m(16), 1u32).unwrap();
    a.jne(next).unwrap();
    a.cmp(m(4), 0u32).unwrap();
    a.jne(next).unwrap();
    a.mov(eax, m(0)).unwrap();
    a.add(eax, m(8)).unwrap();
    a.cmp(eax, ebp).unwrap();
    a.jbe(next).unwrap();
    a.mov(ebp, eax).unwrap();
    a.set_label(&mut next).unwrap();
    if long {
        a.add(rsi, 20).unwrap();
    } else {
        a.add(esi, 20).unwrap();
    }
    a.dec(ecx).unwrap();
    a.jmp(lp).unwrap();
    a.set_label(&mut done).unwrap();
    a.mov(eax, ebp).unwrap();
    a.call(hex).unwrap();
    print(&mut a, " rsdp=");
    if long {
        a.mov(eax, dword_ptr(rdi + 0x70)).unwrap();
    } else {
        a.mov(eax, dword_ptr(edi + 0x70)).unwrap();
    }
    a.call(hex).unwrap();
    print(&mut a, " END\n");
    exit(&mut a, EXIT_OK);
    hex32_routine(&mut a, &mut hex);
    a.assemble(GUEST_ADDR).unwrap()
}

/// PVH guest: checks start_info's magic, prints the memmap entry count, the highest RAM
/// end and the command line.
pub fn pvh_guest() -> Vec<u8> {
    let mut a = CodeAssembler::new(32).unwrap();
    let mut hex = a.create_label();
    let mut bad = a.create_label();
    a.mov(edi, ebx).unwrap();
    a.cmp(dword_ptr(edi), 0x336e_c578u32).unwrap();
    a.jne(bad).unwrap();
    print(&mut a, "PVH magic ok memmap=");
    a.mov(eax, dword_ptr(edi + 48)).unwrap();
    a.call(hex).unwrap();
    print(&mut a, " top=");
    let mut lp = a.create_label();
    let mut next = a.create_label();
    let mut done = a.create_label();
    a.mov(ecx, dword_ptr(edi + 48)).unwrap();
    a.mov(esi, dword_ptr(edi + 40)).unwrap();
    a.xor(ebp, ebp).unwrap();
    a.set_label(&mut lp).unwrap();
    a.test(ecx, ecx).unwrap();
    a.jz(done).unwrap();
    a.cmp(dword_ptr(esi + 16), 1u32).unwrap();
    a.jne(next).unwrap();
    a.cmp(dword_ptr(esi + 4), 0u32).unwrap();
    a.jne(next).unwrap();
    a.mov(eax, dword_ptr(esi)).unwrap();
    a.add(eax, dword_ptr(esi + 8)).unwrap();
    a.cmp(eax, ebp).unwrap();
    a.jbe(next).unwrap();
    a.mov(ebp, eax).unwrap();
    a.set_label(&mut next).unwrap();
    a.add(esi, 24).unwrap();
    a.dec(ecx).unwrap();
    a.jmp(lp).unwrap();
    a.set_label(&mut done).unwrap();
    a.mov(eax, ebp).unwrap();
    a.call(hex).unwrap();
    print(&mut a, " cmdline=");
    let mut chr = a.create_label();
    let mut end = a.create_label();
    a.mov(esi, dword_ptr(edi + 24)).unwrap();
    a.mov(edx, 0x3F8u32).unwrap();
    a.set_label(&mut chr).unwrap();
    a.mov(al, byte_ptr(esi)).unwrap();
    a.test(al, al).unwrap();
    a.jz(end).unwrap();
    a.out(dx, al).unwrap();
    a.inc(esi).unwrap();
    a.jmp(chr).unwrap();
    a.set_label(&mut end).unwrap();
    print(&mut a, " END\n");
    exit(&mut a, EXIT_OK);
    a.set_label(&mut bad).unwrap();
    print(&mut a, "PVH bad magic\n");
    exit(&mut a, EXIT_BAD);
    hex32_routine(&mut a, &mut hex);
    a.assemble(GUEST_ADDR).unwrap()
}

/// A linux32/linux64 plan for `mem` bytes: guest at 2 MiB, boot_params at 0x7000 and the
/// GDT at 0x6000 (both below 1 MiB, so the stub copies them into place), page tables at
/// 0x9000 for 64-bit.
pub fn linux_plan(long: bool, mem: u64) -> BootPlan {
    let e820 = e820_for(mem);
    let mode = if long {
        CpuMode::Long64
    } else {
        CpuMode::Protected32
    };
    let mut entry = entry(mode, GUEST_ADDR, 0x8_0000);
    entry.rsi = BOOT_PARAMS;
    entry.rbp = 0x1234_5678;
    let mut segments = vec![
        segment("gdt", GDT_ADDR, gdt(long), 32),
        segment("boot_params", BOOT_PARAMS, boot_params(&e820), 4096),
    ];
    if long {
        segments.push(segment(
            "page_tables",
            PAGE_TABLES,
            page_tables(PAGE_TABLES),
            3 * 4096,
        ));
    }
    segments.push(segment("kernel", GUEST_ADDR, linux_guest(long), 0x1000));
    BootPlan {
        protocol: if long {
            BootProtocol::Linux64
        } else {
            BootProtocol::Linux32
        },
        memory_size: mem,
        e820,
        segments,
        reservations: vec![Reservation {
            name: "init_size".into(),
            address: GUEST_ADDR,
            size: 0x10_0000,
        }],
        entry,
        patch_points: PatchPoints {
            boot_params: Some(BOOT_PARAMS),
            start_info: None,
            pvh_memmap: None,
        },
    }
}

pub const START_INFO: u64 = 0x10_0000;
pub const PVH_MEMMAP: u64 = 0x10_0100;
pub const PVH_CMDLINE: u64 = 0x10_0800;

/// A pvh plan: start_info (version 1, the plan's e820 as memmap) at 1 MiB with its table
/// and command line in the same page.
pub fn pvh_plan(mem: u64, cmdline: &str) -> BootPlan {
    let e820 = e820_for(mem);
    let mut page = vec![0u8; 4096];
    page[0..4].copy_from_slice(&0x336e_c578u32.to_le_bytes());
    page[4..8].copy_from_slice(&1u32.to_le_bytes());
    page[24..32].copy_from_slice(&PVH_CMDLINE.to_le_bytes());
    page[40..48].copy_from_slice(&PVH_MEMMAP.to_le_bytes());
    page[48..52].copy_from_slice(&(e820.len() as u32).to_le_bytes());
    for (i, e) in e820.iter().enumerate() {
        let at = 0x100 + 24 * i;
        page[at..at + 8].copy_from_slice(&e.address.to_le_bytes());
        page[at + 8..at + 16].copy_from_slice(&e.size.to_le_bytes());
        page[at + 16..at + 20].copy_from_slice(&(e.kind as u32).to_le_bytes());
    }
    page[0x800..0x800 + cmdline.len()].copy_from_slice(cmdline.as_bytes());
    let mut entry = entry(CpuMode::Protected32, GUEST_ADDR, 0x8_0000);
    entry.rbx = START_INFO;
    BootPlan {
        protocol: BootProtocol::Pvh,
        memory_size: mem,
        e820,
        segments: vec![
            segment("gdt", GDT_ADDR, gdt(false), 32),
            segment("start_info", START_INFO, page, 4096),
            segment("kernel", GUEST_ADDR, pvh_guest(), 0x1000),
        ],
        reservations: vec![],
        entry,
        patch_points: PatchPoints {
            boot_params: None,
            start_info: Some(START_INFO),
            pvh_memmap: Some((PVH_MEMMAP, 32)),
        },
    }
}

/// Writes the exported image of `plan` to `path`.
pub fn export(plan: &BootPlan, path: &Path) -> domboot_export::PvhElf {
    let elf = domboot_export::pvh_elf(plan).expect("export");
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    elf.write_to(&mut f).unwrap();
    drop(f);
    assert_eq!(std::fs::metadata(path).unwrap().len(), elf.size());
    elf
}

pub struct Run {
    pub status: Option<i32>,
    pub serial: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

pub fn qemu_available() -> bool {
    Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Boots `image` under TCG with `-no-reboot` and the isa-debug-exit device.
pub fn qemu(image: &Path, machine: &str, mem_mib: u64, extra: &[&str]) -> Run {
    qemu_bin("qemu-system-x86_64", image, machine, mem_mib, extra)
}

/// [`qemu`] with another QEMU binary (`qemu-system-i386`).
pub fn qemu_bin(binary: &str, image: &Path, machine: &str, mem_mib: u64, extra: &[&str]) -> Run {
    let mut cmd = Command::new(binary);
    cmd.args(["-accel", "tcg", "-M", machine, "-m"])
        .arg(mem_mib.to_string())
        .args([
            "-no-reboot",
            "-nographic",
            "-nodefaults",
            "-serial",
            "stdio",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-kernel",
        ])
        .arg(image)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = start + Duration::from_secs(60);
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let mut serial = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
    if !stderr.trim().is_empty() {
        serial.push_str("\n[stderr] ");
        serial.push_str(&stderr);
    }
    eprintln!(
        "qemu -M {machine} -m {mem_mib} {extra:?}: status {status:?} in {elapsed:?}\n{serial}"
    );
    Run {
        status,
        serial,
        timed_out,
        elapsed,
    }
}
