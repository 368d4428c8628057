//! Real plans from the builder for a guest, and the inputs tests hand it.

use domboot_builder::{BootPlan, BuildOptions, DomainImage, E820Type, ProtocolChoice};
use std::path::{Path, PathBuf};

/// The checksum guests compute over the initrd/module: h = h * 31 + byte (wrapping).
pub fn checksum(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0u32, |h, &b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
}

pub fn ram_total(plan: &BootPlan) -> u64 {
    plan.e820
        .iter()
        .filter(|e| e.kind == E820Type::Ram)
        .map(|e| e.size)
        .sum()
}

/// Builds a real plan with the builder from files written to `dir`.
pub fn build_plan(
    dir: &Path,
    kernel: &[u8],
    initrd: &[u8],
    cmdline: &str,
    memory: u64,
    protocol: ProtocolChoice,
) -> BootPlan {
    let kpath = dir.join("kernel");
    std::fs::write(&kpath, kernel).unwrap();
    let ipath: PathBuf = dir.join("initrd");
    std::fs::write(&ipath, initrd).unwrap();
    let image = DomainImage::new(
        &kpath,
        &[ipath],
        Some(cmdline),
        BuildOptions {
            memory,
            protocol,
            ..Default::default()
        },
    )
    .expect("domain image");
    image.build().expect("plan")
}

/// A pseudo-random initrd (so a checksum catches misplaced or truncated bytes).
pub fn initrd_bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 7) as u8
        })
        .collect()
}
