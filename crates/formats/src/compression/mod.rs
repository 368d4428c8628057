//! Compressed streams: every format a Linux kernel payload uses (`CONFIG_KERNEL_{GZIP,BZIP2,
//! LZMA,XZ,LZO,LZ4,ZSTD}`), each a [`Loader`] that unwraps one stream into the bytes it holds.
//!
//! | format | decoder | notes |
//! |---|---|---|
//! | gzip  | `flate2` on `zlib-rs` (pure Rust, fastest inflate available) | one member |
//! | bzip2 | `bzip2` on `libbz2-rs-sys` (pure Rust) | one stream |
//! | lzma  | `liblzma` (LZMA-alone, what `CONFIG_KERNEL_LZMA` emits) | |
//! | xz    | `liblzma` (the kernel uses `--check=crc32` and the x86 BCJ filter) | one stream |
//! | lzo   | lzop framing parsed here, LZO1X decoded by [`lzo1x`] (safe Rust) | |
//! | lz4   | legacy frame (`lz4 -l`, the kernel's) and the standard frame; blocks by `lz4_flex` | |
//! | zstd  | `zstd` (libzstd), window log up to 31 (kernels use `--ultra -22`) | one frame |
//!
//! Every decoder obeys the same rules:
//! - it never produces more than [`LoadContext::max_output`] bytes, and never allocates an
//!   output buffer beyond it (a decompression bomb ends in [`FormatError::OutputLimit`]);
//! - after the stream it accepts nothing, the kernel's 4-byte little-endian size trailer
//!   (equal to the decompressed size, see [`CompressedInfo::trailer`]) optionally followed by
//!   zero bytes, or zero bytes alone (padding); anything else, including a second
//!   concatenated stream, is [`FormatError::TrailingGarbage`];
//! - a corrupt or truncated stream is [`FormatError::Corrupt`] (with the input offset when the
//!   decoder knows it) or [`FormatError::Truncated`], never a panic.
//!
//! ```no_run
//! use bytes::Bytes;
//! use domboot_formats::{compression, LoadContext};
//! let data = Bytes::from(std::fs::read("vmlinux.xz")?);
//! let loader = compression::loader_for(&data).expect("not a compressed stream");
//! let loaded = loader.load(&data, &LoadContext::default())?;
//! println!("{} bytes", loaded.inner.map_or(0, |b| b.len()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bzip2;
mod gzip;
mod lz4;
mod lzma;
mod lzo;
pub mod lzo1x;
mod xz;
mod zstd;

pub use self::bzip2::{Bzip2Loader, Bzip2Params};
pub use self::gzip::{GzipLoader, GzipParams};
pub use self::lz4::{Lz4Loader, Lz4Params};
pub use self::lzma::{LzmaLoader, LzmaParams};
pub use self::lzo::{LzoLoader, LzoParams};
pub use self::xz::{XzLoader, XzParams};
pub use self::zstd::{ZstdLoader, ZstdParams};

use crate::loader::{Details, LoadContext, Loaded, Loader};
use crate::{Format, FormatError};
use bytes::Bytes;
use serde::Serialize;

/// Facts about one compressed layer. Flattened into the layer's `inspect --json` object.
#[derive(Clone, Debug, Serialize)]
pub struct CompressedInfo {
    /// Bytes of the compressed stream itself (headers included; trailer and padding excluded).
    pub compressed_size: u64,
    /// Bytes the stream decompressed to.
    pub decompressed_size: u64,
    /// `decompressed_size / compressed_size`.
    pub ratio: f64,
    /// The kernel's 4-byte little-endian size trailer after the stream, when present (it
    /// always equals `decompressed_size`; a different value is rejected as trailing garbage).
    pub trailer: Option<u32>,
    /// Zero bytes after the stream (and after the trailer, if any).
    pub padding: u64,
    /// What the stream's own headers say, format by format.
    #[serde(flatten)]
    pub params: StreamParams,
}

/// Format-specific facts read from a stream's headers (flattened into [`CompressedInfo`]).
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum StreamParams {
    Gzip(GzipParams),
    Bzip2(Bzip2Params),
    Lzma(LzmaParams),
    Xz(XzParams),
    Lzo(LzoParams),
    Lz4(Lz4Params),
    Zstd(ZstdParams),
}

