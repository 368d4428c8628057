//! The ELF loader: real vmlinux files cross-checked against `readelf`, hand-built ELFs for
//! every validation error, and property tests (mutations never panic; synthetic ELFs parse
//! back to what was built).

use domboot_testkit as support;

use bytes::Bytes;
use domboot_formats::elf::{ElfClass, ElfImage, ElfLoader, Endianness, NoteValue};
use domboot_formats::{Format, FormatError, LoadContext, Loader};
use proptest::prelude::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------
// A tiny ELF writer.
// ---------------------------------------------------------------------------------------

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PT_PHDR: u32 = 6;
const SHT_PROGBITS: u32 = 1;
const SHT_NOTE: u32 = 7;

#[derive(Clone, Debug)]
struct Seg {
    p_type: u32,
    flags: u32,
    paddr: u64,
    vaddr: u64,
    data: Vec<u8>,
    memsz: u64,
    align: u64,
}

impl Seg {
    fn load(paddr: u64, data: Vec<u8>, memsz: u64, flags: u32) -> Seg {
        Seg {
            p_type: PT_LOAD,
            flags,
            paddr,
            vaddr: paddr + 0xffff_ffff_8000_0000,
            memsz,
            data,
            align: 0x1000,
        }
    }
    fn note(data: Vec<u8>) -> Seg {
        let len = data.len() as u64;
        Seg {
            p_type: PT_NOTE,
            flags: 4,
            paddr: 0,
            vaddr: 0,
            data,
            memsz: len,
            align: 4,
        }
    }
}

#[derive(Clone, Debug)]
enum Content {
    Own(Vec<u8>),
    /// The bytes of program header N (a section inside a segment, like `.notes`).
    Segment(usize),
}

#[derive(Clone, Debug)]
struct Sec {
    name: String,
    sh_type: u32,
    content: Content,
    align: u64,
}

#[derive(Clone, Debug)]
struct Builder {
    is64: bool,
    big: bool,
    machine: u16,
    e_type: u16,
    entry: u64,
    segs: Vec<Seg>,
    secs: Vec<Sec>,
}

/// The built file and where things went.
struct Built {
    bytes: Vec<u8>,
    phoff: u64,
    shoff: u64,
    seg_offsets: Vec<u64>,
    is64: bool,
    big: bool,
}

impl Builder {
    fn new(is64: bool) -> Builder {
        Builder {
            is64,
            big: false,
            machine: if is64 { 62 } else { 3 },
            e_type: 2,
            entry: 0x100_0000,
            segs: Vec::new(),
            secs: Vec::new(),
        }
    }
    fn seg(mut self, s: Seg) -> Self {
        self.segs.push(s);
        self
    }
    fn sec(mut self, name: &str, sh_type: u32, content: Content) -> Self {
        self.secs.push(Sec {
            name: name.into(),
            sh_type,
            content,
            align: 4,
        });
        self
    }
    /// A typical kernel: text and data segments, notes in a PT_NOTE and a `.notes` section.
    fn kernel(is64: bool, notes: Vec<u8>) -> Builder {
        Builder::new(is64)
            .seg(Seg::load(0x100_0000, vec![0x90; 0x300], 0x300, 5))
            .seg(Seg::load(0x100_1000, vec![1; 0x80], 0x2000, 6))
            .seg(Seg::note(notes))
            .sec(".notes", SHT_NOTE, Content::Segment(2))
    }

    fn build(&self) -> Built {
        let (ehsize, phent, shent) = if self.is64 {
            (64, 56, 64)
        } else {
            (52, 32, 40)
        };
        let phoff = ehsize as u64;
        let mut out = vec![0u8; ehsize + phent * self.segs.len()];
        let mut seg_offsets = Vec::new();
        for s in &self.segs {
            let at = out.len().next_multiple_of(16);
            out.resize(at, 0);
            seg_offsets.push(at as u64);
            out.extend(&s.data);
        }
        // Section contents and names.
        let mut shstrtab = vec![0u8];
        let mut sec_rows = Vec::new(); // (name offset, type, offset, size, align)
        for s in &self.secs {
            let name_off = shstrtab.len() as u64;
            shstrtab.extend(s.name.as_bytes());
            shstrtab.push(0);
            let (off, size) = match &s.content {
                Content::Own(data) => {
                    let at = out.len().next_multiple_of(8);
                    out.resize(at, 0);
                    out.extend(data);
                    (at as u64, data.len() as u64)
                }
                Content::Segment(i) => (seg_offsets[*i], self.segs[*i].data.len() as u64),
            };
            sec_rows.push((name_off, s.sh_type, off, size, s.align));
        }
        let name_off = shstrtab.len() as u64;
        shstrtab.extend(b".shstrtab\0");
        let strtab_at = out.len() as u64;
        out.extend(&shstrtab);
        sec_rows.push((name_off, 3, strtab_at, shstrtab.len() as u64, 1));
        let shoff = out.len().next_multiple_of(8) as u64;
        out.resize(shoff as usize + shent * (sec_rows.len() + 1), 0);
        let b = Built {
            bytes: out,
            phoff,
            shoff,
            seg_offsets,
            is64: self.is64,
            big: self.big,
        };
        let mut b = b;
        let w = if self.is64 { 8 } else { 4 };
        // ELF header.
        b.bytes[..4].copy_from_slice(b"\x7fELF");
        b.bytes[4] = if self.is64 { 2 } else { 1 };
        b.bytes[5] = if self.big { 2 } else { 1 };
        b.bytes[6] = 1;
        b.put(16, 2, self.e_type.into());
        b.put(18, 2, self.machine.into());
        b.put(20, 4, 1);
        b.put(24, w, self.entry);
        let (o_phoff, o_shoff, o_ehsize) = if self.is64 {
            (32, 40, 52)
        } else {
            (28, 32, 40)
        };
        b.put(o_phoff, w, phoff);
        b.put(o_shoff, w, shoff);
        b.put(o_ehsize, 2, ehsize as u64);
        b.put(o_ehsize + 2, 2, phent as u64);
        b.put(o_ehsize + 4, 2, self.segs.len() as u64);
        b.put(o_ehsize + 6, 2, shent as u64);
        b.put(o_ehsize + 8, 2, sec_rows.len() as u64 + 1);
        b.put(o_ehsize + 10, 2, sec_rows.len() as u64);
        for (i, s) in self.segs.iter().enumerate() {
            let off = b.seg_offsets[i];
            b.set_phdr(i, "type", s.p_type.into());
            b.set_phdr(i, "flags", s.flags.into());
            b.set_phdr(i, "offset", off);
            b.set_phdr(i, "vaddr", s.vaddr);
            b.set_phdr(i, "paddr", s.paddr);
            b.set_phdr(i, "filesz", s.data.len() as u64);
            b.set_phdr(i, "memsz", s.memsz);
            b.set_phdr(i, "align", s.align);
        }
        for (j, (name, ty, off, size, align)) in sec_rows.into_iter().enumerate() {
            let at = shoff + shent as u64 * (j as u64 + 1);
            let (o_off, o_size, o_align) = if self.is64 {
                (24, 32, 48)
            } else {
                (16, 20, 32)
            };
            b.put(at, 4, name);
            b.put(at + 4, 4, ty.into());
            b.put(at + o_off, w, off);
            b.put(at + o_size, w, size);
            b.put(at + o_align, w, align);
        }
        b
    }
}

