//! Plans for real kernels: where everything goes, what the entry state is, and the errors a
//! user gets for impossible requests.

use domboot_builder::{
    BootPlan, BootProtocol, BuildError, BuildOptions, CpuMode, DomainImage, E820Type,
    ProtocolChoice,
};
use domboot_testkit as support;
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn plan(
    kernel: &Path,
    initrds: &[PathBuf],
    cmdline: &str,
    opts: BuildOptions,
) -> Result<BootPlan, BuildError> {
    DomainImage::new(kernel, initrds, Some(cmdline), opts)?.build()
}

fn segment<'a>(p: &'a BootPlan, name: &str) -> &'a domboot_builder::Segment {
    p.segments
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no segment {name}: {:?}",
                p.segments.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn initrd_file(dir: &Path, size: usize) -> PathBuf {
    let p = dir.join(format!("initrd-{size}"));
    let data: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&p, data).unwrap();
    p
}

/// No two segments overlap, every segment and reservation is RAM in the plan's e820.
fn assert_consistent(p: &BootPlan) {
    for w in p.segments.windows(2) {
        assert!(
            w[0].end() <= w[1].addr,
            "{} overlaps {}",
            w[0].name,
            w[1].name
        );
    }
    let ram = |a: u64, b: u64| {
        p.e820
            .iter()
            .any(|e| e.kind == E820Type::Ram && a >= e.address && b <= e.end())
    };
    for s in &p.segments {
        assert!(
            ram(s.addr, s.end()),
            "{} at {:#x} is not RAM",
            s.name,
            s.addr
        );
        assert!(s.addr >= MIB, "{} below 1 MiB", s.name);
    }
    for r in &p.reservations {
        assert!(ram(r.address, r.address + r.size), "{} not RAM", r.name);
    }
}

#[test]
fn cloud_kernel_linux64_plan() {
    let k = support::debian_kernel("cloud");
    let dir = tempfile::tempdir().unwrap();
    let initrd = initrd_file(dir.path(), 3 * MIB as usize + 5);
    let p = plan(
        &k.vmlinuz,
        &[initrd],
        "console=ttyS0",
        BuildOptions::default(),
    )
    .unwrap();
    assert_consistent(&p);
    assert_eq!(p.protocol, BootProtocol::Linux64);
    let kernel = segment(&p, "kernel");
    assert_eq!(kernel.addr, 0x100_0000, "pref_address");
    assert_eq!(p.entry.mode, CpuMode::Long64);
    assert_eq!(p.entry.rip, 0x100_0200);
    assert!(p.entry.cs.l && p.entry.cs.selector == 0x10 && p.entry.ds.selector == 0x18);
    let zp = segment(&p, "boot_params");
    assert_eq!(p.entry.rsi, zp.addr);
    let z = &zp.data;
    assert_eq!(z[0x210], 0xFF, "type_of_loader");
    assert_eq!(z[0x211] & 0x80, 0x80, "CAN_USE_HEAP");
    assert_eq!(&z[0x202..0x206], b"HdrS");
    let initrd = segment(&p, "initrd");
    assert_eq!(u32_at(z, 0x218) as u64, initrd.addr);
    assert_eq!(u32_at(z, 0x21C) as u64, 3 * MIB + 5);
    assert_eq!(initrd.addr % 4096, 0);
    // As high as allowed: at the top of RAM less the firmware margin.
    assert!(initrd.end() > 512 * MIB - 8 * MIB, "{:#x}", initrd.addr);
    let cmd = segment(&p, "cmdline");
    assert_eq!(u32_at(z, 0x228) as u64, cmd.addr);
    assert_eq!(&cmd.data[..], b"console=ttyS0\0");
    // e820 in the zero page equals the plan's.
    assert_eq!(z[0x1E8] as usize, p.e820.len());
    // setup_data chain holds a 32-byte RNG seed.
    let sd = u64_at(z, 0x250);
    let node = p.segments.iter().find(|s| s.addr == sd).unwrap();
    assert_eq!(u32_at(&node.data, 8), 9);
    assert_eq!(u32_at(&node.data, 12), 32);
    // Page tables map everything and CR3 points at them.
    let pt = segment(&p, "page_tables");
    assert_eq!(p.entry.cr3, pt.addr);
    assert_eq!(p.patch_points.boot_params, Some(zp.addr));
}

