//! GPT through `gptman`, which checks the header and partition-array CRCs and falls back
//! to the backup header. Its reader trusts the header's entry count and sizes (it reserves
//! `number_of_partition_entries` entries and multiplies LBAs unchecked), so the header
//! fields are bounded here first.

use super::Extent;
use crate::disk::Region;
use crate::error::{Error, Location, Result};
use std::io::{Seek, SeekFrom};

/// More than any real table (the spec's minimum array is 128 entries).
const MAX_ENTRIES: u32 = 4096;

/// The partitions of a GPT disk, or None when neither sector size finds a GPT signature.
pub(crate) fn read(disk: &Region, at: &Location) -> Result<Option<Vec<Extent>>> {
    let bad = |reason: String| Error::Table {
        at: at.clone(),
        scheme: "GPT",
        reason,
    };
    let mut found = false;
    for sector in [512u64, 4096] {
        for lba in [1, (disk.len() / sector).saturating_sub(1)] {
            match header_fields(disk, sector, lba) {
                Ok(None) => {}
                Ok(Some(())) => found = true,
                Err(reason) => {
                    return Err(bad(format!(
                        "header at LBA {lba} ({sector}-byte sectors): {reason}"
                    )));
                }
            }
        }
    }
    if !found {
        return Ok(None);
    }
    let mut reader = disk.clone();
    let _ = reader.seek(SeekFrom::Start(0));
    let gpt = crate::guard::catch(|| gptman::GPT::find_from(&mut reader))
        .map_err(|why| bad(format!("the GPT reader failed: {why}")))?
        .map_err(|e| bad(e.to_string()))?;
    let sector = gpt.sector_size;
    let mut out = Vec::new();
    for (number, p) in gpt.iter().filter(|(_, p)| p.is_used()) {
        if p.ending_lba < p.starting_lba {
            return Err(bad(format!(
                "partition {number} ends (LBA {}) before it starts (LBA {})",
                p.ending_lba, p.starting_lba
            )));
        }
        let span = |lba: u64| lba.checked_mul(sector);
        let (Some(start), Some(size)) = (
            span(p.starting_lba),
            span(p.ending_lba - p.starting_lba + 1),
        ) else {
            return Err(bad(format!("partition {number} lies beyond 2^64 bytes")));
        };
        out.push(Extent {
            number,
            name: p.partition_name.as_str().to_string(),
            start,
            size,
        });
    }
    Ok(Some(out))
}

/// Checks the fields of a header with the GPT signature at `lba`; Ok(None) if there is
/// no signature there.
fn header_fields(disk: &Region, sector: u64, lba: u64) -> std::result::Result<Option<()>, String> {
    let mut h = [0u8; 92];
    let Some(offset) = lba.checked_mul(sector) else {
        return Ok(None);
    };
    if lba == 0 || disk.read_exact_at(offset, &mut h).is_err() || &h[..8] != b"EFI PART" {
        return Ok(None);
    }
    let u32_at = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
    let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
    let (array_lba, count, entry_size) = (u64_at(72), u32_at(80), u32_at(84));
    if count > MAX_ENTRIES {
        return Err(format!(
            "{count} partition entries (at most {MAX_ENTRIES} accepted)"
        ));
    }
    if !(128..=4096).contains(&entry_size) || entry_size % 8 != 0 {
        return Err(format!(
            "partition entry size {entry_size} (128..4096, a multiple of 8)"
        ));
    }
    let array_end = array_lba
        .checked_mul(sector)
        .and_then(|s| s.checked_add(u64::from(count) * u64::from(entry_size)));
    if array_end.is_none_or(|end| end > disk.len()) {
        return Err(format!(
            "the partition array at LBA {array_lba} ({count} entries of {entry_size} bytes) ends past the image's end"
        ));
    }
    Ok(Some(()))
}
