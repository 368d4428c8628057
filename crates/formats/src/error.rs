//! Errors of a single layer. [`crate::ChainError`] adds the file and the layer index.

use crate::Format;

/// What is wrong with one layer's bytes. Every variant names the field or offset and the
/// limit it violates, so a user can tell a truncated download from a hostile image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The data ends before a structure does.
    #[error(
        "truncated: {what} needs {need} bytes at offset {offset:#x}, but only {have} are there"
    )]
    Truncated {
        what: &'static str,
        offset: u64,
        need: u64,
        have: u64,
    },
    /// A header field holds a value outside what the format allows.
    #[error("{field} = {value:#x} (at offset {offset:#x}) {limit}")]
    Field {
        field: &'static str,
        offset: u64,
        value: u64,
        /// The violated constraint, phrased to follow the value: "exceeds the file size 0x1000".
        limit: String,
    },
    /// A magic number or signature is not what the format requires.
    #[error("bad magic in {what} at offset {offset:#x}: expected {expected}, found {found}")]
    BadMagic {
        what: &'static str,
        offset: u64,
        expected: String,
        found: String,
    },
    /// A compressed stream cannot be decoded.
    #[error("corrupt {format} stream{}: {detail}", at_offset(.offset))]
    Corrupt {
        format: Format,
        /// Offset in the compressed input, when the decoder can tell.
        offset: Option<u64>,
        detail: String,
    },
    /// Decompression produced more than the allowed output (a decompression bomb, or a
    /// payload bigger than its kernel's init_size suggests).
    #[error(
        "{format} output exceeds the limit of {limit} bytes ({reason}); raise it with --max-decompressed if the input is trusted"
    )]
    OutputLimit {
        format: Format,
        limit: u64,
        reason: &'static str,
    },
    /// Bytes follow a complete stream that are neither padding nor the kernel's size trailer.
    #[error(
        "{count} bytes of trailing garbage after the {format} stream, starting at offset {offset:#x}"
    )]
    TrailingGarbage {
        format: Format,
        offset: u64,
        count: u64,
    },
    /// Structures that must not overlap do.
    #[error("{what} overlap: {first} and {second}")]
    Overlap {
        what: &'static str,
        first: String,
        second: String,
    },
    /// Anything else the format forbids, with a full sentence of explanation.
    #[error("{0}")]
    Invalid(String),
}

fn at_offset(offset: &Option<u64>) -> String {
    match offset {
        Some(o) => format!(" at input offset {o:#x}"),
        None => String::new(),
    }
}
