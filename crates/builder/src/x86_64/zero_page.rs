//! `struct boot_params` (the zero page) as a careful boot loader fills it.
//! Offsets are from Documentation/arch/x86/zero-page.rst and boot.rst.

use crate::plan::E820Entry;

pub const SIZE: usize = 4096;
/// ext_ramdisk_image / ext_ramdisk_size / ext_cmd_line_ptr: high 32 bits of each.
const EXT_RAMDISK_IMAGE: usize = 0x0C0;
const EXT_RAMDISK_SIZE: usize = 0x0C4;
const EXT_CMD_LINE_PTR: usize = 0x0C8;
pub const ACPI_RSDP_ADDR: usize = 0x070;
pub const E820_ENTRIES: usize = 0x1E8;
pub const E820_TABLE: usize = 0x2D0;
pub const E820_MAX: usize = 128;
/// Bytes of one e820 entry in boot_params: u64 address, u64 size, u32 type.
pub const E820_ENTRY_SIZE: usize = 20;
// Setup header fields (same offsets as in the bzImage).
const SETUP_HEADER: usize = 0x1F1;
const BOOT_FLAG: usize = 0x1FE;
const HEADER_MAGIC: usize = 0x202;
const VERSION: usize = 0x206;
const TYPE_OF_LOADER: usize = 0x210;
const LOADFLAGS: usize = 0x211;
const CODE32_START: usize = 0x214;
const RAMDISK_IMAGE: usize = 0x218;
const RAMDISK_SIZE: usize = 0x21C;
const HEAP_END_PTR: usize = 0x224;
const CMD_LINE_PTR: usize = 0x228;
const KERNEL_ALIGNMENT: usize = 0x230;
const CMDLINE_SIZE: usize = 0x238;
const SETUP_DATA: usize = 0x250;
const VID_MODE: usize = 0x1FA;

const LOADED_HIGH: u8 = 0x01;
const CAN_USE_HEAP: u8 = 0x80;
/// "Undefined" boot loader ID: we have no assigned one.
const LOADER_UNDEFINED: u8 = 0xFF;
/// boot.rst's example: setup heap up to 0xE000 in the real-mode segment, minus 0x200.
const HEAP_END: u16 = 0xDE00;
const VID_MODE_NORMAL: u16 = 0xFFFF;

pub const SETUP_E820_EXT: u32 = 1;
pub const SETUP_RNG_SEED: u32 = 9;

pub struct ZeroPage {
    bytes: Vec<u8>,
}

impl ZeroPage {
    /// A zero page with the bzImage's setup header copied in, up to the header's declared
    /// end (never beyond: bytes after it are setup code, not header).
    pub fn from_bzimage(image: &[u8], header_end: u64) -> ZeroPage {
        let mut z = ZeroPage {
            bytes: vec![0; SIZE],
        };
        let end = (header_end as usize).min(image.len()).min(SIZE);
        z.bytes[SETUP_HEADER..end].copy_from_slice(&image[SETUP_HEADER..end]);
        z.loader_fields();
        z
    }

    /// A zero page for a kernel entered as an ELF (no setup header of its own): the
    /// minimal header the kernel checks, claiming protocol 2.15 as Firecracker does.
    pub fn synthesized(cmdline_size: u32) -> ZeroPage {
        let mut z = ZeroPage {
            bytes: vec![0; SIZE],
        };
        z.put16(BOOT_FLAG, 0xAA55);
        z.put32(HEADER_MAGIC, 0x5372_6448);
        z.put16(VERSION, 0x020F);
        z.put32(KERNEL_ALIGNMENT, 0x0100_0000);
        z.put32(CMDLINE_SIZE, cmdline_size);
        z.bytes[LOADFLAGS] = LOADED_HIGH;
        z.loader_fields();
        z
    }

    fn loader_fields(&mut self) {
        self.bytes[TYPE_OF_LOADER] = LOADER_UNDEFINED;
        self.bytes[LOADFLAGS] |= CAN_USE_HEAP;
        self.put16(HEAP_END_PTR, HEAP_END);
        self.put16(VID_MODE, VID_MODE_NORMAL);
    }

