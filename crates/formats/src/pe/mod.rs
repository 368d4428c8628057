//! PE/COFF and UKI (INTERFACE DRAFT — being implemented).
use crate::{Format, FormatError, LoadContext, Loaded, Loader};
use bytes::Bytes;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct PeImage {}

#[derive(Clone, Debug, Serialize)]
pub struct Uki {}

pub struct PeLoader;

impl Loader for PeLoader {
    fn name(&self) -> &'static str {
        "pe"
    }
    fn probe(&self, _data: &[u8]) -> Option<Format> {
        None
    }
    fn load(&self, _data: &Bytes, _ctx: &LoadContext) -> Result<Loaded, FormatError> {
        Err(FormatError::Invalid("PE not implemented yet".into()))
    }
}
