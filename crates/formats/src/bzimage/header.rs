//! The real-mode setup header at 0x1F1, every field of boot protocols 2.00–2.15.
//!
//! A field the image's protocol version lacks is `None`, not zero: a boot loader must not
//! read (or write) bytes the kernel did not define as header.

use super::flags::{LoadFlags, XLoadFlags};
use crate::FormatError;
use crate::read::{le16, le32, le64, u8_at};
use serde::{Serialize, Serializer};
use std::fmt;

/// Offset of the setup header in the image (and in boot_params).
pub const SETUP_HEADER_OFFSET: u64 = 0x1F1;
/// "HdrS" at 0x202.
pub const HDRS_MAGIC: u32 = 0x5372_6448;
pub const HDRS_OFFSET: u64 = 0x202;
/// 0xAA55 at 0x1FE.
pub const BOOT_FLAG: u16 = 0xAA55;
/// Last byte (exclusive) of the 2.15 header: kernel_info_offset at 0x268 is 4 bytes.
pub const MAX_KNOWN_HEADER_END: u64 = 0x26C;
/// Newest protocol minor version whose fields this parser knows.
pub const NEWEST_KNOWN_MINOR: u8 = 15;

/// Boot protocol version (0x206), e.g. 2.15.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProtocolVersion {
    pub major: u8,
    pub minor: u8,
}

impl ProtocolVersion {
    pub const fn new(major: u8, minor: u8) -> Self {
        ProtocolVersion { major, minor }
    }
    /// The version as stored at 0x206 (major in the high byte).
    pub fn raw(self) -> u16 {
        u16::from(self.major) << 8 | u16::from(self.minor)
    }
    fn at_least(self, minor: u8) -> bool {
        self.major > 2 || (self.major == 2 && self.minor >= minor)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.major, self.minor)
    }
}

impl Serialize for ProtocolVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The setup header as typed values. Version-gated fields are `Option`s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SetupHeader {
    /// Raw value at 0x1F1 (0 means 4; see [`SetupHeader::setup_sects_effective`]).
    pub setup_sects: u8,
    pub root_flags: u16,
    /// Size of the protected-mode code in 16-byte paragraphs (only 16 bits before 2.04).
    pub syssize: u32,
    pub ram_size: u16,
    pub vid_mode: u16,
    pub root_dev: u16,
    pub boot_flag: u16,
    /// The jump instruction at 0x200; its second byte locates the end of the header.
    pub jump: u16,
    /// The magic at 0x202, always "HdrS" once parsed (boot.rst calls the field `header`).
    pub header: String,
    pub version: ProtocolVersion,
    pub realmode_swtch: u32,
    pub start_sys_seg: u16,
    /// Offset of the version string, minus 0x200 (0 when absent).
    pub kernel_version: u16,
    pub type_of_loader: u8,
    pub loadflags: LoadFlags,
    pub setup_move_size: u16,
    pub code32_start: u32,
    pub ramdisk_image: u32,
    pub ramdisk_size: u32,
    pub bootsect_kludge: u32,
    /// 2.01+
    pub heap_end_ptr: Option<u16>,
    /// 2.02+
    pub ext_loader_ver: Option<u8>,
    /// 2.02+
    pub ext_loader_type: Option<u8>,
    /// 2.02+
    pub cmd_line_ptr: Option<u32>,
    /// 2.03+ (before it, the limit is 0x37FFFFFF).
    pub initrd_addr_max: Option<u32>,
    /// 2.05+
    pub kernel_alignment: Option<u32>,
    /// 2.05+
    pub relocatable_kernel: Option<bool>,
    /// 2.10+, log2 of the minimum alignment.
    pub min_alignment: Option<u8>,
    /// 2.12+
    pub xloadflags: Option<XLoadFlags>,
    /// 2.06+ (before it, 255).
    pub cmdline_size: Option<u32>,
    /// 2.07+
    pub hardware_subarch: Option<u32>,
    /// 2.07+
    pub hardware_subarch_data: Option<u64>,
    /// 2.08+, relative to the start of the protected-mode code.
    pub payload_offset: Option<u32>,
    /// 2.08+
    pub payload_length: Option<u32>,
    /// 2.09+
    pub setup_data: Option<u64>,
    /// 2.10+
    pub pref_address: Option<u64>,
    /// 2.10+
    pub init_size: Option<u32>,
    /// 2.11+
    pub handover_offset: Option<u32>,
    /// 2.15+, relative to the start of the protected-mode code.
    pub kernel_info_offset: Option<u32>,
}

