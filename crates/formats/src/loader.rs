//! The loader interface every format implements, and the layer it produces.

use crate::bzimage::BzImage;
use crate::compression::CompressedInfo;
use crate::elf::ElfImage;
use crate::pe::{PeImage, Uki};
use crate::{Format, FormatError};
use bytes::Bytes;
use serde::Serialize;

/// What a loader may use beyond the bytes themselves.
#[derive(Clone, Debug)]
pub struct LoadContext {
    /// Most bytes a decompressor may produce for this layer (decompression-bomb guard).
    pub max_output: u64,
    /// Why `max_output` has its value, for the error message.
    pub max_output_reason: &'static str,
}

impl Default for LoadContext {
    fn default() -> Self {
        LoadContext {
            max_output: crate::chain::DEFAULT_MAX_DECOMPRESSED,
            max_output_reason: "the default limit for a standalone compressed file",
        }
    }
}

/// The result of loading one layer: what it is, and the bytes it wraps, if any.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub format: Format,
    pub details: Details,
    /// The wrapped image (payload, decompressed stream, `.linux` section), handed back to the
    /// registry. `None` for terminal layers (ELF, a plain PE, a bzImage without a payload).
    pub inner: Option<Bytes>,
}

/// One format's loader. Loaders are stateless; the registry holds them in probe order.
pub trait Loader: Send + Sync {
    /// A short name for diagnostics ("bzimage", "elf", "lz4"...).
    fn name(&self) -> &'static str;
    /// Cheap check of magic numbers: `Some(format)` when this loader should handle `data`.
    fn probe(&self, data: &[u8]) -> Option<Format>;
    /// Full parse (and unwrap, for wrappers), validating every field it relies on.
    fn load(&self, data: &Bytes, ctx: &LoadContext) -> Result<Loaded, FormatError>;
}

/// Format-specific facts about one layer.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Details {
    BzImage(Box<BzImage>),
    Elf(Box<ElfImage>),
    Compressed(CompressedInfo),
    Pe(PeImage),
    Uki(Box<Uki>),
}

/// One layer of a kernel image chain.
#[derive(Clone, Debug, Serialize)]
pub struct Layer {
    pub format: Format,
    /// This layer's size in bytes.
    pub size: u64,
    #[serde(skip)]
    pub data: Bytes,
    #[serde(flatten)]
    pub details: Details,
}

impl Layer {
    pub fn bzimage(&self) -> Option<&BzImage> {
        match &self.details {
            Details::BzImage(b) => Some(b),
            _ => None,
        }
    }
    pub fn elf(&self) -> Option<&ElfImage> {
        match &self.details {
            Details::Elf(e) => Some(e),
            _ => None,
        }
    }
    pub fn compressed(&self) -> Option<&CompressedInfo> {
        match &self.details {
            Details::Compressed(c) => Some(c),
            _ => None,
        }
    }
    pub fn uki(&self) -> Option<&Uki> {
        match &self.details {
            Details::Uki(u) => Some(u),
            _ => None,
        }
    }
}
