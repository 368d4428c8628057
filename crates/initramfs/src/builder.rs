//! [`Initramfs`]: the set of entries an image will hold, gathered from any mix of sources,
//! then written in one pass, sorted by path.

use crate::compress::{CompressOptions, Compression};
use crate::cpio::{self, CpioWriter, Metadata, Special, WriterOptions};
use crate::error::{ArchivePath, Error, Result};
use crate::{busybox, sources};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Who owns an entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Owner {
    /// uid 0, gid 0.
    #[default]
    Root,
    /// Given explicitly (a file list's or manifest's uid/gid): kept in every mode.
    Explicit { uid: u32, gid: u32 },
    /// Taken from a host file: written as root in reproducible or root-owned mode.
    Host { uid: u32, gid: u32 },
}

/// Where a regular file's bytes come from.
#[derive(Clone, Debug)]
pub enum Contents {
    Bytes(Arc<[u8]>),
    /// Read (streamed) when the archive is written.
    HostFile(PathBuf),
}

#[derive(Clone, Debug)]
pub enum Kind {
    Dir,
    File(Contents),
    Symlink(Vec<u8>),
    Special(Special),
}

/// One archive entry before it is written.
#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub owner: Owner,
    /// Seconds since the epoch; `None` is "now" (or the epoch in reproducible mode).
    pub mtime: Option<u64>,
}

impl Entry {
    pub fn new(kind: Kind, mode: u32) -> Self {
        Entry {
            kind,
            mode,
            owner: Owner::Root,
            mtime: None,
        }
    }
}

/// What [`Initramfs::write_to`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Entries in the archive, implied parent directories included, trailer excluded.
    pub entries: usize,
    /// Size of the uncompressed cpio archive.
    pub cpio_bytes: u64,
    /// Bytes written to the output (after compression).
    pub output_bytes: u64,
}

/// An initramfs under construction.
///
/// Entries are keyed by their path in the archive: adding a path again replaces the earlier
/// entry, so later sources override earlier ones. Parent directories need not be added:
/// the writer creates missing ones (mode 0755, root). Busybox applet links are *weak*: they
/// never replace an entry added any other way, and are left out where a parent is not a
/// directory.
///
/// ```no_run
/// use domboot_initramfs::{Compression, Initramfs};
/// let image = Initramfs::new()
///     .reproducible(true)
///     .busybox("/bin/busybox")?
///     .file("/init", 0o755, "#!/bin/sh\necho hello\nreboot -f\n")
///     .essential_dev()
///     .to_bytes(Compression::Gzip)?;
/// # Ok::<(), domboot_initramfs::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Initramfs {
    entries: BTreeMap<Vec<u8>, Entry>,
    weak: BTreeMap<Vec<u8>, Entry>,
    reproducible: bool,
    epoch: u64,
    root_owned: bool,
    /// The first invalid path given to an infallible method, reported by the writers.
    deferred: Option<(String, &'static str)>,
    warnings: Vec<String>,
}

