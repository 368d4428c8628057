//! Identity-mapped page tables for the 64-bit entry: 2 MiB pages covering every byte the
//! kernel, boot_params, the command line and the initrd occupy (and all RAM below them).

use crate::memory::GIB;

const PRESENT_WRITABLE: u64 = 0x3;
/// Present | writable | page size (2 MiB).
const LARGE_PAGE: u64 = 0x83;
const PAGE: u64 = 4096;

/// Page tables for `[0, end)` rounded up to whole GiB, laid out from `base`: PML4, PDPT,
/// then one page directory per GiB.
pub struct IdentityMap {
    pub base: u64,
    pub gib: u64,
}

impl IdentityMap {
    /// Covers at least 4 GiB (so the MMIO gap and everything below it is mapped) and `end`.
    pub fn covering(end: u64) -> IdentityMap {
        IdentityMap {
            base: 0,
            gib: end.max(4 * GIB).div_ceil(GIB),
        }
    }

    pub fn size(&self) -> u64 {
        (2 + self.gib) * PAGE
    }

    /// The address CR3 gets.
    pub fn pml4(&self) -> u64 {
        self.base
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.size() as usize];
        let mut put = |index: u64, value: u64| {
            let at = (index * 8) as usize;
            out[at..at + 8].copy_from_slice(&value.to_le_bytes());
        };
        let pdpt = self.base + PAGE;
        put(0, pdpt | PRESENT_WRITABLE);
        for g in 0..self.gib {
            let pd = self.base + (2 + g) * PAGE;
            put(512 + g, pd | PRESENT_WRITABLE);
            for e in 0..512 {
                put((2 + g) * 512 + e, (g * GIB + e * (2 << 20)) | LARGE_PAGE);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: &[u8], index: usize) -> u64 {
        u64::from_le_bytes(bytes[index * 8..index * 8 + 8].try_into().unwrap())
    }

    #[test]
    fn maps_identity_with_2m_pages() {
        let mut m = IdentityMap::covering(5 * GIB + 1);
        m.base = 0x10_0000;
        assert_eq!(m.gib, 6);
        let b = m.bytes();
        assert_eq!(b.len() as u64, m.size());
        assert_eq!(entry(&b, 0), 0x10_1003);
        assert_eq!(entry(&b, 512 + 5), (0x10_0000 + 7 * 4096) | 3);
        // GiB 5, 2 MiB page 3 maps 5 GiB + 6 MiB.
        assert_eq!(entry(&b, 7 * 512 + 3), (5 * GIB + 6 * (1 << 20)) | 0x83);
        assert_eq!(IdentityMap::covering(0).gib, 4);
    }
}
