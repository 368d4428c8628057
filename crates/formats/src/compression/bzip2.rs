//! bzip2, one stream, decoded by `libbz2-rs-sys` (a pure-Rust port of libbzip2) through the
//! `bzip2` crate's raw interface, straight into the output `Vec`.

use super::{Sink, StreamParams, check_tail, corrupt, loaded, stalled};
use crate::loader::{LoadContext, Loaded, Loader};
use crate::{Format, FormatError};
use ::bzip2::{Decompress, Status};
use bytes::Bytes;
use serde::Serialize;

/// Block header magic (π) and end-of-stream magic (√π) that follow "BZh1".."BZh9".
const BLOCK_MAGIC: [u8; 6] = [0x31, 0x41, 0x59, 0x26, 0x53, 0x59];
const EOS_MAGIC: [u8; 6] = [0x17, 0x72, 0x45, 0x38, 0x50, 0x90];

/// What a bzip2 stream header says.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Bzip2Params {
    /// Uncompressed bytes per block (the `-1`..`-9` level times 100 000).
    pub block_size: u32,
}

/// Loader for bzip2 streams.
pub struct Bzip2Loader;

impl Loader for Bzip2Loader {
    fn name(&self) -> &'static str {
        "bzip2"
    }

    fn probe(&self, data: &[u8]) -> Option<Format> {
        let ok = data.len() >= 10
            && &data[..3] == b"BZh"
            && (b'1'..=b'9').contains(&data[3])
            && (data[4..10] == BLOCK_MAGIC || data[4..10] == EOS_MAGIC);
        ok.then_some(Format::Bzip2)
    }

    fn load(&self, data: &Bytes, ctx: &LoadContext) -> Result<Loaded, FormatError> {
        let level = match data.get(..4) {
            Some([b'B', b'Z', b'h', l @ b'1'..=b'9']) => l - b'0',
            _ => {
                return Err(FormatError::BadMagic {
                    what: "bzip2 stream header",
                    offset: 0,
                    expected: "\"BZh1\"..\"BZh9\"".into(),
                    found: crate::read::hex_prefix(data, 0),
                });
            }
        };
        let limit = super::Limit::new(Format::Bzip2, ctx);
        // bzip2 can expand enormously (runs of one byte): trust the trailer up to the limit.
        let mut sink = Sink::streaming(limit, data.len(), limit.trailer_hint(data, usize::MAX))?;
        let mut decoder = Decompress::new(false);
        loop {
            let consumed = usize::try_from(decoder.total_in()).unwrap_or(usize::MAX);
            let input = data.get(consumed..).unwrap_or(&[]);
            let out_before = decoder.total_out();
            let room = sink.spare()?;
            let status = decoder
                .decompress(input, room)
                .map_err(|e| corrupt(Format::Bzip2, Some(decoder.total_in()), e.to_string()))?;
            let produced = (decoder.total_out() - out_before) as usize;
            sink.advance(produced);
            if status == Status::StreamEnd {
                break;
            }
            if produced == 0 && decoder.total_in() as usize == consumed {
                return Err(stalled(Format::Bzip2, consumed, data.len()));
            }
        }
        let end = decoder.total_in() as usize;
        let out = sink.finish()?;
        let tail = check_tail(Format::Bzip2, data, end, out.len() as u64)?;
        let params = Bzip2Params {
            block_size: u32::from(level) * 100_000,
        };
        Ok(loaded(
            Format::Bzip2,
            end,
            out,
            tail,
            StreamParams::Bzip2(params),
        ))
    }
}
