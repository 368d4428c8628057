//! gzip (RFC 1952), one member, inflated by zlib-rs through `flate2`'s raw interface (which
//! writes straight into the output `Vec` and checks the member's CRC-32 and ISIZE).

use super::{Sink, StreamParams, check_tail, corrupt, loaded, stalled};
use crate::loader::{LoadContext, Loaded, Loader};
use crate::{Format, FormatError, read};
use bytes::Bytes;
use flate2::{Decompress, FlushDecompress, Status};
use serde::Serialize;

const MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;
/// Longest original file name or comment shown.
const MAX_NAME: usize = 1024;
/// Deflate cannot expand more than 1032:1.
const MAX_RATIO: usize = 1032;

/// What a gzip member header says.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct GzipParams {
    /// FNAME: the file name the stream was compressed from.
    pub original_name: Option<String>,
    /// FCOMMENT.
    pub comment: Option<String>,
    /// MTIME (Unix seconds); `None` when the header holds 0 (no time stored).
    pub mtime: Option<u32>,
    /// XFL: 2 = best compression, 4 = fastest.
    pub extra_flags: u8,
    /// OS byte (3 = Unix, 255 = unknown).
    pub os: u8,
}

/// Loader for gzip streams.
pub struct GzipLoader;

impl Loader for GzipLoader {
    fn name(&self) -> &'static str {
        "gzip"
    }

    fn probe(&self, data: &[u8]) -> Option<Format> {
        (data.len() >= 10 && data[..3] == MAGIC && data[3] & FRESERVED == 0).then_some(Format::Gzip)
    }

    fn load(&self, data: &Bytes, ctx: &LoadContext) -> Result<Loaded, FormatError> {
        let params = parse_header(data)?;
        let limit = super::Limit::new(Format::Gzip, ctx);
        let mut sink = Sink::streaming(limit, data.len(), limit.trailer_hint(data, MAX_RATIO))?;
        // 15-bit window, gzip wrapper: zlib parses the header, checks CRC-32 and ISIZE.
        let mut inflate = Decompress::new_gzip(15);
        loop {
            let consumed = usize::try_from(inflate.total_in()).unwrap_or(usize::MAX);
            let input = data.get(consumed..).unwrap_or(&[]);
            let out_before = inflate.total_out();
            let room = sink.spare()?;
            let status = inflate
                .decompress(input, room, FlushDecompress::None)
                .map_err(|e| {
                    corrupt(
                        Format::Gzip,
                        Some(inflate.total_in()),
                        e.message().unwrap_or("invalid deflate data").to_owned(),
                    )
                })?;
            let produced = (inflate.total_out() - out_before) as usize;
            sink.advance(produced);
            if status == Status::StreamEnd {
                break;
            }
            if produced == 0 && inflate.total_in() as usize == consumed {
                return Err(stalled(Format::Gzip, consumed, data.len()));
            }
        }
        let end = inflate.total_in() as usize;
        let out = sink.finish()?;
        let tail = check_tail(Format::Gzip, data, end, out.len() as u64)?;
        Ok(loaded(
            Format::Gzip,
            end,
            out,
            tail,
            StreamParams::Gzip(params),
        ))
    }
}

/// Parses the member header for its facts (zlib parses it again to decode).
fn parse_header(data: &[u8]) -> Result<GzipParams, FormatError> {
    let flags = read::u8_at(data, 3, "gzip header flags")?;
    if flags & FRESERVED != 0 {
        return Err(FormatError::Field {
            field: "gzip FLG",
            offset: 3,
            value: u64::from(flags),
            limit: "has reserved bits set".into(),
        });
    }
    let mtime = read::le32(data, 4, "gzip header MTIME")?;
    let extra_flags = read::u8_at(data, 8, "gzip header XFL")?;
    let os = read::u8_at(data, 9, "gzip header OS")?;
    let mut offset = 10u64;
    if flags & FEXTRA != 0 {
        let xlen = read::le16(data, offset, "gzip FEXTRA length")?;
        read::slice(data, offset + 2, u64::from(xlen), "gzip FEXTRA field")?;
        offset += 2 + u64::from(xlen);
    }
    let mut string = |what: &'static str| -> Result<Option<String>, FormatError> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let rest = data.get(start..).unwrap_or(&[]);
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            return Err(FormatError::Truncated {
                what,
                offset,
                need: rest.len() as u64 + 1,
                have: rest.len() as u64,
            });
        };
        offset += nul as u64 + 1;
        let shown = &rest[..nul.min(MAX_NAME)];
        Ok(Some(String::from_utf8_lossy(shown).into_owned()))
    };
    let original_name = if flags & FNAME != 0 {
        string("gzip FNAME (NUL-terminated)")?
    } else {
        None
    };
    let comment = if flags & FCOMMENT != 0 {
        string("gzip FCOMMENT (NUL-terminated)")?
    } else {
        None
    };
    if flags & FHCRC != 0 {
        read::le16(data, offset, "gzip FHCRC")?;
    }
    Ok(GzipParams {
        original_name,
        comment,
        mtime: (mtime != 0).then_some(mtime),
        extra_flags,
        os,
    })
}
