//! Guest-physical placement: named regions, an allocator that refuses overlaps, and errors
//! that explain a conflict in the user's terms ("initrd (87 MiB) does not fit below
//! initrd_addr_max 0x37ffffff with 64 MiB of RAM").

use crate::error::BuildError;
use crate::memory::{MIB, MemoryMap};

/// Loaders' firmware uses the top of RAM below 4 GiB (SeaBIOS puts tables there), so the
/// allocator leaves this much free at the end of low RAM.
pub const FIRMWARE_MARGIN: u64 = 4 * MIB;

/// A placed region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub name: String,
    pub start: u64,
    pub size: u64,
}

impl Region {
    pub fn end(&self) -> u64 {
        self.start + self.size
    }
}

/// Which end of the allowed range to allocate from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefer {
    Low,
    High,
}

/// Where an allocation may go: `[min, max_end)`, and how to describe the limit in an error.
#[derive(Clone, Debug)]
pub struct Range<'a> {
    pub min: u64,
    pub max_end: u64,
    pub describe: &'a str,
}

pub struct Layout {
    memory: MemoryMap,
    regions: Vec<Region>,
}

pub fn mib(bytes: u64) -> String {
    if bytes >= MIB {
        format!("{} MiB", bytes.div_ceil(MIB))
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

fn align_up(v: u64, align: u64) -> Option<u64> {
    v.checked_add(align - 1).map(|x| x & !(align - 1))
}

impl Layout {
    pub fn new(memory: MemoryMap) -> Layout {
        Layout {
            memory,
            regions: Vec::new(),
        }
    }

    pub fn memory(&self) -> &MemoryMap {
        &self.memory
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Places `name` at exactly `start`, or explains why not.
    pub fn place_fixed(&mut self, name: &str, start: u64, size: u64) -> Result<(), BuildError> {
        let end = start.checked_add(size).ok_or_else(|| {
            BuildError::Placement(format!("{name} at {start:#x} + {size:#x} overflows"))
        })?;
        if !self.memory.contains(start, end) {
            return Err(BuildError::Placement(format!(
                "{name} ({}) at {start:#x}-{end:#x} is not inside RAM with {} of RAM (RAM is {})",
                mib(size),
                mib(self.memory.size),
                self.describe_ram()
            )));
        }
        if let Some(other) = self.overlapping(start, end) {
            return Err(BuildError::Placement(format!(
                "{name} at {start:#x}-{end:#x} overlaps {} at {:#x}-{:#x}",
                other.name,
                other.start,
                other.end()
            )));
        }
        self.insert(name, start, size);
        Ok(())
    }

    /// Allocates `size` bytes aligned to `align` (a power of two) inside `range`.
    pub fn allocate(
        &mut self,
        name: &str,
        size: u64,
        align: u64,
        range: &Range<'_>,
        prefer: Prefer,
    ) -> Result<u64, BuildError> {
        let align = align.max(1);
        debug_assert!(align.is_power_of_two());
        let mut best: Option<u64> = None;
        for (lo, hi) in self.free_ranges(range) {
            let candidate = match prefer {
                Prefer::Low => align_up(lo, align).filter(|s| s.saturating_add(size) <= hi),
                Prefer::High => hi
                    .checked_sub(size)
                    .map(|s| s & !(align - 1))
                    .filter(|&s| s >= lo),
            };
            if let Some(c) = candidate {
                best = Some(match (best, prefer) {
                    (None, _) => c,
                    (Some(b), Prefer::Low) => b.min(c),
                    (Some(b), Prefer::High) => b.max(c),
                });
            }
        }
        match best {
            Some(start) => {
                self.insert(name, start, size);
                Ok(start)
            }
            None => Err(BuildError::Placement(format!(
                "{name} ({}) does not fit {} with {} of RAM (free there: {})",
                mib(size),
                range.describe,
                mib(self.memory.size),
                self.describe_free(range)
            ))),
        }
    }

    /// Free `[lo, hi)` pieces of RAM inside `range`, leaving the firmware margin.
    fn free_ranges(&self, range: &Range<'_>) -> Vec<(u64, u64)> {
        let low_end = self.memory.low_end();
        let mut out = Vec::new();
        for &(s, e) in &self.memory.ram {
            let e = if e == low_end {
                e.saturating_sub(FIRMWARE_MARGIN)
            } else {
                e
            };
            let (mut lo, hi) = (s.max(range.min), e.min(range.max_end));
            if lo >= hi {
                continue;
            }
            let mut taken: Vec<&Region> = self
                .regions
                .iter()
                .filter(|r| r.start < hi && r.end() > lo)
                .collect();
            taken.sort_by_key(|r| r.start);
            for r in taken {
                if r.start > lo {
                    out.push((lo, r.start));
                }
                lo = lo.max(r.end());
            }
            if lo < hi {
                out.push((lo, hi));
            }
        }
        out
    }

    fn overlapping(&self, start: u64, end: u64) -> Option<&Region> {
        self.regions
            .iter()
            .find(|r| r.start < end && r.end() > start)
    }

    fn insert(&mut self, name: &str, start: u64, size: u64) {
        self.regions.push(Region {
            name: name.to_string(),
            start,
            size,
        });
        self.regions.sort_by_key(|r| r.start);
    }

    fn describe_ram(&self) -> String {
        self.memory
            .ram
            .iter()
            .map(|(s, e)| format!("{s:#x}-{e:#x}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn describe_free(&self, range: &Range<'_>) -> String {
        let free = self.free_ranges(range);
        if free.is_empty() {
            return "nothing".into();
        }
        free.iter()
            .map(|(s, e)| format!("{} at {s:#x}", mib(e - s)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::GIB;

    fn any(describe: &str) -> Range<'_> {
        Range {
            min: 0,
            max_end: u64::MAX,
            describe,
        }
    }

    #[test]
    fn allocates_high_and_low_around_fixed_regions() {
        let mut l = Layout::new(MemoryMap::new(128 * MIB).unwrap());
        l.place_fixed("kernel", 16 * MIB, 32 * MIB).unwrap();
        let hi = l
            .allocate("initrd", 10 * MIB, 4096, &any("anywhere"), Prefer::High)
            .unwrap();
        assert_eq!(hi + 10 * MIB, 128 * MIB - FIRMWARE_MARGIN);
        let lo = l
            .allocate("boot", 4096, 4096, &any("anywhere"), Prefer::Low)
            .unwrap();
        assert_eq!(lo, MIB);
        let err = l.place_fixed("x", 20 * MIB, MIB).unwrap_err().to_string();
        assert!(
            err.contains("overlaps kernel at 0x1000000-0x3000000"),
            "{err}"
        );
    }

    #[test]
    fn explains_what_does_not_fit() {
        let mut l = Layout::new(MemoryMap::new(64 * MIB).unwrap());
        let err = l
            .allocate(
                "initrd",
                87 * MIB,
                4096,
                &Range {
                    min: 0,
                    max_end: 0x3800_0000,
                    describe: "below initrd_addr_max 0x37ffffff",
                },
                Prefer::High,
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "initrd (87 MiB) does not fit below initrd_addr_max 0x37ffffff with 64 MiB of RAM"
            ),
            "{err}"
        );
    }

    #[test]
    fn fixed_regions_must_be_ram() {
        let mut l = Layout::new(MemoryMap::new(5 * GIB).unwrap());
        let err = l
            .place_fixed("kernel", 3 * GIB + MIB, MIB)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not inside RAM"), "{err}");
        l.place_fixed("high", 4 * GIB, MIB).unwrap();
    }

    #[test]
    fn alignment_is_honoured() {
        let mut l = Layout::new(MemoryMap::new(256 * MIB).unwrap());
        l.place_fixed("a", MIB, 4096).unwrap();
        let a = l
            .allocate("k", MIB, 2 * MIB, &any("anywhere"), Prefer::Low)
            .unwrap();
        assert_eq!(a, 2 * MIB);
    }
}
