//! Build Linux initramfs images.
//!
//! - [`cpio::CpioWriter`]: a streaming writer of "newc" cpio archives, the format the
//!   kernel unpacks into its rootfs.
//! - [`Compression`]: gzip (parallel, pigz-style), zstd (multi-threaded), lz4 (the legacy
//!   frame the kernel requires), or none.
//! - [`Initramfs`]: gathers entries from host directory trees, `gen_init_cpio` file lists,
//!   TOML manifests, a static busybox with its applet links, or from memory, then writes
//!   them sorted by path; [`Initramfs::reproducible`] makes the output depend on nothing
//!   but the entries.
//!
//! The formats of file lists and manifests are described in the crate's README.

pub mod bootable;
mod builder;
pub mod busybox;
pub mod compress;
pub mod cpio;
mod error;
mod sources;

pub use builder::{Contents, Entry, Initramfs, Kind, Owner, Summary};
pub use compress::{CompressOptions, Compression};
pub use cpio::{CpioWriter, Metadata, Special, WriterOptions};
pub use error::{ArchivePath, Error, MAX_FILE_SIZE, MAX_NAME, Result, SizeChange};
