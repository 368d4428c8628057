//! A streaming writer of "newc" cpio archives (magic `070701`), the format the kernel's
//! initramfs unpacker reads (`Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! Each entry is a 110-byte ASCII header (the magic and thirteen 8-digit hex fields), the
//! name with its NUL, zero padding to a multiple of 4, then the data, padded likewise. The
//! archive ends with an entry named `TRAILER!!!`; this writer then pads it to 512 bytes as
//! `cpio` and `gen_init_cpio` do.
//!
//! The writer emits no hard links (every entry has its own inode number, assigned
//! sequentially, and regular files have `nlink` 1), creates missing parent directories
//! before their children, refuses a path written twice, and streams file data from any
//! `Read` with a size known in advance, checking the reader delivered exactly that much.

use crate::error::{ArchivePath, Error, MAX_FILE_SIZE, MAX_NAME, Result, SizeChange};
use std::collections::HashMap;
use std::io::{self, Read, Write};

pub const MAGIC: &[u8; 6] = b"070701";
pub const HEADER_LEN: usize = 110;
pub const TRAILER: &str = "TRAILER!!!";

/// File type bits of `st_mode`.
pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;

/// Permission bits (with setuid, setgid and sticky).
pub const PERM_MASK: u32 = 0o7777;

/// Bytes read per call when streaming a file into the archive.
const COPY_CHUNK: usize = 256 * 1024;

/// Ownership, permissions and time of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Permission bits only (`0o7777`); the type bits come from the kind of entry.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch (newc holds 32 bits: later times are clamped).
    pub mtime: u64,
}

impl Metadata {
    /// Owned by root, with mtime 0.
    pub fn new(mode: u32) -> Self {
        Metadata {
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
        }
    }

    pub fn mtime(self, mtime: u64) -> Self {
        Metadata { mtime, ..self }
    }

    pub fn owner(self, uid: u32, gid: u32) -> Self {
        Metadata { uid, gid, ..self }
    }
}

/// Special files: device nodes, FIFOs and sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Special {
    Char { major: u32, minor: u32 },
    Block { major: u32, minor: u32 },
    Fifo,
    Socket,
}

impl Special {
    fn type_bits(self) -> u32 {
        match self {
            Special::Char { .. } => S_IFCHR,
            Special::Block { .. } => S_IFBLK,
            Special::Fifo => S_IFIFO,
            Special::Socket => S_IFSOCK,
        }
    }

    fn rdev(self) -> (u32, u32) {
        match self {
            Special::Char { major, minor } | Special::Block { major, minor } => (major, minor),
            Special::Fifo | Special::Socket => (0, 0),
        }
    }
}

/// Turns a path as users write it ("/bin/sh", "./etc//passwd", "usr/") into the archive's
/// form: components joined by '/', no leading '/', no "." components. The root itself is
/// the empty path. ".." and NUL bytes are refused: the archive must not climb out of the
/// root it is unpacked into.
pub fn normalize(path: &[u8]) -> Result<Vec<u8>> {
    let invalid = |reason| Error::InvalidPath {
        path: String::from_utf8_lossy(path).into_owned(),
        reason,
    };
    if path.contains(&0) {
        return Err(invalid("it contains a NUL byte"));
    }
    let mut out = Vec::with_capacity(path.len());
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(invalid("it contains a \"..\" component")),
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(part);
            }
        }
    }
    if out == TRAILER.as_bytes() {
        return Err(invalid("TRAILER!!! marks the end of a cpio archive"));
    }
    Ok(out)
}

/// The parent of a normalized path ("" for top-level entries).
pub fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[..i],
        None => b"",
    }
}

/// Options of a [`CpioWriter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterOptions {
    /// Write this mtime into every header instead of each entry's own.
    pub force_mtime: Option<u64>,
    /// Write uid and gid 0 into every header.
    pub force_root_owner: bool,
    /// mtime of the parent directories the writer creates by itself.
    pub implied_dir_mtime: u64,
}

