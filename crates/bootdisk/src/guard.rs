//! A fence around the partition-table and filesystem crates. They are maintained and
//! fuzzed here, but some still panic on corrupt images: fatfs 0.3.6 (the newest on
//! crates.io) on a directory entry whose first cluster is 0 or 1 ("attempt to subtract
//! with overflow" in `sector_from_cluster`, found by fuzz/fs_fat), mbrman 0.6.1 when every
//! used partition starts at LBA 0 (`find_alignment` unwraps an empty range, found by
//! fuzz/disk_table). A panic inside them becomes an error naming the image, partition and
//! path like any other corruption, and a filesystem reader is not used again after one
//! (its internal state may be half-updated).

use crate::error::FsError;
use crate::fs::FileSystem;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    /// Set while a guarded call runs on this thread: its panics are reported as errors,
    /// so the panic hook stays silent for them.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Wraps the process's panic hook once so that panics inside guarded calls print nothing;
/// every other panic still reaches the previous hook.
fn quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; a panic inside it comes back as Err with the panic's message.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    quiet_hook();
    let was = GUARDED.with(|g| g.replace(true));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    outcome.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())
    })
}

/// Runs `f`, turning a panic into FsError::Bad.
pub fn guarded<T>(kind: &str, f: impl FnOnce() -> Result<T, FsError>) -> Result<T, FsError> {
    catch(f).unwrap_or_else(|why| {
        Err(FsError::Bad(format!(
            "corrupt {kind} filesystem (its reader failed: {why})"
        )))
    })
}

/// A filesystem whose every call is guarded, and refused after a failed one.
pub struct Guarded {
    pub inner: Box<dyn FileSystem>,
    pub broken: Option<String>,
}

impl Guarded {
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut dyn FileSystem) -> Result<T, FsError>,
    ) -> Result<T, FsError> {
        if let Some(why) = &self.broken {
            return Err(FsError::Bad(why.clone()));
        }
        let kind = match self.inner.kind() {
            "fat" => "FAT",
            "ext4" => "ext2/3/4",
            "iso9660" => "ISO9660",
            other => other,
        };
        let inner = &mut self.inner;
        let r = guarded(kind, || f(inner.as_mut()));
        if let Err(FsError::Bad(why)) = &r {
            if why.starts_with("corrupt ") && why.contains("its reader failed") {
                self.broken = Some(why.clone());
            }
        }
        r
    }
}

impl FileSystem for Guarded {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn read(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
        self.call(|fs| fs.read(path, limit))
    }
    fn list(&mut self, path: &str, limit: usize) -> Result<Vec<String>, FsError> {
        self.call(|fs| fs.list(path, limit))
    }
}