#[test]
fn cloud_kernel_linux32_and_pvh_plans() {
    let k = support::debian_kernel("cloud");
    let p = plan(
        &k.vmlinuz,
        &[],
        "x",
        BuildOptions {
            protocol: ProtocolChoice::Linux32,
            ..Default::default()
        },
    )
    .unwrap();
    assert_consistent(&p);
    assert_eq!(p.protocol, BootProtocol::Linux32);
    assert_eq!(p.entry.mode, CpuMode::Protected32);
    assert_eq!(p.entry.rip, 0x100_0000);
    assert!(!p.entry.cs.l && p.entry.cs.db);
    assert_eq!((p.entry.rbx, p.entry.rdi, p.entry.rbp), (0, 0, 0));
    let z = &segment(&p, "boot_params").data;
    assert_eq!(u32_at(z, 0x214), 0x100_0000, "code32_start");
    assert!(p.segments.iter().all(|s| s.name != "page_tables"));

    let p = plan(
        &k.vmlinuz,
        &[],
        "console=ttyS0",
        BuildOptions {
            protocol: ProtocolChoice::Pvh,
            ..Default::default()
        },
    )
    .unwrap();
    assert_consistent(&p);
    assert_eq!(p.protocol, BootProtocol::Pvh);
    let si = segment(&p, "start_info");
    assert_eq!(p.entry.rbx, si.addr);
    assert_eq!(u32_at(&si.data, 0), 0x336E_C578);
    assert_eq!(u32_at(&si.data, 4), 1);
    assert_eq!(u32_at(&si.data, 12), 0, "no initrd, no module");
    assert!(
        p.segments
            .iter()
            .filter(|s| s.name.starts_with("kernel segment"))
            .count()
            >= 3
    );
}

#[test]
fn every_tiny_kernel_gets_a_plan() {
    for &(name, _, is64, _, pvh) in support::TINY_KERNELS {
        let bz = support::shared_kernel(&format!("bzImage-{name}"));
        let p = plan(&bz, &[], "console=ttyS0", BuildOptions::default()).unwrap();
        assert_consistent(&p);
        let expect = if is64 {
            BootProtocol::Linux64
        } else {
            BootProtocol::Linux32
        };
        assert_eq!(p.protocol, expect, "{name}");
        let vmlinux = support::shared_kernel(&format!("vmlinux-{name}"));
        let p = plan(&vmlinux, &[], "console=ttyS0", BuildOptions::default()).unwrap();
        assert_consistent(&p);
        let expect = match (pvh, is64) {
            (true, _) => BootProtocol::Pvh,
            (false, true) => BootProtocol::Linux64,
            (false, false) => BootProtocol::Linux32,
        };
        assert_eq!(p.protocol, expect, "{name} vmlinux");
    }
}

