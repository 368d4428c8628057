//! The ELF header, program header and section header tables.

use super::Section;
use super::notes::{NoteCollector, NoteRegion, NoteSource};
use super::{
    ELF_MAGIC, ElfClass, ElfImage, Endianness, MAX_PROGRAM_HEADERS, MAX_SEGMENT_MEMSZ,
    MAX_XEN_GUEST, PN_XNUM, PT_LOAD, PT_NOTE, SHN_XINDEX, SHT_NOBITS, SHT_NOTE, Segment,
    elf_type_name, machine_name, perms,
};
use crate::FormatError;
use crate::read::{be16, be32, be64, c_string, hex_prefix, le16, le32, le64, slice};

/// Longest section name looked up in the section name string table.
const MAX_SECTION_NAME: usize = 256;

/// Endian- and class-aware field reads over the whole file.
#[derive(Clone, Copy)]
pub(super) struct Rd<'a> {
    pub data: &'a [u8],
    pub big: bool,
    pub class: ElfClass,
}

impl Rd<'_> {
    pub fn u16(&self, offset: u64, what: &'static str) -> Result<u16, FormatError> {
        if self.big {
            be16(self.data, offset, what)
        } else {
            le16(self.data, offset, what)
        }
    }
    pub fn u32(&self, offset: u64, what: &'static str) -> Result<u32, FormatError> {
        if self.big {
            be32(self.data, offset, what)
        } else {
            le32(self.data, offset, what)
        }
    }
    pub fn u64(&self, offset: u64, what: &'static str) -> Result<u64, FormatError> {
        if self.big {
            be64(self.data, offset, what)
        } else {
            le64(self.data, offset, what)
        }
    }
    /// An address or offset: 4 bytes in ELF32, 8 in ELF64.
    pub fn word(&self, offset: u64, what: &'static str) -> Result<u64, FormatError> {
        match self.class {
            ElfClass::Elf32 => self.u32(offset, what).map(u64::from),
            ElfClass::Elf64 => self.u64(offset, what),
        }
    }
    fn len(&self) -> u64 {
        self.data.len() as u64
    }
}

/// Field offsets of one class's ELF header, program header and section header.
struct Layout {
    ehsize: u64,
    e_entry: u64,
    e_phoff: u64,
    e_shoff: u64,
    e_phentsize: u64,
    e_phnum: u64,
    e_shentsize: u64,
    e_shnum: u64,
    e_shstrndx: u64,
    phent: u64,
    p_offset: u64,
    p_vaddr: u64,
    p_paddr: u64,
    p_filesz: u64,
    p_memsz: u64,
    p_flags: u64,
    p_align: u64,
    shent: u64,
    sh_type: u64,
    sh_offset: u64,
    sh_size: u64,
    sh_link: u64,
    sh_info: u64,
    sh_addralign: u64,
}

const LAYOUT32: Layout = Layout {
    ehsize: 52,
    e_entry: 24,
    e_phoff: 28,
    e_shoff: 32,
    e_phentsize: 42,
    e_phnum: 44,
    e_shentsize: 46,
    e_shnum: 48,
    e_shstrndx: 50,
    phent: 32,
    p_offset: 4,
    p_vaddr: 8,
    p_paddr: 12,
    p_filesz: 16,
    p_memsz: 20,
    p_flags: 24,
    p_align: 28,
    shent: 40,
    sh_type: 4,
    sh_offset: 16,
    sh_size: 20,
    sh_link: 24,
    sh_info: 28,
    sh_addralign: 32,
};

const LAYOUT64: Layout = Layout {
    ehsize: 64,
    e_entry: 24,
    e_phoff: 32,
    e_shoff: 40,
    e_phentsize: 54,
    e_phnum: 56,
    e_shentsize: 58,
    e_shnum: 60,
    e_shstrndx: 62,
    phent: 56,
    p_offset: 8,
    p_vaddr: 16,
    p_paddr: 24,
    p_filesz: 32,
    p_memsz: 40,
    p_flags: 4,
    p_align: 48,
    shent: 64,
    sh_type: 4,
    sh_offset: 24,
    sh_size: 32,
    sh_link: 40,
    sh_info: 44,
    sh_addralign: 48,
};

