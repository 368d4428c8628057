//! Unified Kernel Images (systemd's UAPI.5): a PE stub with the kernel in `.linux` and boot
//! defaults in `.initrd`, `.cmdline`, `.osrel` and `.uname`.

use super::header::PeSummary;
use crate::FormatError;
use bytes::Bytes;
use serde::Serialize;

pub(crate) const LINUX_SECTION: &str = ".linux";
/// Text sections are small; a larger one is a malformed image.
const MAX_TEXT_SECTION: u64 = 1 << 20;

/// A UKI, with the parts the builder uses as defaults.
#[derive(Clone, Debug, Serialize)]
pub struct Uki {
    /// The kernel command line from `.cmdline` (trailing NULs and newlines removed).
    pub cmdline: Option<String>,
    /// `.uname`: the kernel release.
    pub uname: Option<String>,
    /// PRETTY_NAME (or NAME) from `.osrel`.
    pub os_name: Option<String>,
    /// Size of the embedded initrd.
    pub initrd_size: Option<u64>,
    /// Size of the embedded kernel.
    pub linux_size: u64,
    /// The embedded initrd bytes (a slice of the UKI file, not a copy).
    #[serde(skip)]
    pub initrd: Option<Bytes>,
    /// The `.cmdline` section exactly as stored (trailing newline or NUL included), for
    /// tools that extract it unchanged.
    #[serde(skip)]
    pub cmdline_section: Option<Bytes>,
    /// The PE stub's headers and sections.
    #[serde(rename = "stub")]
    pub pe: PeSummary,
}

impl Uki {
    /// Splits a UKI into its description and its `.linux` bytes.
    pub(crate) fn from_pe(data: &Bytes, pe: PeSummary) -> Result<(Uki, Bytes), FormatError> {
        let bytes_of = |name: &str| -> Option<Bytes> {
            pe.section(name).map(|s| {
                let (off, len) = s.data_range();
                // PeSummary::parse checked every section lies inside the file.
                data.slice(off as usize..(off + len) as usize)
            })
        };
        let text_of = |name: &'static str| -> Result<Option<String>, FormatError> {
            let Some(b) = bytes_of(name) else {
                return Ok(None);
            };
            if b.len() as u64 > MAX_TEXT_SECTION {
                return Err(FormatError::Field {
                    field: "UKI text section size",
                    offset: 0,
                    value: b.len() as u64,
                    limit: format!("section {name} exceeds {MAX_TEXT_SECTION} bytes"),
                });
            }
            let text = String::from_utf8_lossy(&b);
            Ok(Some(
                text.trim_end_matches(['\0', '\n', '\r', ' ']).to_string(),
            ))
        };
        let linux = bytes_of(LINUX_SECTION).unwrap_or_default();
        if linux.is_empty() {
            return Err(FormatError::Invalid(
                "UKI section .linux is empty: there is no kernel to boot".into(),
            ));
        }
        let os_name = text_of(".osrel")?.and_then(|osrel| {
            let value = |key: &str| {
                osrel.lines().find_map(|l| {
                    l.strip_prefix(key)
                        .and_then(|v| v.strip_prefix('='))
                        .map(|v| v.trim_matches('"').to_string())
                })
            };
            value("PRETTY_NAME").or_else(|| value("NAME"))
        });
        let initrd = bytes_of(".initrd");
        let uki = Uki {
            cmdline: text_of(".cmdline")?,
            uname: text_of(".uname")?,
            os_name,
            initrd_size: initrd.as_ref().map(|b| b.len() as u64),
            linux_size: linux.len() as u64,
            initrd,
            cmdline_section: bytes_of(".cmdline"),
            pe,
        };
        Ok((uki, linux))
    }
}
