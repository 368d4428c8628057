//! Remembers which kernel files have had their bzImage payload checked.
//!
//! Checking a payload means decompressing all of it (~60 MB for Debian's kernel): tens to
//! hundreds of milliseconds, every page of the file read and an 8 MiB buffer for LZ4, on
//! every run of the same kernel — often more than the boot itself. The check only depends
//! on the file's bytes and the `--max-decompressed` limit, so once a file has passed, a
//! mark named after the file's identity (device, inode, size, modification and change
//! times in nanoseconds) and the limit records it, in `CACHE/verified/` (CACHE is
//! $DOMBOOT_CACHE or ~/.cache/domboot). Rewriting the file changes its times (its change
//! time cannot be set back by anyone), so a rewritten kernel is checked again.
//! The cache is a convenience: when it cannot be read or written, the check just runs.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The mark for `kernel` checked within `limit` bytes, if its metadata can be read.
fn mark(dir: &Path, kernel: &Path, limit: u64) -> Option<PathBuf> {
    let m = std::fs::metadata(kernel).ok()?;
    let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
    let ctime = i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec());
    Some(dir.join(format!(
        "{:x}-{:x}-{}-{mtime}-{ctime}-{limit}",
        m.dev(),
        m.ino(),
        m.len()
    )))
}

/// Whether `kernel`'s payload has passed the check within `limit` before.
pub fn known(dir: &Path, kernel: &Path, limit: u64) -> bool {
    mark(dir, kernel, limit).is_some_and(|p| p.is_file())
}

/// Records that `kernel`'s payload passed the check within `limit`. The mark holds the
/// path for a reader; it is written like every output file (`crate::atomic`), so it
/// exists whole or not at all. Failures are ignored (the next run checks again).
pub fn remember(dir: &Path, kernel: &Path, limit: u64) {
    let Some(path) = mark(dir, kernel, limit) else {
        return;
    };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let text = format!("{}\n", kernel.display());
    let _ = crate::atomic::write_file(&path, text.as_bytes());
}

/// Where the marks live.
pub fn dir() -> PathBuf {
    crate::run::exec::cache_dir().join("verified")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_follows_the_file_and_the_limit() {
        let t = tempfile::tempdir().unwrap();
        let marks = t.path().join("verified");
        let k = t.path().join("bzImage");
        std::fs::write(&k, b"payload one").unwrap();
        assert!(!known(&marks, &k, 100));
        remember(&marks, &k, 100);
        assert!(known(&marks, &k, 100));
        assert!(!known(&marks, &k, 99), "another limit is another check");
        // Rewritten in place (same size): its change time moves, the mark no longer fits.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&k, b"payload two").unwrap();
        assert!(!known(&marks, &k, 100));
        // Another file with the same bytes is another file.
        let copy = t.path().join("copy");
        std::fs::copy(&k, &copy).unwrap();
        remember(&marks, &k, 100);
        assert!(!known(&marks, &copy, 100));
        assert!(
            std::fs::read_dir(&marks).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".tmp"))
        );
    }

    #[test]
    fn an_unwritable_cache_is_no_error() {
        let t = tempfile::tempdir().unwrap();
        let k = t.path().join("bzImage");
        std::fs::write(&k, b"x").unwrap();
        let blocked = t.path().join("file-not-dir");
        std::fs::write(&blocked, b"").unwrap();
        remember(&blocked.join("verified"), &k, 1);
        assert!(!known(&blocked.join("verified"), &k, 1));
        assert!(!known(
            &t.path().join("verified"),
            Path::new("/no/such/kernel"),
            1
        ));
    }
}
