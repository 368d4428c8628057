//! xz, one stream, decoded by liblzma. The kernel's `scripts/xz_wrap.sh` writes
//! `--check=crc32` streams with a BCJ filter in front of LZMA2; both are reported.

use super::lzma::run;
use super::{Limit, Sink, StreamParams, check_tail, corrupt, loaded};
use crate::loader::{LoadContext, Loaded, Loader};
use crate::{Format, FormatError, read};
use bytes::Bytes;
use liblzma::stream::Stream;
use serde::Serialize;

const MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0x00];
const HEADER_LEN: usize = 12;
/// LZMA2's best case is about 7000:1.
const MAX_RATIO: usize = 8192;

/// What an xz stream's headers say.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct XzParams {
    /// Integrity check of each block: "none", "crc32" (the kernel's), "crc64", "sha256".
    pub check: String,
    /// The first block's filter chain, in order ("x86", "lzma2"...), when its header parses.
    pub filters: Vec<String>,
    /// The first block's LZMA2 dictionary size.
    pub dict_size: Option<u32>,
}

/// Loader for xz streams.
pub struct XzLoader;

impl Loader for XzLoader {
    fn name(&self) -> &'static str {
        "xz"
    }

    fn probe(&self, data: &[u8]) -> Option<Format> {
        // Stream flags: the first byte and the high nibble of the second are reserved (0).
        (data.len() >= HEADER_LEN && data[..6] == MAGIC && data[6] == 0 && data[7] & 0xf0 == 0)
            .then_some(Format::Xz)
    }

    fn load(&self, data: &Bytes, ctx: &LoadContext) -> Result<Loaded, FormatError> {
        let header = read::slice(data, 0, HEADER_LEN as u64, "xz stream header")?;
        if header[..6] != MAGIC {
            return Err(FormatError::BadMagic {
                what: "xz stream header",
                offset: 0,
                expected: "fd 37 7a 58 5a 00".into(),
                found: read::hex_prefix(data, 0),
            });
        }
        let mut params = XzParams {
            check: check_name(header[7] & 0x0f),
            filters: Vec::new(),
            dict_size: None,
        };
        if let Some((filters, dict)) = first_block_filters(data) {
            params.filters = filters;
            params.dict_size = dict;
        }
        let limit = Limit::new(Format::Xz, ctx);
        let memlimit = limit.decoder_memory();
        if let Some(dict) = params.dict_size.filter(|&d| u64::from(d) > memlimit) {
            return Err(FormatError::Field {
                field: "xz LZMA2 dictionary size",
                offset: HEADER_LEN as u64,
                value: u64::from(dict),
                limit: format!(
                    "exceeds the decoder memory allowed with this output limit ({memlimit} bytes)"
                ),
            });
        }
        // No CONCATENATED flag: decoding stops after one stream; what follows is checked below.
        let stream = Stream::new_stream_decoder(memlimit, 0)
            .map_err(|e| corrupt(Format::Xz, None, format!("liblzma: {e}")))?;
        let sink = Sink::streaming(limit, data.len(), limit.trailer_hint(data, MAX_RATIO))?;
        let (out, end) = run(Format::Xz, stream, data, sink)?;
        let tail = check_tail(Format::Xz, data, end, out.len() as u64)?;
        Ok(loaded(Format::Xz, end, out, tail, StreamParams::Xz(params)))
    }
}

fn check_name(id: u8) -> String {
    match id {
        0x00 => "none".into(),
        0x01 => "crc32".into(),
        0x04 => "crc64".into(),
        0x0a => "sha256".into(),
        other => format!("reserved-{other:#x}"),
    }
}

fn filter_name(id: u64) -> String {
    match id {
        0x03 => "delta".into(),
        0x04 => "x86".into(),
        0x05 => "powerpc".into(),
        0x06 => "ia64".into(),
        0x07 => "arm".into(),
        0x08 => "armthumb".into(),
        0x09 => "sparc".into(),
        0x0a => "arm64".into(),
        0x0b => "riscv".into(),
        0x21 => "lzma2".into(),
        other => format!("{other:#x}"),
    }
}

/// Reads an xz multibyte integer (7 bits per byte, at most 9 bytes).
fn varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..9 {
        let b = *data.get(*pos)?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The filter chain and LZMA2 dictionary size of the first block (best effort: `None` when
/// the header does not parse; liblzma reports the real error while decoding).
fn first_block_filters(data: &[u8]) -> Option<(Vec<String>, Option<u32>)> {
    let size_byte = *data.get(HEADER_LEN)?;
    if size_byte == 0 {
        return None; // no blocks: the index follows directly
    }
    let header_end = HEADER_LEN + (usize::from(size_byte) + 1) * 4;
    let block = data.get(..header_end)?;
    let flags = *block.get(HEADER_LEN + 1)?;
    let mut pos = HEADER_LEN + 2;
    if flags & 0x40 != 0 {
        varint(block, &mut pos)?; // compressed size
    }
    if flags & 0x80 != 0 {
        varint(block, &mut pos)?; // uncompressed size
    }
    let count = usize::from(flags & 0x03) + 1;
    let mut filters = Vec::with_capacity(count);
    let mut dict = None;
    for _ in 0..count {
        let id = varint(block, &mut pos)?;
        let props_len = usize::try_from(varint(block, &mut pos)?).ok()?;
        let props = block.get(pos..pos.checked_add(props_len)?)?;
        pos += props_len;
        if id == 0x21 && props_len == 1 {
            let bits = u32::from(props[0] & 0x3f);
            dict = match bits {
                0..=39 => Some((2 | (bits & 1)) << (bits / 2 + 11)),
                40 => Some(u32::MAX),
                _ => None,
            };
        }
        filters.push(filter_name(id));
    }
    Some((filters, dict))
}
