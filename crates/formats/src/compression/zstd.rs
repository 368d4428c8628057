//! Zstandard, one frame, decoded by libzstd. Kernels are compressed with `--ultra -22`
//! (a 128 MiB window when the input is piped), so the decoder accepts windows up to 2^31.
//!
//! When the output size is known beforehand (the frame header's content size, or the kernel's
//! trailer) the frame is decoded in one call straight into the output buffer, which needs no
//! window buffer and no extra copy; otherwise (or if that guess was wrong) it is streamed, with
//! a window buffer of the frame's window size (refused when that is beyond
//! [`Limit::decoder_memory`]).

use super::{Limit, Sink, StreamParams, check_tail, corrupt, loaded, stalled};
use crate::loader::{LoadContext, Loaded, Loader};
use crate::{Format, FormatError, read};
use ::zstd::zstd_safe::{self, DCtx, DParameter, InBuffer, OutBuffer};
use bytes::Bytes;
use serde::Serialize;

const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// ZSTD_WINDOWLOG_MAX on 64-bit hosts.
const WINDOW_LOG_MAX: u32 = 31;
/// Zstandard's best case is far beyond other formats' (RLE blocks); bound the trailer hint.
const MAX_RATIO: usize = 1 << 16;

/// What a zstd frame header says.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ZstdParams {
    /// Window size (bytes of history the decoder must keep): 128 MiB for a kernel's `-22`.
    pub window_size: u64,
    /// Frame_Content_Size, when the encoder knew it (not for piped kernel builds).
    pub content_size: Option<u64>,
    /// Whether the frame ends with an XXH64 content checksum (checked when present).
    pub content_checksum: bool,
    /// Dictionary the frame needs, if any (never for kernels; such frames are rejected).
    pub dict_id: Option<u32>,
}

/// Loader for zstd frames.
pub struct ZstdLoader;

impl Loader for ZstdLoader {
    fn name(&self) -> &'static str {
        "zstd"
    }

    fn probe(&self, data: &[u8]) -> Option<Format> {
        // Frame header descriptor: bit 3 is reserved (0).
        (data.len() >= 6 && data[..4] == MAGIC && data[4] & 0x08 == 0).then_some(Format::Zstd)
    }

    fn load(&self, data: &Bytes, ctx: &LoadContext) -> Result<Loaded, FormatError> {
        let params = parse_header(data)?;
        let limit = Limit::new(Format::Zstd, ctx);
        if params.content_size.is_some_and(|s| s > limit.max as u64) {
            return Err(limit.exceeded());
        }
        let hint = match params.content_size {
            Some(size) => usize::try_from(size).ok(),
            None => limit.trailer_hint(data, MAX_RATIO),
        };
        let one_shot = match (hint, zstd_safe::find_frame_compressed_size(data)) {
            (Some(hint), Ok(frame_len)) if frame_len <= data.len() => single_shot(
                limit,
                &data[..frame_len],
                hint,
                params.content_size.is_some(),
            )?
            .map(|out| (out, frame_len)),
            _ => None,
        };
        let (out, end) = match one_shot {
            Some(done) => done,
            None => {
                // Streaming keeps a window buffer of the frame's window size.
                if params.window_size > limit.decoder_memory() {
                    return Err(FormatError::Field {
                        field: "zstd window size",
                        offset: 5,
                        value: params.window_size,
                        limit: format!(
                            "exceeds the decoder memory allowed with this output limit ({} bytes)",
                            limit.decoder_memory()
                        ),
                    });
                }
                stream(limit, data, hint)?
            }
        };
        let tail = check_tail(Format::Zstd, data, end, out.len() as u64)?;
        Ok(loaded(
            Format::Zstd,
            end,
            out,
            tail,
            StreamParams::Zstd(params),
        ))
    }
}

fn new_dctx() -> Result<DCtx<'static>, FormatError> {
    let mut dctx = DCtx::try_create()
        .ok_or_else(|| FormatError::Invalid("cannot allocate a zstd decoder".into()))?;
    dctx.set_parameter(DParameter::WindowLogMax(WINDOW_LOG_MAX))
        .map_err(|code| corrupt(Format::Zstd, None, zstd_safe::get_error_name(code)))?;
    Ok(dctx)
}

