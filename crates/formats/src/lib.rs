//! Kernel image formats: probe, parse and unwrap every x86 Linux kernel format.
//!
//! Each format is a [`Loader`] with a cheap [`Loader::probe`]. Wrappers (UKI, bzImage,
//! compressed streams) hand their inner bytes back to the [`Registry`], which walks the
//! list again, so chains such as `uki → bzImage → lz4 → ELF64` need no special cases
//! (the pluggable-loader design of Xen's redesigned domain builder).
//!
//! ```no_run
//! let chain = domboot_formats::open("bzImage", &Default::default())?;
//! for layer in &chain.layers {
//!     println!("{} ({} bytes)", layer.format, layer.data.len());
//! }
//! # Ok::<(), domboot_formats::ChainError>(())
//! ```

pub mod bzimage;
mod chain;
pub mod compression;
pub mod elf;
mod error;
mod format;
mod loader;
pub mod pe;
mod read;

pub use chain::{
    Chain, ChainError, ChainOptions, DEFAULT_MAX_DECOMPRESSED, DEFAULT_MAX_DEPTH, LayerError,
    LayerErrorKind, MappedFile, Registry, map_file, map_file_with_handle, open, open_mapped,
    unwrap_bytes,
};
pub use error::FormatError;
pub use format::Format;
pub use loader::{Details, Layer, LoadContext, Loaded, Loader};
