//! Partition tables: GPT (checked through its CRCs, 512- or 4096-byte sectors), MBR with
//! extended partitions, or none (a filesystem on the whole disk). Hybrid images (an
//! ISO9660 with an MBR, as isohybrid and Debian's mini.iso write) list both the whole disk
//! and the partitions.

mod gpt;
mod mbr;

use crate::disk::Region;
use crate::error::{Error, Location, Result};
use std::path::Path;

/// A byte range of the image that may hold a filesystem.
#[derive(Clone, Debug)]
pub struct Partition {
    /// 0 for the whole disk, else the table's number (1-based, as Linux names them).
    pub number: u32,
    /// "gpt", "mbr" or "none".
    pub scheme: &'static str,
    /// The GPT partition name, if any.
    pub name: String,
    pub start: u64,
    pub size: u64,
    pub region: Region,
}

impl Partition {
    /// How messages and listings name it: "partition 2 (gpt)" or "whole disk".
    pub fn label(&self) -> String {
        if self.number == 0 {
            "whole disk".to_string()
        } else {
            format!("partition {} ({})", self.number, self.scheme)
        }
    }
}

/// Where a table says a partition is, in bytes, before it is checked against the image.
pub(crate) struct Extent {
    pub number: u32,
    pub name: String,
    pub start: u64,
    pub size: u64,
}

/// The whole disk first, then the table's partitions in table order.
pub fn partitions(image: &Path, disk: &Region) -> Result<Vec<Partition>> {
    let at = Location {
        image: image.to_path_buf(),
        partition: None,
        path: None,
    };
    let mut out = vec![Partition {
        number: 0,
        scheme: "none",
        name: String::new(),
        start: 0,
        size: disk.len(),
        region: disk.clone(),
    }];
    // A FAT boot sector also ends in 55 AA: without a GPT, a FAT filesystem on the whole
    // disk means there is no MBR either.
    let mut boot = [0u8; 512];
    let fat = disk.read_exact_at(0, &mut boot).is_ok() && crate::fs::looks_like_fat(&boot);
    let (scheme, extents) = match gpt::read(disk, &at)? {
        Some(extents) => ("gpt", extents),
        None if fat => return Ok(out),
        None => ("mbr", mbr::read(disk, &at)?.unwrap_or_default()),
    };
    for e in extents {
        let Some(region) = disk.sub(e.start, e.size) else {
            return Err(Error::Table {
                at,
                scheme: if scheme == "gpt" { "GPT" } else { "MBR" },
                reason: format!(
                    "partition {} ({} bytes at offset {}) ends past the image's end ({} bytes)",
                    e.number,
                    e.size,
                    e.start,
                    disk.len()
                ),
            });
        };
        out.push(Partition {
            number: e.number,
            scheme,
            name: e.name,
            start: e.start,
            size: e.size,
            region,
        });
    }
    Ok(out)
}