impl Initramfs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Byte-identical output for identical entries: every mtime becomes the epoch (0 unless
    /// [`Initramfs::source_date_epoch`]), host owners become root. Explicit owners (from
    /// a file list or manifest) are kept. Entries are always written sorted by path.
    pub fn reproducible(mut self, on: bool) -> Self {
        self.reproducible = on;
        self
    }

    /// The mtime of every entry in reproducible mode (`SOURCE_DATE_EPOCH`).
    pub fn source_date_epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }

    /// Write host files as owned by root (uid/gid 0) even outside reproducible mode.
    pub fn root_owned(mut self, on: bool) -> Self {
        self.root_owned = on;
        self
    }

    pub fn is_reproducible(&self) -> bool {
        self.reproducible
    }

    /// A regular file with the given contents.
    pub fn file(mut self, path: &str, mode: u32, contents: impl Into<Vec<u8>>) -> Self {
        let bytes: Arc<[u8]> = contents.into().into();
        self.insert_or_defer(
            path.as_bytes(),
            Entry::new(Kind::File(Contents::Bytes(bytes)), mode),
        );
        self
    }

    /// A directory.
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        self.insert_or_defer(path.as_bytes(), Entry::new(Kind::Dir, mode));
        self
    }

    /// A symbolic link (mode 0777).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.insert_or_defer(
            path.as_bytes(),
            Entry::new(Kind::Symlink(target.as_bytes().to_vec()), 0o777),
        );
        self
    }

    pub fn char_device(mut self, path: &str, mode: u32, major: u32, minor: u32) -> Self {
        self.insert_or_defer(
            path.as_bytes(),
            Entry::new(Kind::Special(Special::Char { major, minor }), mode),
        );
        self
    }

    pub fn block_device(mut self, path: &str, mode: u32, major: u32, minor: u32) -> Self {
        self.insert_or_defer(
            path.as_bytes(),
            Entry::new(Kind::Special(Special::Block { major, minor }), mode),
        );
        self
    }

    pub fn fifo(mut self, path: &str, mode: u32) -> Self {
        self.insert_or_defer(
            path.as_bytes(),
            Entry::new(Kind::Special(Special::Fifo), mode),
        );
        self
    }

    /// `/dev` with `/dev/console` (c 5 1) and `/dev/null` (c 1 3): what an /init needs to
    /// have a console before it mounts devtmpfs.
    pub fn essential_dev(self) -> Self {
        self.dir("/dev", 0o755)
            .char_device("/dev/console", 0o600, 5, 1)
            .char_device("/dev/null", 0o666, 1, 3)
    }

    /// A host file (symlinks followed) at `dest`, with its permissions, owner and mtime.
    /// Its contents are read when the archive is written.
    pub fn host_file(mut self, dest: &str, src: impl AsRef<Path>) -> Result<Self> {
        let src = src.as_ref();
        let meta = std::fs::metadata(src).map_err(|e| Error::io(src, "cannot read", e))?;
        if !meta.is_file() {
            return Err(Error::UnsupportedFileType {
                path: src.to_path_buf(),
                kind: "not a regular file",
            });
        }
        let entry = sources::host_entry(Kind::File(Contents::HostFile(src.to_path_buf())), &meta);
        self.insert(dest.as_bytes(), entry)?;
        Ok(self)
    }

    /// Every file, directory, symlink, device node and FIFO below `src`, placed under
    /// `dest` (`"/"` for the root), with their permissions, owners and mtimes. Symlinks are
    /// stored, not followed; sockets are skipped with a warning; hard-linked files become
    /// separate copies. File contents are read when the archive is written.
    pub fn dir_tree(mut self, src: impl AsRef<Path>, dest: &str) -> Result<Self> {
        sources::add_tree(&mut self, src.as_ref(), dest.as_bytes())?;
        Ok(self)
    }

    /// A file list in the kernel's `gen_init_cpio` format (see the crate's README).
    /// Relative host paths in it are taken from the current directory, as gen_init_cpio
    /// does.
    pub fn list_file(mut self, list: impl AsRef<Path>) -> Result<Self> {
        let list = list.as_ref();
        let text = std::fs::read_to_string(list).map_err(|e| Error::io(list, "cannot read", e))?;
        sources::add_list(&mut self, &text, list, Path::new("."))?;
        Ok(self)
    }

    /// A file list given as text; `origin` names it in errors, `base` resolves relative
    /// host paths.
    pub fn list_str(mut self, text: &str, origin: &Path, base: &Path) -> Result<Self> {
        sources::add_list(&mut self, text, origin, base)?;
        Ok(self)
    }

    /// A TOML manifest (see the crate's README). Relative host paths in it are taken from
    /// the manifest's folder.
    pub fn manifest(mut self, manifest: impl AsRef<Path>) -> Result<Self> {
        let manifest = manifest.as_ref();
        let text =
            std::fs::read_to_string(manifest).map_err(|e| Error::io(manifest, "cannot read", e))?;
        let base = match manifest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        sources::add_manifest(&mut self, &text, manifest, base)?;
        Ok(self)
    }

    /// A manifest given as text (see [`Initramfs::manifest`]).
    pub fn manifest_str(mut self, text: &str, origin: &Path, base: &Path) -> Result<Self> {
        sources::add_manifest(&mut self, text, origin, base)?;
        Ok(self)
    }

    /// A static busybox as `/bin/busybox` with a symlink to it for each of its applets
    /// (`busybox --list-full`). Fails if it is not a static executable.
    pub fn busybox(mut self, path: impl AsRef<Path>) -> Result<Self> {
        busybox::add(&mut self, path.as_ref())?;
        Ok(self)
    }

    /// [`Initramfs::busybox`] with the host's static busybox ([`busybox::find`]).
    pub fn busybox_auto(self) -> Result<Self> {
        let path = busybox::find()?;
        self.busybox(path)
    }

    /// Adds or replaces the entry at `path`.
    pub fn insert(&mut self, path: &[u8], entry: Entry) -> Result<()> {
        let key = cpio::normalize(path)?;
        self.insert_normalized(key, entry);
        Ok(())
    }

    /// Adds an entry only if nothing else takes its path when the archive is written.
    pub fn insert_weak(&mut self, path: &[u8], entry: Entry) -> Result<()> {
        let key = cpio::normalize(path)?;
        if !key.is_empty() {
            self.weak.insert(key, entry);
        }
        Ok(())
    }

    pub(crate) fn insert_normalized(&mut self, key: Vec<u8>, entry: Entry) {
        if key.is_empty() {
            // The root exists already; only directories may stand for it.
            if !matches!(entry.kind, Kind::Dir) && self.deferred.is_none() {
                self.deferred = Some(("/".into(), "only a directory can be the root"));
            }
            return;
        }
        self.entries.insert(key, entry);
    }

    fn insert_or_defer(&mut self, path: &[u8], entry: Entry) {
        match cpio::normalize(path) {
            Ok(key) => self.insert_normalized(key, entry),
            Err(Error::InvalidPath { path, reason }) => {
                if self.deferred.is_none() {
                    self.deferred = Some((path, reason));
                }
            }
            Err(_) => {}
        }
    }

    pub(crate) fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    /// Things skipped while gathering entries (sockets in a directory tree, ...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Entries added (weak ones and implied parents excluded).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at `path`, if one was added (weak entries included).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        let key = cpio::normalize(path.as_bytes()).ok()?;
        self.entries.get(&key).or_else(|| self.weak.get(&key))
    }

    /// Bytes of file contents the archive will hold, as known now (host files as of when
    /// they were added): a progress total.
    pub fn content_size(&self) -> u64 {
        self.entries
            .values()
            .chain(self.weak.values())
            .map(|e| match &e.kind {
                Kind::File(Contents::Bytes(b)) => b.len() as u64,
                Kind::File(Contents::HostFile(p)) => std::fs::metadata(p).map_or(0, |m| m.len()),
                Kind::Symlink(t) => t.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// Writes the archive, compressed with the format's default level, to `out`.
    pub fn write_to<W: Write>(&self, out: W, compression: Compression) -> Result<Summary> {
        self.write_with(out, compression, &CompressOptions::default())
    }

    /// The archive as bytes.
    pub fn to_bytes(&self, compression: Compression) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_to(&mut out, compression)?;
        Ok(out)
    }

    /// Writes the archive to `out` with explicit compression options. `out` is flushed;
    /// on error it holds a partial archive (write to a temporary file and rename).
    pub fn write_with<W: Write>(
        &self,
        out: W,
        compression: Compression,
        options: &CompressOptions,
    ) -> Result<Summary> {
        self.check_deferred()?;
        let counted = Counting { inner: out, n: 0 };
        let encoder = compression.encoder(counted, options).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidInput {
                Error::InvalidOption(e.to_string())
            } else {
                Error::Write(e)
            }
        })?;
        let buffered = BufWriter::with_capacity(128 * 1024, encoder);
        let mut cpio = CpioWriter::with_options(buffered, self.writer_options());
        self.write_entries(&mut cpio)?;
        let entries = cpio.entries_written();
        let (buffered, cpio_bytes) = cpio.finish_counted()?;
        let encoder = buffered
            .into_inner()
            .map_err(|e| Error::Write(e.into_error()))?;
        let mut counted = encoder.finish().map_err(Error::Write)?;
        counted.inner.flush().map_err(Error::Write)?;
        Ok(Summary {
            entries,
            cpio_bytes,
            output_bytes: counted.n,
        })
    }

    /// Writes the entries (not the trailer) into an existing cpio writer, e.g. to append
    /// them to entries of your own. The writer's options decide mtimes and owners, so use
    /// [`Initramfs::writer_options`] for it.
    pub fn write_cpio<W: Write>(&self, cpio: &mut CpioWriter<W>) -> Result<()> {
        self.check_deferred()?;
        self.write_entries(cpio)
    }

    /// The writer options this builder's settings call for.
    pub fn writer_options(&self) -> WriterOptions {
        WriterOptions {
            force_mtime: None,
            force_root_owner: false,
            implied_dir_mtime: self.default_mtime(),
        }
    }

    fn check_deferred(&self) -> Result<()> {
        match &self.deferred {
            Some((path, reason)) => Err(Error::InvalidPath {
                path: path.clone(),
                reason,
            }),
            None => Ok(()),
        }
    }

    fn default_mtime(&self) -> u64 {
        if self.reproducible {
            self.epoch
        } else {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        }
    }

    fn metadata(&self, entry: &Entry, now: u64) -> Metadata {
        let (uid, gid) = match entry.owner {
            Owner::Root => (0, 0),
            Owner::Explicit { uid, gid } => (uid, gid),
            Owner::Host { .. } if self.reproducible || self.root_owned => (0, 0),
            Owner::Host { uid, gid } => (uid, gid),
        };
        let mtime = if self.reproducible {
            self.epoch
        } else {
            entry.mtime.unwrap_or(now)
        };
        Metadata {
            mode: entry.mode,
            uid,
            gid,
            mtime,
        }
    }

    fn write_entries<W: Write>(&self, cpio: &mut CpioWriter<W>) -> Result<()> {
        let now = self.default_mtime();
        let mut all: Vec<(&[u8], &Entry, bool)> = self
            .entries
            .iter()
            .map(|(k, e)| (k.as_slice(), e, false))
            .collect();
        all.extend(
            self.weak
                .iter()
                .filter(|(k, _)| !self.entries.contains_key(*k))
                .map(|(k, e)| (k.as_slice(), e, true)),
        );
        // Byte order puts every directory before what it contains.
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (path, entry, weak) in all {
            if weak && !parents_are_dirs(cpio, path) {
                continue;
            }
            let meta = self.metadata(entry, now);
            match &entry.kind {
                Kind::Dir => cpio.dir_bytes(path, meta)?,
                Kind::File(Contents::Bytes(b)) => cpio.file_bytes(path, meta, b)?,
                Kind::File(Contents::HostFile(src)) => write_host_file(cpio, path, meta, src)?,
                Kind::Symlink(target) => cpio.symlink_bytes(path, meta, target)?,
                Kind::Special(s) => cpio.special_bytes(path, meta, *s)?,
            }
        }
        Ok(())
    }
}

fn parents_are_dirs<W: Write>(cpio: &CpioWriter<W>, path: &[u8]) -> bool {
    let mut p = cpio::parent(path);
    while !p.is_empty() {
        if cpio.written(p) == Some(false) {
            return false;
        }
        p = cpio::parent(p);
    }
    true
}

fn write_host_file<W: Write>(
    cpio: &mut CpioWriter<W>,
    path: &[u8],
    meta: Metadata,
    src: &Path,
) -> Result<()> {
    let file = File::open(src).map_err(|e| Error::io(src, "cannot open", e))?;
    let m = file
        .metadata()
        .map_err(|e| Error::io(src, "cannot read", e))?;
    if !m.is_file() {
        return Err(Error::UnsupportedFileType {
            path: src.to_path_buf(),
            kind: "no longer a regular file",
        });
    }
    if m.len() > crate::error::MAX_FILE_SIZE {
        return Err(Error::FileTooLarge {
            path: ArchivePath(path.to_vec()),
            size: m.len(),
        });
    }
    cpio.file_reader_bytes(path, meta, m.len(), file, Some(src))
}

/// Counts the bytes that reach the output.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.n += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
