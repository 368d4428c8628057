//! bzImage: the x86 Linux boot-protocol image (setup code + protected-mode code, whose
//! payload, from protocol 2.08, is the compressed vmlinux ELF).

mod flags;
mod header;

pub use flags::{LoadFlags, XLoadFlags};
pub use header::{
    BOOT_FLAG, HDRS_MAGIC, HDRS_OFFSET, LEGACY_CMDLINE_SIZE, LEGACY_INITRD_ADDR_MAX,
    MAX_KNOWN_HEADER_END, NEWEST_KNOWN_MINOR, ProtocolVersion, SETUP_HEADER_OFFSET, SetupHeader,
};

use crate::pe::{self, PeSummary};
use crate::read::{c_string, le32, slice};
use crate::{Details, Format, FormatError, LoadContext, Loaded, Loader};
use bytes::Bytes;
use serde::Serialize;

/// Where `kernel_version` points is within the setup code; a version string is short.
const MAX_VERSION_STRING: usize = 512;
/// "LToP", the kernel_info magic.
const KERNEL_INFO_MAGIC: &[u8; 4] = b"LToP";

/// A parsed bzImage: the summary a boot-loader author needs, plus the full setup header.
#[derive(Clone, Debug, Serialize)]
pub struct BzImage {
    pub protocol_version: ProtocolVersion,
    pub relocatable: bool,
    pub kernel_alignment: Option<u32>,
    /// `min_alignment` as bytes (the header stores log2).
    pub min_alignment: Option<u64>,
    pub pref_address: Option<u64>,
    pub init_size: Option<u32>,
    pub loadflags: LoadFlags,
    pub xloadflags: XLoadFlags,
    /// Longest command line including its NUL (255 before protocol 2.06).
    pub cmdline_size: u32,
    /// Highest address the initrd may occupy (0x37FFFFFF before protocol 2.03).
    pub initrd_addr_max: u32,
    pub kernel_version: Option<String>,
    /// Size of boot sector + setup code, i.e. file offset of the protected-mode code.
    pub setup_size: u64,
    /// Size of the protected-mode code (the part loaded at the kernel's load address).
    pub protected_mode_size: u64,
    /// End of the setup header (0x202 + the byte at 0x201).
    pub header_end: u64,
    pub entry_points: EntryPoints,
    pub payload: Option<Payload>,
    pub kernel_info: Option<KernelInfo>,
    /// Present when the image is also a PE (an EFI stub kernel).
    pub efi_stub: Option<PeSummary>,
    /// Things a careful loader should know that are not errors.
    pub warnings: Vec<String>,
    pub setup_header: SetupHeader,
}

/// Entry points, as offsets or addresses a boot loader uses.
#[derive(Clone, Debug, Serialize)]
pub struct EntryPoints {
    /// Real-mode entry: setup segment + 0x20, offset 0 (i.e. 0x200 into the setup code).
    pub real_mode_offset: u64,
    /// 32-bit entry, the address the protected-mode code expects to run at (code32_start).
    pub code32_start: u32,
    /// 64-bit entry, as an offset from the load address (0x200), when XLF_KERNEL_64.
    pub entry64_offset: Option<u64>,
    /// EFI handover entry for a 32-bit firmware, offset from the load address.
    pub efi_handover_32_offset: Option<u64>,
    /// EFI handover entry for a 64-bit firmware, offset from the load address.
    pub efi_handover_64_offset: Option<u64>,
}

/// The compressed kernel inside the protected-mode code (protocol 2.08+).
#[derive(Clone, Debug, Serialize)]
pub struct Payload {
    /// Offset in the bzImage file.
    pub file_offset: u64,
    pub length: u64,
}

/// The kernel_info structure (protocol 2.15+).
#[derive(Clone, Debug, Serialize)]
pub struct KernelInfo {
    /// Offset in the bzImage file.
    pub file_offset: u64,
    pub size: u32,
    pub size_total: u32,
    /// Highest setup_data / setup_indirect type the kernel understands.
    pub setup_type_max: u32,
}

