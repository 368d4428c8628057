//! LZ4 in both framings a kernel can meet:
//! - the **legacy frame** (magic 0x184C2102, `lz4 -l`, what `CONFIG_KERNEL_LZ4` emits): chunks
//!   of a u32 LE compressed size and an independent block decompressing to at most 8 MiB, with
//!   no end marker — the stream ends with the input or at the kernel's size trailer, which
//!   looks like one more chunk size (it is recognised by its value, and by being too big);
//!   like the kernel's `unlz4`, a repeated magic number (concatenated legacy streams) is
//!   skipped;
//! - the standard **LZ4 frame** (magic 0x184D2204), with its descriptor, block and content
//!   checksums, linked or independent blocks.
//!
//! Blocks are decoded by `lz4_flex` straight into the output buffer.

use super::{Limit, Sink, StreamParams, check_tail, classify_tail, corrupt, loaded};
use crate::loader::{LoadContext, Loaded, Loader};
use crate::{Format, FormatError, read};
use bytes::Bytes;
use lz4_flex::block::DecompressError;
use serde::Serialize;
use twox_hash::XxHash32;

const LEGACY_MAGIC: [u8; 4] = 0x184c_2102u32.to_le_bytes();
const FRAME_MAGIC: [u8; 4] = 0x184d_2204u32.to_le_bytes();
/// Decompressed size of a legacy chunk (LZ4_DEFAULT_UNCOMPRESSED_CHUNK_SIZE in the kernel).
const LEGACY_CHUNK: usize = 8 << 20;
/// LZ4_compressBound(8 MiB): no legacy chunk is larger compressed.
const LEGACY_MAX_COMPRESSED: usize = LEGACY_CHUNK + LEGACY_CHUNK / 255 + 16;
/// History a linked block may refer to.
const WINDOW: usize = 64 << 10;
/// LZ4 cannot expand more than about 255:1.
const MAX_RATIO: usize = 256;

/// What an LZ4 stream's framing says.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Lz4Params {
    /// "legacy" (magic 0x184C2102, the kernel's) or "frame" (magic 0x184D2204).
    pub framing: &'static str,
    /// Blocks (legacy: chunks) in the stream.
    pub blocks: u64,
    /// Largest decompressed size of a block: 8 MiB for legacy, 64 KiB..4 MiB for frames.
    pub block_max_size: u32,
    /// Whether each block decodes on its own (always for legacy).
    pub block_independent: bool,
    /// Whether each block carries an xxHash32 (frame only; checked).
    pub block_checksum: bool,
    /// Whether the frame ends with an xxHash32 of the content (frame only; checked).
    pub content_checksum: bool,
    /// Content size stored in the frame descriptor, if any (checked).
    pub content_size: Option<u64>,
}

/// Loader for LZ4 legacy and standard frames.
pub struct Lz4Loader;

impl Loader for Lz4Loader {
    fn name(&self) -> &'static str {
        "lz4"
    }

    fn probe(&self, data: &[u8]) -> Option<Format> {
        match data.first_chunk::<4>() {
            Some(m) if *m == LEGACY_MAGIC => Some(Format::Lz4),
            // FLG version bits must be 01.
            Some(m) if *m == FRAME_MAGIC && data.len() >= 7 && data[4] >> 6 == 1 => {
                Some(Format::Lz4)
            }
            _ => None,
        }
    }

    fn load(&self, data: &Bytes, ctx: &LoadContext) -> Result<Loaded, FormatError> {
        let magic = read::array::<4>(data, 0, "lz4 magic number")?;
        let limit = Limit::new(Format::Lz4, ctx);
        if magic == LEGACY_MAGIC {
            load_legacy(data, limit)
        } else if magic == FRAME_MAGIC {
            load_frame(data, limit)
        } else {
            Err(FormatError::BadMagic {
                what: "lz4 stream",
                offset: 0,
                expected: "02 21 4c 18 (legacy) or 04 22 4d 18 (frame)".into(),
                found: read::hex_prefix(data, 0),
            })
        }
    }
}

