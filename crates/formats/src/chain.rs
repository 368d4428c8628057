//! The probe chain: walk the registered loaders until a terminal layer is reached.

use crate::loader::{Layer, LoadContext, Loaded, Loader};
use crate::{Format, FormatError, bzimage, compression, elf, pe, read};
use bytes::Bytes;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Decompression limit for a compressed file that is not inside a bzImage (1 GiB).
pub const DEFAULT_MAX_DECOMPRESSED: u64 = 1 << 30;
/// Wrapper nesting allowed before the chain is rejected (uki → bzimage → xz → elf is 4).
pub const DEFAULT_MAX_DEPTH: usize = 8;
/// A bzImage payload may decompress to at most this multiple of the kernel's `init_size`
/// (the kernel itself decompresses inside `init_size`, so a real payload is smaller).
pub const PAYLOAD_INIT_SIZE_FACTOR: u64 = 2;

/// Limits for walking a chain.
#[derive(Clone, Debug)]
pub struct ChainOptions {
    /// Maximum number of layers.
    pub max_depth: usize,
    /// Overrides every decompression limit (default: relative to init_size inside a bzImage,
    /// [`DEFAULT_MAX_DECOMPRESSED`] otherwise).
    pub max_decompressed: Option<u64>,
    /// Stop after the first layer of one of these formats, leaving its inner bytes
    /// unwrapped (a boot loader entering a bzImage need not decompress its payload).
    pub stop_at: Vec<Format>,
}

impl Default for ChainOptions {
    fn default() -> Self {
        ChainOptions {
            max_depth: DEFAULT_MAX_DEPTH,
            max_decompressed: None,
            stop_at: Vec::new(),
        }
    }
}

/// The loaders, in probe order.
pub struct Registry {
    loaders: Vec<Box<dyn Loader>>,
}

impl Default for Registry {
    /// Every built-in format. ELF first (cheapest, and terminal); bzImage before PE because a
    /// bzImage with an EFI stub is also a valid PE; then the compressed streams.
    fn default() -> Self {
        let mut loaders: Vec<Box<dyn Loader>> = vec![
            Box::new(elf::ElfLoader),
            Box::new(bzimage::BzImageLoader),
            Box::new(pe::PeLoader),
        ];
        loaders.extend(compression::loaders());
        Registry { loaders }
    }
}

impl Registry {
    /// Adds a loader at the end of the probe order.
    pub fn register(&mut self, loader: Box<dyn Loader>) {
        self.loaders.push(loader);
    }

    /// The first loader whose probe accepts `data`.
    pub fn probe(&self, data: &[u8]) -> Option<(&dyn Loader, Format)> {
        self.loaders
            .iter()
            .find_map(|l| l.probe(data).map(|f| (l.as_ref(), f)))
    }

    /// Walks the chain starting at `data`.
    pub fn unwrap(&self, data: Bytes, opts: &ChainOptions) -> Result<Chain, LayerError> {
        let mut layers: Vec<Layer> = Vec::new();
        let mut next = Some(data);
        while let Some(data) = next.take() {
            let index = layers.len();
            if index >= opts.max_depth {
                return Err(LayerError {
                    layer: index,
                    format: None,
                    kind: LayerErrorKind::TooDeep {
                        limit: opts.max_depth,
                    },
                });
            }
            let Some((loader, format)) = self.probe(&data) else {
                return Err(LayerError {
                    layer: index,
                    format: None,
                    kind: LayerErrorKind::Unrecognised {
                        after: layers.last().map(|l| l.format),
                        first_bytes: read::hex_prefix(&data, 0),
                        size: data.len() as u64,
                    },
                });
            };
            let ctx = context_for(layers.last(), opts);
            let Loaded {
                format,
                details,
                inner,
            } = loader.load(&data, &ctx).map_err(|e| LayerError {
                layer: index,
                format: Some(format),
                kind: LayerErrorKind::Format(e),
            })?;
            layers.push(Layer {
                format,
                size: data.len() as u64,
                data,
                details,
            });
            if !opts.stop_at.contains(&format) {
                next = inner;
            }
        }
        Ok(Chain { path: None, layers })
    }
}

/// The decompression limit for the layer after `parent`.
fn context_for(parent: Option<&Layer>, opts: &ChainOptions) -> LoadContext {
    if let Some(max) = opts.max_decompressed {
        return LoadContext {
            max_output: max,
            max_output_reason: "the limit given with --max-decompressed",
        };
    }
    match parent.and_then(|p| p.bzimage()).and_then(|b| b.init_size) {
        Some(init_size) => LoadContext {
            max_output: u64::from(init_size).saturating_mul(PAYLOAD_INIT_SIZE_FACTOR),
            max_output_reason: "twice the kernel's init_size",
        },
        None => LoadContext::default(),
    }
}

/// A kernel image taken apart, outermost layer first.
#[derive(Clone, Debug)]
pub struct Chain {
    /// The file it came from, when it came from a file.
    pub path: Option<PathBuf>,
    pub layers: Vec<Layer>,
}

impl Chain {
    /// The innermost ELF kernel, if the chain reaches one.
    pub fn kernel_elf(&self) -> Option<&Layer> {
        self.layers.iter().rev().find(|l| l.format.is_elf())
    }
    /// The boot-protocol image, if there is one.
    pub fn bzimage(&self) -> Option<&Layer> {
        self.layers.iter().find(|l| l.format == Format::BzImage)
    }
    /// The UKI wrapper, if there is one (its initrd and cmdline are boot defaults).
    pub fn uki(&self) -> Option<&pe::Uki> {
        self.layers.iter().find_map(|l| l.uki())
    }
    /// The innermost layer.
    pub fn innermost(&self) -> &Layer {
        // A chain is built only when its first layer loaded.
        &self.layers[self.layers.len() - 1]
    }
}

