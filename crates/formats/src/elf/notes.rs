//! ELF notes: the walk over note segments and sections, and the decoding of the GNU, Linux
//! and Xen notes (the Xen numbers and decoded form are in [`super::xen`]).

use super::parse::Rd;
pub use super::xen::*;
use super::{MAX_DESC_HEX, MAX_NOTE_STRING, MAX_NOTES};
use crate::FormatError;
use crate::read::slice;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Debug;

pub const NT_GNU_ABI_TAG: u32 = 1;
pub const NT_GNU_HWCAP: u32 = 2;
pub const NT_GNU_BUILD_ID: u32 = 3;
pub const NT_GNU_GOLD_VERSION: u32 = 4;
pub const NT_GNU_PROPERTY_TYPE_0: u32 = 5;

/// Owner "Linux", type 0: `LINUX_VERSION_CODE` (the vDSO carries it).
pub const LINUX_ELFNOTE_VERSION: u32 = 0;
/// `include/linux/build-salt.h`: the `CONFIG_BUILD_SALT` string.
pub const LINUX_ELFNOTE_BUILD_SALT: u32 = 0x100;
/// `include/linux/elfnote-lto.h`: 1 when the kernel was built with LTO.
pub const LINUX_ELFNOTE_LTO_INFO: u32 = 0x101;

/// Maximum entries decoded from a list-valued note.
const MAX_LIST: usize = 64;

/// One ELF note.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Note {
    /// The owner name (`"GNU"`, `"Linux"`, `"Xen"`), without its NUL.
    pub owner: String,
    #[serde(rename = "type")]
    pub n_type: u32,
    /// The type's symbolic name, when known for this owner (`"XEN_ELFNOTE_PHYS32_ENTRY"`).
    pub type_name: Option<&'static str>,
    /// File offset of the note header.
    pub offset: u64,
    /// File offset of the descriptor.
    pub desc_offset: u64,
    pub desc_size: u64,
    /// The descriptor in hex, when at most [`super::MAX_DESC_HEX`] bytes.
    pub desc_hex: Option<String>,
    /// The descriptor decoded, for the notes this parser knows.
    pub value: Option<NoteValue>,
    /// The `PT_NOTE` program header the note was found in.
    pub segment: Option<usize>,
    /// The `SHT_NOTE` section the note was found in (its name, or `[index]`).
    pub section: Option<String>,
}

/// A decoded note descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum NoteValue {
    Number(u64),
    Numbers(Vec<u64>),
    Text(String),
}

/// The symbolic name of a note type, when known for its owner.
pub fn note_type_name(owner: &str, n_type: u32) -> Option<&'static str> {
    Some(match (owner, n_type) {
        ("GNU", NT_GNU_ABI_TAG) => "NT_GNU_ABI_TAG",
        ("GNU", NT_GNU_HWCAP) => "NT_GNU_HWCAP",
        ("GNU", NT_GNU_BUILD_ID) => "NT_GNU_BUILD_ID",
        ("GNU", NT_GNU_GOLD_VERSION) => "NT_GNU_GOLD_VERSION",
        ("GNU", NT_GNU_PROPERTY_TYPE_0) => "NT_GNU_PROPERTY_TYPE_0",
        ("Linux", LINUX_ELFNOTE_VERSION) => "LINUX_VERSION_CODE",
        ("Linux", LINUX_ELFNOTE_BUILD_SALT) => "LINUX_ELFNOTE_BUILD_SALT",
        ("Linux", LINUX_ELFNOTE_LTO_INFO) => "LINUX_ELFNOTE_LTO_INFO",
        ("Xen", t) => return xen_note_name(t),
        _ => return None,
    })
}

/// Where a run of notes lives.
pub(super) enum NoteSource {
    /// A `PT_NOTE` program header (its index).
    Segment(usize),
    /// An `SHT_NOTE` section (its name or `[index]`).
    Section(String),
}

