//! The guest-physical memory model of a PC: RAM split around the legacy holes and the MMIO
//! gap below 4 GiB, and the e820 map that describes it.

use crate::error::BuildError;
use crate::plan::{E820Entry, E820Type};

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// End of conventional memory; the EBDA sits just below it.
pub const EBDA_START: u64 = 0x9_FC00;
/// 640 KiB: VGA memory, option ROMs and the BIOS occupy 640 KiB–1 MiB.
pub const LEGACY_HOLE_START: u64 = 0xA_0000;
pub const HIGH_MEMORY_START: u64 = MIB;
/// RAM below 4 GiB stops here when the guest has more: the 1 GiB above is the MMIO gap
/// (PCI, LAPIC, IOAPIC, flash). 3 GiB matches QEMU's pc machine for large guests and Cloud
/// Hypervisor, and lies below Firecracker's gap, so plans fit the loaders people use.
pub const MMIO_GAP_START: u64 = 3 * GIB;
pub const MMIO_GAP_END: u64 = 4 * GIB;
/// Smallest guest we build for: the kernel, an initrd and boot structures need room.
pub const MIN_MEMORY: u64 = 16 * MIB;
/// Largest guest we build for: 1 TiB keeps page tables and e820 arithmetic simple.
pub const MAX_MEMORY: u64 = 1 << 40;

/// RAM of a guest with `size` bytes, as address ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryMap {
    pub size: u64,
    /// `[start, end)` RAM ranges usable for placing things: 1 MiB..low end, and above 4 GiB.
    pub ram: Vec<(u64, u64)>,
    pub e820: Vec<E820Entry>,
}

impl MemoryMap {
    pub fn new(size: u64) -> Result<MemoryMap, BuildError> {
        if size < MIN_MEMORY {
            return Err(BuildError::Memory {
                size,
                why: format!("below the minimum of {} MiB", MIN_MEMORY / MIB),
            });
        }
        if size > MAX_MEMORY {
            return Err(BuildError::Memory {
                size,
                why: "above the maximum of 1 TiB".into(),
            });
        }
        if size % (4 * KIB) != 0 {
            return Err(BuildError::Memory {
                size,
                why: "not a multiple of 4 KiB".into(),
            });
        }
        let low_end = size.min(MMIO_GAP_START);
        let high = size.saturating_sub(MMIO_GAP_START);
        let mut e820 = vec![
            E820Entry {
                address: 0,
                size: EBDA_START,
                kind: E820Type::Ram,
            },
            E820Entry {
                address: EBDA_START,
                size: LEGACY_HOLE_START - EBDA_START,
                kind: E820Type::Reserved,
            },
            // The BIOS area: where firmware tables (MP table, RSDP) would live.
            E820Entry {
                address: 0xF_0000,
                size: 0x1_0000,
                kind: E820Type::Reserved,
            },
            E820Entry {
                address: HIGH_MEMORY_START,
                size: low_end - HIGH_MEMORY_START,
                kind: E820Type::Ram,
            },
        ];
        let mut ram = vec![(HIGH_MEMORY_START, low_end)];
        if high > 0 {
            e820.push(E820Entry {
                address: MMIO_GAP_END,
                size: high,
                kind: E820Type::Ram,
            });
            ram.push((MMIO_GAP_END, MMIO_GAP_END + high));
        }
        Ok(MemoryMap { size, ram, e820 })
    }

    /// End of RAM below 4 GiB.
    pub fn low_end(&self) -> u64 {
        self.ram[0].1
    }

    /// Highest guest-physical address backed by RAM (exclusive).
    pub fn top(&self) -> u64 {
        self.ram.last().map_or(0, |r| r.1)
    }

    /// True when `[start, end)` lies inside one RAM range (placeable memory, ≥ 1 MiB).
    pub fn contains(&self, start: u64, end: u64) -> bool {
        self.ram.iter().any(|&(s, e)| start >= s && end <= e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_guest_has_legacy_holes_and_no_high_ram() {
        let m = MemoryMap::new(128 * MIB).unwrap();
        assert_eq!(m.ram, [(MIB, 128 * MIB)]);
        assert_eq!(m.e820.len(), 4);
        assert_eq!(m.e820[3].end(), 128 * MIB);
        let ram: u64 = m
            .e820
            .iter()
            .filter(|e| e.kind == E820Type::Ram)
            .map(|e| e.size)
            .sum();
        assert_eq!(ram, 128 * MIB - MIB + EBDA_START);
    }

    #[test]
    fn large_guest_skips_the_mmio_gap() {
        let m = MemoryMap::new(5 * GIB).unwrap();
        assert_eq!(m.ram, [(MIB, 3 * GIB), (4 * GIB, 6 * GIB)]);
        assert_eq!(m.top(), 6 * GIB);
        let m = MemoryMap::new(3 * GIB + 512 * MIB).unwrap();
        assert_eq!(m.ram[1], (4 * GIB, 4 * GIB + 512 * MIB));
        assert!(!m.contains(3 * GIB - 4096, 3 * GIB + 4096));
    }

    #[test]
    fn rejects_absurd_sizes() {
        assert!(MemoryMap::new(MIB).is_err());
        assert!(MemoryMap::new(2 << 40).is_err());
        assert!(MemoryMap::new(128 * MIB + 1).is_err());
    }
}
