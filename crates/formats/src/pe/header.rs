//! DOS stub, PE signature, COFF header, optional header and section table.

use crate::FormatError;
use crate::read::{le16, le32, slice};
use serde::Serialize;

const E_LFANEW: u64 = 0x3C;
const PE_SIGNATURE: &[u8; 4] = b"PE\0\0";
/// The PE format allows at most 96 sections.
pub const MAX_SECTIONS: u16 = 96;
const SECTION_HEADER_SIZE: u64 = 40;

/// Quick check: "MZ" and a PE signature where e_lfanew points.
pub(crate) fn looks_like_pe(data: &[u8]) -> bool {
    if !data.starts_with(b"MZ") {
        return false;
    }
    let Ok(lfanew) = le32(data, E_LFANEW, "e_lfanew") else {
        return false;
    };
    matches!(slice(data, lfanew.into(), 4, "PE signature"), Ok(s) if s == PE_SIGNATURE)
}

/// What a boot-loader author wants to know about a PE image.
#[derive(Clone, Debug, Serialize)]
pub struct PeSummary {
    /// COFF machine number and its name ("x86_64", "i386", "aarch64", ...).
    pub machine: u16,
    pub machine_name: &'static str,
    /// "PE32" or "PE32+".
    pub optional_header: &'static str,
    /// Entry point RVA.
    pub entry_rva: u32,
    pub image_base: u64,
    /// Windows subsystem (10 = EFI application).
    pub subsystem: u16,
    pub sections: Vec<Section>,
}

/// One section table entry.
#[derive(Clone, Debug, Serialize)]
pub struct Section {
    pub name: String,
    pub virtual_address: u32,
    pub virtual_size: u32,
    pub file_offset: u32,
    pub file_size: u32,
}

impl Section {
    /// File bytes of the section: raw data, trimmed to the virtual size when that is smaller
    /// (raw data is padded to the file alignment; the virtual size is the real length).
    pub fn data_range(&self) -> (u64, u64) {
        let len = match self.virtual_size {
            0 => self.file_size,
            v => v.min(self.file_size),
        };
        (self.file_offset.into(), len.into())
    }
}

fn machine_name(machine: u16) -> &'static str {
    match machine {
        0x014c => "i386",
        0x8664 => "x86_64",
        0xaa64 => "aarch64",
        0x01c2 | 0x01c4 => "arm",
        0x5064 => "riscv64",
        0x6264 => "loongarch64",
        _ => "unknown",
    }
}

impl PeSummary {
    /// Parses the headers and the section table, checking each section's raw data lies in
    /// the file.
    pub fn parse(data: &[u8]) -> Result<PeSummary, FormatError> {
        if !data.starts_with(b"MZ") {
            return Err(FormatError::BadMagic {
                what: "DOS header",
                offset: 0,
                expected: "\"MZ\"".into(),
                found: crate::read::hex_prefix(data, 0),
            });
        }
        let pe = u64::from(le32(data, E_LFANEW, "e_lfanew")?);
        let sig = slice(data, pe, 4, "PE signature (at e_lfanew)")?;
        if sig != PE_SIGNATURE {
            return Err(FormatError::BadMagic {
                what: "PE signature",
                offset: pe,
                expected: "\"PE\\0\\0\"".into(),
                found: crate::read::hex_prefix(sig, 0),
            });
        }
        let coff = pe + 4;
        let machine = le16(data, coff, "COFF Machine")?;
        let nsections = le16(data, coff + 2, "COFF NumberOfSections")?;
        let opt_size = le16(data, coff + 16, "COFF SizeOfOptionalHeader")?;
        if nsections > MAX_SECTIONS {
            return Err(FormatError::Field {
                field: "COFF NumberOfSections",
                offset: coff + 2,
                value: nsections.into(),
                limit: format!("exceeds the PE limit of {MAX_SECTIONS}"),
            });
        }
        let opt = coff + 20;
        let (optional_header, entry_rva, image_base, subsystem) = if opt_size == 0 {
            ("none", 0, 0, 0)
        } else {
            let magic = le16(data, opt, "optional header Magic")?;
            let entry = le32(data, opt + 16, "AddressOfEntryPoint")?;
            match magic {
                0x10b => (
                    "PE32",
                    entry,
                    le32(data, opt + 28, "ImageBase")?.into(),
                    le16(data, opt + 68, "Subsystem")?,
                ),
                0x20b => (
                    "PE32+",
                    entry,
                    crate::read::le64(data, opt + 24, "ImageBase")?,
                    le16(data, opt + 68, "Subsystem")?,
                ),
                other => {
                    return Err(FormatError::Field {
                        field: "optional header Magic",
                        offset: opt,
                        value: other.into(),
                        limit: "is neither 0x10b (PE32) nor 0x20b (PE32+)".into(),
                    });
                }
            }
        };
        let table = opt + u64::from(opt_size);
        let mut sections = Vec::with_capacity(nsections.into());
        for i in 0..u64::from(nsections) {
            let at = table + i * SECTION_HEADER_SIZE;
            let raw = slice(data, at, SECTION_HEADER_SIZE, "section header")?;
            let name_bytes = &raw[..8];
            let end = name_bytes.iter().position(|&b| b == 0).unwrap_or(8);
            let section = Section {
                name: String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
                virtual_size: le32(raw, 8, "VirtualSize")?,
                virtual_address: le32(raw, 12, "VirtualAddress")?,
                file_size: le32(raw, 16, "SizeOfRawData")?,
                file_offset: le32(raw, 20, "PointerToRawData")?,
            };
            let (off, len) = section.data_range();
            if off.saturating_add(len) > data.len() as u64 {
                return Err(FormatError::Field {
                    field: "section PointerToRawData + size",
                    offset: at + 20,
                    value: off.saturating_add(len),
                    limit: format!(
                        "section {} ({:?}) ends past the end of the file ({:#x} bytes)",
                        i,
                        section.name,
                        data.len()
                    ),
                });
            }
            sections.push(section);
        }
        Ok(PeSummary {
            machine,
            machine_name: machine_name(machine),
            optional_header,
            entry_rva,
            image_base,
            subsystem,
            sections,
        })
    }

    /// The first section with this name.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}