impl WriterOptions {
    /// Headers that depend on nothing but the entries' paths, kinds, modes and contents:
    /// every mtime is `epoch` (0, or `SOURCE_DATE_EPOCH`) and every owner root. Sorting the
    /// entries by path is the caller's part ([`crate::Initramfs`] always does it).
    pub fn reproducible(epoch: u64) -> Self {
        WriterOptions {
            force_mtime: Some(epoch),
            force_root_owner: true,
            implied_dir_mtime: epoch,
        }
    }
}

/// Streaming newc writer. Call [`CpioWriter::finish`] to write the trailer: dropping the
/// writer leaves an archive without one.
pub struct CpioWriter<W: Write> {
    out: W,
    options: WriterOptions,
    next_ino: u32,
    offset: u64,
    /// Every path written so far, and whether it is a directory.
    written: HashMap<Vec<u8>, bool>,
    header: Vec<u8>,
    buf: Vec<u8>,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        Self::with_options(out, WriterOptions::default())
    }

    pub fn with_options(out: W, options: WriterOptions) -> Self {
        CpioWriter {
            out,
            options,
            next_ino: 1,
            offset: 0,
            written: HashMap::new(),
            header: Vec::with_capacity(HEADER_LEN + 256),
            buf: Vec::new(),
        }
    }

    /// Bytes of archive written so far.
    pub fn bytes_written(&self) -> u64 {
        self.offset
    }

    /// Entries written so far (those created implicitly included).
    pub fn entries_written(&self) -> usize {
        self.written.len()
    }

    /// A directory. Writing the root ("/" or "") does nothing: it exists already.
    pub fn dir(&mut self, path: &str, meta: Metadata) -> Result<()> {
        self.dir_bytes(&normalize(path.as_bytes())?, meta)
    }

    /// A regular file with the given contents.
    pub fn file(&mut self, path: &str, meta: Metadata, data: &[u8]) -> Result<()> {
        self.file_bytes(&normalize(path.as_bytes())?, meta, data)
    }

    /// A regular file of `size` bytes streamed from `reader`, which must deliver exactly
    /// that many bytes (else [`Error::SizeChanged`]).
    pub fn file_from_reader(
        &mut self,
        path: &str,
        meta: Metadata,
        size: u64,
        reader: impl Read,
    ) -> Result<()> {
        self.file_reader_bytes(&normalize(path.as_bytes())?, meta, size, reader, None)
    }

    /// A symbolic link to `target` (stored verbatim; it need not exist).
    pub fn symlink(&mut self, path: &str, meta: Metadata, target: &str) -> Result<()> {
        self.symlink_bytes(&normalize(path.as_bytes())?, meta, target.as_bytes())
    }

    /// A device node, FIFO or socket.
    pub fn special(&mut self, path: &str, meta: Metadata, kind: Special) -> Result<()> {
        self.special_bytes(&normalize(path.as_bytes())?, meta, kind)
    }

    /// Like [`CpioWriter::dir`], with a path already [`normalize`]d.
    pub fn dir_bytes(&mut self, path: &[u8], meta: Metadata) -> Result<()> {
        if path.is_empty() {
            return Ok(());
        }
        self.begin(path, true)?;
        self.header(path, S_IFDIR, meta, 2, 0, (0, 0))?;
        Ok(())
    }

    /// Like [`CpioWriter::file`], with a path already [`normalize`]d.
    pub fn file_bytes(&mut self, path: &[u8], meta: Metadata, data: &[u8]) -> Result<()> {
        self.file_reader_bytes(path, meta, data.len() as u64, data, None)
    }

    /// Like [`CpioWriter::file_from_reader`], with a path already [`normalize`]d;
    /// `origin` names the data's source in errors (the archive path if `None`).
    pub fn file_reader_bytes(
        &mut self,
        path: &[u8],
        meta: Metadata,
        size: u64,
        mut reader: impl Read,
        origin: Option<&std::path::Path>,
    ) -> Result<()> {
        if size > MAX_FILE_SIZE {
            return Err(Error::FileTooLarge {
                path: ArchivePath(path.to_vec()),
                size,
            });
        }
        self.begin(path, false)?;
        self.header(path, S_IFREG, meta, 1, size as u32, (0, 0))?;
        let source_name = || match origin {
            Some(p) => p.display().to_string(),
            None => ArchivePath(path.to_vec()).to_string(),
        };
        if self.buf.len() < COPY_CHUNK {
            self.buf.resize(COPY_CHUNK, 0);
        }
        let mut left = size;
        while left > 0 {
            let want = left.min(COPY_CHUNK as u64) as usize;
            let n = match reader.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(Error::SizeChanged {
                        file: source_name(),
                        expected: size,
                        change: SizeChange::Shrank(size - left),
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(source_name(), "cannot read", e)),
            };
            self.out.write_all(&self.buf[..n]).map_err(Error::Write)?;
            left -= n as u64;
        }
        loop {
            match reader.read(&mut self.buf[..1]) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(Error::SizeChanged {
                        file: source_name(),
                        expected: size,
                        change: SizeChange::Grew,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(source_name(), "cannot read", e)),
            }
        }
        self.offset += size;
        self.pad()
    }

    /// Like [`CpioWriter::symlink`], with a path already [`normalize`]d.
    pub fn symlink_bytes(&mut self, path: &[u8], meta: Metadata, target: &[u8]) -> Result<()> {
        if target.len() >= MAX_NAME {
            return Err(Error::TargetTooLong {
                path: ArchivePath(path.to_vec()),
                len: target.len(),
            });
        }
        if target.is_empty() || target.contains(&0) {
            return Err(Error::InvalidPath {
                path: String::from_utf8_lossy(target).into_owned(),
                reason: "a symlink target must be non-empty and without NUL bytes",
            });
        }
        self.begin(path, false)?;
        self.header(path, S_IFLNK, meta, 1, target.len() as u32, (0, 0))?;
        self.raw(target)?;
        self.pad()
    }

    /// Like [`CpioWriter::special`], with a path already [`normalize`]d.
    pub fn special_bytes(&mut self, path: &[u8], meta: Metadata, kind: Special) -> Result<()> {
        self.begin(path, false)?;
        self.header(path, kind.type_bits(), meta, 1, 0, kind.rdev())?;
        Ok(())
    }

    /// Whether `path` (normalized) has been written, and if so whether as a directory.
    pub fn written(&self, path: &[u8]) -> Option<bool> {
        self.written.get(path).copied()
    }

    /// Writes the trailer, pads the archive to a multiple of 512 bytes and returns the
    /// output (not flushed: the caller owns it).
    pub fn finish(self) -> Result<W> {
        Ok(self.finish_counted()?.0)
    }

    /// [`CpioWriter::finish`], also returning the archive's total size.
    pub fn finish_counted(mut self) -> Result<(W, u64)> {
        self.raw_header(TRAILER.as_bytes(), 0, 0, Metadata::new(0), 1, 0, (0, 0))?;
        let pad = (512 - (self.offset % 512) as usize) % 512;
        self.raw(&[0u8; 512][..pad])?;
        Ok((self.out, self.offset))
    }

    /// Checks the path and creates its missing parents.
    fn begin(&mut self, path: &[u8], is_dir: bool) -> Result<()> {
        if path.is_empty() {
            return Err(Error::InvalidPath {
                path: "/".into(),
                reason: "only a directory can be the root",
            });
        }
        if path.len() + 1 > MAX_NAME {
            return Err(Error::NameTooLong {
                path: ArchivePath(path.to_vec()),
                len: path.len() + 1,
            });
        }
        if self.written.contains_key(path) {
            return Err(Error::Duplicate {
                path: ArchivePath(path.to_vec()),
            });
        }
        self.ensure_parents(path)?;
        self.written.insert(path.to_vec(), is_dir);
        Ok(())
    }

    fn ensure_parents(&mut self, path: &[u8]) -> Result<()> {
        // Find the deepest ancestor already written, then create the ones below it.
        let mut missing = Vec::new();
        let mut p = parent(path);
        while !p.is_empty() {
            match self.written.get(p) {
                Some(true) => break,
                Some(false) => {
                    return Err(Error::ParentNotDirectory {
                        path: ArchivePath(path.to_vec()),
                        parent: ArchivePath(p.to_vec()),
                    });
                }
                None => missing.push(p.to_vec()),
            }
            p = parent(p);
        }
        let meta = Metadata::new(0o755).mtime(self.options.implied_dir_mtime);
        for dir in missing.into_iter().rev() {
            self.header(&dir, S_IFDIR, meta, 2, 0, (0, 0))?;
            self.written.insert(dir, true);
        }
        Ok(())
    }

    fn header(
        &mut self,
        path: &[u8],
        type_bits: u32,
        meta: Metadata,
        nlink: u32,
        size: u32,
        rdev: (u32, u32),
    ) -> Result<()> {
        if meta.mode & !PERM_MASK != 0 {
            return Err(Error::InvalidMode {
                path: ArchivePath(path.to_vec()),
                mode: meta.mode,
            });
        }
        let ino = self.next_ino;
        self.next_ino = self.next_ino.wrapping_add(1).max(1);
        let mut meta = meta;
        if let Some(t) = self.options.force_mtime {
            meta.mtime = t;
        }
        if self.options.force_root_owner {
            meta.uid = 0;
            meta.gid = 0;
        }
        self.raw_header(path, ino, type_bits | meta.mode, meta, nlink, size, rdev)
    }

    #[allow(clippy::too_many_arguments)]
    fn raw_header(
        &mut self,
        name: &[u8],
        ino: u32,
        mode: u32,
        meta: Metadata,
        nlink: u32,
        size: u32,
        rdev: (u32, u32),
    ) -> Result<()> {
        let h = &mut self.header;
        h.clear();
        h.extend_from_slice(MAGIC);
        let mtime = meta.mtime.min(u64::from(u32::MAX)) as u32;
        let namesize = name.len() as u32 + 1;
        for v in [
            ino, mode, meta.uid, meta.gid, nlink, mtime, size, 0, 0, rdev.0, rdev.1, namesize, 0,
        ] {
            push_hex8(h, v);
        }
        h.extend_from_slice(name);
        h.push(0);
        let pad = (4 - h.len() % 4) % 4;
        h.extend_from_slice(&[0u8; 3][..pad]);
        self.out.write_all(&self.header).map_err(Error::Write)?;
        self.offset += self.header.len() as u64;
        Ok(())
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(Error::Write)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<()> {
        let pad = (4 - (self.offset % 4) as usize) % 4;
        self.raw(&[0u8; 3][..pad])
    }
}