/// One section header, as far as the parser needs it.
struct Shdr {
    index: u64,
    /// File offset of this header.
    at: u64,
    name: u32,
    sh_type: u32,
    offset: u64,
    size: u64,
    addralign: u64,
}

/// A `[start, end)` range owned by a program header, for the overlap checks.
struct Range {
    // u128: a segment may end exactly at the top of the 64-bit address space (2^64).
    start: u128,
    end: u128,
    phdr: usize,
}

pub(super) fn parse(data: &[u8]) -> Result<ElfImage, FormatError> {
    // e_ident.
    let magic = slice(data, 0, 4, "ELF magic (e_ident[0..4])")?;
    if magic != ELF_MAGIC {
        return Err(FormatError::BadMagic {
            what: "ELF header",
            offset: 0,
            expected: "7f 45 4c 46".into(),
            found: hex_prefix(magic, 0),
        });
    }
    let ident = slice(data, 0, 16, "ELF identification (e_ident)")?;
    let class = match ident[4] {
        1 => ElfClass::Elf32,
        2 => ElfClass::Elf64,
        other => {
            return Err(FormatError::Field {
                field: "EI_CLASS",
                offset: 4,
                value: other.into(),
                limit: "is neither 1 (ELFCLASS32) nor 2 (ELFCLASS64)".into(),
            });
        }
    };
    let endianness = match ident[5] {
        1 => Endianness::Little,
        2 => Endianness::Big,
        other => {
            return Err(FormatError::Field {
                field: "EI_DATA",
                offset: 5,
                value: other.into(),
                limit: "is neither 1 (ELFDATA2LSB, little-endian) nor 2 (ELFDATA2MSB, big-endian)"
                    .into(),
            });
        }
    };
    if ident[6] != 1 {
        return Err(FormatError::Field {
            field: "EI_VERSION",
            offset: 6,
            value: ident[6].into(),
            limit: "is not 1 (EV_CURRENT)".into(),
        });
    }
    let l = match class {
        ElfClass::Elf32 => &LAYOUT32,
        ElfClass::Elf64 => &LAYOUT64,
    };
    slice(data, 0, l.ehsize, "ELF header")?;
    let rd = Rd {
        data,
        big: endianness == Endianness::Big,
        class,
    };
    let file_len = rd.len();

    let e_type = rd.u16(16, "e_type")?;
    let machine = rd.u16(18, "e_machine")?;
    let entry = rd.word(l.e_entry, "e_entry")?;
    let phoff = rd.word(l.e_phoff, "e_phoff")?;
    let shoff = rd.word(l.e_shoff, "e_shoff")?;
    let phentsize = rd.u16(l.e_phentsize, "e_phentsize")?;
    let phnum_raw = rd.u16(l.e_phnum, "e_phnum")?;
    let shentsize = rd.u16(l.e_shentsize, "e_shentsize")?;
    let shnum_raw = rd.u16(l.e_shnum, "e_shnum")?;
    let shstrndx_raw = rd.u16(l.e_shstrndx, "e_shstrndx")?;

    // Section header 0 carries the extended counts (e_shnum 0, e_phnum PN_XNUM, e_shstrndx
    // SHN_XINDEX), so the section table is validated first.
    let mut shnum = 0u64;
    let mut sec0_info = None;
    let mut sec0_link = None;
    if shoff != 0 {
        if u64::from(shentsize) != l.shent {
            return Err(FormatError::Field {
                field: "e_shentsize",
                offset: l.e_shentsize,
                value: shentsize.into(),
                limit: format!(
                    "does not match the {} section header size {}",
                    class_name(class),
                    l.shent
                ),
            });
        }
        slice(data, shoff, l.shent, "section header 0")?;
        shnum = u64::from(shnum_raw);
        if shnum_raw == 0 {
            // More than 0xff00 sections: the count is in sh_size of section 0.
            shnum = rd.word(shoff + l.sh_size, "sh_size of section header 0")?;
        }
        sec0_info = Some(rd.u32(shoff + l.sh_info, "sh_info of section header 0")?);
        sec0_link = Some(rd.u32(shoff + l.sh_link, "sh_link of section header 0")?);
        let table = shnum
            .checked_mul(l.shent)
            .ok_or_else(|| FormatError::Field {
                field: "sh_size of section header 0 (e_shnum = 0)",
                offset: shoff + l.sh_size,
                value: shnum,
                limit: "section headers overflow 64 bits".into(),
            })?;
        slice(data, shoff, table, "section header table")?;
    }

    // Program header table.
    let phnum = if phnum_raw == PN_XNUM {
        match sec0_info {
            Some(info) => {
                let phnum = u64::from(info);
                if phnum > MAX_PROGRAM_HEADERS {
                    return Err(FormatError::Field {
                        field: "sh_info of section header 0 (e_phnum = PN_XNUM)",
                        offset: shoff + l.sh_info,
                        value: phnum,
                        limit: format!(
                            "exceeds the limit of {MAX_PROGRAM_HEADERS} program headers"
                        ),
                    });
                }
                phnum
            }
            None => {
                return Err(FormatError::Field {
                    field: "e_phnum",
                    offset: l.e_phnum,
                    value: phnum_raw.into(),
                    limit: "is PN_XNUM, but there is no section header 0 (e_shoff = 0) to hold the real count".into(),
                });
            }
        }
    } else {
        u64::from(phnum_raw)
    };
    if phnum > MAX_PROGRAM_HEADERS {
        return Err(FormatError::Field {
            field: "e_phnum",
            offset: l.e_phnum,
            value: phnum,
            limit: format!("exceeds the limit of {MAX_PROGRAM_HEADERS} program headers"),
        });
    }
    if phnum > 0 {
        if u64::from(phentsize) != l.phent {
            return Err(FormatError::Field {
                field: "e_phentsize",
                offset: l.e_phentsize,
                value: phentsize.into(),
                limit: format!(
                    "does not match the {} program header size {}",
                    class_name(class),
                    l.phent
                ),
            });
        }
        // phnum <= 4096 and phent <= 56: no overflow.
        slice(data, phoff, phnum * l.phent, "program header table")?;
    }

    let mut segments = Vec::new();
    let mut note_regions = Vec::new();
    let addr_limit: u128 = 1u128 << class.bits();
    for i in 0..phnum {
        let at = phoff + i * l.phent;
        let p_type = rd.u32(at, "p_type")?;
        if p_type != PT_LOAD && p_type != PT_NOTE {
            continue;
        }
        let index = i as usize;
        let offset = rd.word(at + l.p_offset, "p_offset")?;
        let filesz = rd.word(at + l.p_filesz, "p_filesz")?;
        let align = rd.word(at + l.p_align, "p_align")?;
        let kind = if p_type == PT_LOAD {
            "PT_LOAD"
        } else {
            "PT_NOTE"
        };
        let file_end = offset.checked_add(filesz);
        if file_end.is_none_or(|end| end > file_len) {
            return Err(FormatError::Field {
                field: "p_filesz",
                offset: at + l.p_filesz,
                value: filesz,
                limit: format!(
                    "of {kind} program header {index} at p_offset {offset:#x} runs past the end of the file ({file_len:#x} bytes)"
                ),
            });
        }
        if p_type == PT_NOTE {
            note_regions.push(NoteRegion {
                start: offset,
                size: filesz,
                align,
                source: NoteSource::Segment(index),
            });
            continue;
        }
        let vaddr = rd.word(at + l.p_vaddr, "p_vaddr")?;
        let paddr = rd.word(at + l.p_paddr, "p_paddr")?;
        let memsz = rd.word(at + l.p_memsz, "p_memsz")?;
        let flags = rd.u32(at + l.p_flags, "p_flags")?;
        if filesz > memsz {
            return Err(FormatError::Field {
                field: "p_filesz",
                offset: at + l.p_filesz,
                value: filesz,
                limit: format!("exceeds p_memsz {memsz:#x} of PT_LOAD program header {index}"),
            });
        }
        if memsz > MAX_SEGMENT_MEMSZ {
            return Err(FormatError::Field {
                field: "p_memsz",
                offset: at + l.p_memsz,
                value: memsz,
                limit: format!(
                    "of PT_LOAD program header {index} exceeds the limit of 64 GiB ({MAX_SEGMENT_MEMSZ:#x})"
                ),
            });
        }
        for (field, field_at, addr) in [
            ("p_paddr", at + l.p_paddr, paddr),
            ("p_vaddr", at + l.p_vaddr, vaddr),
        ] {
            if u128::from(addr) + u128::from(memsz) > addr_limit {
                return Err(FormatError::Field {
                    field,
                    offset: field_at,
                    value: addr,
                    limit: format!(
                        "plus p_memsz {memsz:#x} of PT_LOAD program header {index} overflows the {}-bit address space",
                        class.bits()
                    ),
                });
            }
        }
        segments.push(Segment {
            index,
            paddr,
            vaddr,
            offset,
            filesz,
            memsz,
            flags,
            perms: perms(flags),
            align,
        });
    }
    check_overlaps(
        "PT_LOAD segments (physical addresses)",
        "paddr",
        segments.iter().map(|s| Range {
            start: u128::from(s.paddr),
            end: u128::from(s.paddr) + u128::from(s.memsz),
            phdr: s.index,
        }),
    )?;
    check_overlaps(
        "PT_LOAD segments (file ranges)",
        "file",
        segments.iter().map(|s| Range {
            start: u128::from(s.offset),
            end: u128::from(s.offset) + u128::from(s.filesz),
            phdr: s.index,
        }),
    )?;

    // Sections: names, notes and __xen_guest.
    let mut xen_guest = None;
    let mut sections = Vec::new();
    let mut warnings = Vec::new();
    if shnum > 0 {
        let shstrndx = if shstrndx_raw == SHN_XINDEX {
            u64::from(sec0_link.unwrap_or(0))
        } else {
            u64::from(shstrndx_raw)
        };
        let strtab = if shstrndx == 0 {
            None
        } else if shstrndx >= shnum {
            return Err(FormatError::Field {
                field: if shstrndx_raw == SHN_XINDEX {
                    "sh_link of section header 0 (e_shstrndx = SHN_XINDEX)"
                } else {
                    "e_shstrndx"
                },
                offset: if shstrndx_raw == SHN_XINDEX {
                    shoff + l.sh_link
                } else {
                    l.e_shstrndx
                },
                value: shstrndx,
                limit: format!("is not below the section count {shnum}"),
            });
        } else {
            let sh = read_shdr(&rd, l, shoff, shstrndx)?;
            if sh.sh_type == SHT_NOBITS {
                None
            } else {
                Some(section_data(data, l, &sh, "the section name string table")?)
            }
        };
        for j in 0..shnum {
            let sh = read_shdr(&rd, l, shoff, j)?;
            if sh.sh_type == SHT_NOBITS {
                continue;
            }
            let name = strtab.and_then(|t| c_string(t, sh.name.into(), MAX_SECTION_NAME));
            if section_data(data, l, &sh, "a section").is_ok() {
                sections.push(Section {
                    index: j,
                    name: name.clone(),
                    sh_type: sh.sh_type,
                    offset: sh.offset,
                    size: sh.size,
                });
            }
            if sh.sh_type == SHT_NOTE {
                let label = name.clone().unwrap_or_else(|| format!("[{j}]"));
                section_data(data, l, &sh, "an SHT_NOTE section")?;
                note_regions.push(NoteRegion {
                    start: sh.offset,
                    size: sh.size,
                    align: sh.addralign,
                    source: NoteSource::Section(label),
                });
            }
            if xen_guest.is_none() && name.as_deref() == Some("__xen_guest") {
                let bytes = section_data(data, l, &sh, "the __xen_guest section")?;
                let text = bytes.split(|&b| b == 0).next().unwrap_or(&[]);
                if text.len() > MAX_XEN_GUEST {
                    warnings.push(format!(
                        "the __xen_guest string ({} bytes) is cut at {MAX_XEN_GUEST} bytes",
                        text.len()
                    ));
                }
                let text = &text[..text.len().min(MAX_XEN_GUEST)];
                xen_guest = Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }

    let mut collector = NoteCollector::new(rd);
    for region in &note_regions {
        collector.parse_region(region)?;
    }
    let (notes, xen, note_warnings) = collector.finish();
    warnings.extend(note_warnings);

    let pvh_entry = xen.phys32_entry;
    let image = ElfImage {
        class,
        endianness,
        e_type,
        e_type_name: elf_type_name(e_type),
        machine,
        machine_name: machine_name(machine),
        entry,
        pvh_entry,
        phnum,
        shnum,
        segments,
        notes,
        xen,
        xen_guest,
        sections,
        warnings,
    };
    Ok(with_warnings(image))
}

/// Adds the warnings that need the whole image.
fn with_warnings(mut image: ElfImage) -> ElfImage {
    let mut warnings = Vec::new();
    if !image.is_x86() {
        warnings.push(format!(
            "e_machine {} ({}) is not x86 (i386 or x86_64): domboot cannot boot this kernel",
            image.machine,
            image.machine_name.unwrap_or("unknown")
        ));
    }
    if image.segments.is_empty() {
        warnings.push("no PT_LOAD segments: nothing to load".into());
    } else if !image
        .segments
        .iter()
        .any(|s| s.contains_paddr(image.entry) || s.contains_vaddr(image.entry))
    {
        warnings.push(format!(
            "e_entry {:#x} lies in no PT_LOAD segment",
            image.entry
        ));
    }
    if let Some(pvh) = image.pvh_entry {
        if !image.segments.iter().any(|s| s.contains_paddr(pvh)) {
            warnings.push(format!(
                "the PVH entry (XEN_ELFNOTE_PHYS32_ENTRY) {pvh:#x} lies in no PT_LOAD segment's physical range"
            ));
        }
    }
    image.warnings.extend(warnings);
    image
}

fn class_name(class: ElfClass) -> &'static str {
    match class {
        ElfClass::Elf32 => "ELFCLASS32",
        ElfClass::Elf64 => "ELFCLASS64",
    }
}

fn read_shdr(rd: &Rd, l: &Layout, shoff: u64, index: u64) -> Result<Shdr, FormatError> {
    // The whole table was checked to lie inside the file.
    let at = shoff + index * l.shent;
    Ok(Shdr {
        index,
        at,
        name: rd.u32(at, "sh_name")?,
        sh_type: rd.u32(at + l.sh_type, "sh_type")?,
        offset: rd.word(at + l.sh_offset, "sh_offset")?,
        size: rd.word(at + l.sh_size, "sh_size")?,
        addralign: rd.word(at + l.sh_addralign, "sh_addralign")?,
    })
}

/// A section's file bytes, or an error naming `sh_size` when they leave the file.
fn section_data<'a>(
    data: &'a [u8],
    l: &Layout,
    sh: &Shdr,
    what: &str,
) -> Result<&'a [u8], FormatError> {
    slice(data, sh.offset, sh.size, "section data").map_err(|_| FormatError::Field {
        field: "sh_size",
        offset: sh.at + l.sh_size,
        value: sh.size,
        limit: format!(
            "of section {} ({what}) at sh_offset {:#x} runs past the end of the file ({:#x} bytes)",
            sh.index,
            sh.offset,
            data.len()
        ),
    })
}

/// Fails when two non-empty ranges intersect.
fn check_overlaps(
    what: &'static str,
    label: &str,
    ranges: impl Iterator<Item = Range>,
) -> Result<(), FormatError> {
    let mut ranges: Vec<Range> = ranges.filter(|r| r.end > r.start).collect();
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut widest: Option<&Range> = None;
    for r in &ranges {
        if let Some(w) = widest {
            if r.start < w.end {
                let describe = |r: &Range| {
                    format!(
                        "PT_LOAD program header {} ({label} {:#x}..{:#x})",
                        r.phdr, r.start, r.end
                    )
                };
                let (first, second) = if w.phdr < r.phdr { (w, r) } else { (r, w) };
                return Err(FormatError::Overlap {
                    what,
                    first: describe(first),
                    second: describe(second),
                });
            }
        }
        if widest.is_none_or(|w| r.end > w.end) {
            widest = Some(r);
        }
    }
    Ok(())
}
