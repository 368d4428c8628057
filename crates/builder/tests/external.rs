//! What running domboot on kernels nobody here built found (issue 14): where a relocatable
//! kernel really decompresses, --initrd-above-4g without RAM there, PVH entries outside the
//! loaded bytes, and corrupt or oversized bzImage payloads on every protocol.

use domboot_builder::{BootPlan, BuildError, BuildOptions, DomainImage, ProtocolChoice};
use domboot_formats::bzimage::BzImage;
use domboot_formats::elf::ElfImage;
use domboot_testkit as support;
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn plan(kernel: &Path, initrds: &[PathBuf], opts: BuildOptions) -> Result<BootPlan, BuildError> {
    DomainImage::new(kernel, initrds, Some("console=ttyS0"), opts)?.build()
}

fn opts(memory: u64, protocol: ProtocolChoice) -> BuildOptions {
    BuildOptions {
        memory,
        protocol,
        rng_seed: false,
        ..Default::default()
    }
}

fn reservation(p: &BootPlan) -> (u64, u64) {
    let r = p
        .reservations
        .iter()
        .find(|r| r.name == "kernel (init_size)")
        .expect("init_size reservation");
    (r.address, r.address + r.size)
}

#[test]
fn relocatable_kernel_decompresses_at_pref_address_or_above() {
    let kernel = support::debian_kernel("cloud").vmlinuz;
    let data = std::fs::read(&kernel).unwrap();
    let bz = BzImage::parse(&data).unwrap();
    let pref = bz.pref_address.unwrap();
    let init_size = u64::from(bz.init_size.unwrap());
    assert_eq!(pref, 16 * MIB);
    // The kernel needs RAM up to pref_address + init_size (67.5 MiB for 6.1 cloud): with
    // less, the plan is an error rather than a guest that resets while decompressing.
    let needed = (pref + init_size).next_multiple_of(MIB);
    let small = plan(&kernel, &[], opts(needed - 2 * MIB, ProtocolChoice::Auto));
    let err = small.expect_err("too little RAM for the decompressed kernel");
    assert!(err.to_string().contains("pref_address"), "{err}");
    // The firmware margin at the top of low RAM comes on top.
    let p = plan(&kernel, &[], opts(needed + 4 * MIB, ProtocolChoice::Auto)).unwrap();
    assert_eq!(reservation(&p), (pref, pref + init_size));
    for protocol in [ProtocolChoice::Linux64, ProtocolChoice::Linux32] {
        // Loaded below pref_address on request: the compressed bytes stay there, the
        // decompression area is still reserved at pref_address.
        let mut o = opts(256 * MIB, protocol);
        o.load_address = Some(2 * MIB);
        let p = plan(&kernel, &[], o).unwrap();
        let k = p.segments.iter().find(|s| s.name == "kernel").unwrap();
        assert_eq!(k.addr, 2 * MIB);
        assert_eq!(reservation(&p), (pref, pref + init_size), "{protocol:?}");
        assert!(
            p.segments
                .iter()
                .all(|s| s.end() <= pref || s.addr >= pref + init_size || s.name == "kernel")
        );
    }
}

#[test]
fn initrd_above_4g_needs_ram_there_and_a_kernel_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd");
    std::fs::write(&initrd, vec![7u8; 1 << 20]).unwrap();
    let initrds = [initrd];
    let kernel = support::debian_kernel("cloud").vmlinuz;
    for memory in [512 * MIB, 3 * GIB] {
        let mut o = opts(memory, ProtocolChoice::Auto);
        o.initrd_above_4g = true;
        let err = plan(&kernel, &initrds, o).expect_err("no RAM above 4 GiB");
        let text = err.to_string();
        assert!(
            text.contains("--initrd-above-4g") && text.contains("none above 4 GiB"),
            "{text}"
        );
    }
    let mut o = opts(5 * GIB, ProtocolChoice::Auto);
    o.initrd_above_4g = true;
    let p = plan(&kernel, &initrds, o).unwrap();
    let i = p.segments.iter().find(|s| s.name == "initrd").unwrap();
    assert!(i.addr >= 4 * GIB, "initrd at {:#x}", i.addr);
    // An ELF kernel entered through the Linux protocol has no header to allow it.
    let vmlinux = support::shared_kernel("vmlinux-x64-pvh-gzip");
    let mut o = opts(5 * GIB, ProtocolChoice::Linux64);
    o.initrd_above_4g = true;
    let err = plan(&vmlinux, &initrds, o).expect_err("ELF kernel");
    assert!(
        err.to_string().contains("XLF_CAN_BE_LOADED_ABOVE_4G"),
        "{err}"
    );
}