/// One `PT_NOTE` segment or `SHT_NOTE` section; already checked to lie inside the file.
pub(super) struct NoteRegion {
    pub start: u64,
    pub size: u64,
    /// `p_align` / `sh_addralign`: see [`NoteCollector::parse_region`] for how it is used.
    pub align: u64,
    pub source: NoteSource,
}

impl NoteRegion {
    fn describe(&self) -> String {
        match &self.source {
            NoteSource::Segment(i) => format!("PT_NOTE program header {i}"),
            NoteSource::Section(name) => format!("SHT_NOTE section {name}"),
        }
    }
}

/// A note header's place in the file, before decoding.
struct RawNote {
    at: u64,
    namesz: u64,
    descsz: u64,
    n_type: u32,
    desc_offset: u64,
}

/// Accumulates the notes of every region, once per file offset.
pub(super) struct NoteCollector<'a> {
    rd: Rd<'a>,
    notes: Vec<Note>,
    by_offset: HashMap<u64, usize>,
    parsed: usize,
    xen: XenNotes,
    warnings: Vec<String>,
}

fn align_up(value: u64, align: u64) -> u64 {
    value.saturating_add(align - 1) & !(align - 1)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes up to the first NUL (or the end), cut at [`MAX_NOTE_STRING`], lossily decoded.
fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end.min(MAX_NOTE_STRING)]).into_owned()
}

impl<'a> NoteCollector<'a> {
    pub fn new(rd: Rd<'a>) -> Self {
        NoteCollector {
            rd,
            notes: Vec::new(),
            by_offset: HashMap::new(),
            parsed: 0,
            xen: XenNotes::default(),
            warnings: Vec::new(),
        }
    }

    pub fn finish(self) -> (Vec<Note>, XenNotes, Vec<String>) {
        (self.notes, self.xen, self.warnings)
    }

    /// Walks one region and records its notes. Linux's note macros (`elfnote.h`) align
    /// names and descriptors to 4 bytes whatever the segment's `p_align` says, and
    /// linux-loader walks every `PT_NOTE` that way; gABI-style 8-byte notes exist in
    /// `SHT_NOTE` sections with `sh_addralign` 8 (`.note.gnu.property`). So a segment is
    /// walked with 4-byte alignment, a section with its own, and a region that declares 8
    /// falls back to the other alignment when its first walk fails (the first walk's error
    /// is the one reported when both fail).
    pub fn parse_region(&mut self, region: &NoteRegion) -> Result<(), FormatError> {
        let first = match region.source {
            NoteSource::Section(_) if region.align == 8 => 8,
            _ => 4,
        };
        let raw = match self.walk(region, first) {
            Ok(raw) => raw,
            Err(error) if region.align == 8 => self.walk(region, 12 - first).map_err(|_| error)?,
            Err(error) => return Err(error),
        };
        for note in raw {
            self.record(region, note)?;
        }
        Ok(())
    }