/// Why a layer could not be loaded (without the file name; see [`ChainError`]).
#[derive(Debug)]
pub struct LayerError {
    pub layer: usize,
    pub format: Option<Format>,
    pub kind: LayerErrorKind,
}

#[derive(Debug)]
pub enum LayerErrorKind {
    Format(FormatError),
    Unrecognised {
        after: Option<Format>,
        first_bytes: String,
        size: u64,
    },
    TooDeep {
        limit: usize,
    },
}

impl fmt::Display for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer {}", self.layer)?;
        if let Some(format) = self.format {
            write!(f, " ({format})")?;
        }
        match &self.kind {
            LayerErrorKind::Format(e) => write!(f, ": {e}"),
            LayerErrorKind::Unrecognised {
                after,
                first_bytes,
                size,
            } => {
                write!(f, ": unrecognised format ({size} bytes")?;
                if let Some(after) = after {
                    write!(f, ", unwrapped from {after}")?;
                }
                write!(
                    f,
                    "; first bytes: {first_bytes}); expected a bzImage, ELF, PE/UKI or a gzip, bzip2, lzma, xz, lzo, lz4 or zstd stream"
                )
            }
            LayerErrorKind::TooDeep { limit } => write!(
                f,
                ": wrappers nest deeper than {limit} layers (a real kernel needs at most 4)"
            ),
        }
    }
}

// Display already includes the format error, so it is not also reported as a source
// (which would print it twice in an error chain).
impl std::error::Error for LayerError {}

/// A chain error with the file it concerns. Its message is complete on its own: the file,
/// the layer, the field or offset, and the violated limit.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {error}", path.display())]
    Layer { path: PathBuf, error: LayerError },
}

impl ChainError {
    /// The failing layer, when the error is about one.
    pub fn layer(&self) -> Option<&LayerError> {
        match self {
            ChainError::Layer { error, .. } => Some(error),
            ChainError::Io { .. } => None,
        }
    }
}

/// Maps `path` read-only and walks its chain with the default registry. Layers that are
/// not compressed (a bzImage inside a UKI, a payload inside a bzImage) are slices of the
/// mapping, not copies.
pub fn open(path: impl AsRef<Path>, opts: &ChainOptions) -> Result<Chain, ChainError> {
    open_mapped(path, opts).map(|(chain, _)| chain)
}

/// [`open`], also returning the mapped file, so that a consumer can tell which layers are
/// slices of it and map those bytes again straight from the file (guest memory does).
pub fn open_mapped(
    path: impl AsRef<Path>,
    opts: &ChainOptions,
) -> Result<(Chain, MappedFile), ChainError> {
    let path = path.as_ref();
    let file = map_file_with_handle(path).map_err(|error| ChainError::Io {
        path: path.to_owned(),
        error,
    })?;
    let mut chain = unwrap_bytes(file.bytes.clone(), opts).map_err(|error| ChainError::Layer {
        path: path.to_owned(),
        error,
    })?;
    chain.path = Some(path.to_owned());
    Ok((chain, file))
}

/// A file mapped read-only together with the open file it came from: the handle lets a
/// consumer map the same bytes again (copy-on-write guest memory does) without reopening a
/// path that may since name another file.
#[derive(Clone, Debug)]
pub struct MappedFile {
    pub bytes: Bytes,
    pub file: Arc<File>,
}

impl MappedFile {
    /// Where `slice` starts in the file, when it lies wholly inside this mapping (a
    /// [`Bytes`] slice of it, or any other view of the same memory).
    pub fn offset_of(&self, slice: &[u8]) -> Option<u64> {
        let base = self.bytes.as_ptr() as usize;
        let start = slice.as_ptr() as usize;
        let end = start.checked_add(slice.len())?;
        (!self.bytes.is_empty() && start >= base && end <= base + self.bytes.len())
            .then(|| (start - base) as u64)
    }
}

/// Maps a file read-only into [`Bytes`] (copy-on-write private mapping; an empty file
/// becomes empty bytes, which cannot be mapped).
pub fn map_file(path: &Path) -> std::io::Result<Bytes> {
    map_file_with_handle(path).map(|m| m.bytes)
}

/// [`map_file`], keeping the open file.
pub fn map_file_with_handle(path: &Path) -> std::io::Result<MappedFile> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() == 0 {
        return Ok(MappedFile {
            bytes: Bytes::new(),
            file: Arc::new(file),
        });
    }
    // SAFETY: the mapping is private and read-only, so this process never writes through
    // it. Another process truncating or rewriting the file while it is mapped could change
    // the bytes we read or raise SIGBUS; like every tool that maps its inputs (linkers,
    // debuggers, QEMU with file-backed memory), we accept that: kernels and initrds are not
    // rewritten while a VM is being built from them, and every read is bounds-checked
    // against the length captured here, so torn contents can only produce a parse error.
    let map = unsafe { memmap2::MmapOptions::new().map_copy_read_only(&file)? };
    Ok(MappedFile {
        bytes: Bytes::from_owner(map),
        file: Arc::new(file),
    })
}

/// Walks the chain of in-memory bytes with the default registry.
pub fn unwrap_bytes(data: Bytes, opts: &ChainOptions) -> Result<Chain, LayerError> {
    Registry::default().unwrap(data, opts)
}