impl Built {
    fn put(&mut self, at: u64, width: usize, value: u64) {
        let at = at as usize;
        let bytes = if self.big {
            value.to_be_bytes()[8 - width..].to_vec()
        } else {
            value.to_le_bytes()[..width].to_vec()
        };
        self.bytes[at..at + width].copy_from_slice(&bytes);
    }
    fn phdr_field(&self, i: usize, field: &str) -> (u64, usize) {
        let (phent, w) = if self.is64 { (56, 8) } else { (32, 4) };
        let rel = match (self.is64, field) {
            (_, "type") => (0, 4),
            (true, "flags") => (4, 4),
            (true, "offset") => (8, w),
            (true, "vaddr") => (16, w),
            (true, "paddr") => (24, w),
            (true, "filesz") => (32, w),
            (true, "memsz") => (40, w),
            (true, "align") => (48, w),
            (false, "offset") => (4, w),
            (false, "vaddr") => (8, w),
            (false, "paddr") => (12, w),
            (false, "filesz") => (16, w),
            (false, "memsz") => (20, w),
            (false, "flags") => (24, 4),
            (false, "align") => (28, w),
            _ => panic!("{field}"),
        };
        (self.phoff + phent * i as u64 + rel.0, rel.1)
    }
    fn set_phdr(&mut self, i: usize, field: &str, value: u64) {
        let (at, w) = self.phdr_field(i, field);
        self.put(at, w, value);
    }
    /// Offsets of e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx.
    fn eh(&self, field: &str) -> u64 {
        let base = if self.is64 { 54 } else { 42 };
        base + match field {
            "phentsize" => 0,
            "phnum" => 2,
            "shentsize" => 4,
            "shnum" => 6,
            "shstrndx" => 8,
            _ => panic!("{field}"),
        }
    }
    fn set_eh(&mut self, field: &str, value: u16) {
        let at = self.eh(field);
        self.put(at, 2, value.into());
    }
    fn parse(&self) -> Result<ElfImage, FormatError> {
        ElfImage::parse(&self.bytes)
    }
}