    /// The note layout of a region at one alignment: header offsets and descriptor ranges,
    /// every one inside the region.
    fn walk(&self, region: &NoteRegion, align: u64) -> Result<Vec<RawNote>, FormatError> {
        let (start, size) = (region.start, region.size);
        let mut raw = Vec::new();
        let mut pos = 0u64;
        while pos < size {
            let at = start + pos;
            let remaining = size - pos;
            if remaining < 12 {
                // Padding after the last note is fine; anything else is a cut-off header.
                let tail = slice(self.rd.data, at, remaining, "note padding")?;
                if tail.iter().all(|&b| b == 0) {
                    break;
                }
                return Err(FormatError::Truncated {
                    what: "note header",
                    offset: at,
                    need: 12,
                    have: remaining,
                });
            }
            if self.parsed + raw.len() >= MAX_NOTES {
                return Err(FormatError::Field {
                    field: "note count",
                    offset: at,
                    value: (self.parsed + raw.len() + 1) as u64,
                    limit: format!(
                        "exceeds the limit of {MAX_NOTES} notes (reached in {})",
                        region.describe()
                    ),
                });
            }
            let namesz = u64::from(self.rd.u32(at, "n_namesz")?);
            let descsz = u64::from(self.rd.u32(at + 4, "n_descsz")?);
            let n_type = self.rd.u32(at + 8, "n_type")?;
            let name_end = pos.saturating_add(12).saturating_add(namesz);
            if name_end > size {
                return Err(FormatError::Field {
                    field: "n_namesz",
                    offset: at,
                    value: namesz,
                    limit: format!(
                        "runs past the end of {} ({size:#x} bytes at file offset {start:#x})",
                        region.describe()
                    ),
                });
            }
            let desc_pos = if descsz == 0 {
                align_up(name_end, align).min(size)
            } else {
                align_up(name_end, align)
            };
            let desc_end = desc_pos.saturating_add(descsz);
            if desc_end > size {
                return Err(FormatError::Field {
                    field: "n_descsz",
                    offset: at + 4,
                    value: descsz,
                    limit: format!(
                        "(descriptor at file offset {:#x}) runs past the end of {} ({size:#x} bytes at file offset {start:#x})",
                        start.saturating_add(desc_pos),
                        region.describe()
                    ),
                });
            }
            raw.push(RawNote {
                at,
                namesz,
                descsz,
                n_type,
                desc_offset: start + desc_pos,
            });
            pos = align_up(desc_end, align).min(size);
        }
        Ok(raw)
    }

    /// Records one note of `region` (or, for a note already seen at that file offset
    /// through another region, notes where else it was found).
    fn record(&mut self, region: &NoteRegion, raw: RawNote) -> Result<(), FormatError> {
        self.parsed += 1;
        let at = raw.at;
        if let Some(&i) = self.by_offset.get(&at) {
            let note = &mut self.notes[i];
            match &region.source {
                NoteSource::Segment(s) => {
                    note.segment.get_or_insert(*s);
                }
                NoteSource::Section(name) => {
                    note.section.get_or_insert_with(|| name.clone());
                }
            }
            return Ok(());
        }
        let data = self.rd.data;
        let name = slice(data, at + 12, raw.namesz, "note name")?;
        let desc = slice(data, raw.desc_offset, raw.descsz, "note descriptor")?;
        let owner = text(name);
        let value = self.decode(&owner, raw.n_type, desc, at, raw.desc_offset)?;
        let (segment, section) = match &region.source {
            NoteSource::Segment(s) => (Some(*s), None),
            NoteSource::Section(name) => (None, Some(name.clone())),
        };
        self.by_offset.insert(at, self.notes.len());
        self.notes.push(Note {
            type_name: note_type_name(&owner, raw.n_type),
            owner,
            n_type: raw.n_type,
            offset: at,
            desc_offset: raw.desc_offset,
            desc_size: raw.descsz,
            desc_hex: (raw.descsz <= MAX_DESC_HEX).then(|| hex(desc)),
            value,
            segment,
            section,
        });
        Ok(())
    }

    /// A 1, 2, 4 or 8-byte number in the file's byte order.
    fn number(&self, desc: &[u8]) -> Option<u64> {
        let mut buf = [0u8; 8];
        match desc.len() {
            1 | 2 | 4 | 8 => {}
            _ => return None,
        }
        if self.rd.big {
            buf[8 - desc.len()..].copy_from_slice(desc);
            Some(u64::from_be_bytes(buf))
        } else {
            buf[..desc.len()].copy_from_slice(desc);
            Some(u64::from_le_bytes(buf))
        }
    }

    /// Consecutive `width`-byte numbers (at most [`MAX_LIST`]).
    fn numbers(&self, desc: &[u8], width: usize) -> Vec<u64> {
        desc.chunks_exact(width)
            .take(MAX_LIST)
            .filter_map(|c| self.number(c))
            .collect()
    }