impl BzImage {
    /// Parses and validates a bzImage.
    pub fn parse(data: &[u8]) -> Result<BzImage, FormatError> {
        let h = SetupHeader::parse(data)?;
        let mut warnings = Vec::new();
        let file_len = data.len() as u64;

        if h.boot_flag != BOOT_FLAG {
            return Err(FormatError::BadMagic {
                what: "boot_flag",
                offset: 0x1FE,
                expected: "0xaa55".into(),
                found: format!("{:#06x}", h.boot_flag),
            });
        }
        let setup_size = h.setup_size();
        if setup_size >= file_len {
            return Err(FormatError::Field {
                field: "setup_sects",
                offset: 0x1F1,
                value: h.setup_sects.into(),
                limit: format!(
                    "puts the protected-mode code at {setup_size:#x}, at or past the end of the file ({file_len:#x} bytes)"
                ),
            });
        }
        let header_end = h.header_end();
        if header_end > setup_size || header_end < HDRS_OFFSET + 4 {
            return Err(FormatError::Field {
                field: "jump (header length byte at 0x201)",
                offset: 0x201,
                value: header_end - HDRS_OFFSET,
                limit: format!(
                    "ends the setup header at {header_end:#x}, outside 0x206..={setup_size:#x} (the setup code)"
                ),
            });
        }
        if h.version.minor > NEWEST_KNOWN_MINOR {
            warnings.push(format!(
                "boot protocol {} is newer than 2.{NEWEST_KNOWN_MINOR}; fields added after 2.{NEWEST_KNOWN_MINOR} are not decoded",
                h.version
            ));
        }
        let pm_size = file_len - setup_size;

        let kernel_version = match h.kernel_version {
            0 => None,
            off => {
                let at = u64::from(off) + 0x200;
                if at >= setup_size {
                    warnings.push(format!(
                        "kernel_version points at {at:#x}, outside the setup code (ends at {setup_size:#x})"
                    ));
                    None
                } else {
                    c_string(&data[..setup_size as usize], at, MAX_VERSION_STRING)
                }
            }
        };

        if let (Some(true), Some(align)) = (h.relocatable_kernel, h.kernel_alignment)
            && !align.is_power_of_two()
        {
            return Err(FormatError::Field {
                field: "kernel_alignment",
                offset: 0x230,
                value: align.into(),
                limit: "is not a power of two, so no load address satisfies it".into(),
            });
        }
        let min_alignment = match h.min_alignment {
            Some(log2) if log2 >= 32 => {
                return Err(FormatError::Field {
                    field: "min_alignment",
                    offset: 0x235,
                    value: log2.into(),
                    limit: "is a log2 alignment above 31 (more than 4 GiB)".into(),
                });
            }
            Some(log2) => Some(1u64 << log2),
            None => None,
        };

        let payload = match (h.payload_offset, h.payload_length) {
            (Some(off), Some(len)) if len > 0 => {
                let (off, len) = (u64::from(off), u64::from(len));
                if off.saturating_add(len) > pm_size {
                    return Err(FormatError::Field {
                        field: "payload_offset + payload_length",
                        offset: 0x248,
                        value: off.saturating_add(len),
                        limit: format!(
                            "(offset {off:#x}, length {len:#x}) runs past the protected-mode code, which is {pm_size:#x} bytes"
                        ),
                    });
                }
                Some(Payload {
                    file_offset: setup_size + off,
                    length: len,
                })
            }
            _ => None,
        };

        let kernel_info = match h.kernel_info_offset {
            Some(off) if off != 0 => Some(parse_kernel_info(data, setup_size, off.into())?),
            _ => None,
        };

        let x = h.xloadflags_effective();
        let handover = |enabled: bool, extra: u64| {
            h.handover_offset
                .filter(|&o| enabled && o != 0)
                .map(|o| u64::from(o) + extra)
        };
        let entry_points = EntryPoints {
            real_mode_offset: 0x200,
            code32_start: h.code32_start,
            entry64_offset: x.kernel_64().then_some(0x200),
            efi_handover_32_offset: handover(x.efi_handover_32(), 0),
            efi_handover_64_offset: handover(x.efi_handover_64(), 0x200),
        };
        for (name, off) in [
            ("EFI handover (32-bit)", entry_points.efi_handover_32_offset),
            ("EFI handover (64-bit)", entry_points.efi_handover_64_offset),
        ] {
            if let Some(off) = off.filter(|&o| o >= pm_size) {
                return Err(FormatError::Field {
                    field: "handover_offset",
                    offset: 0x264,
                    value: off,
                    limit: format!(
                        "puts the {name} entry past the protected-mode code ({pm_size:#x} bytes)"
                    ),
                });
            }
        }

        let efi_stub = if data.starts_with(b"MZ") {
            match pe::PeSummary::parse(data) {
                Ok(s) => Some(s),
                Err(e) => {
                    warnings.push(format!(
                        "starts with MZ but its PE header is unusable ({e}); EFI boot would fail"
                    ));
                    None
                }
            }
        } else {
            None
        };

        Ok(BzImage {
            protocol_version: h.version,
            relocatable: h.is_relocatable(),
            kernel_alignment: h.kernel_alignment,
            min_alignment,
            pref_address: h.pref_address,
            init_size: h.init_size,
            loadflags: h.loadflags,
            xloadflags: x,
            cmdline_size: h.cmdline_size_effective(),
            initrd_addr_max: h.initrd_addr_max_effective(),
            kernel_version,
            setup_size,
            protected_mode_size: pm_size,
            header_end,
            entry_points,
            payload,
            kernel_info,
            efi_stub,
            warnings,
            setup_header: h,
        })
    }
}