fn push_hex8(out: &mut Vec<u8>, v: u32) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for shift in (0..8).rev() {
        out.push(HEX[((v >> (shift * 4)) & 0xf) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(h: &[u8], i: usize) -> u32 {
        let s = std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).unwrap();
        u32::from_str_radix(s, 16).unwrap()
    }

    #[test]
    fn header_layout_and_padding() {
        let mut w = CpioWriter::new(Vec::new());
        w.file("/hello", Metadata::new(0o644).mtime(0x1234_5678), b"hi!!!")
            .unwrap();
        let out = w.finish().unwrap();
        assert_eq!(&out[..6], b"070701");
        assert_eq!(field(&out, 0), 1, "first inode");
        assert_eq!(field(&out, 1), 0o100644);
        assert_eq!(field(&out, 4), 1, "nlink");
        assert_eq!(field(&out, 5), 0x1234_5678);
        assert_eq!(field(&out, 6), 5, "filesize");
        assert_eq!(field(&out, 11), 6, "namesize counts the NUL");
        // 110 + 6 = 116, a multiple of 4: the data starts right after the name.
        assert_eq!(&out[110..116], b"hello\0");
        assert_eq!(&out[116..121], b"hi!!!");
        assert_eq!(&out[121..124], &[0, 0, 0], "data padded to 4");
        assert_eq!(&out[124..130], b"070701");
        let trailer = &out[124..];
        assert_eq!(field(trailer, 11), 11);
        assert_eq!(&trailer[110..121], b"TRAILER!!!\0");
        assert_eq!(out.len() % 512, 0);
        assert!(out[124 + 124..].iter().all(|&b| b == 0));
    }

    #[test]
    fn uppercase_hex_fields() {
        let mut w = CpioWriter::new(Vec::new());
        w.special(
            "dev/x",
            Metadata::new(0o600),
            Special::Block {
                major: 0xab,
                minor: 0xcdef,
            },
        )
        .unwrap();
        let out = w.finish().unwrap();
        // The implied "dev" comes first.
        assert_eq!(&out[110..114], b"dev\0");
        let second = &out[116..];
        assert_eq!(&second[6 + 8 * 9..6 + 8 * 11], b"000000AB0000CDEF");
        assert_eq!(field(second, 1), 0o060600);
        assert_eq!(field(second, 0), 2);
    }

    #[test]
    fn parents_are_created_once_and_in_order() {
        let mut w = CpioWriter::new(Vec::new());
        w.file("/a/b/c", Metadata::new(0o644), b"").unwrap();
        w.file("/a/b/d", Metadata::new(0o644), b"").unwrap();
        w.dir("/a/e", Metadata::new(0o700)).unwrap();
        assert_eq!(w.entries_written(), 5);
        assert_eq!(w.written(b"a"), Some(true));
        assert_eq!(w.written(b"a/b/c"), Some(false));
        let err = w.file("/a/b/c/x", Metadata::new(0o644), b"").unwrap_err();
        assert!(matches!(err, Error::ParentNotDirectory { .. }), "{err}");
        let err = w.dir("a/b", Metadata::new(0o755)).unwrap_err();
        assert!(matches!(err, Error::Duplicate { .. }), "{err}");
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize(b"/bin//sh/").unwrap(), b"bin/sh");
        assert_eq!(normalize(b"./etc/./passwd").unwrap(), b"etc/passwd");
        assert_eq!(normalize(b"/").unwrap(), b"");
        assert!(normalize(b"/a/../b").is_err());
        assert!(normalize(b"a\0b").is_err());
        assert!(normalize(b"TRAILER!!!").is_err());
        assert_eq!(parent(b"a/b/c"), b"a/b");
        assert_eq!(parent(b"a"), b"");
    }

    #[test]
    fn size_mismatches_are_errors() {
        let mut w = CpioWriter::new(Vec::new());
        let err = w
            .file_from_reader("/short", Metadata::new(0o644), 10, &b"12345"[..])
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::SizeChanged {
                    change: SizeChange::Shrank(5),
                    expected: 10,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("/short"));
        let mut w = CpioWriter::new(Vec::new());
        let err = w
            .file_from_reader("/long", Metadata::new(0o644), 3, &b"12345"[..])
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::SizeChanged {
                    change: SizeChange::Grew,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn limits() {
        let mut w = CpioWriter::new(Vec::new());
        let long = "x".repeat(MAX_NAME);
        let err = w.file(&long, Metadata::new(0o644), b"").unwrap_err();
        assert!(matches!(err, Error::NameTooLong { len: 4097, .. }), "{err}");
        w.file(&long[1..], Metadata::new(0o644), b"").unwrap();
        let err = w
            .symlink("/l", Metadata::new(0o777), &"t".repeat(MAX_NAME))
            .unwrap_err();
        assert!(matches!(err, Error::TargetTooLong { .. }), "{err}");
        let err = w
            .file_from_reader("/huge", Metadata::new(0o644), 1 << 32, io::empty())
            .unwrap_err();
        assert!(matches!(err, Error::FileTooLarge { .. }), "{err}");
        let err = w.file("/m", Metadata::new(0o100644), b"").unwrap_err();
        assert!(matches!(err, Error::InvalidMode { .. }), "{err}");
        let err = w.file("/", Metadata::new(0o644), b"").unwrap_err();
        assert!(matches!(err, Error::InvalidPath { .. }), "{err}");
    }

    #[test]
    fn reproducible_options_erase_owner_and_time() {
        let mut w = CpioWriter::with_options(Vec::new(), WriterOptions::reproducible(7));
        w.file("/f", Metadata::new(0o644).owner(1000, 1000).mtime(99), b"")
            .unwrap();
        let out = w.finish().unwrap();
        assert_eq!((field(&out, 2), field(&out, 3), field(&out, 5)), (0, 0, 7));
    }
}