/// One loader per compression format, in probe order: the formats with long, specific magic
/// numbers first, LZMA-alone (which has none, only plausible header values) last.
pub fn loaders() -> Vec<Box<dyn Loader>> {
    vec![
        Box::new(GzipLoader),
        Box::new(XzLoader),
        Box::new(ZstdLoader),
        Box::new(Lz4Loader),
        Box::new(LzoLoader),
        Box::new(Bzip2Loader),
        Box::new(LzmaLoader),
    ]
}

/// The compression format of `data`, if one of [`loaders`] recognises it.
pub fn probe(data: &[u8]) -> Option<Format> {
    loaders().iter().find_map(|l| l.probe(data))
}

/// The loader that recognises `data` as a compressed stream, if any.
pub fn loader_for(data: &[u8]) -> Option<Box<dyn Loader>> {
    loaders().into_iter().find(|l| l.probe(data).is_some())
}

/// Decompresses `data` with whichever loader recognises it. `None` when it is not a
/// compressed stream this module knows.
pub fn decompress(data: &Bytes, ctx: &LoadContext) -> Option<Result<Loaded, FormatError>> {
    loader_for(data).map(|l| l.load(data, ctx))
}

// ---------------------------------------------------------------------------------------------
// Shared plumbing for the decoders.

/// The kernel appends the uncompressed size as a little-endian u32 after the stream.
const TRAILER_LEN: usize = 4;
/// Extra capacity beyond a size hint, so a decoder finishing exactly at the hint still has
/// room to report the end of the stream without a reallocation.
const HINT_SLACK: usize = 64 * 1024;
/// Smallest growth step of an output buffer.
const MIN_GROW: usize = 1 << 20;
/// Decoder memory (dictionary, window) always allowed, whatever the output limit: what real
/// kernels need (`lzma -9`: 64 MiB dictionary, `zstd --ultra -22`: 128 MiB window) and more.
const DECODER_MEMORY_FLOOR: u64 = 256 << 20;

/// The output limit of one load, in the units the decoders need.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limit {
    pub format: Format,
    /// Most bytes the output may hold.
    pub max: usize,
    limit: u64,
    reason: &'static str,
}

impl Limit {
    pub(crate) fn new(format: Format, ctx: &LoadContext) -> Limit {
        // A Vec cannot exceed isize::MAX bytes; keep one spare for the "one byte too many"
        // probe of the streaming decoders.
        let max = usize::try_from(ctx.max_output)
            .unwrap_or(usize::MAX)
            .min(isize::MAX as usize - 1);
        Limit {
            format,
            max,
            limit: ctx.max_output,
            reason: ctx.max_output_reason,
        }
    }

    /// The error for output beyond the limit.
    pub(crate) fn exceeded(&self) -> FormatError {
        FormatError::OutputLimit {
            format: self.format,
            limit: self.limit,
            reason: self.reason,
        }
    }

    /// The most decoder memory (dictionary or window) a stream may ask for: a dictionary larger
    /// than the output can never be used, but encoders do not shrink it for piped input, so
    /// allow the output limit plus a generous floor.
    pub(crate) fn decoder_memory(&self) -> u64 {
        (self.max as u64)
            .max(DECODER_MEMORY_FLOOR)
            .saturating_add(64 << 20)
    }

    /// A size hint usable for an up-front allocation: the kernel's trailer (the last four
    /// bytes of the input), when it is at most the limit and at most `max_ratio` times the
    /// input (so a few hostile bytes cannot make us reserve the whole limit).
    pub(crate) fn trailer_hint(&self, data: &[u8], max_ratio: usize) -> Option<usize> {
        let tail = data.len().checked_sub(TRAILER_LEN)?;
        let bytes: [u8; 4] = data.get(tail..)?.try_into().ok()?;
        let hint = usize::try_from(u32::from_le_bytes(bytes)).ok()?;
        (hint > 0 && hint <= self.max && hint <= data.len().saturating_mul(max_ratio))
            .then_some(hint)
    }
}

pub(crate) fn alloc_failed(format: Format, bytes: usize) -> FormatError {
    FormatError::Invalid(format!(
        "cannot allocate {bytes} bytes for the decompressed {format} stream"
    ))
}

pub(crate) fn corrupt(
    format: Format,
    offset: Option<u64>,
    detail: impl Into<String>,
) -> FormatError {
    FormatError::Corrupt {
        format,
        offset,
        detail: detail.into(),
    }
}

/// A streaming decoder consumed nothing and produced nothing although it had input (or had
/// run out of it) and room for output.
pub(crate) fn stalled(format: Format, consumed: usize, len: usize) -> FormatError {
    if consumed >= len {
        truncated(format, len)
    } else {
        corrupt(
            format,
            Some(consumed as u64),
            "the decoder makes no progress",
        )
    }
}

