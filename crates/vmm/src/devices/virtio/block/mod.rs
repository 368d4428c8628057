//! virtio-blk (virtio 1.2, section 5.2) on a raw image file: reads, writes, flush
//! (fdatasync) and the device ID; read-only disks refuse writes with an I/O error and are
//! opened read-only. The file is locked (flock) while the VM runs: exclusively for a
//! read-write disk, shared for a read-only one, so a second domboot cannot write a disk
//! another one uses.

mod request;

use super::{
    DeviceError, F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1, TYPE_BLOCK, VirtioDevice,
    read_config_bytes,
};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

pub const SECTOR_SIZE: u64 = 512;
/// Bytes of the device ID (VIRTIO_BLK_ID_BYTES).
pub const ID_BYTES: usize = 20;
const QUEUE_SIZE: u16 = 256;
/// VIRTIO_BLK_F_SEG_MAX: the driver may use up to `seg_max` data segments per request
/// (without it Linux sends one segment per request).
const F_SEG_MAX: u64 = 1 << 2;
const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;

/// What one disk is (the part of the device's state a snapshot needs besides its queue).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockState {
    pub path: PathBuf,
    pub read_only: bool,
    /// In 512-byte sectors.
    pub capacity: u64,
    /// The ID the guest reads (/sys/block/vdX/serial).
    pub id: [u8; ID_BYTES],
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("disk {path}: {error}")]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "disk {path} is in use by another process (it holds a lock on it); a disk can have \
         one writer, or any number of readers (FILE,ro)"
    )]
    Locked { path: PathBuf },
    #[error("disk {path}: {size} bytes is not a whole number of 512-byte sectors")]
    NotSectors { path: PathBuf, size: u64 },
    #[error("disk {path} is empty")]
    Empty { path: PathBuf },
}

pub struct Block {
    file: File,
    state: BlockState,
    guest_name: String,
    queue_sizes: [u16; 1],
}

impl Block {
    /// Opens and locks `path`; `guest_name` ("vda") is for logs.
    pub fn open(path: &Path, read_only: bool, guest_name: &str) -> Result<Block, BlockError> {
        let open_err = |error| BlockError::Open {
            path: path.to_owned(),
            error,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(open_err)?;
        let op = if read_only {
            libc::LOCK_SH
        } else {
            libc::LOCK_EX
        };
        // SAFETY: flock on a file descriptor we own; it only takes an advisory lock, held
        // until the descriptor is closed.
        if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } != 0 {
            let error = std::io::Error::last_os_error();
            return Err(if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                BlockError::Locked {
                    path: path.to_owned(),
                }
            } else {
                open_err(error)
            });
        }
        // Where the end is: a block device's metadata (xl's `phy:`, `--disk /dev/...`)
        // says length 0. The file position is not used after this (requests are
        // positional: preadv/pwritev).
        let size = (&file).seek(SeekFrom::End(0)).map_err(open_err)?;
        if size == 0 {
            return Err(BlockError::Empty {
                path: path.to_owned(),
            });
        }
        if size % SECTOR_SIZE != 0 {
            return Err(BlockError::NotSectors {
                path: path.to_owned(),
                size,
            });
        }
        Ok(Block {
            file,
            state: BlockState {
                path: path.to_owned(),
                read_only,
                capacity: size / SECTOR_SIZE,
                id: device_id(path),
            },
            guest_name: guest_name.to_owned(),
            queue_sizes: [QUEUE_SIZE],
        })
    }

    pub fn state(&self) -> &BlockState {
        &self.state
    }

    fn config_space(&self) -> [u8; 16] {
        let mut cfg = [0u8; 16];
        cfg[..8].copy_from_slice(&self.state.capacity.to_le_bytes());
        // size_max (8..12) stays 0: not offered. seg_max: two descriptors of each chain
        // are the header and the status.
        cfg[12..16].copy_from_slice(&u32::from(QUEUE_SIZE - 2).to_le_bytes());
        cfg
    }
}

/// The file's name, cut to the 20 bytes virtio-blk has for an ID.
fn device_id(path: &Path) -> [u8; ID_BYTES] {
    let mut id = [0u8; ID_BYTES];
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = name.len().min(ID_BYTES);
    id[..n].copy_from_slice(&name.as_bytes()[..n]);
    id
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        TYPE_BLOCK
    }

    fn state(&self) -> super::state::DeviceState {
        super::state::DeviceState::Block(self.state.clone())
    }
    fn name(&self) -> String {
        format!(
            "virtio-blk {} ({})",
            self.guest_name,
            self.state.path.display()
        )
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn features(&self) -> u64 {
        let ro = if self.state.read_only { F_RO } else { 0 };
        F_VERSION_1 | F_SEG_MAX | F_FLUSH | F_EVENT_IDX | F_INDIRECT_DESC | ro
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config_space(), offset, data);
    }

    fn process_queue(
        &mut self,
        _index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceError> {
        let (file, state) = (&self.file, &self.state);
        super::drain_queue(queue, mem, |chain| request::serve(file, state, chain, mem))
    }
}

#[cfg(test)]
mod tests;
