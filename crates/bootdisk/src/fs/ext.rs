//! ext2/3/4 through `ext4-view`, which checks the metadata checksums. Symlinks are
//! resolved here ([`Ext::resolve`]), at most MAX_SYMLINK_HOPS per lookup, and ext4-view is
//! only handed paths without any.

use super::{FileSystem, MAX_SYMLINK_HOPS, components};
use crate::disk::Region;
use crate::error::FsError;
use ext4_view::{Ext4, Ext4Error};

pub struct Ext(Ext4);

pub fn open(region: &Region) -> Result<Box<dyn FileSystem>, FsError> {
    check_group_count(region)?;
    let fs =
        Ext4::load(Box::new(region.clone())).map_err(|e| FsError::Bad(format!("ext2/3/4: {e}")))?;
    Ok(Box::new(Ext(fs)))
}

/// ext4-view 1.0 sizes a vector by the superblock's block-group count before checking it
/// (fuzz target fs_ext4 found a superblock asking for a 24 GiB allocation, which aborts
/// the process): the group descriptors must fit in the image, checked here first.
fn check_group_count(region: &Region) -> Result<(), FsError> {
    let mut sb = [0u8; 1024];
    if region.read_exact_at(1024, &mut sb).is_err() {
        return Ok(()); // too short for a superblock: ext4-view says so itself
    }
    let u32_at = |o: usize| u64::from(u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]));
    let incompat_64bit = u32_at(0x60) & 0x80 != 0;
    let blocks = u32_at(4)
        | if incompat_64bit {
            u32_at(0x150) << 32
        } else {
            0
        };
    let first_data_block = u32_at(20);
    let per_group = u32_at(32);
    if per_group == 0 {
        return Err(FsError::Bad(
            "ext2/3/4: superblock field s_blocks_per_group is 0".into(),
        ));
    }
    let groups = blocks.saturating_sub(first_data_block).div_ceil(per_group);
    let table = groups.saturating_mul(32);
    if table > region.len() {
        return Err(FsError::Bad(format!(
            "ext2/3/4: the superblock counts {groups} block groups (s_blocks_count {blocks}, \
             s_blocks_per_group {per_group}); their descriptors alone ({table} bytes) exceed \
             the {}-byte filesystem",
            region.len()
        )));
    }
    Ok(())
}

/// The longest symlink target accepted: Linux's PATH_MAX, the most it writes.
///
/// Why: ext4-view 1.0 reads a symlink's target into a vector sized by the inode's claimed
/// size before reading anything (fuzz target fs_ext4 found an image claiming 459 GB,
/// whose allocation aborts the process), and it does so for every symlink on a path it
/// resolves. So domboot resolves paths itself and checks each symlink's size first.
const MAX_SYMLINK_TARGET: u64 = 4096;

impl Ext {
    /// `path` with every symlink on it replaced by its target, as Linux resolves it (".."
    /// is taken after the symlinks before it, within the filesystem's root).
    fn resolve(&self, path: &str) -> Result<String, FsError> {
        let mut done: Vec<String> = Vec::new();
        let mut pending: Vec<String> = components(path).rev().map(str::to_string).collect();
        let mut hops = 0;
        while let Some(name) = pending.pop() {
            if name == ".." {
                done.pop();
                continue;
            }
            // Everything in `done` is free of symlinks, so ext4-view follows none here:
            // symlink_metadata does not follow the last component.
            let here: String = done
                .iter()
                .chain([&name])
                .map(|c| format!("/{c}"))
                .collect();
            let meta = self.0.symlink_metadata(here.as_str()).map_err(fs_error)?;
            if !meta.is_symlink() {
                done.push(name);
                continue;
            }
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(FsError::Bad(format!(
                    "more than {MAX_SYMLINK_HOPS} symlinks on the way (a loop?)"
                )));
            }
            if meta.len() > MAX_SYMLINK_TARGET {
                return Err(FsError::Bad(format!(
                    "{here}: a symlink whose target claims {} bytes (at most \
                     {MAX_SYMLINK_TARGET})",
                    meta.len()
                )));
            }
            let target = self.0.read_link(here.as_str()).map_err(fs_error)?;
            let target = target.to_str().map_err(|_| {
                FsError::Bad(format!("{here}: a symlink whose target is not UTF-8"))
            })?;
            if target.starts_with('/') {
                done.clear();
            }
            pending.extend(components(target).rev().map(str::to_string));
        }
        Ok(format!("/{}", done.join("/")))
    }
}

fn fs_error(e: Ext4Error) -> FsError {
    match e {
        Ext4Error::NotFound => FsError::NotFound,
        e => FsError::bad(e),
    }
}

impl FileSystem for Ext {
    fn kind(&self) -> &'static str {
        "ext4"
    }

    fn read(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
        let path = self.resolve(path)?;
        let size = self.0.metadata(path.as_str()).map_err(fs_error)?.len();
        if size > limit {
            return Err(FsError::TooLarge { size, limit });
        }
        self.0.read(path.as_str()).map_err(fs_error)
    }

    fn list(&mut self, path: &str, limit: usize) -> Result<Vec<String>, FsError> {
        let mut names = Vec::new();
        let path = self.resolve(path)?;
        for entry in self.0.read_dir(path.as_str()).map_err(fs_error)? {
            let entry = entry.map_err(fs_error)?;
            let name = entry.file_name();
            let Ok(name) = name.as_str() else { continue };
            if name == "." || name == ".." {
                continue;
            }
            if names.len() == limit {
                return Err(FsError::Bad(format!("more than {limit} directory entries")));
            }
            names.push(name.to_string());
        }
        Ok(names)
    }
}