/// Decodes one block at the end of the output; `max_out` is the most its framing lets it
/// decompress to.
/// `linked`: the block may refer to the previous output (dependent blocks).
fn decode_block(
    sink: &mut Sink,
    block: &[u8],
    max_out: usize,
    linked: bool,
    offset: usize,
) -> Result<(), FormatError> {
    // A sequence of n input bytes yields at most 255·n + 19 output bytes: no need to zero
    // more room than that for a short block.
    let max_out = max_out.min(block.len().saturating_mul(256).saturating_add(64));
    // First try the room already there (a correct size hint makes it exactly enough for the
    // last block); grow only when that is too small, so the buffer never outgrows the hint.
    let avail = sink.len() - sink.pos();
    if avail > 0 && avail < max_out {
        match decode_into(sink, block, avail, linked) {
            Err(DecompressError::OutputTooSmall { .. }) => {}
            other => return finish_block(sink, other, avail, max_out, offset),
        }
    }
    let room = sink.reserve_upto(max_out)?;
    let result = decode_into(sink, block, room, linked);
    finish_block(sink, result, room, max_out, offset)
}

fn decode_into(
    sink: &mut Sink,
    block: &[u8],
    room: usize,
    linked: bool,
) -> Result<usize, DecompressError> {
    let pos = sink.pos();
    let (prev, rest) = sink.buf().split_at_mut(pos);
    let out = &mut rest[..room];
    if linked && !prev.is_empty() {
        let dict = &prev[prev.len().saturating_sub(WINDOW)..];
        lz4_flex::block::decompress_into_with_dict(block, out, dict)
    } else {
        lz4_flex::block::decompress_into(block, out)
    }
}

fn finish_block(
    sink: &mut Sink,
    result: Result<usize, DecompressError>,
    room: usize,
    max_out: usize,
    offset: usize,
) -> Result<(), FormatError> {
    match result {
        Ok(n) => {
            sink.advance(n);
            Ok(())
        }
        // The block wants more room than the limit left it.
        Err(DecompressError::OutputTooSmall { .. }) if room < max_out => Err(sink.limit.exceeded()),
        Err(DecompressError::OutputTooSmall { expected, .. }) => Err(corrupt(
            Format::Lz4,
            Some(offset as u64),
            format!(
                "block decompresses to more than {max_out} bytes (at least {expected}), the most its framing and size allow"
            ),
        )),
        Err(e) => Err(corrupt(
            Format::Lz4,
            Some(offset as u64),
            format!("block: {e}"),
        )),
    }
}

fn load_legacy(data: &[u8], limit: Limit) -> Result<Loaded, FormatError> {
    let mut sink = Sink::new(limit, limit.trailer_hint(data, MAX_RATIO))?;
    let mut pos = 4usize;
    let mut blocks = 0u64;
    loop {
        let rest = &data[pos..];
        // The end: nothing left, the kernel's trailer, or padding.
        if rest.is_empty() || classify_tail(rest, sink.pos() as u64).is_some() {
            break;
        }
        let Some(size) = rest.first_chunk::<4>().filter(|_| rest.len() > 4) else {
            // Four bytes or fewer cannot be a chunk (size and data): a wrong trailer or
            // trailing garbage, reported below.
            break;
        };
        if *size == LEGACY_MAGIC {
            // Concatenated legacy streams: the kernel's unlz4 skips the repeated magic.
            pos += 4;
            continue;
        }
        let size = u32::from_le_bytes(*size) as usize;
        if size == 0 || size > LEGACY_MAX_COMPRESSED {
            break; // not a chunk size: trailing garbage (or a wrong trailer), reported below
        }
        let Some(block) = rest.get(4..4 + size) else {
            if size as u64 == sink.pos() as u64 {
                break; // the kernel's trailer followed by something: reported below
            }
            return Err(FormatError::Truncated {
                what: "lz4 legacy chunk",
                offset: (pos + 4) as u64,
                need: size as u64,
                have: (rest.len() - 4) as u64,
            });
        };
        decode_block(&mut sink, block, LEGACY_CHUNK, false, pos + 4)?;
        blocks += 1;
        pos += 4 + size;
    }
    let out = sink.finish()?;
    let tail = check_tail(Format::Lz4, data, pos, out.len() as u64)?;
    let params = Lz4Params {
        framing: "legacy",
        blocks,
        block_max_size: LEGACY_CHUNK as u32,
        block_independent: true,
        block_checksum: false,
        content_checksum: false,
        content_size: None,
    };
    Ok(loaded(
        Format::Lz4,
        pos,
        out,
        tail,
        StreamParams::Lz4(params),
    ))
}

