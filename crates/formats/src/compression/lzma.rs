//! Legacy `.lzma` (LZMA-alone: what `CONFIG_KERNEL_LZMA` emits), decoded by liblzma. Also the
//! liblzma driving loop shared with [`super::xz`].

use super::{Limit, Sink, StreamParams, check_tail, corrupt, loaded, stalled};
use crate::loader::{LoadContext, Loaded, Loader};
use crate::{Format, FormatError, read};
use bytes::Bytes;
use liblzma::stream::{Action, Error as LzmaError, Status, Stream};
use serde::Serialize;

/// props (1) + dictionary size (4) + uncompressed size (8).
const HEADER_LEN: usize = 13;
/// liblzma refuses (in its strict mode, and so do we) declared sizes from 256 GiB up.
const MAX_DECLARED: u64 = 1 << 38;
/// LZMA's best case is about 7000:1; allow some margin for the trailer hint.
const MAX_RATIO: usize = 8192;

/// What an LZMA-alone header says.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LzmaParams {
    /// Dictionary size in bytes.
    pub dict_size: u32,
    /// Literal context bits.
    pub lc: u8,
    /// Literal position bits.
    pub lp: u8,
    /// Position bits.
    pub pb: u8,
    /// Uncompressed size stored in the header; `None` for "unknown" (the stream then ends
    /// with an end marker — the kernel's build pipes into `lzma`, so this is the usual case).
    pub declared_size: Option<u64>,
}

/// Loader for LZMA-alone streams.
pub struct LzmaLoader;

/// The header, if `data` starts with a plausible one (the same checks as liblzma's strict
/// `.lzma` detection: properties below 225, a dictionary of 2^n or 2^n + 2^(n-1) bytes, a known
/// size below 256 GiB).
fn parse_header(data: &[u8]) -> Option<LzmaParams> {
    let header: &[u8; HEADER_LEN] = data.first_chunk()?;
    let props = header[0];
    if props >= 9 * 5 * 5 {
        return None;
    }
    let dict_size = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    let mut size = [0u8; 8];
    size.copy_from_slice(&header[5..13]);
    let size = u64::from_le_bytes(size);
    if dict_size != u32::MAX {
        // Round up to 2^n or 2^n + 2^(n-1); a valid header is already rounded.
        let mut d = dict_size.wrapping_sub(1);
        d |= d >> 2;
        d |= d >> 3;
        d |= d >> 4;
        d |= d >> 8;
        d |= d >> 16;
        if d.wrapping_add(1) != dict_size || dict_size < 4096 {
            return None;
        }
    }
    if size != u64::MAX && size >= MAX_DECLARED {
        return None;
    }
    Some(LzmaParams {
        dict_size,
        lc: props % 9,
        lp: (props / 9) % 5,
        pb: props / 45,
        declared_size: (size != u64::MAX).then_some(size),
    })
}

impl Loader for LzmaLoader {
    fn name(&self) -> &'static str {
        "lzma"
    }

    fn probe(&self, data: &[u8]) -> Option<Format> {
        parse_header(data).map(|_| Format::Lzma)
    }

    fn load(&self, data: &Bytes, ctx: &LoadContext) -> Result<Loaded, FormatError> {
        let params = parse_header(data).ok_or_else(|| FormatError::BadMagic {
            what: "lzma (LZMA-alone) header",
            offset: 0,
            expected: "properties < 225, a 2^n or 3*2^(n-1) dictionary of at least 4 KiB and a size below 256 GiB".into(),
            found: read::hex_prefix(data, 0),
        })?;
        let limit = Limit::new(Format::Lzma, ctx);
        let hint = match params.declared_size {
            Some(size) if size > limit.max as u64 => return Err(limit.exceeded()),
            Some(size) => usize::try_from(size).ok(),
            None => limit.trailer_hint(data, MAX_RATIO),
        };
        let memlimit = limit.decoder_memory();
        if u64::from(params.dict_size) > memlimit {
            return Err(FormatError::Field {
                field: "lzma dictionary size",
                offset: 1,
                value: u64::from(params.dict_size),
                limit: format!(
                    "exceeds the decoder memory allowed with this output limit ({memlimit} bytes)"
                ),
            });
        }
        let stream = Stream::new_lzma_decoder(memlimit)
            .map_err(|e| corrupt(Format::Lzma, None, format!("liblzma: {e}")))?;
        let sink = Sink::streaming(limit, data.len(), hint)?;
        let (out, end) = run(Format::Lzma, stream, data, sink)?;
        if let Some(size) = params.declared_size.filter(|&s| s != out.len() as u64) {
            return Err(corrupt(
                Format::Lzma,
                Some(end as u64),
                format!(
                    "the header declares {size} uncompressed bytes but the stream holds {}",
                    out.len()
                ),
            ));
        }
        let tail = check_tail(Format::Lzma, data, end, out.len() as u64)?;
        Ok(loaded(
            Format::Lzma,
            end,
            out,
            tail,
            StreamParams::Lzma(params),
        ))
    }
}

/// Drives a liblzma decoder over `data` until the end of its (single) stream. Returns the
/// output and the input offset where the stream ended.
pub(super) fn run(
    format: Format,
    mut stream: Stream,
    data: &[u8],
    mut sink: Sink,
) -> Result<(Bytes, usize), FormatError> {
    loop {
        let consumed = usize::try_from(stream.total_in()).unwrap_or(usize::MAX);
        let input = data.get(consumed..).unwrap_or(&[]);
        let out_before = stream.total_out();
        let limit = sink.limit;
        let room = sink.spare()?;
        let status = stream
            .process(input, room, Action::Run)
            .map_err(|e| lzma_error(format, &stream, e, limit))?;
        let produced = (stream.total_out() - out_before) as usize;
        sink.advance(produced);
        if status == Status::StreamEnd {
            break;
        }
        if produced == 0 && stream.total_in() as usize == consumed {
            return Err(stalled(format, consumed, data.len()));
        }
    }
    let end = usize::try_from(stream.total_in()).unwrap_or(usize::MAX);
    Ok((sink.finish()?, end))
}

fn lzma_error(format: Format, stream: &Stream, e: LzmaError, limit: Limit) -> FormatError {
    let detail = match e {
        LzmaError::Data => "compressed data is corrupt".to_owned(),
        LzmaError::Format => "not a valid stream header".to_owned(),
        LzmaError::Options => "unsupported options (filter chain, properties or flags)".to_owned(),
        LzmaError::UnsupportedCheck => "unsupported integrity check type".to_owned(),
        LzmaError::MemLimit => {
            return FormatError::Invalid(format!(
                "the {format} stream needs more than {} bytes of decoder memory (its dictionary is larger than the output limit warrants)",
                limit.decoder_memory()
            ));
        }
        LzmaError::Mem => {
            return FormatError::Invalid(format!("cannot allocate the {format} decoder's memory"));
        }
        other => format!("liblzma: {other}"),
    };
    corrupt(format, Some(stream.total_in()), detail)
}
