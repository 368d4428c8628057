//! ELF32 and ELF64 kernels (`vmlinux`, PVH kernels, Xen PV kernels).
//!
//! A hand-written, bounds-checked parser: the ELF header, the program header table (every
//! `PT_LOAD` validated: inside the file, `p_filesz <= p_memsz`, sane sizes, no overlap in
//! physical address or file range), the section header table (extended numbering included),
//! every note of every `PT_NOTE` segment and `SHT_NOTE` section (deduplicated by file
//! offset), the Xen notes decoded by name, and the legacy `__xen_guest` string.
//!
//! Both byte orders are supported. The machine is reported, not enforced, so the parser also
//! serves tools that inspect non-x86 kernels; [`ElfImage::is_x86`] tells a builder whether
//! it can boot the image.
//!
//! Every violation is a [`FormatError`] naming the field, its file offset and the limit; no
//! input makes the parser panic or allocate more than a small multiple of the input's
//! header and note sizes (see the `MAX_*` limits).

mod notes;
mod parse;
mod xen;

pub use notes::{Note, NoteValue, Phys32Reloc, XenNotes, note_type_name};

use crate::read::slice;
use crate::{Details, Format, FormatError, LoadContext, Loaded, Loader};
use bytes::Bytes;
use serde::Serialize;

/// `\x7fELF`.
pub const ELF_MAGIC: [u8; 4] = *b"\x7fELF";
/// Intel 80386 (`e_machine`).
pub const EM_386: u16 = 3;
/// AMD x86-64 (`e_machine`).
pub const EM_X86_64: u16 = 62;
/// Loadable segment (`p_type`).
pub const PT_LOAD: u32 = 1;
/// Note segment (`p_type`).
pub const PT_NOTE: u32 = 4;
/// Note section (`sh_type`).
pub const SHT_NOTE: u32 = 7;
/// Section without file data (`sh_type`).
pub const SHT_NOBITS: u32 = 8;
/// `e_phnum` value meaning "the count is in `sh_info` of section 0".
pub const PN_XNUM: u16 = 0xffff;
/// `e_shstrndx` value meaning "the index is in `sh_link` of section 0".
pub const SHN_XINDEX: u16 = 0xffff;
/// Segment permission bits (`p_flags`).
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

/// Most program headers accepted (a kernel has 3 to 6; the ELF format allows 2^32).
pub const MAX_PROGRAM_HEADERS: u64 = 4096;
/// Largest `p_memsz` accepted for one `PT_LOAD` segment (64 GiB).
pub const MAX_SEGMENT_MEMSZ: u64 = 64 << 30;
/// Most note headers parsed over all note segments and sections, duplicates included.
pub const MAX_NOTES: usize = 1024;
/// Descriptors up to this many bytes are shown in hex in [`Note::desc_hex`].
pub const MAX_DESC_HEX: u64 = 64;
/// Decoded strings (note values, owner names) are cut at this many bytes.
pub const MAX_NOTE_STRING: usize = 1024;
/// The `__xen_guest` string is cut at this many bytes.
pub const MAX_XEN_GUEST: usize = 64 << 10;

/// `EI_CLASS`: the word size of the file's structures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ElfClass {
    Elf32,
    Elf64,
}

impl ElfClass {
    /// The chain format of an ELF of this class.
    pub fn format(self) -> Format {
        match self {
            ElfClass::Elf32 => Format::Elf32,
            ElfClass::Elf64 => Format::Elf64,
        }
    }
    /// Address width in bits.
    pub fn bits(self) -> u32 {
        match self {
            ElfClass::Elf32 => 32,
            ElfClass::Elf64 => 64,
        }
    }
}

/// `EI_DATA`: the byte order of every multi-byte field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endianness {
    Little,
    Big,
}

/// One `PT_LOAD` program header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// Index in the program header table.
    pub index: usize,
    pub paddr: u64,
    pub vaddr: u64,
    /// File offset of the segment's bytes.
    pub offset: u64,
    /// Bytes taken from the file; the rest up to `memsz` is zero-filled.
    pub filesz: u64,
    pub memsz: u64,
    /// Raw `p_flags` (PF_R 4, PF_W 2, PF_X 1).
    pub flags: u32,
    /// `p_flags` decoded as `"rwx"`, with `-` for a missing permission (`"r-x"`).
    pub perms: &'static str,
    pub align: u64,
}

