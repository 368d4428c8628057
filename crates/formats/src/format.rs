//! The names of the formats the loaders recognise.

use serde::Serialize;
use std::fmt;

/// One layer's format. The lower-case names are part of the stable `inspect --json` output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A Unified Kernel Image: a PE with `.linux` (and usually `.initrd`, `.cmdline`) sections.
    Uki,
    /// A PE/COFF image that is neither a bzImage nor a UKI (an EFI application).
    Pe,
    /// A Linux x86 boot-protocol image (with or without an EFI stub).
    BzImage,
    Gzip,
    Bzip2,
    /// Legacy `.lzma` (LZMA-alone) stream.
    Lzma,
    Xz,
    /// LZO1X in the lzop framing the kernel uses.
    Lzo,
    /// LZ4, legacy frame (magic 0x184C2102, as the kernel emits it) or standard frame.
    Lz4,
    Zstd,
    Elf32,
    Elf64,
}

impl Format {
    pub const ALL: [Format; 12] = [
        Format::Uki,
        Format::Pe,
        Format::BzImage,
        Format::Gzip,
        Format::Bzip2,
        Format::Lzma,
        Format::Xz,
        Format::Lzo,
        Format::Lz4,
        Format::Zstd,
        Format::Elf32,
        Format::Elf64,
    ];

    /// The stable lower-case name used in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Uki => "uki",
            Format::Pe => "pe",
            Format::BzImage => "bzimage",
            Format::Gzip => "gzip",
            Format::Bzip2 => "bzip2",
            Format::Lzma => "lzma",
            Format::Xz => "xz",
            Format::Lzo => "lzo",
            Format::Lz4 => "lz4",
            Format::Zstd => "zstd",
            Format::Elf32 => "elf32",
            Format::Elf64 => "elf64",
        }
    }

    /// Parses a name as printed by [`Format::name`] (case-insensitive).
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// True for the formats that are a kernel one can enter (the innermost layer of a chain).
    pub fn is_elf(self) -> bool {
        matches!(self, Format::Elf32 | Format::Elf64)
    }

    /// True for compressed-stream formats.
    pub fn is_compression(self) -> bool {
        matches!(
            self,
            Format::Gzip
                | Format::Bzip2
                | Format::Lzma
                | Format::Xz
                | Format::Lzo
                | Format::Lz4
                | Format::Zstd
        )
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::from_name(f.name()), Some(f));
            assert_eq!(Format::from_name(&f.name().to_uppercase()), Some(f));
        }
        assert_eq!(Format::from_name("tar"), None);
    }
}
