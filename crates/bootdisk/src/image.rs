//! An opened disk image: its partitions, their filesystems (opened on first use), the
//! boot entries found on them, and reading an entry's files.

use crate::disk::Region;
use crate::entries::BootEntry;
use crate::error::{Error, FsError, Location, Result};
use crate::fs::{self, FileSystem};
use crate::partition::{self, Partition};
use std::path::{Path, PathBuf};

/// Reads one filesystem operation may make beyond the file it returns: directories,
/// allocation tables, extent trees.
const READ_SLACK: u64 = 64 << 20;

/// How much one read may bring into memory.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A configuration file (grub.cfg, an entry, an included file).
    pub config: u64,
    /// A kernel or an initrd.
    pub file: u64,
    /// Names listed from one directory.
    pub dir_entries: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            config: 1 << 20,
            file: 1 << 30,
            dir_entries: 4096,
        }
    }
}

/// Which entry to boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// The one the boot loader would boot without a key pressed.
    Default,
    /// By its index in the listing (from 0), its title or its id.
    Named(String),
}

/// A partition and its filesystem: Some(Ok) opened, Some(Err) recognised but unreadable,
/// None none recognised; the outer Option is "not probed yet".
struct Slot {
    partition: Partition,
    fs: Option<std::result::Result<Option<Box<dyn FileSystem>>, FsError>>,
}

pub struct DiskImage {
    path: PathBuf,
    slots: Vec<Slot>,
    pub limits: Limits,
}

impl DiskImage {
    /// Opens the image read-only and reads its partition table.
    pub fn open(path: &Path) -> Result<DiskImage> {
        let at = Location {
            image: path.to_path_buf(),
            partition: None,
            path: None,
        };
        let disk = Region::open(path).map_err(|source| Error::Io { at, source })?;
        DiskImage::from_region(path, disk)
    }

    /// An image already in memory; `name` stands for it in messages.
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<DiskImage> {
        DiskImage::from_region(name, Region::from_bytes(bytes))
    }