fn parse_kernel_info(data: &[u8], setup_size: u64, offset: u64) -> Result<KernelInfo, FormatError> {
    let at = setup_size + offset;
    let field_err = |limit: String| FormatError::Field {
        field: "kernel_info_offset",
        offset: 0x268,
        value: offset,
        limit,
    };
    let magic = slice(data, at, 4, "kernel_info header").map_err(|_| {
        field_err(format!(
            "puts kernel_info at file offset {at:#x}, past the end"
        ))
    })?;
    if magic != KERNEL_INFO_MAGIC {
        return Err(FormatError::BadMagic {
            what: "kernel_info",
            offset: at,
            expected: "\"LToP\"".into(),
            found: crate::read::hex_prefix(magic, 0),
        });
    }
    let size = le32(data, at + 4, "kernel_info size")?;
    let size_total = le32(data, at + 8, "kernel_info size_total")?;
    if size < 16 || size > size_total {
        return Err(FormatError::Field {
            field: "kernel_info size",
            offset: at + 4,
            value: size.into(),
            limit: format!("must be at least 16 and at most size_total ({size_total})"),
        });
    }
    slice(data, at, size_total.into(), "kernel_info (size_total)")?;
    Ok(KernelInfo {
        file_offset: at,
        size,
        size_total,
        setup_type_max: le32(data, at + 12, "kernel_info setup_type_max")?,
    })
}

/// The bzImage loader: unwraps to the payload.
pub struct BzImageLoader;

impl Loader for BzImageLoader {
    fn name(&self) -> &'static str {
        "bzimage"
    }

    fn probe(&self, data: &[u8]) -> Option<Format> {
        let magic = data.get(HDRS_OFFSET as usize..HDRS_OFFSET as usize + 4)?;
        (magic == b"HdrS").then_some(Format::BzImage)
    }

    fn load(&self, data: &Bytes, _ctx: &LoadContext) -> Result<Loaded, FormatError> {
        let image = BzImage::parse(data)?;
        let inner = image.payload.as_ref().map(|p| {
            // parse() checked the payload lies inside the file.
            data.slice(p.file_offset as usize..(p.file_offset + p.length) as usize)
        });
        Ok(Loaded {
            format: Format::BzImage,
            details: Details::BzImage(Box::new(image)),
            inner,
        })
    }
}
