//! Compressed streams (INTERFACE DRAFT — being implemented).
use crate::Loader;
use serde::Serialize;

/// Facts about one compressed layer.
#[derive(Clone, Debug, Serialize)]
pub struct CompressedInfo {
    pub compressed_size: u64,
    pub decompressed_size: u64,
}

/// One loader per compression format, in probe order.
pub fn loaders() -> Vec<Box<dyn Loader>> {
    Vec::new()
}
