//! Filesystems, read through maintained crates: ext2/3/4 (`ext4-view`), FAT12/16/32
//! (`fatfs`) and ISO9660 with Rock Ridge and Joliet (`hadris-iso`). Each is probed by its
//! magic number, then wrapped behind one small trait so the entry finders do not care.

mod ext;
mod fat;
mod iso;

use crate::disk::Region;
use crate::error::FsError;
pub use fat::looks_like_fat;

/// Symlink hops one path lookup may take (Linux's limit).
pub const MAX_SYMLINK_HOPS: usize = 40;

/// Read-only access to one filesystem.
pub trait FileSystem {
    /// "ext4", "fat", "iso9660".
    fn kind(&self) -> &'static str;
    /// The whole file at `path` (absolute, '/'-separated), symlinks followed inside the
    /// filesystem; FsError::TooLarge when it holds more than `limit` bytes.
    fn read(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, FsError>;
    /// The names in the directory at `path` (no "." or ".."), at most `limit` of them.
    fn list(&mut self, path: &str, limit: usize) -> Result<Vec<String>, FsError>;
}

type Opener = fn(&Region) -> Result<Box<dyn FileSystem>, FsError>;

/// The filesystem on `region`, by its magic: Ok(None) when none is recognised, Err when
/// one is recognised but cannot be opened.
pub fn open(region: &Region) -> Result<Option<Box<dyn FileSystem>>, FsError> {
    let mut magic = [0u8; 8];
    let at = |offset: u64, buf: &mut [u8]| region.read_exact_at(offset, buf).is_ok();
    let (kind, opener): (&str, Opener) = if at(32769, &mut magic[..5]) && &magic[..5] == b"CD001" {
        ("iso9660", iso::open)
    } else if at(1080, &mut magic[..2]) && magic[..2] == [0x53, 0xEF] {
        ("ext2/3/4", ext::open)
    } else {
        let mut boot = [0u8; 512];
        if !(at(0, &mut boot) && fat::looks_like_fat(&boot)) {
            return Ok(None);
        }
        ("FAT", fat::open)
    };
    let inner = crate::guard::guarded(kind, || opener(region))?;
    Ok(Some(Box::new(crate::guard::Guarded {
        inner,
        broken: None,
    })))
}

/// The non-empty components of an absolute path.
pub(crate) fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Reads `reader` to its end, failing once it gives more than `limit` bytes.
pub(crate) fn read_bounded(reader: impl std::io::Read, limit: u64) -> Result<Vec<u8>, FsError> {
    use std::io::Read;
    let mut out = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(FsError::bad)?;
    if out.len() as u64 > limit {
        return Err(FsError::TooLarge {
            size: out.len() as u64,
            limit,
        });
    }
    Ok(out)
}