    fn decode(
        &mut self,
        owner: &str,
        n_type: u32,
        desc: &[u8],
        at: u64,
        desc_offset: u64,
    ) -> Result<Option<NoteValue>, FormatError> {
        Ok(match (owner, n_type) {
            ("GNU", NT_GNU_BUILD_ID) => Some(NoteValue::Text(hex(
                &desc[..desc.len().min(MAX_NOTE_STRING / 2)]
            ))),
            ("GNU", NT_GNU_ABI_TAG) if desc.len() >= 16 => {
                let w = self.numbers(&desc[..16], 4);
                let os = match w[0] {
                    0 => "Linux",
                    1 => "GNU",
                    2 => "Solaris",
                    3 => "FreeBSD",
                    _ => "unknown OS",
                };
                Some(NoteValue::Text(format!("{os} {}.{}.{}", w[1], w[2], w[3])))
            }
            ("GNU", NT_GNU_GOLD_VERSION) => Some(NoteValue::Text(text(desc))),
            ("Linux", LINUX_ELFNOTE_VERSION) if desc.len() == 4 => {
                let code = self.number(desc).unwrap_or(0);
                Some(NoteValue::Text(format!(
                    "{}.{}.{}",
                    code >> 16,
                    (code >> 8) & 0xff,
                    code & 0xff
                )))
            }
            ("Linux", LINUX_ELFNOTE_BUILD_SALT) => Some(NoteValue::Text(text(desc))),
            ("Linux", LINUX_ELFNOTE_LTO_INFO) => self.number(desc).map(NoteValue::Number),
            ("Xen", _) => self.decode_xen(n_type, desc, at, desc_offset)?,
            _ => None,
        })
    }

