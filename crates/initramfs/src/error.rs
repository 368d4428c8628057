//! Errors: each names the archive path or host file concerned and the constraint broken.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Longest name (including its terminating NUL) and symlink target the kernel's initramfs
/// unpacker accepts: `PATH_MAX`. Longer names are silently skipped by `init/initramfs.c`,
/// so the writer refuses them instead of producing an archive that loses files.
pub const MAX_NAME: usize = 4096;

/// Largest regular file the newc format can describe (its size field is 8 hex digits).
pub const MAX_FILE_SIZE: u64 = u32::MAX as u64;

/// An archive path as users write it: with a leading '/', bytes shown lossily.
#[derive(Clone, PartialEq, Eq)]
pub struct ArchivePath(pub Vec<u8>);

impl fmt::Display for ArchivePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for ArchivePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", format!("{self}"))
    }
}

/// How a file's size differed from the size written into its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeChange {
    /// It ended after this many bytes.
    Shrank(u64),
    /// It had more bytes than announced.
    Grew,
}

impl fmt::Display for SizeChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeChange::Shrank(n) => write!(f, "it ended after {n} bytes"),
            SizeChange::Grew => write!(f, "it grew"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path:?}: not a valid archive path: {reason}")]
    InvalidPath { path: String, reason: &'static str },

    #[error(
        "{path}: the name is {len} bytes long with its NUL; the kernel's initramfs unpacker \
         skips names longer than {MAX_NAME} bytes (PATH_MAX)"
    )]
    NameTooLong { path: ArchivePath, len: usize },

    #[error(
        "{path}: the symlink target is {len} bytes long; the kernel's initramfs unpacker \
         skips targets longer than {MAX_NAME} bytes (PATH_MAX)"
    )]
    TargetTooLong { path: ArchivePath, len: usize },

    #[error(
        "{path}: {size} bytes is more than the newc cpio format can hold ({MAX_FILE_SIZE} bytes)"
    )]
    FileTooLarge { path: ArchivePath, size: u64 },

    #[error("{file}: the file changed size while being read: {expected} bytes expected, {change}")]
    SizeChanged {
        file: String,
        expected: u64,
        change: SizeChange,
    },

    #[error("{path} is written twice into the archive")]
    Duplicate { path: ArchivePath },

    #[error("{path}: its parent {parent} is not a directory in the archive")]
    ParentNotDirectory {
        path: ArchivePath,
        parent: ArchivePath,
    },

    #[error("{path}: mode {mode:#o} has bits outside the permission bits 0o7777")]
    InvalidMode { path: ArchivePath, mode: u32 },

    #[error("{}: {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("{}: {} is {kind}, which cannot go into an initramfs", path.display(), path.display())]
    UnsupportedFileType { path: PathBuf, kind: &'static str },

    #[error("{}: not a directory", path.display())]
    NotADirectory { path: PathBuf },

    #[error("{0}")]
    InvalidOption(String),

    #[error("cannot write the archive: {0}")]
    Write(#[source] io::Error),

    #[error("{}:{line}: {message}", file.display())]
    List {
        file: PathBuf,
        line: usize,
        message: String,
    },

    #[error("{}: {message}", file.display())]
    Manifest { file: PathBuf, message: String },

    #[error(
        "no busybox found (looked for {searched}); install a static one with \
         `apt-get install busybox-static` or give its path"
    )]
    BusyboxMissing { searched: String },

    #[error(
        "{} is dynamically linked (it asks for the interpreter {interpreter}), so it cannot \
         run alone in an initramfs; install a static busybox with `apt-get install \
         busybox-static` or give the path of one",
        path.display()
    )]
    BusyboxDynamic { path: PathBuf, interpreter: String },

    #[error("{}: not a busybox executable: {reason}", path.display())]
    BusyboxInvalid { path: PathBuf, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, what: &'static str, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            what,
            source,
        }
    }
}
