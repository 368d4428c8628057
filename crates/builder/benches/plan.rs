//! Building a boot plan for the Debian cloud kernel and a 100 MB initrd, side by side with
//! rust-vmm's linux-loader loading the same kernel and initrd into vm-memory guest memory.
//!
//! `cargo bench -p domboot-builder --bench plan` prints criterion's numbers and, at the end,
//! a table with the ratio. domboot's plan references the mapped files (copy-on-write)
//! instead of copying them, which is where the difference comes from.

use criterion::Criterion;
use domboot_builder::{BuildOptions, DomainImage};
use linux_loader::loader::KernelLoader;
use linux_loader::loader::bzimage::BzImage;
use std::fs::File;
use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const MEMORY: u64 = 512 << 20;
const INITRD_SIZE: usize = 100 << 20;
const HIGHMEM: u64 = 0x10_0000;

fn domboot_plan(kernel: &Path, initrd: &Path) -> usize {
    let image = DomainImage::new(
        kernel,
        &[initrd.to_path_buf()],
        Some("console=ttyS0 root=/dev/vda"),
        BuildOptions {
            memory: MEMORY,
            // The plan itself, as linux-loader's load is: no payload decompression.
            verify_payload: false,
            ..Default::default()
        },
    )
    .unwrap();
    image.build().unwrap().segments.len()
}

fn linux_loader_load(mem: &GuestMemoryMmap, kernel: &Path, initrd: &Path) -> u64 {
    let mut k = File::open(kernel).unwrap();
    let result = BzImage::load(mem, None, &mut k, Some(GuestAddress(HIGHMEM))).unwrap();
    // The initrd is read from its file into guest memory, as a VMM using vm-memory does.
    let mut f = File::open(initrd).unwrap();
    let size = f.metadata().unwrap().len() as usize;
    let addr = GuestAddress(MEMORY - size as u64 - (4 << 20)).0 & !0xFFF;
    let mut buf = vec![0u8; size];
    f.read_exact(&mut buf).unwrap();
    mem.write_slice(&buf, GuestAddress(addr)).unwrap();
    result.kernel_end
}

fn median(mut f: impl FnMut(), runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    let cache = std::env::var_os("DOMBOOT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/domboot"));
    let kernel = cache.join("debian/cloud/vmlinuz");
    assert!(
        kernel.exists(),
        "{} missing: run scripts/setup.sh --install-only",
        kernel.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd-100M");
    let data: Vec<u8> = (0..INITRD_SIZE)
        .map(|i| (i as u32).wrapping_mul(2654435761) as u8)
        .collect();
    std::fs::write(&initrd, data).unwrap();
    let mem: GuestMemoryMmap =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEMORY as usize)]).unwrap();

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("kernel+100MB initrd");
    g.sample_size(20);
    g.bench_function("domboot plan", |b| {
        b.iter(|| black_box(domboot_plan(&kernel, &initrd)))
    });
    g.bench_function("linux-loader load", |b| {
        b.iter(|| black_box(linux_loader_load(&mem, &kernel, &initrd)))
    });
    g.finish();

    let ours = median(
        || {
            black_box(domboot_plan(&kernel, &initrd));
        },
        21,
    );
    let theirs = median(
        || {
            black_box(linux_loader_load(&mem, &kernel, &initrd));
        },
        21,
    );
    println!("\nDebian cloud kernel + 100 MB initrd, median of 21 runs:");
    println!(
        "  {:<28} {:>10.3} ms",
        "domboot plan",
        ours.as_secs_f64() * 1e3
    );
    println!(
        "  {:<28} {:>10.3} ms",
        "linux-loader + vm-memory",
        theirs.as_secs_f64() * 1e3
    );
    println!(
        "  ratio (linux-loader / domboot): {:.1}x",
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
    c.final_summary();
}