    fn decode_xen(
        &mut self,
        n_type: u32,
        desc: &[u8],
        at: u64,
        desc_offset: u64,
    ) -> Result<Option<NoteValue>, FormatError> {
        let Some(name) = xen_note_name(n_type) else {
            return Ok(None);
        };
        let numeric = |this: &Self| {
            this.number(desc).ok_or_else(|| FormatError::Field {
                field: "n_descsz",
                offset: at + 4,
                value: desc.len() as u64,
                limit: format!(
                    "of the {name} note is not 1, 2, 4 or 8, as a numeric Xen note must be"
                ),
            })
        };
        let value = match n_type {
            XEN_ELFNOTE_INFO
            | XEN_ELFNOTE_XEN_VERSION
            | XEN_ELFNOTE_GUEST_OS
            | XEN_ELFNOTE_GUEST_VERSION
            | XEN_ELFNOTE_LOADER
            | XEN_ELFNOTE_PAE_MODE
            | XEN_ELFNOTE_FEATURES
            | XEN_ELFNOTE_BSD_SYMTAB => {
                let s = text(desc);
                let x = &mut self.xen;
                let slot = match n_type {
                    XEN_ELFNOTE_INFO => &mut x.info,
                    XEN_ELFNOTE_XEN_VERSION => &mut x.xen_version,
                    XEN_ELFNOTE_GUEST_OS => &mut x.guest_os,
                    XEN_ELFNOTE_GUEST_VERSION => &mut x.guest_version,
                    XEN_ELFNOTE_LOADER => &mut x.loader,
                    XEN_ELFNOTE_PAE_MODE => &mut x.pae_mode,
                    XEN_ELFNOTE_FEATURES => &mut x.features,
                    _ => &mut x.bsd_symtab,
                };
                set(slot, s.clone(), name, &mut self.warnings);
                NoteValue::Text(s)
            }
            XEN_ELFNOTE_L1_MFN_VALID => {
                let width = if desc.len() % 8 == 0 { 8 } else { 4 };
                let list = self.numbers(desc, width);
                set(
                    &mut self.xen.l1_mfn_valid,
                    list.clone(),
                    name,
                    &mut self.warnings,
                );
                NoteValue::Numbers(list)
            }
            XEN_ELFNOTE_PHYS32_RELOC => {
                let list = self.numbers(desc, 4);
                let field = |i: usize| list.get(i).map(|&v| v as u32);
                let reloc = Phys32Reloc {
                    align: field(0),
                    min: field(1),
                    max: field(2),
                };
                set(&mut self.xen.phys32_reloc, reloc, name, &mut self.warnings);
                NoteValue::Numbers(list)
            }
            XEN_ELFNOTE_PHYS32_ENTRY => {
                // A 32-bit address needs at least 4 bytes: a 1- or 2-byte descriptor is a
                // broken note, not an entry (linux-loader: InvalidPvhNote).
                if desc.len() < 4 {
                    return Err(FormatError::Field {
                        field: "n_descsz",
                        offset: at + 4,
                        value: desc.len() as u64,
                        limit: format!(
                            "of the {name} note is not 4 or 8: a 32-bit entry address does not fit"
                        ),
                    });
                }
                let v = numeric(self)?;
                if v > u64::from(u32::MAX) {
                    return Err(FormatError::Field {
                        field: "XEN_ELFNOTE_PHYS32_ENTRY",
                        offset: desc_offset,
                        value: v,
                        limit: "does not fit in 32 bits (the PVH entry runs in 32-bit protected mode, paging off)".into(),
                    });
                }
                if let Some(first) = self.xen.phys32_entry {
                    if first != v {
                        return Err(FormatError::Invalid(format!(
                            "two XEN_ELFNOTE_PHYS32_ENTRY notes disagree: {first:#x} and {v:#x} (the second at file offset {at:#x}); the PVH entry is ambiguous"
                        )));
                    }
                }
                self.xen.phys32_entry = Some(v);
                NoteValue::Number(v)
            }
            XEN_ELFNOTE_SUPPORTED_FEATURES => {
                let v = numeric(self)?;
                let bitmap = u32::try_from(v).map_err(|_| FormatError::Field {
                    field: "XEN_ELFNOTE_SUPPORTED_FEATURES",
                    offset: desc_offset,
                    value: v,
                    limit: "is not a 32-bit feature bitmap".into(),
                })?;
                set(
                    &mut self.xen.supported_features,
                    bitmap,
                    name,
                    &mut self.warnings,
                );
                NoteValue::Number(v)
            }
            XEN_ELFNOTE_ENTRY
            | XEN_ELFNOTE_HYPERCALL_PAGE
            | XEN_ELFNOTE_VIRT_BASE
            | XEN_ELFNOTE_PADDR_OFFSET
            | XEN_ELFNOTE_HV_START_LOW
            | XEN_ELFNOTE_SUSPEND_CANCEL
            | XEN_ELFNOTE_INIT_P2M
            | XEN_ELFNOTE_MOD_START_PFN => {
                let v = numeric(self)?;
                let x = &mut self.xen;
                let slot = match n_type {
                    XEN_ELFNOTE_ENTRY => &mut x.entry,
                    XEN_ELFNOTE_HYPERCALL_PAGE => &mut x.hypercall_page,
                    XEN_ELFNOTE_VIRT_BASE => &mut x.virt_base,
                    XEN_ELFNOTE_PADDR_OFFSET => &mut x.paddr_offset,
                    XEN_ELFNOTE_HV_START_LOW => &mut x.hv_start_low,
                    XEN_ELFNOTE_SUSPEND_CANCEL => &mut x.suspend_cancel,
                    XEN_ELFNOTE_INIT_P2M => &mut x.init_p2m,
                    _ => &mut x.mod_start_pfn,
                };
                set(slot, v, name, &mut self.warnings);
                NoteValue::Number(v)
            }
            // Crash and dump-core notes: named, not decoded.
            _ => return Ok(None),
        };
        Ok(Some(value))
    }
}

/// Stores the first value of a Xen note; a differing duplicate becomes a warning.
fn set<T: PartialEq + Debug>(
    slot: &mut Option<T>,
    value: T,
    name: &str,
    warnings: &mut Vec<String>,
) {
    match slot {
        None => *slot = Some(value),
        Some(first) if *first == value => {}
        Some(first) => warnings.push(format!(
            "duplicate {name} note: {value:?} ignored, keeping the first value {first:?}"
        )),
    }
}

#[cfg(test)]
#[path = "notes_tests.rs"]
mod tests;