    pub fn set_code32_start(&mut self, addr: u32) {
        self.put32(CODE32_START, addr);
    }

    pub fn set_cmdline(&mut self, addr: u64) {
        self.put32(CMD_LINE_PTR, addr as u32);
        self.put32(EXT_CMD_LINE_PTR, (addr >> 32) as u32);
    }

    pub fn set_ramdisk(&mut self, addr: u64, size: u64) {
        self.put32(RAMDISK_IMAGE, addr as u32);
        self.put32(EXT_RAMDISK_IMAGE, (addr >> 32) as u32);
        self.put32(RAMDISK_SIZE, size as u32);
        self.put32(EXT_RAMDISK_SIZE, (size >> 32) as u32);
    }

    pub fn set_setup_data(&mut self, addr: u64) {
        self.put64(SETUP_DATA, addr);
    }

    /// Writes up to 128 entries; returns those that did not fit (for SETUP_E820_EXT).
    pub fn set_e820<'a>(&mut self, entries: &'a [E820Entry]) -> &'a [E820Entry] {
        let (fits, rest) = entries.split_at(entries.len().min(E820_MAX));
        self.bytes[E820_ENTRIES] = fits.len() as u8;
        for (i, e) in fits.iter().enumerate() {
            let at = E820_TABLE + i * E820_ENTRY_SIZE;
            self.bytes[at..at + E820_ENTRY_SIZE].copy_from_slice(&e820_bytes(e));
        }
        rest
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn put16(&mut self, at: usize, v: u16) {
        self.bytes[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn put32(&mut self, at: usize, v: u32) {
        self.bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put64(&mut self, at: usize, v: u64) {
        self.bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
}

/// One e820 entry as the kernel reads it: u64 address, u64 size, u32 type.
pub fn e820_bytes(e: &E820Entry) -> [u8; E820_ENTRY_SIZE] {
    let mut b = [0u8; E820_ENTRY_SIZE];
    b[..8].copy_from_slice(&e.address.to_le_bytes());
    b[8..16].copy_from_slice(&e.size.to_le_bytes());
    b[16..].copy_from_slice(&(e.kind as u32).to_le_bytes());
    b
}

/// A `struct setup_data` node: u64 next, u32 type, u32 len, then the data.
pub fn setup_data_node(next: u64, kind: u32, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + data.len());
    b.extend_from_slice(&next.to_le_bytes());
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::E820Type;

    #[test]
    fn header_is_copied_only_up_to_its_end() {
        let mut image = vec![0xAAu8; 0x1000];
        image[0x201] = 0x20;
        let z = ZeroPage::from_bzimage(&image, 0x222).into_bytes();
        assert_eq!(z[0x221], 0xAA);
        assert_eq!(z[0x222], 0);
        assert_eq!(z[TYPE_OF_LOADER], 0xFF);
        assert_eq!(z[0x1F0], 0);
    }

    #[test]
    fn high_addresses_use_the_ext_fields() {
        let mut z = ZeroPage::synthesized(2048);
        z.set_ramdisk(0x1_2345_6000, 0x1_0000_0001);
        z.set_cmdline(0x2_0000_1000);
        let b = z.into_bytes();
        assert_eq!(
            &b[RAMDISK_IMAGE..RAMDISK_IMAGE + 4],
            &0x2345_6000u32.to_le_bytes()
        );
        assert_eq!(b[EXT_RAMDISK_IMAGE], 1);
        assert_eq!(b[EXT_RAMDISK_SIZE], 1);
        assert_eq!(b[EXT_CMD_LINE_PTR], 2);
    }

    #[test]
    fn e820_overflow_is_returned() {
        let e = E820Entry {
            address: 0,
            size: 4096,
            kind: E820Type::Ram,
        };
        let many = vec![e; 130];
        let mut z = ZeroPage::synthesized(2048);
        assert_eq!(z.set_e820(&many).len(), 2);
        assert_eq!(z.into_bytes()[E820_ENTRIES], 128);
    }
}