/// The input ended inside the stream.
pub(crate) fn truncated(format: Format, len: usize) -> FormatError {
    corrupt(
        format,
        Some(len as u64),
        "truncated: the input ends before the end of the stream",
    )
}

/// Output buffers from this size up are anonymous mappings with transparent huge pages.
const MAP_THRESHOLD: usize = 4 << 20;

/// Zeroed output memory: the heap for small outputs, an anonymous mapping advised to use
/// transparent huge pages for large ones. A fresh 50 MB buffer otherwise costs 13 000 page
/// faults, which take as long as decoding LZ4 (and are most of a kernel load's memory cost).
enum Buffer {
    Heap(Vec<u8>),
    Map(memmap2::MmapMut),
}

impl Buffer {
    fn zeroed(len: usize, format: Format) -> Result<Buffer, FormatError> {
        if len >= MAP_THRESHOLD {
            if let Ok(map) = memmap2::MmapMut::map_anon(len) {
                #[cfg(target_os = "linux")]
                let _ = map.advise(memmap2::Advice::HugePage); // only a hint
                return Ok(Buffer::Map(map));
            }
        }
        let mut v = Vec::new();
        v.try_reserve_exact(len)
            .map_err(|_| alloc_failed(format, len))?;
        v.resize(len, 0);
        Ok(Buffer::Heap(v))
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Buffer::Heap(v) => v,
            Buffer::Map(m) => m,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            Buffer::Heap(v) => v,
            Buffer::Map(m) => m,
        }
    }

    /// The first `len` bytes, without a copy.
    fn into_bytes(self, len: usize) -> Bytes {
        match self {
            Buffer::Heap(mut v) => {
                v.truncate(len);
                Bytes::from(shrink(v))
            }
            Buffer::Map(m) => Bytes::from_owner(MapOwner(m)).slice(..len),
        }
    }
}

/// Lets [`Bytes`] own a mapping (unmapped with the last reference).
struct MapOwner(memmap2::MmapMut);

impl AsRef<[u8]> for MapOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A decoder's output: zeroed memory of which the first `pos` bytes are output so far.
/// Never grows past the limit (plus one byte for streaming decoders, so that they can show
/// that a stream is longer than the limit).
pub(crate) struct Sink {
    buf: Buffer,
    pos: usize,
    pub limit: Limit,
}

impl Sink {
    /// For decoders that write declared sizes (LZO, LZ4 blocks): `hint` (the expected output
    /// size, already checked for plausibility) is allocated up front, up to the limit.
    pub(crate) fn new(limit: Limit, hint: Option<usize>) -> Result<Sink, FormatError> {
        let initial = hint.unwrap_or(0).min(limit.max);
        Ok(Sink {
            buf: Buffer::zeroed(initial, limit.format)?,
            pos: 0,
            limit,
        })
    }

    /// For streaming decoders: the hint plus some slack (so that a decoder finishing exactly
    /// at the hint can still report the end without a reallocation), or a guess from the
    /// input size.
    pub(crate) fn streaming(
        limit: Limit,
        input_len: usize,
        hint: Option<usize>,
    ) -> Result<Sink, FormatError> {
        let initial = match hint.filter(|&h| h <= limit.max) {
            Some(h) => h.saturating_add(HINT_SLACK),
            None => input_len.saturating_mul(4).max(64 << 10),
        }
        .min(limit.max.saturating_add(1));
        Ok(Sink {
            buf: Buffer::zeroed(initial, limit.format)?,
            pos: 0,
            limit,
        })
    }

    /// Bytes of output so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes allocated (output plus room).
    pub(crate) fn len(&self) -> usize {
        self.buf.as_slice().len()
    }

    /// The output so far.
    pub(crate) fn output(&self) -> &[u8] {
        &self.buf.as_slice()[..self.pos]
    }

    /// All of the buffer (output so far, then zeroed room).
    pub(crate) fn buf(&mut self) -> &mut [u8] {
        self.buf.as_mut_slice()
    }

