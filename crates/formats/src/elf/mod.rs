//! ELF32/ELF64 kernels (INTERFACE DRAFT — being implemented).
use crate::{Format, FormatError, LoadContext, Loaded, Loader};
use bytes::Bytes;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct ElfImage {
    pub entry: u64,
    pub pvh_entry: Option<u64>,
}

pub struct ElfLoader;

impl Loader for ElfLoader {
    fn name(&self) -> &'static str {
        "elf"
    }
    fn probe(&self, _data: &[u8]) -> Option<Format> {
        None
    }
    fn load(&self, _data: &Bytes, _ctx: &LoadContext) -> Result<Loaded, FormatError> {
        Err(FormatError::Invalid("ELF not implemented yet".into()))
    }
}
