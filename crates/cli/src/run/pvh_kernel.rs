//! `run --exec` under TCG boots a bzImage's own vmlinux through PVH, decompressed once on
//! the host and cached: every run otherwise spends its first few hundred milliseconds of
//! emulated time in the bzImage's decompressor and in relocating the kernel (issue 16), and
//! the cached ELF comes from the page cache at host speed.
//!
//! Only a plain bzImage whose vmlinux has a PVH entry (`XEN_ELFNOTE_PHYS32_ENTRY`, Linux
//! 5.0+ with `CONFIG_PVH`) qualifies: an ELF is booted as it is, a UKI would lose its
//! embedded initrd and command line, and a 32-bit kernel keeps the boot protocol its
//! userland was tested with. What a kernel turned out to be is cached too (an empty
//! `.none` file), so a kernel without PVH is not decompressed again on every run.

use anyhow::Context;
use domboot_formats::elf::ElfClass;
use domboot_formats::{ChainOptions, Format};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Cached kernels kept (each is a whole vmlinux, 30-60 MB); the least recently used go.
const KEEP: usize = 3;

/// The cached vmlinux of `kernel` when it is a bzImage with a PVH entry, made on first use
/// (`making` is called first, to tell the user); `None` when it is not one.
pub fn cached_vmlinux(
    kernel: &Path,
    max_decompressed: Option<u64>,
    making: impl FnOnce(),
) -> anyhow::Result<Option<PathBuf>> {
    let dir = super::exec::cache_dir().join("vmlinux");
    let key = key(kernel)?;
    let elf = dir.join(format!("pvh-{key:016x}.elf"));
    let none = dir.join(format!("pvh-{key:016x}.none"));
    if elf.is_file() {
        // Marks it as recently used for the eviction below; failing to is harmless.
        let _ =
            std::fs::File::open(&elf).and_then(|f| f.set_modified(std::time::SystemTime::now()));
        return Ok(Some(elf));
    }
    if none.is_file() {
        return Ok(None);
    }
    making();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let options = ChainOptions {
        max_decompressed,
        ..ChainOptions::default()
    };
    let chain = domboot_formats::open(kernel, &options)?;
    let first = chain.layers.first().map(|l| l.format);
    let vmlinux = chain.layers.last().filter(|l| {
        first == Some(Format::BzImage)
            && l.elf()
                .is_some_and(|e| e.class == ElfClass::Elf64 && e.pvh_entry.is_some())
    });
    match vmlinux {
        Some(layer) => {
            crate::atomic::write_file(&elf, &layer.data)?;
            evict(&dir, &elf);
            Ok(Some(elf))
        }
        None => {
            crate::atomic::write_file(&none, b"")?;
            Ok(None)
        }
    }
}

/// Names one version of one kernel file: its path, identity and modification time, and
/// domboot's version (a new domboot may extract differently).
fn key(kernel: &Path) -> anyhow::Result<u64> {
    let path = kernel
        .canonicalize()
        .with_context(|| format!("kernel {}", kernel.display()))?;
    let meta = std::fs::metadata(&path).with_context(|| format!("kernel {}", kernel.display()))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    (meta.dev(), meta.ino(), meta.len()).hash(&mut h);
    (
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
    )
        .hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    Ok(h.finish())
}

/// Removes all but the [`KEEP`] most recently used cached kernels (never `keep`).
fn evict(dir: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut elfs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "elf") && p != keep)
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    elfs.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (_, old) in elfs.into_iter().skip(KEEP - 1) {
        let _ = std::fs::remove_file(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_keeps_the_newest_and_the_one_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(100);
        for i in 0..5u64 {
            let p = dir.path().join(format!("pvh-{i}.elf"));
            std::fs::write(&p, b"x").unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(t0 + std::time::Duration::from_secs(i * 10))
                .unwrap();
        }
        std::fs::write(dir.path().join("pvh-9.none"), b"").unwrap();
        // pvh-0 is the oldest but the one just made: it stays, with the 2 newest others.
        evict(dir.path(), &dir.path().join("pvh-0.elf"));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["pvh-0.elf", "pvh-3.elf", "pvh-4.elf", "pvh-9.none"]);
    }

    #[test]
    fn the_key_changes_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, b"one").unwrap();
        let a = key(&p).unwrap();
        assert_eq!(a, key(&p).unwrap());
        std::fs::write(&p, b"other").unwrap();
        assert_ne!(a, key(&p).unwrap());
        assert!(key(&dir.path().join("missing")).is_err());
    }
}