fn load_frame(data: &[u8], limit: Limit) -> Result<Loaded, FormatError> {
    let flg = read::u8_at(data, 4, "lz4 frame FLG")?;
    let bd = read::u8_at(data, 5, "lz4 frame BD")?;
    if flg >> 6 != 1 {
        return Err(FormatError::Field {
            field: "lz4 frame FLG version",
            offset: 4,
            value: u64::from(flg >> 6),
            limit: "is not 1, the only version defined".into(),
        });
    }
    if flg & 0x02 != 0 || bd & 0x8f != 0 {
        return Err(corrupt(
            Format::Lz4,
            Some(4),
            format!("reserved bits set in the frame descriptor (FLG {flg:#04x}, BD {bd:#04x})"),
        ));
    }
    let block_independent = flg & 0x20 != 0;
    let block_checksum = flg & 0x10 != 0;
    let has_content_size = flg & 0x08 != 0;
    let content_checksum = flg & 0x04 != 0;
    let has_dict_id = flg & 0x01 != 0;
    let block_max = match (bd >> 4) & 7 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        other => {
            return Err(FormatError::Field {
                field: "lz4 frame BD block maximum size",
                offset: 5,
                value: u64::from(other),
                limit: "is not one of 4..=7 (64 KiB..4 MiB)".into(),
            });
        }
    };
    let mut pos = 6usize;
    let content_size = if has_content_size {
        let size = read::le64(data, pos as u64, "lz4 frame content size")?;
        pos += 8;
        Some(size)
    } else {
        None
    };
    if has_dict_id {
        let id = read::le32(data, pos as u64, "lz4 frame dictionary ID")?;
        return Err(FormatError::Invalid(format!(
            "the lz4 frame needs external dictionary {id:#x}, which a kernel image cannot supply"
        )));
    }
    let hc = read::u8_at(data, pos as u64, "lz4 frame header checksum")?;
    let expected = (XxHash32::oneshot(0, &data[4..pos]) >> 8) as u8;
    if hc != expected {
        return Err(corrupt(
            Format::Lz4,
            Some(pos as u64),
            format!("frame descriptor checksum {hc:#04x} does not match {expected:#04x}"),
        ));
    }
    pos += 1;
    if content_size.is_some_and(|s| s > limit.max as u64) {
        return Err(limit.exceeded());
    }
    let hint = match content_size {
        Some(size) => usize::try_from(size)
            .ok()
            .filter(|&s| s <= data.len().saturating_mul(MAX_RATIO)),
        None => limit.trailer_hint(data, MAX_RATIO),
    };
    let mut sink = Sink::new(limit, hint)?;
    let mut blocks = 0u64;
    loop {
        let word = read::le32(data, pos as u64, "lz4 frame block size")?;
        pos += 4;
        if word == 0 {
            break; // EndMark
        }
        let stored = word & 0x8000_0000 != 0;
        let size = (word & 0x7fff_ffff) as usize;
        if size > block_max {
            return Err(FormatError::Field {
                field: "lz4 frame block size",
                offset: (pos - 4) as u64,
                value: size as u64,
                limit: format!("exceeds the frame's block maximum size {block_max}"),
            });
        }
        let block = read::slice(data, pos as u64, size as u64, "lz4 frame block")?;
        if block_checksum {
            let sum = read::le32(data, (pos + size) as u64, "lz4 block checksum")?;
            if sum != XxHash32::oneshot(0, block) {
                return Err(corrupt(
                    Format::Lz4,
                    Some(pos as u64),
                    "block checksum mismatch",
                ));
            }
        }
        if stored {
            sink.reserve(size)?;
            let pos = sink.pos();
            sink.buf()[pos..pos + size].copy_from_slice(block);
            sink.advance(size);
        } else {
            decode_block(&mut sink, block, block_max, !block_independent, pos)?;
        }
        blocks += 1;
        pos += size + if block_checksum { 4 } else { 0 };
    }
    if content_checksum {
        let sum = read::le32(data, pos as u64, "lz4 frame content checksum")?;
        let actual = XxHash32::oneshot(0, sink.output());
        if sum != actual {
            return Err(corrupt(
                Format::Lz4,
                Some(pos as u64),
                format!("content checksum {sum:#010x} does not match {actual:#010x}"),
            ));
        }
        pos += 4;
    }
    if let Some(size) = content_size.filter(|&s| s != sink.pos() as u64) {
        return Err(corrupt(
            Format::Lz4,
            Some(6),
            format!(
                "the frame declares {size} content bytes but its blocks hold {}",
                sink.pos()
            ),
        ));
    }
    let out = sink.finish()?;
    let tail = check_tail(Format::Lz4, data, pos, out.len() as u64)?;
    let params = Lz4Params {
        framing: "frame",
        blocks,
        block_max_size: block_max as u32,
        block_independent,
        block_checksum,
        content_checksum,
        content_size,
    };
    Ok(loaded(
        Format::Lz4,
        pos,
        out,
        tail,
        StreamParams::Lz4(params),
    ))
}