impl Segment {
    pub fn readable(&self) -> bool {
        self.flags & PF_R != 0
    }
    pub fn writable(&self) -> bool {
        self.flags & PF_W != 0
    }
    pub fn executable(&self) -> bool {
        self.flags & PF_X != 0
    }
    /// End of the segment in guest-physical memory (exclusive). Never overflows for a
    /// segment from [`ElfImage::parse`].
    pub fn paddr_end(&self) -> u64 {
        self.paddr.saturating_add(self.memsz)
    }
    /// The segment's file bytes (`filesz` bytes at `offset`) in `data`, the file it was
    /// parsed from.
    pub fn bytes<'a>(&self, data: &'a [u8]) -> Result<&'a [u8], FormatError> {
        slice(data, self.offset, self.filesz, "PT_LOAD segment data")
    }
    /// True when `paddr` lies inside the segment's memory image.
    pub fn contains_paddr(&self, paddr: u64) -> bool {
        paddr >= self.paddr && paddr < self.paddr_end()
    }
    /// True when `vaddr` lies inside the segment's memory image.
    pub fn contains_vaddr(&self, vaddr: u64) -> bool {
        vaddr >= self.vaddr && vaddr - self.vaddr < self.memsz
    }
}

/// `p_flags` as `"rwx"` with `-` for missing permissions.
pub fn perms(flags: u32) -> &'static str {
    const TABLE: [&str; 8] = ["---", "--x", "-w-", "-wx", "r--", "r-x", "rw-", "rwx"];
    let index = (flags & PF_R != 0) as usize * 4
        + (flags & PF_W != 0) as usize * 2
        + (flags & PF_X != 0) as usize;
    TABLE[index]
}

/// A name for `e_machine`, where it is a common one.
pub fn machine_name(machine: u16) -> Option<&'static str> {
    Some(match machine {
        EM_386 => "i386",
        EM_X86_64 => "x86_64",
        2 => "sparc",
        8 => "mips",
        20 => "ppc",
        21 => "ppc64",
        22 => "s390",
        40 => "arm",
        43 => "sparcv9",
        50 => "ia64",
        183 => "aarch64",
        243 => "riscv",
        258 => "loongarch",
        _ => return None,
    })
}

/// A name for `e_type`.
pub fn elf_type_name(e_type: u16) -> Option<&'static str> {
    Some(match e_type {
        0 => "none",
        1 => "rel",
        2 => "exec",
        3 => "dyn",
        4 => "core",
        _ => return None,
    })
}

/// A section with bytes in the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Section {
    pub index: u64,
    /// Name from the section-name string table (`None` when there is none).
    pub name: Option<String>,
    pub sh_type: u32,
    pub offset: u64,
    pub size: u64,
}

impl Section {
    /// The section's bytes (bounds were checked when the ELF was parsed).
    pub fn bytes<'a>(&self, data: &'a [u8]) -> Option<&'a [u8]> {
        let start = usize::try_from(self.offset).ok()?;
        let end = start.checked_add(usize::try_from(self.size).ok()?)?;
        data.get(start..end)
    }
}

/// A parsed ELF kernel. Serialised (flattened) into `domboot inspect --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ElfImage {
    pub class: ElfClass,
    pub endianness: Endianness,
    /// `e_type` (2 = EXEC, 3 = DYN...).
    pub e_type: u16,
    pub e_type_name: Option<&'static str>,
    /// `e_machine` (3 = i386, 62 = x86_64). Not enforced; see [`ElfImage::is_x86`].
    pub machine: u16,
    pub machine_name: Option<&'static str>,
    /// `e_entry`. For a Linux vmlinux this is the physical address of `startup_32`/`startup_64`.
    pub entry: u64,
    /// The PVH entry (`XEN_ELFNOTE_PHYS32_ENTRY`): a 32-bit physical address entered in
    /// protected mode with paging off, `EBX` = `hvm_start_info`. `None` when absent.
    pub pvh_entry: Option<u64>,
    /// Number of program headers (after `PN_XNUM` resolution).
    pub phnum: u64,
    /// Number of section headers (after extended-numbering resolution; 0 without a table).
    pub shnum: u64,
    /// The `PT_LOAD` segments, in program header order.
    pub segments: Vec<Segment>,
    /// Every note of every `PT_NOTE` segment and `SHT_NOTE` section, once per file offset,
    /// in the order found (segments first).
    pub notes: Vec<Note>,
    /// The Xen notes, decoded by name (absent ones are omitted from the JSON).
    pub xen: XenNotes,
    /// The legacy `__xen_guest` section string (pre-ELF-note Xen PV kernels).
    pub xen_guest: Option<String>,
    /// Section headers with file contents (SHT_NOBITS left out): name, type, file range.
    /// Used to read sections such as a kernel module's `.modinfo`.
    #[serde(skip)]
    pub sections: Vec<Section>,
    /// Things worth knowing that are not errors.
    pub warnings: Vec<String>,
}

impl ElfImage {
    /// Parses and validates an ELF file.
    pub fn parse(data: &[u8]) -> Result<ElfImage, FormatError> {
        parse::parse(data)
    }