    /// Marks `n` more bytes after the output as written.
    pub(crate) fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.len());
    }

    /// Makes `buf[pos..pos + need]` writable; [`FormatError::OutputLimit`] if that would pass
    /// the limit.
    pub(crate) fn reserve(&mut self, need: usize) -> Result<(), FormatError> {
        let end = self
            .pos
            .checked_add(need)
            .filter(|&e| e <= self.limit.max)
            .ok_or_else(|| self.limit.exceeded())?;
        self.grow_to(end)
    }

    /// Makes up to `want` bytes at `pos` writable, fewer when the limit is nearer; returns how
    /// many.
    pub(crate) fn reserve_upto(&mut self, want: usize) -> Result<usize, FormatError> {
        let room = want.min(self.limit.max.saturating_sub(self.pos));
        self.grow_to(self.pos + room)?;
        Ok(room)
    }

    /// The room after the output for a streaming decoder, never empty: grows the buffer when
    /// it is full, geometrically, up to limit + 1 bytes. [`FormatError::OutputLimit`] once
    /// the output exceeds the limit.
    pub(crate) fn spare(&mut self) -> Result<&mut [u8], FormatError> {
        self.check()?;
        let len = self.len();
        if len <= self.pos {
            let ceiling = self.limit.max.saturating_add(1);
            if len >= ceiling {
                return Err(self.limit.exceeded());
            }
            let target = len
                .saturating_mul(2)
                .max(len.saturating_add(MIN_GROW))
                .min(ceiling);
            self.grow_to(target)?;
        }
        let pos = self.pos;
        Ok(&mut self.buf.as_mut_slice()[pos..])
    }

    /// [`FormatError::OutputLimit`] when the output exceeds the limit.
    pub(crate) fn check(&self) -> Result<(), FormatError> {
        if self.pos > self.limit.max {
            Err(self.limit.exceeded())
        } else {
            Ok(())
        }
    }

    fn grow_to(&mut self, end: usize) -> Result<(), FormatError> {
        let len = self.len();
        if end <= len {
            return Ok(());
        }
        let target = end
            .max(len.saturating_mul(2))
            .min(self.limit.max.saturating_add(1))
            .max(end);
        match &mut self.buf {
            Buffer::Heap(v) if target < MAP_THRESHOLD => {
                v.try_reserve_exact(target - len)
                    .map_err(|_| alloc_failed(self.limit.format, target))?;
                v.resize(target, 0);
            }
            _ => {
                let mut bigger = Buffer::zeroed(target, self.limit.format)?;
                bigger.as_mut_slice()[..self.pos].copy_from_slice(self.output());
                self.buf = bigger;
            }
        }
        Ok(())
    }

    /// The output, after a last check against the limit.
    pub(crate) fn finish(self) -> Result<Bytes, FormatError> {
        self.check()?;
        Ok(self.buf.into_bytes(self.pos))
    }
}

/// Returns unused capacity when there is a lot of it (a generous hint, a failed guess).
fn shrink(mut buf: Vec<u8>) -> Vec<u8> {
    if buf.capacity() - buf.len() > (1 << 20).max(buf.len() / 8) {
        buf.shrink_to_fit();
    }
    buf
}

/// What follows a stream: the kernel's size trailer and/or zero padding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tail {
    pub trailer: Option<u32>,
    pub padding: u64,
}

/// Classifies `rest` (the bytes after a stream that decompressed to `produced` bytes) as the
/// kernel's trailer (optionally followed by zeros) or zero padding; `None` for anything else.
pub(crate) fn classify_tail(rest: &[u8], produced: u64) -> Option<Tail> {
    if let Some((head, zeros)) = rest.split_first_chunk::<TRAILER_LEN>() {
        let value = u32::from_le_bytes(*head);
        if u64::from(value) == produced && zeros.iter().all(|&b| b == 0) {
            return Some(Tail {
                trailer: Some(value),
                padding: zeros.len() as u64,
            });
        }
    }
    rest.iter().all(|&b| b == 0).then_some(Tail {
        trailer: None,
        padding: rest.len() as u64,
    })
}

/// Checks what follows the stream that ends at `end`; [`FormatError::TrailingGarbage`] unless
/// it is nothing, the kernel's trailer or padding.
pub(crate) fn check_tail(
    format: Format,
    data: &[u8],
    end: usize,
    produced: u64,
) -> Result<Tail, FormatError> {
    let rest = data.get(end..).unwrap_or(&[]);
    classify_tail(rest, produced).ok_or(FormatError::TrailingGarbage {
        format,
        offset: end as u64,
        count: rest.len() as u64,
    })
}