#[test]
fn non_relocatable_kernel_elsewhere_gets_the_hook() {
    let bz = support::shared_kernel("bzImage-x64-norelo-gzip");
    let p = plan(&bz, &[], "", BuildOptions::default()).unwrap();
    assert_eq!(segment(&p, "kernel").addr, 0x100_0000);
    assert!(p.segments.iter().all(|s| s.name != "code32_start hook"));

    for protocol in [ProtocolChoice::Linux64, ProtocolChoice::Linux32] {
        let p = plan(
            &bz,
            &[],
            "",
            BuildOptions {
                load_address: Some(0x200_0000),
                protocol,
                ..Default::default()
            },
        )
        .unwrap();
        assert_consistent(&p);
        assert_eq!(segment(&p, "kernel").addr, 0x200_0000);
        let hook = segment(&p, "code32_start hook");
        assert_eq!(p.entry.rip, hook.addr);
        let res = &p.reservations[0];
        assert_eq!(
            res.address, 0x100_0000,
            "the kernel runs at its own address"
        );
        let z = &segment(&p, "boot_params").data;
        assert_eq!(
            u64::from(u32_at(z, 0x214)),
            hook.addr,
            "code32_start = hook"
        );
    }
    let err = plan(
        &bz,
        &[],
        "",
        BuildOptions {
            kaslr: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("needs a relocatable kernel"),
        "{err}"
    );
}

#[test]
fn relocatable_load_address_and_kaslr() {
    let bz = support::shared_kernel("bzImage-x64-pvh-gzip");
    let p = plan(
        &bz,
        &[],
        "",
        BuildOptions {
            load_address: Some(0x400_0000),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(segment(&p, "kernel").addr, 0x400_0000);
    assert_eq!(p.entry.rip, 0x400_0200);
    let err = plan(
        &bz,
        &[],
        "",
        BuildOptions {
            load_address: Some(0x400_1000),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("not a multiple of the kernel's kernel_alignment 0x200000"),
        "{err}"
    );

    let seeded = |seed| {
        plan(
            &bz,
            &[],
            "",
            BuildOptions {
                kaslr: true,
                seed: Some(seed),
                ..Default::default()
            },
        )
        .map(|p| segment(&p, "kernel").addr)
        .unwrap()
    };
    assert_eq!(seeded(7), seeded(7), "reproducible with --seed");
    let picks: std::collections::HashSet<u64> = (0..16).map(seeded).collect();
    assert!(picks.len() > 4, "random: {picks:?}");
    assert!(picks.iter().all(|a| a % 0x20_0000 == 0 && *a >= 16 * MIB));
}

#[test]
fn cmdline_limit_is_exact() {
    let bz = support::shared_kernel("bzImage-x64-pvh-lz4");
    let size = domboot_formats::open(&bz, &Default::default())
        .unwrap()
        .bzimage()
        .unwrap()
        .bzimage()
        .unwrap()
        .cmdline_size;
    let ok = "a".repeat(size as usize - 1);
    let p = plan(&bz, &[], &ok, BuildOptions::default()).unwrap();
    assert_eq!(segment(&p, "cmdline").data.len(), size as usize);
    let long = "a".repeat(size as usize);
    let err = plan(&bz, &[], &long, BuildOptions::default()).unwrap_err();
    assert!(matches!(err, BuildError::CmdlineTooLong { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "{size} bytes but the kernel accepts at most {}",
            size - 1
        )),
        "{err}"
    );
}

#[test]
fn memory_sizes_around_the_mmio_gap() {
    let k = support::debian_kernel("cloud");
    let dir = tempfile::tempdir().unwrap();
    let initrd = initrd_file(dir.path(), MIB as usize);
    for (mem, high) in [
        (128 * MIB, false),
        (3 * GIB + 512 * MIB, true),
        (5 * GIB, true),
    ] {
        let p = plan(
            &k.vmlinuz,
            std::slice::from_ref(&initrd),
            "",
            BuildOptions {
                memory: mem,
                ..Default::default()
            },
        )
        .unwrap();
        assert_consistent(&p);
        let ram: u64 = p
            .e820
            .iter()
            .filter(|e| e.kind == E820Type::Ram && e.address >= MIB)
            .map(|e| e.size)
            .sum();
        assert_eq!(ram, mem - MIB, "{mem:#x}");
        assert_eq!(
            p.e820.iter().any(|e| e.address == 4 * GIB),
            high,
            "{mem:#x}"
        );
        assert!(
            p.e820
                .iter()
                .all(|e| e.end() <= 3 * GIB || e.address >= 4 * GIB),
            "MMIO gap kept free"
        );
    }
    let p = plan(
        &k.vmlinuz,
        &[initrd],
        "",
        BuildOptions {
            memory: 5 * GIB,
            initrd_above_4g: true,
            ..Default::default()
        },
    )
    .unwrap();
    let i = segment(&p, "initrd");
    assert!(i.addr >= 4 * GIB, "{:#x}", i.addr);
    let z = &segment(&p, "boot_params").data;
    assert_eq!(u32_at(z, 0xC0), (i.addr >> 32) as u32, "ext_ramdisk_image");
}

#[test]
fn several_initrds_are_contiguous() {
    let bz = support::shared_kernel("bzImage-x64-pvh-xz");
    let dir = tempfile::tempdir().unwrap();
    let a = initrd_file(dir.path(), 1001);
    let b = initrd_file(dir.path(), 2000);
    let p = plan(&bz, &[a, b], "", BuildOptions::default()).unwrap();
    let (s0, s1) = (segment(&p, "initrd 0"), segment(&p, "initrd 1"));
    assert_eq!(s0.end(), s1.addr);
    assert_eq!(s0.mem_size, 1004);
    let z = &segment(&p, "boot_params").data;
    assert_eq!(u32_at(z, 0x218) as u64, s0.addr);
    assert_eq!(u32_at(z, 0x21C), 1004 + 2000);
}

#[test]
fn impossible_requests_are_clear_errors() {
    let k = support::debian_kernel("cloud");
    let dir = tempfile::tempdir().unwrap();
    let big = initrd_file(dir.path(), 40 * MIB as usize);
    let err = plan(
        &k.vmlinuz,
        &[big],
        "",
        BuildOptions {
            // The kernel takes 16-67.5 MiB (pref_address + init_size); 40 MiB fits in
            // neither the 15 MiB below it nor the ~24 MiB above.
            memory: 96 * MIB,
            ..Default::default()
        },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "initrd (40 MiB) does not fit below initrd_addr_max 0x7fffffff with 96 MiB of RAM"
        ),
        "{msg}"
    );

    let err = plan(
        &k.vmlinuz,
        &[dir.path().join("missing.cpio")],
        "",
        BuildOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("missing.cpio: No such file"),
        "{err}"
    );
    let err = plan(
        &dir.path().join("nokernel"),
        &[],
        "",
        BuildOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("nokernel: No such file"), "{err}");

    let norelo = support::shared_kernel("bzImage-x64-norelo-gzip");
    let err = plan(
        &norelo,
        &[],
        "",
        BuildOptions {
            protocol: ProtocolChoice::Pvh,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("XEN_ELFNOTE_PHYS32_ENTRY"),
        "{err}"
    );
    let i386 = support::shared_kernel("bzImage-i386-norelo-xz");
    let err = plan(
        &i386,
        &[],
        "",
        BuildOptions {
            protocol: ProtocolChoice::Linux64,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("XLF_KERNEL_64"), "{err}");
    // The staged copy overlapping the kernel's own init_size range.
    let err = plan(
        &norelo,
        &[],
        "",
        BuildOptions {
            load_address: Some(0x110_0000),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("overlaps kernel"), "{err}");
    let err = plan(
        &k.vmlinuz,
        &[],
        "",
        BuildOptions {
            memory: 8 * MIB,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("below the minimum"), "{err}");
}
