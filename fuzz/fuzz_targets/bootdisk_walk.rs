//! Shared by the bootdisk fuzz targets (included with #[path]): walk a filesystem the way
//! the entry finder does, within a budget, reading every file it lists.

use domboot_bootdisk::fs::FileSystem;

/// Lists directories up to `depth` levels and reads each file (at most 1 MiB), touching
/// at most `budget` names; every outcome is fine as long as nothing panics or hangs.
pub fn walk(fs: &mut dyn FileSystem, dir: &str, depth: usize, budget: &mut usize) {
    let Ok(names) = fs.list(dir, 256) else { return };
    for name in names {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let path = format!("{}/{name}", dir.trim_end_matches('/'));
        if let Ok(bytes) = fs.read(&path, 1 << 20) {
            assert!(bytes.len() <= 1 << 20, "{path}: read past the limit");
        } else if depth > 0 {
            walk(fs, &path, depth - 1, budget);
        }
    }
}

/// Opens `data` as a filesystem and walks it.
pub fn open_and_walk(data: &[u8]) {
    let region = domboot_bootdisk::disk::Region::from_bytes(data.to_vec());
    if let Ok(Some(mut fs)) = domboot_bootdisk::fs::open(&region) {
        let mut budget = 64;
        walk(fs.as_mut(), "/", 3, &mut budget);
        for path in [
            "/boot/grub/grub.cfg",
            "/link",
            "/vmlinuz",
            "/loader/entries/a.conf",
            "/a/../vmlinuz",
        ] {
            let _ = fs.read(path, 1 << 20);
        }
    }
}