/// Assembles the loaded layer.
pub(crate) fn loaded(
    format: Format,
    stream_len: usize,
    out: Bytes,
    tail: Tail,
    params: StreamParams,
) -> Loaded {
    let decompressed_size = out.len() as u64;
    let compressed_size = stream_len as u64;
    let ratio = if compressed_size == 0 {
        0.0
    } else {
        decompressed_size as f64 / compressed_size as f64
    };
    Loaded {
        format,
        details: Details::Compressed(CompressedInfo {
            compressed_size,
            decompressed_size,
            ratio,
            trailer: tail.trailer,
            padding: tail.padding,
            params,
        }),
        inner: Some(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails() {
        let t = |rest: &[u8], n| classify_tail(rest, n);
        assert_eq!(t(&[], 5), Some(Tail::default()));
        assert_eq!(
            t(&[5, 0, 0, 0], 5),
            Some(Tail {
                trailer: Some(5),
                padding: 0
            })
        );
        assert_eq!(
            t(&[5, 0, 0, 0, 0, 0], 5),
            Some(Tail {
                trailer: Some(5),
                padding: 2
            })
        );
        assert_eq!(
            t(&[0, 0, 0], 5),
            Some(Tail {
                trailer: None,
                padding: 3
            })
        );
        assert_eq!(t(&[6, 0, 0, 0], 5), None);
        assert_eq!(t(&[5, 0, 0], 5), None);
        assert_eq!(t(&[5, 0, 0, 0, 1], 5), None);
        assert_eq!(t(&[0, 0, 0, 0, 5, 0, 0, 0], 5), None);
        assert!(matches!(
            check_tail(Format::Gzip, &[1, 2, 3, 9, 9], 3, 0),
            Err(FormatError::TrailingGarbage {
                format: Format::Gzip,
                offset: 3,
                count: 2
            })
        ));
    }

    #[test]
    fn sinks_respect_the_limit() {
        let ctx = LoadContext {
            max_output: 10,
            max_output_reason: "test",
        };
        let limit = Limit::new(Format::Lz4, &ctx);
        let mut s = Sink::new(limit, Some(100)).unwrap();
        assert_eq!(s.len(), 10);
        assert!(s.reserve(10).is_ok());
        assert!(matches!(
            s.reserve(11),
            Err(FormatError::OutputLimit { .. })
        ));
        s.advance(8);
        assert_eq!(s.reserve_upto(100).unwrap(), 2);

        // Streaming: room up to limit + 1, then OutputLimit.
        let mut v = Sink::streaming(limit, 1000, Some(1 << 30)).unwrap();
        assert_eq!(v.len(), 11);
        assert_eq!(v.spare().unwrap().len(), 11);
        v.advance(11);
        assert!(matches!(v.spare(), Err(FormatError::OutputLimit { .. })));
        assert!(matches!(v.finish(), Err(FormatError::OutputLimit { .. })));

        // Growth keeps the output.
        let big = LoadContext {
            max_output: 64 << 20,
            max_output_reason: "test",
        };
        let mut g = Sink::streaming(Limit::new(Format::Gzip, &big), 10, None).unwrap();
        let n = g.spare().unwrap().len();
        g.spare().unwrap().fill(7);
        g.advance(n);
        assert!(g.spare().unwrap().len() >= n);
        g.spare().unwrap()[0] = 9;
        g.advance(1);
        let out = g.finish().unwrap();
        assert_eq!(out.len(), n + 1);
        assert!(out[..n].iter().all(|&b| b == 7) && out[n] == 9);

        // A large hint is a mapping; the bytes survive into `Bytes`.
        let mut m = Sink::new(Limit::new(Format::Lz4, &big), Some(8 << 20)).unwrap();
        m.reserve(5).unwrap();
        m.buf()[..5].copy_from_slice(b"hello");
        m.advance(5);
        assert_eq!(&m.finish().unwrap()[..], b"hello");
    }

    #[test]
    fn trailer_hints_are_bounded() {
        let ctx = LoadContext {
            max_output: 1 << 20,
            max_output_reason: "test",
        };
        let limit = Limit::new(Format::Lz4, &ctx);
        let data = [0u8, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x10, 0, 0];
        assert_eq!(limit.trailer_hint(&data, 1000), Some(0x1000));
        assert_eq!(limit.trailer_hint(&data, 100), None);
        assert_eq!(limit.trailer_hint(&data[..3], 1000), None);
        let big = [0u8, 0, 0, 0, 0, 0, 0, 0x10];
        assert_eq!(limit.trailer_hint(&big, usize::MAX), None);
    }
}
