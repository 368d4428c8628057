//! ISO9660 through `hadris-iso`: Rock Ridge names and symlinks when present, else Joliet
//! names, else the plain 8.3 names (matched without regard to case and ";1"). Symlinks
//! are resolved here, inside the image, at most MAX_SYMLINK_HOPS per lookup.

use super::{FileSystem, MAX_SYMLINK_HOPS, components};
use crate::disk::Region;
use crate::error::FsError;
use hadris_iso::read::{DirEntry, IsoDir, IsoImage};

pub struct Iso(IsoImage<Region>);

pub fn open(region: &Region) -> Result<Box<dyn FileSystem>, FsError> {
    let image =
        IsoImage::open(region.clone()).map_err(|e| FsError::Bad(format!("ISO9660: {e}")))?;
    Ok(Box::new(Iso(image)))
}

/// What a path names: a directory (its ancestors kept for "..") or a file's entry.
enum Found<'a> {
    Dir(IsoDir<'a, Region>),
    File(Box<DirEntry>),
}

impl Iso {
    fn lookup(&self, path: &str) -> Result<Found<'_>, FsError> {
        let image = &self.0;
        let mut stack = vec![open_dir(image, image.root_dir().dir_ref())?];
        let mut pending: Vec<String> = components(path).rev().map(str::to_string).collect();
        let mut hops = 0;
        while let Some(name) = pending.pop() {
            if name == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let dir = stack.last().ok_or(FsError::NotFound)?;
            let entry = dir
                .find(&name)
                .map_err(FsError::bad)?
                .ok_or(FsError::NotFound)?;
            if let Some(target) = entry.rrip.as_ref().and_then(|r| r.symlink_target.clone()) {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(FsError::Bad(format!(
                        "more than {MAX_SYMLINK_HOPS} symlinks on the way (a loop?)"
                    )));
                }
                if target.starts_with('/') {
                    stack.truncate(1);
                }
                pending.extend(components(&target).rev().map(str::to_string));
                continue;
            }
            if entry.is_directory() {
                let dir_ref = entry.as_dir_ref(image).map_err(FsError::bad)?;
                stack.push(open_dir(image, dir_ref)?);
            } else if pending.is_empty() {
                return Ok(Found::File(Box::new(entry)));
            } else {
                return Err(FsError::Bad(format!("{name} is not a directory")));
            }
        }
        stack.pop().map(Found::Dir).ok_or(FsError::NotFound)
    }
}

/// hadris-iso reads a whole directory into memory, bounded only by the image's size;
/// real directories are a few KiB, so more than this is refused first.
const MAX_DIR_BYTES: usize = 4 << 20;

fn open_dir(
    image: &IsoImage<Region>,
    dir_ref: hadris_iso::directory::DirectoryRef,
) -> Result<IsoDir<'_, Region>, FsError> {
    if dir_ref.size > MAX_DIR_BYTES {
        return Err(FsError::Bad(format!(
            "a directory of {} bytes (at most {MAX_DIR_BYTES} accepted)",
            dir_ref.size
        )));
    }
    Ok(image.open_dir(dir_ref))
}

impl FileSystem for Iso {
    fn kind(&self) -> &'static str {
        "iso9660"
    }

    fn read(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, FsError> {
        let Found::File(entry) = self.lookup(path)? else {
            return Err(FsError::Bad("is a directory".into()));
        };
        let size = entry.total_size();
        if size > limit {
            return Err(FsError::TooLarge { size, limit });
        }
        self.0.read_file(&entry).map_err(FsError::bad)
    }

    fn list(&mut self, path: &str, limit: usize) -> Result<Vec<String>, FsError> {
        let Found::Dir(dir) = self.lookup(path)? else {
            return Err(FsError::Bad("is not a directory".into()));
        };
        let entries = dir.read_entries().map_err(FsError::bad)?;
        if entries.len() > limit {
            return Err(FsError::Bad(format!("more than {limit} directory entries")));
        }
        Ok(entries
            .iter()
            .map(display_name)
            .filter(|n| !n.is_empty() && n != "." && n != "..")
            .collect())
    }
}

/// The name a user sees: Rock Ridge's, else Joliet's (UTF-16BE), else the 8.3 one without
/// its ";1" version and trailing dot.
fn display_name(entry: &DirEntry) -> String {
    if let Some(name) = entry.rrip.as_ref().and_then(|r| r.alternate_name.clone()) {
        return name;
    }
    let raw = entry.name();
    if raw.len() == 1 && raw[0] <= 1 {
        return String::new(); // "." and ".." records
    }
    let mut name = String::from_utf8_lossy(raw).into_owned();
    if raw.len() % 2 == 0 && raw.iter().step_by(2).all(|&b| b == 0) {
        let units: Vec<u16> = raw
            .chunks_exact(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .collect();
        name = String::from_utf16_lossy(&units);
    }
    if let Some((base, version)) = name.rsplit_once(';') {
        if version.bytes().all(|b| b.is_ascii_digit()) {
            name = base.to_string();
        }
    }
    name.trim_end_matches('.').to_string()
}
