//! Boot from a guest's disk image, as pygrub and kboot do: read the image without mounting
//! it (MBR, GPT; ext2/3/4, FAT, ISO9660), find its boot entries in the order the
//! distribution's boot loader would show them (Boot Loader Spec entries, UKIs, grub.cfg,
//! extlinux/syslinux/isolinux, GRUB legacy menu.lst), and read the chosen entry's kernel
//! and initrds.
//!
//! Everything read is bounded: file sizes (`Limits`), directory sizes, symlink hops,
//! include depth and total, EBR chain length, and the bytes one filesystem operation may
//! read (`disk::Region`'s budget, which ends loops in corrupt metadata). Panics inside the
//! partition and filesystem crates are fenced (`guard`). So a hostile image gives an error
//! naming the image, the partition and the path, never a hang, a panic or an unbounded
//! allocation.

pub mod disk;
pub mod entries;
pub mod error;
pub mod fs;
mod guard;
pub mod image;
pub mod partition;
mod scan;

pub use entries::{BootEntry, EntryKind};
pub use error::{Error, FsError, Location, Result};
pub use image::{DiskImage, Limits, Selector};
