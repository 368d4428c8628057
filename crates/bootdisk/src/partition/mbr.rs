//! MBR with extended partitions through `mbrman`. A sector ending in 55 AA is also a FAT
//! boot sector or an isohybrid boot record, so the entries are checked to be plausible
//! before they are believed.

use super::Extent;
use crate::disk::Region;
use crate::error::{Error, Location, Result};

const SECTOR: u64 = 512;
/// More logical partitions than this is a looping or hostile EBR chain.
const MAX_LOGICAL: usize = 128;

/// The partitions of an MBR disk (primary 1-4, logical from 5), or None without an MBR.
pub(crate) fn read(disk: &Region, at: &Location) -> Result<Option<Vec<Extent>>> {
    let mut sector = [0u8; 512];
    if disk.read_exact_at(0, &mut sector).is_err() || sector[510..] != [0x55, 0xAA] {
        return Ok(None);
    }
    if !plausible(&sector, disk.len()) {
        return Ok(None);
    }
    let bad = |reason: String| Error::Table {
        at: at.clone(),
        scheme: "MBR",
        reason,
    };
    check_ebr_chain(disk, &sector).map_err(bad)?;
    if let Some(extents) = all_at_zero(&sector) {
        return Ok(Some(extents));
    }
    let mut reader = disk.clone();
    let mbr = crate::guard::catch(|| mbrman::MBR::read_from(&mut reader, SECTOR as u32))
        .map_err(|why| bad(format!("the MBR reader failed: {why}")))?
        .map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    for (number, p) in mbr.iter() {
        // The extended partition itself holds the EBR chain, not a filesystem.
        if !p.is_used() || matches!(p.sys, 0x05 | 0x0f | 0x85) {
            continue;
        }
        out.push(Extent {
            number: number as u32,
            name: String::new(),
            start: u64::from(p.starting_lba) * SECTOR,
            size: u64::from(p.sectors) * SECTOR,
        });
    }
    Ok(Some(out))
}

/// mbrman follows the EBR chain as long as each link points further on, which on a
/// hostile image of N sectors can be N links; walk it first and refuse more than
/// MAX_LOGICAL links.
fn check_ebr_chain(disk: &Region, mbr: &[u8; 512]) -> std::result::Result<(), String> {
    let entry = |s: &[u8], i: usize| {
        let e = &s[446 + 16 * i..462 + 16 * i];
        (e[4], u32::from_le_bytes([e[8], e[9], e[10], e[11]]))
    };
    let Some(base) = (0..4)
        .map(|i| entry(mbr, i))
        .find(|(sys, _)| matches!(sys, 0x05 | 0x0f | 0x85))
        .map(|(_, lba)| u64::from(lba))
    else {
        return Ok(());
    };
    let mut next = 0u64;
    for _ in 0..=MAX_LOGICAL {
        let mut ebr = [0u8; 512];
        if disk
            .read_exact_at((base + next) * SECTOR, &mut ebr)
            .is_err()
            || ebr[510..] != [0x55, 0xAA]
        {
            return Ok(()); // mbrman reports a broken link itself
        }
        let (_, link) = entry(&ebr, 1);
        if link == 0 {
            return Ok(());
        }
        next = u64::from(link);
    }
    Err(format!(
        "the extended partition's EBR chain has more than {MAX_LOGICAL} links (a loop?)"
    ))
}

/// An isohybrid MBR whose only partitions start at LBA 0 (the ISO itself): mbrman 0.6.1
/// panics guessing the alignment of such a table (`find_alignment` unwraps an empty range,
/// found by fuzz/disk_table), so these few entries are taken as they are.
fn all_at_zero(mbr: &[u8; 512]) -> Option<Vec<Extent>> {
    let mut out = Vec::new();
    for (i, e) in mbr[446..510].chunks_exact(16).enumerate() {
        let start = u32::from_le_bytes([e[8], e[9], e[10], e[11]]);
        let count = u32::from_le_bytes([e[12], e[13], e[14], e[15]]);
        if e[4] == 0 || count == 0 {
            continue;
        }
        if start != 0 || matches!(e[4], 0x05 | 0x0f | 0x85) {
            return None;
        }
        out.push(Extent {
            number: i as u32 + 1,
            name: String::new(),
            start: 0,
            size: u64::from(count) * SECTOR,
        });
    }
    (!out.is_empty()).then_some(out)
}

/// Every used primary entry has a boot flag of 0 or 0x80, a non-zero size, and starts
/// inside the disk; and at least one is used.
fn plausible(sector: &[u8; 512], disk_len: u64) -> bool {
    let mut used = 0;
    for e in sector[446..510].chunks_exact(16) {
        let sys = e[4];
        let start = u32::from_le_bytes([e[8], e[9], e[10], e[11]]);
        let count = u32::from_le_bytes([e[12], e[13], e[14], e[15]]);
        if sys == 0 && count == 0 {
            continue;
        }
        if !matches!(e[0], 0 | 0x80) || count == 0 || u64::from(start) * SECTOR >= disk_len {
            return false;
        }
        used += 1;
    }
    used > 0
}