/// Decodes the whole frame in one call into a buffer of the expected size. `None` when that
/// did not work out (the hint was too small, or the frame is corrupt): the caller then
/// streams, which finds the exact size or the exact error.
fn single_shot(
    limit: Limit,
    frame: &[u8],
    hint: usize,
    exact: bool,
) -> Result<Option<Bytes>, FormatError> {
    // An output beyond the limit does not fit: the streaming decoder then reports it.
    let capacity = if exact {
        hint
    } else {
        hint.saturating_add(super::HINT_SLACK)
    };
    let mut sink = Sink::new(limit, Some(capacity))?;
    let mut dctx = new_dctx()?;
    match dctx.decompress(sink.buf(), frame) {
        Ok(n) => {
            sink.advance(n);
            Ok(Some(sink.finish()?))
        }
        Err(_) => Ok(None),
    }
}

/// Streams the first frame of `data`; returns the output and where the frame ended.
fn stream(limit: Limit, data: &[u8], hint: Option<usize>) -> Result<(Bytes, usize), FormatError> {
    let mut dctx = new_dctx()?;
    let mut sink = Sink::streaming(limit, data.len(), hint)?;
    let mut in_pos = 0usize;
    loop {
        let mut input = InBuffer::around(data.get(in_pos..).unwrap_or(&[]));
        let mut output = OutBuffer::around(sink.spare()?);
        let result = dctx.decompress_stream(&mut output, &mut input);
        let produced = output.pos();
        let used = input.pos();
        sink.advance(produced);
        in_pos += used;
        let remaining = result.map_err(|code| {
            corrupt(
                Format::Zstd,
                Some(in_pos as u64),
                zstd_safe::get_error_name(code),
            )
        })?;
        if remaining == 0 {
            break;
        }
        if used == 0 && produced == 0 {
            return Err(stalled(Format::Zstd, in_pos, data.len()));
        }
    }
    Ok((sink.finish()?, in_pos))
}

/// Parses the frame header (RFC 8878 §3.1.1.1).
fn parse_header(data: &[u8]) -> Result<ZstdParams, FormatError> {
    let magic = read::array::<4>(data, 0, "zstd magic number")?;
    if magic != MAGIC {
        return Err(FormatError::BadMagic {
            what: "zstd frame",
            offset: 0,
            expected: "28 b5 2f fd".into(),
            found: read::hex_prefix(data, 0),
        });
    }
    let fhd = read::u8_at(data, 4, "zstd frame header descriptor")?;
    if fhd & 0x08 != 0 {
        return Err(FormatError::Field {
            field: "zstd frame header descriptor",
            offset: 4,
            value: u64::from(fhd),
            limit: "has the reserved bit 3 set".into(),
        });
    }
    let single_segment = fhd & 0x20 != 0;
    let mut pos = 5u64;
    let mut window_size = None;
    if !single_segment {
        let wd = read::u8_at(data, pos, "zstd window descriptor")?;
        pos += 1;
        let base = 1u64 << (10 + u32::from(wd >> 3));
        window_size = Some(base + (base / 8) * u64::from(wd & 7));
    }
    let dict_len = [0u64, 1, 2, 4][usize::from(fhd & 3)];
    let dict_id = if dict_len > 0 {
        let bytes = read::slice(data, pos, dict_len, "zstd dictionary ID")?;
        pos += dict_len;
        let mut le = [0u8; 4];
        le[..bytes.len()].copy_from_slice(bytes);
        Some(u32::from_le_bytes(le)).filter(|&id| id != 0)
    } else {
        None
    };
    let fcs_len = match fhd >> 6 {
        0 if single_segment => 1,
        0 => 0,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let content_size = if fcs_len > 0 {
        let bytes = read::slice(data, pos, fcs_len, "zstd frame content size")?;
        let mut le = [0u8; 8];
        le[..bytes.len()].copy_from_slice(bytes);
        let value = u64::from_le_bytes(le);
        Some(if fcs_len == 2 { value + 256 } else { value })
    } else {
        None
    };
    Ok(ZstdParams {
        // A single-segment frame's window is its content.
        window_size: window_size.or(content_size).unwrap_or(0),
        content_size,
        content_checksum: fhd & 0x04 != 0,
        dict_id,
    })
}