/// `initrd_addr_max` for kernels before protocol 2.03.
pub const LEGACY_INITRD_ADDR_MAX: u32 = 0x37FF_FFFF;
/// `cmdline_size` for kernels before protocol 2.06 (255 characters plus the NUL).
pub const LEGACY_CMDLINE_SIZE: u32 = 255;

impl SetupHeader {
    /// Parses the header of a bzImage. Errors name the field and its offset.
    pub fn parse(data: &[u8]) -> Result<SetupHeader, FormatError> {
        let magic = le32(data, HDRS_OFFSET, "setup header magic (HdrS)")?;
        if magic != HDRS_MAGIC {
            return Err(FormatError::BadMagic {
                what: "setup header",
                offset: HDRS_OFFSET,
                expected: "\"HdrS\" (boot protocol 2.00 or newer)".into(),
                found: format!("{magic:#010x}"),
            });
        }
        let raw_version = le16(data, 0x206, "version")?;
        let version = ProtocolVersion::new((raw_version >> 8) as u8, raw_version as u8);
        if version.major != 2 {
            return Err(FormatError::Field {
                field: "version",
                offset: 0x206,
                value: raw_version.into(),
                limit: "is not a 2.x boot protocol version".into(),
            });
        }
        let v = version;
        let since = |minor: u8| v.at_least(minor);
        let syssize = if since(4) {
            le32(data, 0x1F4, "syssize")?
        } else {
            le16(data, 0x1F4, "syssize")?.into()
        };
        let h = SetupHeader {
            setup_sects: u8_at(data, 0x1F1, "setup_sects")?,
            root_flags: le16(data, 0x1F2, "root_flags")?,
            syssize,
            ram_size: le16(data, 0x1F8, "ram_size")?,
            vid_mode: le16(data, 0x1FA, "vid_mode")?,
            root_dev: le16(data, 0x1FC, "root_dev")?,
            boot_flag: le16(data, 0x1FE, "boot_flag")?,
            jump: le16(data, 0x200, "jump")?,
            header: String::from_utf8_lossy(&magic.to_le_bytes()).into_owned(),
            version,
            realmode_swtch: le32(data, 0x208, "realmode_swtch")?,
            start_sys_seg: le16(data, 0x20C, "start_sys_seg")?,
            kernel_version: le16(data, 0x20E, "kernel_version")?,
            type_of_loader: u8_at(data, 0x210, "type_of_loader")?,
            loadflags: LoadFlags(u8_at(data, 0x211, "loadflags")?),
            setup_move_size: le16(data, 0x212, "setup_move_size")?,
            code32_start: le32(data, 0x214, "code32_start")?,
            ramdisk_image: le32(data, 0x218, "ramdisk_image")?,
            ramdisk_size: le32(data, 0x21C, "ramdisk_size")?,
            bootsect_kludge: le32(data, 0x220, "bootsect_kludge")?,
            heap_end_ptr: opt(since(1), || le16(data, 0x224, "heap_end_ptr"))?,
            ext_loader_ver: opt(since(2), || u8_at(data, 0x226, "ext_loader_ver"))?,
            ext_loader_type: opt(since(2), || u8_at(data, 0x227, "ext_loader_type"))?,
            cmd_line_ptr: opt(since(2), || le32(data, 0x228, "cmd_line_ptr"))?,
            initrd_addr_max: opt(since(3), || le32(data, 0x22C, "initrd_addr_max"))?,
            kernel_alignment: opt(since(5), || le32(data, 0x230, "kernel_alignment"))?,
            relocatable_kernel: opt(since(5), || {
                u8_at(data, 0x234, "relocatable_kernel").map(|b| b != 0)
            })?,
            min_alignment: opt(since(10), || u8_at(data, 0x235, "min_alignment"))?,
            xloadflags: opt(since(12), || {
                le16(data, 0x236, "xloadflags").map(XLoadFlags)
            })?,
            cmdline_size: opt(since(6), || le32(data, 0x238, "cmdline_size"))?,
            hardware_subarch: opt(since(7), || le32(data, 0x23C, "hardware_subarch"))?,
            hardware_subarch_data: opt(since(7), || le64(data, 0x240, "hardware_subarch_data"))?,
            payload_offset: opt(since(8), || le32(data, 0x248, "payload_offset"))?,
            payload_length: opt(since(8), || le32(data, 0x24C, "payload_length"))?,
            setup_data: opt(since(9), || le64(data, 0x250, "setup_data"))?,
            pref_address: opt(since(10), || le64(data, 0x258, "pref_address"))?,
            init_size: opt(since(10), || le32(data, 0x260, "init_size"))?,
            handover_offset: opt(since(11), || le32(data, 0x264, "handover_offset"))?,
            kernel_info_offset: opt(since(15), || le32(data, 0x268, "kernel_info_offset"))?,
        };
        Ok(h)
    }

