//! bzImage (INTERFACE DRAFT — being implemented).
use crate::{Format, FormatError, LoadContext, Loaded, Loader};
use bytes::Bytes;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct BzImage {
    pub init_size: Option<u32>,
}

pub struct BzImageLoader;

impl Loader for BzImageLoader {
    fn name(&self) -> &'static str {
        "bzimage"
    }
    fn probe(&self, _data: &[u8]) -> Option<Format> {
        None
    }
    fn load(&self, _data: &Bytes, _ctx: &LoadContext) -> Result<Loaded, FormatError> {
        Err(FormatError::Invalid("bzImage not implemented yet".into()))
    }
}
