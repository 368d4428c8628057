//! The boot GDT: flat segments at the selectors the Linux boot protocol names
//! (__BOOT_CS = 0x10, __BOOT_DS = 0x18), 32- or 64-bit code.

use crate::plan::SegmentRegister;

pub const BOOT_CS: u16 = 0x10;
pub const BOOT_DS: u16 = 0x18;
/// Null, unused, code, data.
pub const ENTRIES: usize = 4;

/// Descriptor flag words (access byte in bits 0-7, flags nibble in 12-15), as in
/// Firecracker's `gdt_entry`: G | L | P | S | execute/read (accessed).
const CODE64: u16 = 0xA09B;
/// G | D/B | P | S | execute/read (accessed).
const CODE32: u16 = 0xC09B;
/// G | D/B | P | S | read/write (accessed).
const DATA: u16 = 0xC093;

/// Encodes a descriptor from flags, base and limit.
pub fn descriptor(flags: u16, base: u32, limit: u32) -> u64 {
    let base = u64::from(base);
    let limit = u64::from(limit);
    let flags = u64::from(flags);
    ((base & 0xFF00_0000) << 32)
        | ((flags & 0xF0FF) << 40)
        | ((limit & 0x000F_0000) << 32)
        | ((base & 0x00FF_FFFF) << 16)
        | (limit & 0x0000_FFFF)
}

/// Decodes a descriptor into the register form a vCPU is loaded with.
pub fn register(selector: u16, desc: u64) -> SegmentRegister {
    let base = ((desc >> 16) & 0x00FF_FFFF) | ((desc >> 32) & 0xFF00_0000);
    let raw_limit = ((desc & 0xFFFF) | ((desc >> 32) & 0x000F_0000)) as u32;
    let g = (desc >> 55) & 1 == 1;
    SegmentRegister {
        selector,
        base,
        limit: if g {
            (raw_limit << 12) | 0xFFF
        } else {
            raw_limit
        },
        type_: ((desc >> 40) & 0xF) as u8,
        dpl: ((desc >> 45) & 0x3) as u8,
        present: (desc >> 47) & 1 == 1,
        s: (desc >> 44) & 1 == 1,
        db: (desc >> 54) & 1 == 1,
        l: (desc >> 53) & 1 == 1,
        g,
    }
}

/// The boot GDT for a 64-bit or 32-bit entry.
pub struct BootGdt {
    pub entries: [u64; ENTRIES],
}

impl BootGdt {
    pub fn new(long_mode: bool) -> BootGdt {
        let code = if long_mode { CODE64 } else { CODE32 };
        BootGdt {
            entries: [
                0,
                0,
                descriptor(code, 0, 0xF_FFFF),
                descriptor(DATA, 0, 0xF_FFFF),
            ],
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.entries.iter().flat_map(|e| e.to_le_bytes()).collect()
    }

    pub fn limit(&self) -> u16 {
        (ENTRIES * 8 - 1) as u16
    }

    pub fn cs(&self) -> SegmentRegister {
        register(BOOT_CS, self.entries[2])
    }

    pub fn ds(&self) -> SegmentRegister {
        register(BOOT_DS, self.entries[3])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_segments_decode_as_4g() {
        let g = BootGdt::new(true);
        assert_eq!(g.entries[2], 0x00AF_9B00_0000_FFFF);
        assert_eq!(g.entries[3], 0x00CF_9300_0000_FFFF);
        let cs = g.cs();
        assert!(cs.l && !cs.db && cs.present && cs.s && cs.g);
        assert_eq!((cs.base, cs.limit, cs.type_), (0, 0xFFFF_FFFF, 0xB));
        let cs32 = BootGdt::new(false).cs();
        assert!(!cs32.l && cs32.db);
        let ds = g.ds();
        assert_eq!(
            (ds.selector, ds.type_, ds.limit),
            (BOOT_DS, 0x3, 0xFFFF_FFFF)
        );
    }
}
