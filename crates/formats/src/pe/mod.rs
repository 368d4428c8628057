//! PE/COFF images: EFI-stub kernels (handled as bzImages, with a PE summary), plain EFI
//! applications, and Unified Kernel Images, which unwrap into `.linux` plus their embedded
//! `.initrd` and `.cmdline` (boot defaults for later stages).

mod header;
mod uki;

pub use header::{PeSummary, Section};
pub use uki::Uki;

use crate::{Details, Format, FormatError, LoadContext, Loaded, Loader};
use bytes::Bytes;

/// A PE that is neither a bzImage nor a UKI.
pub type PeImage = PeSummary;

/// Loader for PE images: a UKI when it has a `.linux` section, a plain PE otherwise.
pub struct PeLoader;

impl Loader for PeLoader {
    fn name(&self) -> &'static str {
        "pe"
    }

    fn probe(&self, data: &[u8]) -> Option<Format> {
        if !header::looks_like_pe(data) {
            return None;
        }
        // A probe must be cheap, but the section table is small and bounded (96 entries).
        match PeSummary::parse(data) {
            Ok(s) if s.section(uki::LINUX_SECTION).is_some() => Some(Format::Uki),
            _ => Some(Format::Pe),
        }
    }

    fn load(&self, data: &Bytes, _ctx: &LoadContext) -> Result<Loaded, FormatError> {
        let summary = PeSummary::parse(data)?;
        if summary.section(uki::LINUX_SECTION).is_some() {
            let (uki, linux) = Uki::from_pe(data, summary)?;
            Ok(Loaded {
                format: Format::Uki,
                details: Details::Uki(Box::new(uki)),
                inner: Some(linux),
            })
        } else {
            Ok(Loaded {
                format: Format::Pe,
                details: Details::Pe(summary),
                inner: None,
            })
        }
    }
}