    /// True for i386 and x86_64 images.
    pub fn is_x86(&self) -> bool {
        matches!(self.machine, EM_386 | EM_X86_64)
    }

    /// The file bytes of `self.segments[index]` in `data` (the file this image was parsed from).
    pub fn segment_bytes<'a>(&self, data: &'a [u8], index: usize) -> Result<&'a [u8], FormatError> {
        let segment = self.segments.get(index).ok_or_else(|| {
            FormatError::Invalid(format!(
                "PT_LOAD segment {index} requested, but the image has only {}",
                self.segments.len()
            ))
        })?;
        segment.bytes(data)
    }

    /// Every `PT_LOAD` segment with its file bytes, in program header order.
    pub fn load_segments<'s, 'a>(
        &'s self,
        data: &'a [u8],
    ) -> Result<Vec<(&'s Segment, &'a [u8])>, FormatError> {
        self.segments
            .iter()
            .map(|s| Ok((s, s.bytes(data)?)))
            .collect()
    }

    /// Lowest start and highest end (exclusive) of the non-empty `PT_LOAD` segments in
    /// physical memory.
    pub fn paddr_range(&self) -> Option<(u64, u64)> {
        let mut loaded = self.segments.iter().filter(|s| s.memsz > 0);
        let first = loaded.next()?;
        Some(
            loaded.fold((first.paddr, first.paddr_end()), |(lo, hi), s| {
                (lo.min(s.paddr), hi.max(s.paddr_end()))
            }),
        )
    }

    /// The physical address a virtual address maps to through the `PT_LOAD` segments.
    pub fn vaddr_to_paddr(&self, vaddr: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| s.contains_vaddr(vaddr))
            .map(|s| s.paddr + (vaddr - s.vaddr))
    }

    /// The first note with this owner and type.
    pub fn note(&self, owner: &str, n_type: u32) -> Option<&Note> {
        self.notes
            .iter()
            .find(|n| n.owner == owner && n.n_type == n_type)
    }

    /// The GNU build ID in hex, when the image has one.
    pub fn build_id(&self) -> Option<&str> {
        match &self.note("GNU", notes::NT_GNU_BUILD_ID)?.value {
            Some(NoteValue::Text(s)) => Some(s),
            _ => None,
        }
    }
}

/// Loads ELF32 and ELF64 files (terminal: nothing is wrapped inside).
pub struct ElfLoader;

impl Loader for ElfLoader {
    fn name(&self) -> &'static str {
        "elf"
    }

    /// `\x7fELF` with `EI_CLASS` 1 is ELF32, anything else ELF64 (an invalid class is then
    /// reported by [`Loader::load`], naming the field, rather than as an unknown format).
    fn probe(&self, data: &[u8]) -> Option<Format> {
        if data.len() < 5 || data[..4] != ELF_MAGIC {
            return None;
        }
        Some(if data[4] == 1 {
            Format::Elf32
        } else {
            Format::Elf64
        })
    }

    fn load(&self, data: &Bytes, _ctx: &LoadContext) -> Result<Loaded, FormatError> {
        let image = ElfImage::parse(data)?;
        Ok(Loaded {
            format: image.class.format(),
            details: Details::Elf(Box::new(image)),
            inner: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_strings() {
        assert_eq!(perms(0), "---");
        assert_eq!(perms(PF_R | PF_X), "r-x");
        assert_eq!(perms(PF_R | PF_W), "rw-");
        assert_eq!(perms(PF_R | PF_W | PF_X | 0xf000_0000), "rwx");
    }

    #[test]
    fn probe_by_class() {
        let l = ElfLoader;
        assert_eq!(l.probe(b"\x7fELF\x01"), Some(Format::Elf32));
        assert_eq!(l.probe(b"\x7fELF\x02\x01"), Some(Format::Elf64));
        assert_eq!(l.probe(b"\x7fELF"), None);
        assert_eq!(l.probe(b"MZ\x90\x00\x03"), None);
    }

    #[test]
    fn short_and_foreign_inputs_are_errors() {
        for data in [&b""[..], b"\x7fELF", b"\x7fELF\x02\x01\x01", &[0u8; 64]] {
            assert!(ElfImage::parse(data).is_err(), "{data:?}");
        }
        let mut ident = [0u8; 64];
        ident[..4].copy_from_slice(&ELF_MAGIC);
        ident[4] = 3;
        assert!(matches!(
            ElfImage::parse(&ident),
            Err(FormatError::Field {
                field: "EI_CLASS",
                offset: 4,
                value: 3,
                ..
            })
        ));
        ident[4] = 2;
        ident[5] = 0;
        assert!(matches!(
            ElfImage::parse(&ident),
            Err(FormatError::Field {
                field: "EI_DATA",
                offset: 5,
                value: 0,
                ..
            })
        ));
    }
}