    fn from_region(path: &Path, disk: Region) -> Result<DiskImage> {
        let slots = partition::partitions(path, &disk)?
            .into_iter()
            .map(|partition| Slot {
                partition,
                fs: None,
            })
            .collect();
        Ok(DiskImage {
            path: path.to_path_buf(),
            slots,
            limits: Limits::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn partitions(&self) -> impl Iterator<Item = &Partition> {
        self.slots.iter().map(|s| &s.partition)
    }

    pub(crate) fn location(&self, number: u32, path: Option<&str>) -> Location {
        Location {
            image: self.path.clone(),
            partition: self.slot(number).map(|s| s.partition.label()),
            path: path.map(str::to_string),
        }
    }

    fn slot(&self, number: u32) -> Option<&Slot> {
        self.slots.iter().find(|s| s.partition.number == number)
    }

    /// The filesystem on partition `number` (0: whole disk): Ok(None) when it holds none
    /// we recognise.
    /// Gives the next filesystem operation a read budget: what it may legitimately read
    /// (`wanted`) plus room for metadata.
    fn budget(&self, wanted: u64) {
        if let Some(s) = self.slots.first() {
            s.partition
                .region
                .set_budget(wanted.saturating_add(READ_SLACK));
        }
    }

    pub fn filesystem(&mut self, number: u32) -> Result<Option<&mut Box<dyn FileSystem>>> {
        let at = self.location(number, None);
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.partition.number == number)
            .ok_or_else(|| Error::Filesystem {
                at: at.clone(),
                reason: format!("there is no partition {number}"),
            })?;
        if slot.fs.is_none() {
            slot.partition.region.set_budget(READ_SLACK);
        }
        let fs = slot
            .fs
            .get_or_insert_with(|| fs::open(&slot.partition.region));
        match fs {
            Ok(fs) => Ok(fs.as_mut()),
            Err(e) => Err(fs_error(at, e.clone(), "the filesystem")),
        }
    }

    /// Reads `path` from partition `number`, at most `limit` bytes (`what` names it in the
    /// error when it is larger).
    pub fn read(
        &mut self,
        number: u32,
        path: &str,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<u8>> {
        let at = self.location(number, Some(path));
        self.filesystem(number)?;
        self.budget(limit);
        let Some(fs) = self.filesystem(number)? else {
            return Err(Error::Filesystem {
                at,
                reason: "no ext2/3/4, FAT or ISO9660 filesystem here".into(),
            });
        };
        fs.read(path, limit).map_err(|e| fs_error(at, e, what))
    }

    /// Like `read`, but a missing file (or a partition without a filesystem) is Ok(None).
    pub fn read_if_present(
        &mut self,
        number: u32,
        path: &str,
        limit: u64,
        what: &'static str,
    ) -> Result<Option<Vec<u8>>> {
        let at = self.location(number, Some(path));
        self.filesystem(number)?;
        self.budget(limit);
        let Some(fs) = self.filesystem(number)? else {
            return Ok(None);
        };
        match fs.read(path, limit) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(FsError::NotFound) => Ok(None),
            Err(e) => Err(fs_error(at, e, what)),
        }
    }

    /// The names in a directory, or an empty list when it does not exist.
    pub fn list(&mut self, number: u32, path: &str) -> Result<Vec<String>> {
        let at = self.location(number, Some(path));
        let limit = self.limits.dir_entries;
        self.filesystem(number)?;
        self.budget(0);
        let Some(fs) = self.filesystem(number)? else {
            return Ok(Vec::new());
        };
        match fs.list(path, limit) {
            Ok(names) => Ok(names),
            Err(FsError::NotFound) => Ok(Vec::new()),
            Err(e) => Err(fs_error(at, e, "a directory")),
        }
    }

    /// Whether `path` exists as a file on partition `number`.
    pub fn exists(&mut self, number: u32, path: &str) -> bool {
        let _ = self.filesystem(number);
        self.budget(0);
        match self.filesystem(number) {
            Ok(Some(fs)) => matches!(fs.read(path, 0), Ok(_) | Err(FsError::TooLarge { .. })),
            _ => false,
        }
    }

    /// The boot entries, in the boot loader's order, and the default's index.
    pub fn entries(&mut self) -> Result<(Vec<BootEntry>, Option<usize>)> {
        crate::scan::entries(self)
    }

    /// The entry `selector` picks.
    pub fn select(&mut self, selector: &Selector) -> Result<BootEntry> {
        let (entries, default) = self.entries()?;
        let found = match selector {
            Selector::Default => default,
            Selector::Named(name) => find(&entries, name),
        };
        found
            .map(|i| entries[i].clone())
            .ok_or_else(|| Error::NoSuchEntry {
                image: self.path.clone(),
                wanted: match selector {
                    Selector::Default => "marked default".into(),
                    Selector::Named(n) => format!("{n:?}"),
                },
                count: entries.len(),
                titles: entries
                    .iter()
                    .map(|e| format!("{:?}", e.title))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The kernel and the initrds of `entry`, read into memory.
    pub fn load(&mut self, entry: &BootEntry) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
        let number = entry.partition.unwrap_or(0);
        let limit = self.limits.file;
        let kernel = self.read(number, &entry.kernel, limit, "a kernel")?;
        let initrds = entry
            .initrds
            .iter()
            .map(|p| self.read(number, p, limit, "an initrd"))
            .collect::<Result<_>>()?;
        Ok((kernel, initrds))
    }
}

/// The entry named by an index, a title, an id, or a title without regard to case.
pub fn find(entries: &[BootEntry], name: &str) -> Option<usize> {
    if let Ok(i) = name.parse::<usize>() {
        return (i < entries.len()).then_some(i);
    }
    entries
        .iter()
        .position(|e| e.title == name)
        .or_else(|| entries.iter().position(|e| e.id.as_deref() == Some(name)))
        .or_else(|| {
            entries
                .iter()
                .position(|e| e.title.eq_ignore_ascii_case(name))
        })
}

fn fs_error(at: Location, e: FsError, what: &'static str) -> Error {
    match e {
        FsError::NotFound => Error::Filesystem {
            at,
            reason: "no such file".into(),
        },
        FsError::Bad(reason) => Error::Filesystem { at, reason },
        FsError::TooLarge { size, limit } => Error::TooLarge {
            at,
            what,
            size,
            limit,
        },
    }
}
