//! One virtio-blk request: a 16-byte header the driver wrote (type, reserved, sector), the
//! data, and a status byte the device writes last. The header and the data to write are
//! the chain's readable bytes; the data to read and the status its writable ones, however
//! the driver split them into descriptors (an indirect table included). Data moves in one
//! `preadv`/`pwritev` on guest memory ([`crate::devices::virtio::iov`]).

use super::{BlockState, ID_BYTES, SECTOR_SIZE};
use crate::devices::virtio::DeviceError;
use crate::devices::virtio::iov::{Segments, split_chain, transfer};
use std::fs::File;
use virtio_queue::DescriptorChain;
use vm_memory::GuestMemoryMmap;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;

fn malformed(what: impl std::fmt::Display) -> DeviceError {
    DeviceError(format!("malformed request: {what}"))
}

/// Serves the request in `chain`; returns the bytes written into the chain's writable
/// part (the used length). A chain that cannot be a request is an error (the device
/// then needs a reset); a request the disk cannot serve gets an error status.
pub fn serve(
    file: &File,
    disk: &BlockState,
    chain: DescriptorChain<&GuestMemoryMmap>,
    mem: &GuestMemoryMmap,
) -> Result<u32, DeviceError> {
    let (mut readable, mut writable) = split_chain(chain, mem)?;
    let header_segs = readable.split_front(16);
    if header_segs.len() < 16 {
        return Err(malformed("the header is shorter than 16 bytes"));
    }
    let mut header = [0u8; 16];
    header_segs.read_into(mem, &mut header)?;
    let kind = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let sector = u64::from_le_bytes(header[8..16].try_into().unwrap_or([0; 8]));
    // The status is the chain's last writable byte; the data (for reads) comes before it.
    let status_seg = writable.split_back(1);
    if status_seg.is_empty() {
        return Err(malformed("no writable byte for the status"));
    }
    let (status, data_written) = match kind {
        T_IN => read(file, disk, sector, &writable, mem)?,
        T_OUT => (write(file, disk, sector, &readable, mem)?, 0),
        T_FLUSH => {
            let ok = disk.read_only || file.sync_data().is_ok();
            (if ok { S_OK } else { S_IOERR }, 0)
        }
        T_GET_ID => (S_OK, writable.write_from(mem, &disk.id[..ID_BYTES])?),
        _ => (S_UNSUPP, 0),
    };
    status_seg.write_from(mem, &[status])?;
    Ok((data_written + 1) as u32)
}

/// The byte offset of `len` bytes at `sector`, if they lie on the disk.
fn in_range(disk: &BlockState, sector: u64, len: usize) -> Option<u64> {
    let start = sector.checked_mul(SECTOR_SIZE)?;
    let end = start.checked_add(len as u64)?;
    (end <= disk.capacity * SECTOR_SIZE).then_some(start)
}

/// Reads into the writable data segments; returns the status and the bytes read.
fn read(
    file: &File,
    disk: &BlockState,
    sector: u64,
    data: &Segments,
    mem: &GuestMemoryMmap,
) -> Result<(u8, usize), DeviceError> {
    let len = data.len();
    let Some(offset) = in_range(disk, sector, len) else {
        return Ok((S_IOERR, 0));
    };
    Ok(match transfer(file, mem, data, offset, true)? {
        Ok(()) => (S_OK, len),
        Err(_) => (S_IOERR, 0),
    })
}

/// Writes the readable data segments (what follows the header) to the disk.
fn write(
    file: &File,
    disk: &BlockState,
    sector: u64,
    data: &Segments,
    mem: &GuestMemoryMmap,
) -> Result<u8, DeviceError> {
    if disk.read_only {
        return Ok(S_IOERR);
    }
    let Some(offset) = in_range(disk, sector, data.len()) else {
        return Ok(S_IOERR);
    };
    Ok(match transfer(file, mem, data, offset, false)? {
        Ok(()) => S_OK,
        Err(_) => S_IOERR,
    })
}
