//! `loadflags` (0x211) and `xloadflags` (0x236), decoded by name.

use serde::{Serialize, Serializer};

/// Names of the `loadflags` bits (Documentation/arch/x86/boot.rst).
const LOADFLAG_NAMES: [(u8, &str); 5] = [
    (0x01, "LOADED_HIGH"),
    (0x02, "KASLR_FLAG"),
    (0x20, "QUIET_FLAG"),
    (0x40, "KEEP_SEGMENTS"),
    (0x80, "CAN_USE_HEAP"),
];

/// Names of the `xloadflags` bits (protocol 2.12+).
const XLOADFLAG_NAMES: [(u16, &str); 8] = [
    (1 << 0, "XLF_KERNEL_64"),
    (1 << 1, "XLF_CAN_BE_LOADED_ABOVE_4G"),
    (1 << 2, "XLF_EFI_HANDOVER_32"),
    (1 << 3, "XLF_EFI_HANDOVER_64"),
    (1 << 4, "XLF_EFI_KEXEC"),
    (1 << 5, "XLF_5LEVEL"),
    (1 << 6, "XLF_5LEVEL_ENABLED"),
    (1 << 7, "XLF_MEM_ENCRYPTION"),
];

fn names<T: Copy + Into<u32>>(bits: T, table: &[(T, &'static str)]) -> Vec<String> {
    let bits: u32 = bits.into();
    let mut known = 0u32;
    let mut out = Vec::new();
    for &(bit, name) in table {
        let bit: u32 = bit.into();
        known |= bit;
        if bits & bit != 0 {
            out.push(name.to_string());
        }
    }
    let mut unknown = bits & !known;
    while unknown != 0 {
        let bit = unknown.trailing_zeros();
        out.push(format!("bit{bit}"));
        unknown &= unknown - 1;
    }
    out
}

/// The `loadflags` byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadFlags(pub u8);

impl LoadFlags {
    pub const LOADED_HIGH: u8 = 0x01;
    pub const CAN_USE_HEAP: u8 = 0x80;

    pub fn loaded_high(self) -> bool {
        self.0 & Self::LOADED_HIGH != 0
    }
    /// Flag names, unknown bits as `bitN`.
    pub fn names(self) -> Vec<String> {
        names(self.0, &LOADFLAG_NAMES)
    }
}

/// The `xloadflags` word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XLoadFlags(pub u16);

impl XLoadFlags {
    pub const KERNEL_64: u16 = 1 << 0;
    pub const CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
    pub const EFI_HANDOVER_32: u16 = 1 << 2;
    pub const EFI_HANDOVER_64: u16 = 1 << 3;

    /// The kernel has a 64-bit entry point at load address + 0x200.
    pub fn kernel_64(self) -> bool {
        self.0 & Self::KERNEL_64 != 0
    }
    /// Kernel, boot_params, cmdline and initrd may live above 4 GiB.
    pub fn can_be_loaded_above_4g(self) -> bool {
        self.0 & Self::CAN_BE_LOADED_ABOVE_4G != 0
    }
    pub fn efi_handover_32(self) -> bool {
        self.0 & Self::EFI_HANDOVER_32 != 0
    }
    pub fn efi_handover_64(self) -> bool {
        self.0 & Self::EFI_HANDOVER_64 != 0
    }
    pub fn names(self) -> Vec<String> {
        names(self.0, &XLOADFLAG_NAMES)
    }
}

impl Serialize for LoadFlags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl Serialize for XLoadFlags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_known_and_unknown_bits() {
        assert_eq!(LoadFlags(0x81).names(), ["LOADED_HIGH", "CAN_USE_HEAP"]);
        assert_eq!(LoadFlags(0x04).names(), ["bit2"]);
        let x = XLoadFlags(0x7f | 0x400);
        assert_eq!(x.names().len(), 8);
        assert_eq!(x.names().last().map(String::as_str), Some("bit10"));
        assert!(x.kernel_64() && x.can_be_loaded_above_4g());
        assert_eq!(XLoadFlags(0).names(), Vec::<String>::new());
    }
}