    /// Number of 512-byte setup sectors (0 in the header means 4).
    pub fn setup_sects_effective(&self) -> u32 {
        match self.setup_sects {
            0 => 4,
            n => n.into(),
        }
    }

    /// Size of the real-mode part (boot sector + setup): where the protected-mode code starts.
    pub fn setup_size(&self) -> u64 {
        (u64::from(self.setup_sects_effective()) + 1) * 512
    }

    /// End of the header as the kernel declares it: 0x202 plus the jump's displacement
    /// byte at 0x201. A boot loader copies the header up to here into boot_params.
    pub fn header_end(&self) -> u64 {
        HDRS_OFFSET + u64::from((self.jump >> 8) as u8)
    }

    /// Highest address the initrd may end at (inclusive), with the pre-2.03 default.
    pub fn initrd_addr_max_effective(&self) -> u32 {
        self.initrd_addr_max.unwrap_or(LEGACY_INITRD_ADDR_MAX)
    }

    /// Longest command line including its NUL, with the pre-2.06 default.
    pub fn cmdline_size_effective(&self) -> u32 {
        self.cmdline_size.unwrap_or(LEGACY_CMDLINE_SIZE)
    }

    pub fn xloadflags_effective(&self) -> XLoadFlags {
        self.xloadflags.unwrap_or(XLoadFlags(0))
    }

    pub fn is_relocatable(&self) -> bool {
        self.relocatable_kernel.unwrap_or(false)
    }
}

fn opt<T>(
    present: bool,
    read: impl FnOnce() -> Result<T, FormatError>,
) -> Result<Option<T>, FormatError> {
    if present { read().map(Some) } else { Ok(None) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal header of the given version with recognisable field values.
    pub(crate) fn header_bytes(minor: u8) -> Vec<u8> {
        let mut d = vec![0u8; 0x1000];
        d[0x1F1] = 3;
        d[0x1FE..0x200].copy_from_slice(&BOOT_FLAG.to_le_bytes());
        d[0x200] = 0xEB;
        d[0x201] = 0x6A;
        d[0x202..0x206].copy_from_slice(b"HdrS");
        d[0x206] = minor;
        d[0x207] = 2;
        for (i, b) in d[0x208..0x26C].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7) | 1;
        }
        d
    }

    #[test]
    fn fields_are_gated_by_version() {
        let old = SetupHeader::parse(&header_bytes(0)).unwrap();
        assert_eq!(old.version.to_string(), "2.00");
        assert!(old.heap_end_ptr.is_none() && old.cmd_line_ptr.is_none());
        assert!(old.kernel_alignment.is_none() && old.xloadflags.is_none());
        assert_eq!(old.initrd_addr_max_effective(), LEGACY_INITRD_ADDR_MAX);
        assert_eq!(old.cmdline_size_effective(), 255);

        let v211 = SetupHeader::parse(&header_bytes(11)).unwrap();
        assert!(v211.handover_offset.is_some() && v211.init_size.is_some());
        assert!(v211.xloadflags.is_none() && v211.kernel_info_offset.is_none());

        let v215 = SetupHeader::parse(&header_bytes(15)).unwrap();
        assert!(v215.xloadflags.is_some() && v215.kernel_info_offset.is_some());
        assert_eq!(v215.header_end(), 0x26C);
    }

    #[test]
    fn rejects_missing_magic_and_wrong_major() {
        let mut d = header_bytes(15);
        d[0x202] = b'X';
        assert!(matches!(
            SetupHeader::parse(&d),
            Err(FormatError::BadMagic { offset: 0x202, .. })
        ));
        let mut d = header_bytes(15);
        d[0x207] = 3;
        assert!(matches!(
            SetupHeader::parse(&d),
            Err(FormatError::Field {
                field: "version",
                ..
            })
        ));
    }

    #[test]
    fn truncated_header_names_the_field() {
        let d = header_bytes(15);
        let err = SetupHeader::parse(&d[..0x262]).unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::Truncated {
                    what: "init_size",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn setup_sects_zero_means_four() {
        let mut d = header_bytes(15);
        d[0x1F1] = 0;
        let h = SetupHeader::parse(&d).unwrap();
        assert_eq!(h.setup_sects_effective(), 4);
        assert_eq!(h.setup_size(), 5 * 512);
    }
}