fn note(owner: &str, n_type: u32, desc: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let name = [owner.as_bytes(), b"\0"].concat();
    v.extend((name.len() as u32).to_le_bytes());
    v.extend((desc.len() as u32).to_le_bytes());
    v.extend(n_type.to_le_bytes());
    v.extend(&name);
    v.resize(v.len().next_multiple_of(4), 0);
    v.extend(desc);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

fn pvh_notes() -> Vec<u8> {
    [
        note("GNU", 3, &[0xab; 20]),
        note("Linux", 0x101, &0u32.to_le_bytes()),
        note("Xen", 18, &0x100_0040u64.to_le_bytes()),
    ]
    .concat()
}

fn field_err(r: Result<ElfImage, FormatError>) -> (&'static str, u64, u64, String) {
    match r {
        Err(FormatError::Field {
            field,
            offset,
            value,
            limit,
        }) => (field, offset, value, limit),
        other => panic!("expected FormatError::Field, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Real kernels, cross-checked against readelf.
// ---------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
struct RSeg {
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    flags: u32,
}

#[derive(Debug)]
struct RNote {
    owner: String,
    size: u64,
    n_type: Option<u32>,
    desc: Option<Vec<u8>>,
    build_id: Option<String>,
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// `readelf -lnW`: the PT_LOADs and the notes.
fn readelf(path: &PathBuf) -> (Vec<RSeg>, Vec<RNote>) {
    let out = Command::new("readelf")
        .arg("-lnW")
        .arg(path)
        .output()
        .expect("readelf (binutils) must be installed for this test");
    assert!(out.status.success(), "readelf failed on {}", path.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut segs = Vec::new();
    let mut notes: Vec<RNote> = Vec::new();
    let mut in_notes = false;
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.first() == Some(&"LOAD") {
            let flags: String = t[6..t.len() - 1].concat();
            segs.push(RSeg {
                offset: hex(t[1]),
                vaddr: hex(t[2]),
                paddr: hex(t[3]),
                filesz: hex(t[4]),
                memsz: hex(t[5]),
                flags: flags.chars().fold(0, |f, c| {
                    f | match c {
                        'R' => 4,
                        'W' => 2,
                        'E' => 1,
                        _ => panic!("flag {c} in {line}"),
                    }
                }),
            });
            continue;
        }
        if line.starts_with("Displaying notes") {
            in_notes = true;
            continue;
        }
        if !in_notes || t.is_empty() || t[0] == "Owner" {
            continue;
        }
        if t.len() >= 2 && t[1].starts_with("0x") && !line.trim_start().starts_with("description") {
            let n_type = line
                .split("(0x")
                .nth(1)
                .and_then(|s| s.split(')').next())
                .map(|s| u32::from_str_radix(s, 16).unwrap());
            notes.push(RNote {
                owner: t[0].to_string(),
                size: hex(t[1]),
                n_type,
                desc: None,
                build_id: None,
            });
        }
        if let Some(rest) = line.split("description data:").nth(1) {
            let bytes = rest
                .split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).unwrap())
                .collect();
            notes.last_mut().expect("a note before its data").desc = Some(bytes);
        }
        if let Some(id) = line.split("Build ID:").nth(1) {
            notes
                .last_mut()
                .expect("a note before its build ID")
                .build_id = Some(id.trim().to_string());
        }
    }
    (segs, notes)
}

fn vmlinux_files() -> Vec<PathBuf> {
    let dir = support::shared_dir().join("kernels");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinux-"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no vmlinux-* in {}", dir.display());
    files
}

#[test]
fn real_vmlinux_matches_readelf() {
    for path in vmlinux_files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let bytes = Bytes::from(data);
        assert!(ElfLoader.probe(&bytes).is_some(), "{name}");
        let loaded = ElfLoader
            .load(&bytes, &LoadContext::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(loaded.inner.is_none());
        let image = ElfImage::parse(&bytes).unwrap();
        assert_eq!(loaded.format, image.class.format());
        assert!(image.warnings.is_empty(), "{name}: {:?}", image.warnings);
        assert!(image.is_x86());

        let (rsegs, rnotes) = readelf(&path);
        assert!(
            !rsegs.is_empty() && rnotes.len() >= 3,
            "{name}: readelf output not understood"
        );
        let ours: Vec<RSeg> = image
            .segments
            .iter()
            .map(|s| RSeg {
                offset: s.offset,
                vaddr: s.vaddr,
                paddr: s.paddr,
                filesz: s.filesz,
                memsz: s.memsz,
                flags: s.flags,
            })
            .collect();
        assert_eq!(ours, rsegs, "{name}: PT_LOADs differ from readelf");

        // Notes: same owners, sizes and (where readelf prints it) types and data.
        assert_eq!(image.notes.len(), rnotes.len(), "{name}: {rnotes:?}");
        for (n, r) in image.notes.iter().zip(&rnotes) {
            assert_eq!(n.owner, r.owner, "{name}");
            assert_eq!(n.desc_size, r.size, "{name} {}", n.owner);
            if let Some(t) = r.n_type {
                assert_eq!(n.n_type, t, "{name}");
            }
            if let Some(desc) = &r.desc {
                let hex: String = desc.iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(n.desc_hex.as_deref(), Some(hex.as_str()), "{name}");
            }
            // Found both through PT_NOTE and through .notes, listed once.
            assert!(
                n.segment.is_some() && n.section.as_deref() == Some(".notes"),
                "{n:?}"
            );
        }
        let build_id = image.build_id().expect("a GNU build ID");
        assert_eq!(build_id.len(), 40);
        let readelf_id = rnotes.iter().find_map(|r| r.build_id.as_deref());
        assert_eq!(Some(build_id), readelf_id, "{name}");
        let lto = image.note("Linux", 0x101).expect("LTO info note");
        assert_eq!(lto.value, Some(NoteValue::Number(0)));
        assert_eq!(lto.type_name, Some("LINUX_ELFNOTE_LTO_INFO"));

        // The PVH entry equals readelf's PHYS32_ENTRY (type 0x12) description data.
        let readelf_pvh = rnotes
            .iter()
            .find(|r| r.owner == "Xen" && r.n_type == Some(0x12))
            .map(|r| {
                let d = r.desc.as_ref().unwrap();
                let mut b = [0u8; 8];
                b[..d.len()].copy_from_slice(d);
                u64::from_le_bytes(b)
            });
        assert_eq!(image.pvh_entry, readelf_pvh, "{name}");
        let expect_pvh = name.contains("-pvh-");
        assert_eq!(image.pvh_entry.is_some(), expect_pvh, "{name}");
        if let Some(pvh) = image.pvh_entry {
            assert_eq!(image.xen.phys32_entry, Some(pvh));
            assert!(image.segments.iter().any(|s| s.contains_paddr(pvh)));
        } else {
            assert!(image.xen.is_empty(), "{name}");
        }

        if name.contains("i386") {
            assert_eq!(image.class, ElfClass::Elf32, "{name}");
            assert_eq!(loaded.format, Format::Elf32);
            assert_eq!(image.machine, 3);
            assert_eq!(image.machine_name, Some("i386"));
        } else {
            assert_eq!(image.class, ElfClass::Elf64, "{name}");
            assert_eq!(image.machine, 62);
            assert_eq!(image.machine_name, Some("x86_64"));
        }
        assert_eq!(image.endianness, Endianness::Little);
        assert_eq!(image.e_type_name, Some("exec"));
        assert_eq!(image.entry, 0x100_0000);
        assert_eq!(image.xen_guest, None);

        // Segment bytes are the file's bytes.
        let pairs = image.load_segments(&bytes).unwrap();
        for (i, (seg, data)) in pairs.iter().enumerate() {
            assert_eq!(data.len() as u64, seg.filesz);
            let start = seg.offset as usize;
            assert_eq!(*data, &bytes[start..start + seg.filesz as usize]);
            assert_eq!(image.segment_bytes(&bytes, i).unwrap(), *data);
        }
        assert!(image.segment_bytes(&bytes, pairs.len()).is_err());
        let (lo, hi) = image.paddr_range().unwrap();
        assert_eq!(lo, 0x100_0000);
        assert!(hi > lo);
        assert_eq!(
            image.vaddr_to_paddr(image.segments[0].vaddr + 0x10),
            Some(image.segments[0].paddr + 0x10)
        );

        // The JSON contract.
        let json = serde_json::to_value(&image).unwrap();
        for key in [
            "entry",
            "pvh_entry",
            "segments",
            "class",
            "endianness",
            "machine",
            "machine_name",
            "e_type",
            "phnum",
            "notes",
            "xen",
            "xen_guest",
        ] {
            assert!(json.get(key).is_some(), "{name}: JSON lacks {key}");
        }
        let seg0 = &json["segments"][0];
        for key in [
            "paddr", "vaddr", "offset", "filesz", "memsz", "flags", "perms",
        ] {
            assert!(seg0.get(key).is_some(), "{name}: segment JSON lacks {key}");
        }
        assert_eq!(seg0["perms"], "r-x");
        assert_eq!(
            json["class"],
            if name.contains("i386") {
                "elf32"
            } else {
                "elf64"
            }
        );
        if expect_pvh {
            assert_eq!(json["xen"]["phys32_entry"], json["pvh_entry"]);
        } else {
            assert!(json["pvh_entry"].is_null());
        }
    }
}

#[test]
fn real_vmlinux_through_the_chain() {
    let chain = domboot_formats::open(
        support::shared_kernel("vmlinux-x64-pvh-gzip"),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(chain.layers.len(), 1);
    let layer = chain.kernel_elf().unwrap();
    assert_eq!(layer.format, Format::Elf64);
    assert!(layer.elf().unwrap().pvh_entry.is_some());
    let json = serde_json::to_value(layer).unwrap();
    assert_eq!(json["format"], "elf64");
    assert!(json["pvh_entry"].is_u64());
}

// ---------------------------------------------------------------------------------------
// Hand-built ELFs: good ones.
// ---------------------------------------------------------------------------------------

#[test]
fn synthetic_kernels_parse_in_every_class_and_byte_order() {
    for is64 in [false, true] {
        for big in [false, true] {
            let mut b = Builder::kernel(is64, pvh_notes());
            b.big = big;
            if big {
                // Notes in big-endian too.
                b.segs[2].data = [
                    be_note("Xen", 18, &0x100_0040u32.to_be_bytes()),
                    be_note("Xen", 6, b"linux\0"),
                ]
                .concat();
            }
            let built = b.build();
            let image = built
                .parse()
                .unwrap_or_else(|e| panic!("{is64} {big}: {e}"));
            assert_eq!(
                image.class,
                if is64 {
                    ElfClass::Elf64
                } else {
                    ElfClass::Elf32
                }
            );
            assert_eq!(
                image.endianness,
                if big {
                    Endianness::Big
                } else {
                    Endianness::Little
                }
            );
            assert_eq!(image.segments.len(), 2);
            assert_eq!(image.phnum, 3);
            assert_eq!(image.shnum, 3);
            let s = &image.segments[1];
            assert_eq!(
                (s.index, s.paddr, s.filesz, s.memsz, s.perms),
                (1, 0x100_1000, 0x80, 0x2000, "rw-")
            );
            assert_eq!(s.offset, built.seg_offsets[1]);
            let expected_vaddr = if is64 {
                0xffff_ffff_8100_1000
            } else {
                0x8100_1000
            };
            if is64 {
                assert_eq!(s.vaddr, expected_vaddr);
            }
            assert_eq!(image.pvh_entry, Some(0x100_0040));
            assert!(image.warnings.is_empty(), "{:?}", image.warnings);
            if big {
                assert_eq!(image.xen.guest_os.as_deref(), Some("linux"));
            }
        }
    }
}

fn be_note(owner: &str, n_type: u32, desc: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let name = [owner.as_bytes(), b"\0"].concat();
    v.extend((name.len() as u32).to_be_bytes());
    v.extend((desc.len() as u32).to_be_bytes());
    v.extend(n_type.to_be_bytes());
    v.extend(&name);
    v.resize(v.len().next_multiple_of(4), 0);
    v.extend(desc);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

#[test]
fn xen_pv_kernel_notes_and_legacy_xen_guest_section() {
    let legacy = "GUEST_OS=linux,GUEST_VER=2.6,XEN_VER=xen-3.0,VIRT_BASE=0xC0000000,ELF_PADDR_OFFSET=0xC0000000,HYPERCALL_PAGE=0x104,LOADER=generic";
    let notes = [
        note("Xen", 6, b"linux\0"),
        note("Xen", 7, b"2.6\0"),
        note("Xen", 5, b"xen-3.0\0"),
        note("Xen", 3, &0xffff_ffff_8000_0000u64.to_le_bytes()),
        note("Xen", 1, &0xffff_ffff_8100_0000u64.to_le_bytes()),
        note("Xen", 2, &0xffff_ffff_8100_1000u64.to_le_bytes()),
        note("Xen", 4, &0u64.to_le_bytes()),
        note("Xen", 8, b"generic\0"),
        note("Xen", 9, b"yes\0"),
        note("Xen", 10, b"!writable_page_tables|pae_pgdir_above_4gb\0"),
        note("Xen", 11, b"yes\0"),
        note("Xen", 12, &0xffff_8000_0000_0000u64.to_le_bytes()),
        note(
            "Xen",
            13,
            &[1u64.to_le_bytes(), 1u64.to_le_bytes()].concat(),
        ),
        note("Xen", 14, &1u32.to_le_bytes()),
        note("Xen", 15, &0x80_0000_0000u64.to_le_bytes()),
        note("Xen", 16, &1u32.to_le_bytes()),
        note("Xen", 17, &0x801u32.to_le_bytes()),
        note("Xen", 0, b"FEATURES=x\0"),
        note("Xen", 18, &0x100_0000u32.to_le_bytes()),
    ]
    .concat();
    let image = Builder::kernel(true, notes)
        .sec(
            "__xen_guest",
            SHT_PROGBITS,
            Content::Own([legacy.as_bytes(), b"\0junk"].concat()),
        )
        .build()
        .parse()
        .unwrap();
    assert_eq!(image.xen_guest.as_deref(), Some(legacy));
    let x = &image.xen;
    assert_eq!(x.guest_os.as_deref(), Some("linux"));
    assert_eq!(x.guest_version.as_deref(), Some("2.6"));
    assert_eq!(x.xen_version.as_deref(), Some("xen-3.0"));
    assert_eq!(x.virt_base, Some(0xffff_ffff_8000_0000));
    assert_eq!(x.entry, Some(0xffff_ffff_8100_0000));
    assert_eq!(x.hypercall_page, Some(0xffff_ffff_8100_1000));
    assert_eq!(x.paddr_offset, Some(0));
    assert_eq!(x.loader.as_deref(), Some("generic"));
    assert_eq!(x.pae_mode.as_deref(), Some("yes"));
    assert_eq!(
        x.features.as_deref(),
        Some("!writable_page_tables|pae_pgdir_above_4gb")
    );
    assert_eq!(x.bsd_symtab.as_deref(), Some("yes"));
    assert_eq!(x.hv_start_low, Some(0xffff_8000_0000_0000));
    assert_eq!(x.l1_mfn_valid, Some(vec![1, 1]));
    assert_eq!(x.suspend_cancel, Some(1));
    assert_eq!(x.init_p2m, Some(0x80_0000_0000));
    assert_eq!(x.mod_start_pfn, Some(1));
    assert_eq!(x.supported_features, Some(0x801));
    assert_eq!(x.info.as_deref(), Some("FEATURES=x"));
    assert_eq!(image.pvh_entry, Some(0x100_0000));
    assert_eq!(image.notes.len(), 19);
    assert!(
        image
            .notes
            .iter()
            .all(|n| n.type_name.is_some_and(|t| t.starts_with("XEN_ELFNOTE_")))
    );
    let json = serde_json::to_value(&image).unwrap();
    assert_eq!(json["xen"]["guest_os"], "linux");
    assert_eq!(json["xen"]["supported_features"], 0x801);
    assert_eq!(json["xen_guest"], legacy);
}

#[test]
fn big_notes_and_eight_byte_aligned_notes() {
    let big = vec![0x5a; 1 << 20];
    let mut notes = note("Xen", 6, b"linux\0");
    notes.extend(note("Big", 7, &big));
    notes.extend(note("GNU", 3, &[1; 64]));
    let mut b = Builder::kernel(true, pvh_notes()).sec(".note.big", SHT_NOTE, Content::Own(notes));
    // An 8-byte-aligned note section (like .note.gnu.property): the first descriptor ends
    // 4 bytes short of an 8-byte boundary, so 4-byte alignment would misread the second note.
    let note8 = |n_type: u32, desc: &[u8]| {
        let mut v = note("GNU", n_type, desc);
        v.resize(v.len().next_multiple_of(8), 0);
        v
    };
    let abi_tag: Vec<u8> = [0u32, 3, 2, 0]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let prop = [note8(5, &[7; 12]), note8(1, &abi_tag)].concat();
    b.secs.push(Sec {
        name: ".note.gnu.property".into(),
        sh_type: SHT_NOTE,
        content: Content::Own(prop),
        align: 8,
    });
    let image = b.build().parse().unwrap();
    let big_note = image.note("Big", 7).unwrap();
    assert_eq!(big_note.desc_size, 1 << 20);
    assert_eq!(big_note.desc_hex, None);
    assert_eq!(big_note.section.as_deref(), Some(".note.big"));
    assert_eq!(
        image.note("GNU", 3).unwrap().desc_size,
        20,
        "first build ID wins lookup"
    );
    assert_eq!(image.xen.guest_os.as_deref(), Some("linux"));
    let prop = image.note("GNU", 5).unwrap();
    assert_eq!(prop.type_name, Some("NT_GNU_PROPERTY_TYPE_0"));
    assert_eq!(prop.desc_hex.as_deref(), Some("070707070707070707070707"));
    let abi = image.note("GNU", 1).unwrap();
    assert_eq!(abi.value, Some(NoteValue::Text("Linux 3.2.0".into())));
    // 3 from the kernel notes + 3 + 2.
    assert_eq!(image.notes.len(), 8);
}

#[test]
fn extended_numbering_pn_xnum() {
    let mut built = Builder::kernel(true, pvh_notes()).build();
    built.set_eh("phnum", 0xffff);
    // sh_info of section 0 holds the count.
    let sh0 = built.shoff;
    built.put(sh0 + 44, 4, 3);
    let image = built.parse().unwrap();
    assert_eq!(image.phnum, 3);
    assert_eq!(image.segments.len(), 2);
    // Absurd count through PN_XNUM.
    built.put(sh0 + 44, 4, 100_000);
    let (field, offset, value, limit) = field_err(built.parse());
    assert_eq!(field, "sh_info of section header 0 (e_phnum = PN_XNUM)");
    assert_eq!((offset, value), (sh0 + 44, 100_000));
    assert!(limit.contains("4096"), "{limit}");
    // PN_XNUM without a section table.
    let mut built = Builder::kernel(false, pvh_notes()).build();
    built.set_eh("phnum", 0xffff);
    built.put(32, 4, 0); // e_shoff
    let (field, offset, ..) = field_err(built.parse());
    assert_eq!((field, offset), ("e_phnum", 44));
    // e_shnum 0: the count is in sh_size of section 0.
    let mut built = Builder::kernel(true, pvh_notes()).build();
    built.set_eh("shnum", 0);
    built.put(sh0 + 32, 8, 3);
    assert_eq!(built.parse().unwrap().shnum, 3);
    built.put(sh0 + 32, 8, u64::MAX / 2);
    assert!(built.parse().is_err());
}

#[test]
fn non_x86_machines_are_exposed_not_rejected() {
    let mut b = Builder::kernel(true, pvh_notes());
    b.machine = 183;
    let image = b.build().parse().unwrap();
    assert_eq!(image.machine, 183);
    assert_eq!(image.machine_name, Some("aarch64"));
    assert!(!image.is_x86());
    assert!(image.warnings.iter().any(|w| w.contains("not x86")));
}

#[test]
fn segments_without_sections_and_other_program_headers() {
    let mut b = Builder::new(true)
        .seg(Seg {
            p_type: PT_PHDR,
            flags: 4,
            paddr: 0,
            vaddr: 0,
            data: vec![],
            memsz: 0x1000_0000_0000,
            align: 8,
        })
        .seg(Seg::load(0x20_0000, vec![0xcc; 16], 16, 7));
    b.entry = 0x20_0000;
    let mut built = b.build();
    built.put(40, 8, 0); // e_shoff = 0: no section table
    built.set_eh("shnum", 0);
    let image = built.parse().unwrap();
    assert_eq!(image.shnum, 0);
    assert_eq!(image.segments.len(), 1);
    assert_eq!(image.segments[0].index, 1);
    assert_eq!(image.segments[0].perms, "rwx");
    assert!(image.notes.is_empty());
    assert_eq!(image.pvh_entry, None);
    assert!(image.warnings.is_empty(), "{:?}", image.warnings);
}

// ---------------------------------------------------------------------------------------
// Hand-built ELFs: every validation error.
// ---------------------------------------------------------------------------------------

#[test]
fn truncated_headers_and_tables() {
    for is64 in [false, true] {
        let built = Builder::kernel(is64, pvh_notes()).build();
        let ehsize = if is64 { 64 } else { 52 };
        match ElfImage::parse(&built.bytes[..ehsize - 1]) {
            Err(FormatError::Truncated {
                what: "ELF header",
                offset: 0,
                need,
                ..
            }) => {
                assert_eq!(need, ehsize as u64)
            }
            other => panic!("{other:?}"),
        }
        // Program header table outside the file.
        let mut b = Builder::kernel(is64, pvh_notes()).build();
        let phoff_at = if is64 { 32 } else { 28 };
        let len = b.bytes.len() as u64;
        b.put(phoff_at, if is64 { 8 } else { 4 }, len - 10);
        assert!(matches!(
            b.parse(),
            Err(FormatError::Truncated {
                what: "program header table",
                ..
            })
        ));
        // Section header table outside the file.
        let mut b = Builder::kernel(is64, pvh_notes()).build();
        let shnum_at = b.eh("shnum");
        b.put(shnum_at, 2, 200);
        assert!(matches!(
            b.parse(),
            Err(FormatError::Truncated {
                what: "section header table",
                ..
            })
        ));
        // The whole file cut at every length: errors, never panics.
        for cut in 0..built.bytes.len() {
            let _ = ElfImage::parse(&built.bytes[..cut]);
        }
    }
}

#[test]
fn header_fields() {
    let good = Builder::kernel(true, pvh_notes()).build();
    let mut b = Builder::kernel(true, pvh_notes()).build();
    b.bytes[0] = 0x7e;
    assert!(matches!(
        b.parse(),
        Err(FormatError::BadMagic { offset: 0, .. })
    ));
    let mut b = Builder::kernel(true, pvh_notes()).build();
    b.bytes[6] = 2;
    assert_eq!(field_err(b.parse()).0, "EI_VERSION");

    let mut b = Builder::kernel(true, pvh_notes()).build();
    b.set_eh("phentsize", 32);
    let (field, offset, value, limit) = field_err(b.parse());
    assert_eq!((field, offset, value), ("e_phentsize", 54, 32));
    assert!(limit.contains("56"), "{limit}");

    let mut b = Builder::kernel(false, pvh_notes()).build();
    b.set_eh("shentsize", 64);
    let (field, offset, value, limit) = field_err(b.parse());
    assert_eq!((field, offset, value), ("e_shentsize", 46, 64));
    assert!(limit.contains("40"), "{limit}");

    let mut b = Builder::kernel(false, pvh_notes()).build();
    b.set_eh("phnum", 5000);
    let (field, offset, value, _) = field_err(b.parse());
    assert_eq!((field, offset, value), ("e_phnum", 44, 5000));

    let mut b = Builder::kernel(true, pvh_notes()).build();
    b.set_eh("shstrndx", 9);
    let (field, _, value, _) = field_err(b.parse());
    assert_eq!((field, value), ("e_shstrndx", 9));
    assert!(good.parse().is_ok());
}

#[test]
fn pt_load_validation() {
    for is64 in [false, true] {
        let phent = if is64 { 56 } else { 32 };
        // Past the end of the file.
        let mut b = Builder::kernel(is64, pvh_notes()).build();
        let len = b.bytes.len() as u64;
        b.set_phdr(1, "filesz", len);
        b.set_phdr(1, "memsz", len * 2);
        let (field, offset, value, limit) = field_err(b.parse());
        assert_eq!((field, value), ("p_filesz", len));
        assert_eq!(offset, b.phdr_field(1, "filesz").0);
        assert!(
            limit.contains("PT_LOAD program header 1") && limit.contains("end of the file"),
            "{limit}"
        );
        // Offset + filesz overflowing.
        let mut b = Builder::kernel(is64, pvh_notes()).build();
        b.set_phdr(
            0,
            "offset",
            if is64 {
                u64::MAX - 4
            } else {
                u32::MAX as u64 - 4
            },
        );
        assert_eq!(field_err(b.parse()).0, "p_filesz");
        // filesz > memsz.
        let mut b = Builder::kernel(is64, pvh_notes()).build();
        b.set_phdr(1, "memsz", 0x10);
        let (field, _, value, limit) = field_err(b.parse());
        assert_eq!((field, value), ("p_filesz", 0x80));
        assert!(limit.contains("p_memsz 0x10"), "{limit}");
        // paddr + memsz past the address space.
        let mut b = Builder::kernel(is64, pvh_notes()).build();
        let top = if is64 {
            u64::MAX - 0x100
        } else {
            u32::MAX as u64 - 0x100
        };
        b.set_phdr(1, "paddr", top);
        let (field, offset, value, _) = field_err(b.parse());
        assert_eq!((field, value), ("p_paddr", top));
        assert_eq!(offset, b.phoff + phent + if is64 { 24 } else { 12 });
        // vaddr likewise.
        let mut b = Builder::kernel(is64, pvh_notes()).build();
        b.set_phdr(1, "vaddr", top);
        assert_eq!(field_err(b.parse()).0, "p_vaddr");
    }
    // Absurd memsz (ELF64 only: ELF32 cannot express it).
    let mut b = Builder::kernel(true, pvh_notes()).build();
    b.set_phdr(1, "memsz", 65 << 30);
    let (field, _, value, limit) = field_err(b.parse());
    assert_eq!((field, value), ("p_memsz", 65 << 30));
    assert!(limit.contains("64 GiB"), "{limit}");
}

#[test]
fn overlapping_segments() {
    for is64 in [false, true] {
        // In physical memory: segment 1 starts inside segment 0's memsz.
        let mut b = Builder::kernel(is64, pvh_notes()).build();
        b.set_phdr(1, "paddr", 0x100_0200);
        match b.parse() {
            Err(FormatError::Overlap {
                what,
                first,
                second,
            }) => {
                assert!(what.contains("physical"), "{what}");
                assert!(
                    first.contains("program header 0") && first.contains("0x1000000..0x1000300"),
                    "{first}"
                );
                assert!(
                    second.contains("program header 1") && second.contains("0x1000200"),
                    "{second}"
                );
            }
            other => panic!("{other:?}"),
        }
        // Contained entirely in a bigger one listed later.
        let mut b = Builder::kernel(is64, pvh_notes()).build();
        b.set_phdr(1, "paddr", 0x0ff_0000);
        b.set_phdr(1, "memsz", 0x10_0000);
        assert!(matches!(b.parse(), Err(FormatError::Overlap { .. })));
        // Same file bytes for two segments.
        let mut b = Builder::kernel(is64, pvh_notes()).build();
        let off0 = b.seg_offsets[0];
        b.set_phdr(1, "offset", off0 + 0x10);
        match b.parse() {
            Err(FormatError::Overlap { what, .. }) => assert!(what.contains("file"), "{what}"),
            other => panic!("{other:?}"),
        }
        // Adjacent is fine.
        let mut b = Builder::kernel(is64, pvh_notes()).build();
        b.set_phdr(1, "paddr", 0x100_0300);
        assert!(b.parse().is_ok());
    }
    // A segment that ends exactly at the top of the 64-bit address space (found by the
    // elf fuzz target: the overlap check's end overflowed u64).
    let mut b = Builder::kernel(true, pvh_notes()).build();
    b.set_phdr(1, "memsz", 0x1000);
    b.set_phdr(1, "paddr", 0u64.wrapping_sub(0x1000));
    let r = b.parse();
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn note_validation() {
    // namesz past the segment.
    let mut notes = pvh_notes();
    notes[0..4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let b = Builder::kernel(true, notes).build();
    let (field, offset, value, limit) = field_err(b.parse());
    assert_eq!((field, value), ("n_namesz", 0xffff_fff0));
    assert_eq!(offset, b.seg_offsets[2]);
    assert!(limit.contains("PT_NOTE program header 2"), "{limit}");
    // descsz past the segment (and overflowing with alignment).
    for descsz in [0x100u32, u32::MAX] {
        let mut notes = pvh_notes();
        notes[4..8].copy_from_slice(&descsz.to_le_bytes());
        let b = Builder::kernel(false, notes).build();
        let (field, offset, value, _) = field_err(b.parse());
        assert_eq!((field, value), ("n_descsz", descsz.into()));
        assert_eq!(offset, b.seg_offsets[2] + 4);
    }
    // Too many notes.
    let many = note("X", 1, &[]).repeat(2000);
    let (field, ..) = field_err(Builder::kernel(true, many).build().parse());
    assert_eq!(field, "note count");
    // PT_NOTE past the end of the file.
    let mut b = Builder::kernel(true, pvh_notes()).build();
    b.set_phdr(2, "filesz", 1 << 40);
    let (field, _, _, limit) = field_err(b.parse());
    assert_eq!(field, "p_filesz");
    assert!(limit.contains("PT_NOTE"), "{limit}");
    // SHT_NOTE section past the end of the file.
    let mut b = Builder::kernel(true, pvh_notes()).build();
    let sh1 = b.shoff + 64;
    b.put(sh1 + 32, 8, 1 << 40);
    let (field, offset, _, limit) = field_err(b.parse());
    assert_eq!((field, offset), ("sh_size", sh1 + 32));
    assert!(limit.contains("SHT_NOTE"), "{limit}");
    // A cut-off note header at the end of the segment.
    let mut notes = pvh_notes();
    notes.extend([1, 2, 3, 4]);
    assert!(matches!(
        Builder::kernel(true, notes).build().parse(),
        Err(FormatError::Truncated {
            what: "note header",
            ..
        })
    ));
    // A PHYS32_ENTRY of a size no numeric note has.
    let notes = note("Xen", 18, &[0; 3]);
    assert_eq!(
        field_err(Builder::kernel(true, notes).build().parse()).0,
        "n_descsz"
    );
    // A PVH entry above 4 GiB.
    let notes = note("Xen", 18, &0x1_0000_0000u64.to_le_bytes());
    assert_eq!(
        field_err(Builder::kernel(true, notes).build().parse()).0,
        "XEN_ELFNOTE_PHYS32_ENTRY"
    );
    // A PVH entry outside every PT_LOAD: a warning.
    let notes = note("Xen", 18, &0x200_0000u32.to_le_bytes());
    let image = Builder::kernel(true, notes).build().parse().unwrap();
    assert_eq!(image.pvh_entry, Some(0x200_0000));
    assert!(
        image.warnings.iter().any(|w| w.contains("PVH")),
        "{:?}",
        image.warnings
    );
}

// ---------------------------------------------------------------------------------------
// Property tests.
// ---------------------------------------------------------------------------------------

fn i386_vmlinux() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| std::fs::read(support::shared_kernel("vmlinux-i386-norelo-xz")).unwrap())
}

/// Byte ranges of a real ELF worth mutating: the headers, the notes, the section table.
fn interesting_ranges(data: &[u8]) -> Vec<(usize, usize)> {
    let image = ElfImage::parse(data).unwrap();
    let mut ranges = vec![(0, 0x200)];
    for n in &image.notes {
        ranges.push((
            n.offset as usize,
            n.desc_offset as usize + n.desc_size as usize,
        ));
    }
    let shoff = u32::from_le_bytes(data[32..36].try_into().unwrap()) as usize;
    ranges.push((shoff, data.len()));
    ranges
}

fn mutate_and_load(data: &mut [u8], mutations: &[(usize, usize, u8)], ranges: &[(usize, usize)]) {
    for &(r, at, byte) in mutations {
        let (lo, hi) = ranges[r % ranges.len()];
        let hi = hi.min(data.len());
        if hi > lo {
            data[lo + at % (hi - lo)] = byte;
        }
    }
    let bytes = Bytes::copy_from_slice(data);
    if ElfLoader.probe(&bytes).is_some() {
        let _ = ElfLoader.load(&bytes, &LoadContext::default());
    }
    let _ = ElfImage::parse(data);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mutated_real_kernel_never_panics(
        mutations in prop::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 1..12),
        cut in any::<prop::sample::Index>(),
    ) {
        let original = i386_vmlinux();
        let ranges = interesting_ranges(original);
        let mut data = original.to_vec();
        mutate_and_load(&mut data, &mutations, &ranges);
        let _ = ElfImage::parse(&original[..cut.index(original.len())]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mutated_synthetic_elf_never_panics(
        is64 in any::<bool>(),
        big in any::<bool>(),
        mutations in prop::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut b = Builder::kernel(is64, pvh_notes())
            .sec("__xen_guest", SHT_PROGBITS, Content::Own(b"GUEST_OS=linux\0".to_vec()));
        b.big = big;
        let built = b.build();
        let len = built.bytes.len();
        let ehsize = if is64 { 64 } else { 52 };
        let ranges = [
            (0, ehsize),
            (ehsize, built.seg_offsets[0] as usize),
            (built.seg_offsets[2] as usize, built.seg_offsets[2] as usize + 64),
            (built.shoff as usize, len),
        ];
        let mut data = built.bytes.clone();
        mutate_and_load(&mut data, &mutations, &ranges);
        let _ = ElfImage::parse(&built.bytes[..cut.index(len)]);
    }

    #[test]
    fn random_bytes_after_the_magic_never_panic(
        class in 0u8..4,
        rest in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let data = [&b"\x7fELF"[..], &[class], &rest].concat();
        let _ = ElfLoader.load(&Bytes::from(data), &LoadContext::default());
    }

    #[test]
    fn valid_synthetic_elfs_parse_back(
        is64 in any::<bool>(),
        big in any::<bool>(),
        segs in prop::collection::vec((1u64..0x10_0000, 0usize..300, 0u64..0x4000, 0u32..8), 1..8),
        base in 0u64..0x1000_0000,
    ) {
        let mut b = Builder::new(is64);
        b.big = big;
        let mut paddr = base;
        let mut expected = Vec::new();
        for (gap, filesz, extra, flags) in segs {
            paddr += gap;
            let memsz = filesz as u64 + extra;
            let mut s = Seg::load(paddr, vec![0xa5; filesz], memsz, flags);
            if !is64 {
                s.vaddr = paddr + 0x8000_0000;
            }
            expected.push((paddr, s.vaddr, filesz as u64, memsz, flags));
            b.segs.push(s);
            paddr += memsz;
        }
        b.entry = base;
        let built = b.build();
        let image = built.parse().unwrap();
        let got: Vec<_> = image.segments.iter().map(|s| (s.paddr, s.vaddr, s.filesz, s.memsz, s.flags)).collect();
        prop_assert_eq!(got, expected);
        for (i, s) in image.segments.iter().enumerate() {
            prop_assert_eq!(s.offset, built.seg_offsets[i]);
            prop_assert_eq!(image.segment_bytes(&built.bytes, i).unwrap(), &b.segs[i].data[..]);
        }
        prop_assert_eq!(image.class, if is64 { ElfClass::Elf64 } else { ElfClass::Elf32 });
        prop_assert_eq!(image.pvh_entry, None);
    }
}
