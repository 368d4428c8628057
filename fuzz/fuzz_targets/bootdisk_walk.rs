//! Shared by the bootdisk fuzz targets (included with #[path]): walk a filesystem the way
//! the entry finder does, within a budget, reading every file it lists.
//!
//! Each call gets a read budget first, as `DiskImage` gives every lookup one (what it may
//! read plus 64 MiB of metadata): that budget is what stops a filesystem crate looping on
//! corrupt metadata (fatfs on a directory whose cluster chain cycles, found by fs_fat:
//! without it one 47 KB image ran for minutes). The harness allows less slack, so such an
//! image costs milliseconds here, not the fuzzer's per-input timeout.

use domboot_bootdisk::disk::Region;
use domboot_bootdisk::fs::FileSystem;

/// What one call may read: the largest file read, and room for metadata.
const BUDGET: u64 = (1 << 20) + (4 << 20);

/// Lists directories up to `depth` levels and reads each file (at most 1 MiB), touching
/// at most `budget` names; every outcome is fine as long as nothing panics or hangs.
pub fn walk(fs: &mut dyn FileSystem, region: &Region, dir: &str, depth: usize, budget: &mut usize) {
    region.set_budget(BUDGET);
    let Ok(names) = fs.list(dir, 256) else { return };
    for name in names {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let path = format!("{}/{name}", dir.trim_end_matches('/'));
        region.set_budget(BUDGET);
        if let Ok(bytes) = fs.read(&path, 1 << 20) {
            assert!(bytes.len() <= 1 << 20, "{path}: read past the limit");
        } else if depth > 0 {
            walk(fs, region, &path, depth - 1, budget);
        }
    }
}

/// Opens `data` as a filesystem and walks it.
pub fn open_and_walk(data: &[u8]) {
    let region = Region::from_bytes(data.to_vec());
    region.set_budget(BUDGET);
    if let Ok(Some(mut fs)) = domboot_bootdisk::fs::open(&region) {
        let mut budget = 64;
        walk(fs.as_mut(), &region, "/", 3, &mut budget);
        for path in [
            "/boot/grub/grub.cfg",
            "/link",
            "/vmlinuz",
            "/loader/entries/a.conf",
            "/a/../vmlinuz",
        ] {
            region.set_budget(BUDGET);
            let _ = fs.read(path, 1 << 20);
        }
    }
}