#[test]
fn pvh_entry_outside_the_loaded_bytes_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(support::shared_kernel("vmlinux-x64-pvh-gzip")).unwrap();
    let image = ElfImage::parse(&original).unwrap();
    let note = image.note("Xen", 18).unwrap();
    let lowest = image.segments.iter().map(|s| s.paddr).min().unwrap();
    let (hi_lo, hi_hi) = image.paddr_range().unwrap();
    // Below every segment, and past the end of everything loaded.
    for entry in [lowest - 0x1000, hi_hi + 0x1000] {
        let mut data = original.clone();
        let at = note.desc_offset as usize;
        data[at..at + 4].copy_from_slice(&(entry as u32).to_le_bytes());
        let path = dir.path().join(format!("vmlinux-{entry:x}"));
        std::fs::write(&path, &data).unwrap();
        let err = plan(&path, &[], opts(256 * MIB, ProtocolChoice::Auto)).expect_err("bad entry");
        let text = err.to_string();
        assert!(
            text.contains(&format!("{entry:#x}")) && text.contains("lies in no PT_LOAD"),
            "{text}"
        );
    }
    assert!(hi_lo <= lowest);
    // The unchanged kernel builds.
    plan(
        &support::shared_kernel("vmlinux-x64-pvh-gzip"),
        &[],
        opts(256 * MIB, ProtocolChoice::Auto),
    )
    .unwrap();
}

#[test]
fn corrupt_or_oversized_payload_is_an_error_on_every_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let good = support::shared_kernel("bzImage-x64-pvh-gzip");
    let mut data = std::fs::read(&good).unwrap();
    let payload = BzImage::parse(&data).unwrap().payload.unwrap();
    let middle = (payload.file_offset + payload.length / 2) as usize;
    for b in &mut data[middle..middle + 64] {
        *b ^= 0x5a;
    }
    let bad = dir.path().join("bzImage-corrupt");
    std::fs::write(&bad, &data).unwrap();
    for protocol in [
        ProtocolChoice::Auto,
        ProtocolChoice::Linux64,
        ProtocolChoice::Linux32,
        ProtocolChoice::Pvh,
    ] {
        let err = plan(&bad, &[], opts(256 * MIB, protocol)).expect_err("corrupt payload");
        let text = err.to_string();
        assert!(
            text.contains("bzImage-corrupt") && text.contains("gzip"),
            "{protocol:?}: {text}"
        );
        // The same kernel unchanged builds with that protocol.
        plan(&good, &[], opts(256 * MIB, protocol)).unwrap();
        // --max-decompressed is honoured on every protocol.
        let mut o = opts(256 * MIB, protocol);
        o.max_decompressed = Some(MIB);
        let err = plan(&good, &[], o).expect_err("payload larger than 1 MiB");
        assert!(
            err.to_string().contains("1048576") || err.to_string().contains("1 MiB"),
            "{err}"
        );
    }
    // A caller that opts out of the check gets the plan (the guest's decompressor would
    // then be the one to complain).
    let mut o = opts(256 * MIB, ProtocolChoice::Linux64);
    o.verify_payload = false;
    plan(&bad, &[], o).unwrap();
}

/// Resident KiB of the mapping of this process that holds `addr`.
fn resident_kib_of_mapping_at(addr: usize) -> u64 {
    let rss = support::smaps_field(addr, "Rss:").expect("a mapping holds the kernel's bytes");
    rss.trim_end_matches(" kB").parse().unwrap()
}

#[test]
fn the_payload_check_leaves_the_kernel_mapping_small_and_its_bytes_intact() {
    // The check decompresses the whole payload, reading every page of Debian's 14 MiB
    // bzImage; `run` keeps the mapping while the guest runs, so the check hands its pages
    // back, and the plan's kernel bytes still read as the file's.
    let kernel = support::debian_kernel("cloud").vmlinuz;
    let file = std::fs::read(&kernel).unwrap();
    let image = DomainImage::new(
        &kernel,
        &[],
        Some("console=ttyS0"),
        opts(512 * MIB, ProtocolChoice::Linux64),
    )
    .unwrap();
    image.check_payload().unwrap();
    let plan = image.build().unwrap();
    let seg = plan
        .segments
        .iter()
        .find(|s| s.name == "kernel")
        .expect("kernel segment");
    let resident = resident_kib_of_mapping_at(seg.data.as_ptr() as usize);
    assert!(
        resident < 2048,
        "{resident} KiB of the {} KiB kernel mapping stayed resident after the check",
        file.len() >> 10
    );
    let start = seg.backing.as_ref().expect("mapped from the file").offset as usize;
    assert_eq!(&seg.data[..], &file[start..start + seg.data.len()]);
}
