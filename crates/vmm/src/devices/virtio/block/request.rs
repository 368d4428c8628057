//! One virtio-blk request: a 16-byte header the driver wrote (type, reserved, sector), the
//! data, and a status byte the device writes last. The header and the data to write are
//! read through the chain's readable descriptors; the data to read and the status go to
//! its writable ones — however the driver split them into descriptors.

use super::{BlockState, ID_BYTES, SECTOR_SIZE};
use crate::devices::virtio::DeviceError;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use virtio_queue::DescriptorChain;
use vm_memory::GuestMemoryMmap;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;
/// Data moves between the file and guest memory through a buffer this large.
const CHUNK: usize = 128 << 10;

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
    let mut reader = chain.clone().reader(mem).map_err(malformed)?;
    let mut writer = chain.writer(mem).map_err(malformed)?;
    let mut header = [0u8; 16];
    reader
        .read_exact(&mut header)
        .map_err(|_| malformed("the header is shorter than 16 bytes"))?;
    let kind = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let sector = u64::from_le_bytes(header[8..16].try_into().unwrap_or([0; 8]));
    let writable = writer.available_bytes();
    if writable == 0 {
        return Err(malformed("no writable byte for the status"));
    }
    // The status is the chain's last writable byte; the data (for reads) comes before it.
    let mut status_writer = writer.split_at(writable - 1).map_err(malformed)?;
    let mut data_writer = writer;
    let status = match kind {
        T_IN => read(file, disk, sector, &mut data_writer)?,
        T_OUT => write(file, disk, sector, &mut reader),
        T_FLUSH => {
            if disk.read_only || file.sync_data().is_ok() {
                S_OK
            } else {
                S_IOERR
            }
        }
        T_GET_ID => {
            let n = data_writer.available_bytes().min(ID_BYTES);
            data_writer
                .write_all(&disk.id[..n])
                .map_err(|e| malformed(format!("writing the device ID: {e}")))?;
            S_OK
        }
        _ => S_UNSUPP,
    };
    status_writer
        .write_all(&[status])
        .map_err(|e| malformed(format!("writing the status: {e}")))?;
    Ok((data_writer.bytes_written() + status_writer.bytes_written()) as u32)
}

/// Whether `len` bytes at `sector` lie on the disk.
fn in_range(disk: &BlockState, sector: u64, len: usize) -> Option<u64> {
    let start = sector.checked_mul(SECTOR_SIZE)?;
    let end = start.checked_add(len as u64)?;
    (end <= disk.capacity * SECTOR_SIZE).then_some(start)
}

fn read(
    file: &File,
    disk: &BlockState,
    sector: u64,
    out: &mut virtio_queue::Writer<'_>,
) -> Result<u8, DeviceError> {
    let len = out.available_bytes();
    let Some(mut offset) = in_range(disk, sector, len) else {
        return Ok(S_IOERR);
    };
    let mut buf = vec![0u8; len.min(CHUNK)];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        if file.read_exact_at(&mut buf[..n], offset).is_err() {
            return Ok(S_IOERR);
        }
        out.write_all(&buf[..n])
            .map_err(|e| malformed(format!("writing read data to guest memory: {e}")))?;
        offset += n as u64;
        left -= n;
    }
    Ok(S_OK)
}

fn write(file: &File, disk: &BlockState, sector: u64, input: &mut virtio_queue::Reader<'_>) -> u8 {
    let len = input.available_bytes();
    if disk.read_only {
        return S_IOERR;
    }
    let Some(mut offset) = in_range(disk, sector, len) else {
        return S_IOERR;
    };
    let mut buf = vec![0u8; len.min(CHUNK)];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        if input.read_exact(&mut buf[..n]).is_err() || file.write_all_at(&buf[..n], offset).is_err()
        {
            return S_IOERR;
        }
        offset += n as u64;
        left -= n;
    }
    S_OK
}
