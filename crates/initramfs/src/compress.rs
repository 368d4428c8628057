//! Compressed output: gzip, zstd and lz4 in the forms the kernel's initramfs unpacker
//! (`init/initramfs.c` with `lib/decompress_*.c`) reads.
//!
//! - **gzip**: one gzip member whose deflate stream is compressed in parallel blocks the way
//!   `pigz` does it: each block is deflated on its own, primed with the previous block's last
//!   32 KiB as dictionary, and ends with a sync flush (an empty stored block) so blocks
//!   concatenate. The output depends only on the level, never on the thread count.
//! - **zstd**: one frame with a content checksum, compressed by zstd's own worker threads
//!   (always at least one worker: zstd's multi-threaded output is the same for any number
//!   of workers, while the single-threaded mode's differs).
//! - **lz4**: the *legacy* frame (magic 0x184C2102, then blocks of at most 8 MiB of input,
//!   each preceded by its compressed size). `lib/decompress_unlz4.c` refuses anything else
//!   ("invalid header"), so the modern lz4 frame format cannot be used for an initramfs.

use flate2::{Compress, Crc, FlushCompress, Status};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    #[default]
    Gzip,
    Zstd,
    Lz4,
}

impl Compression {
    pub const ALL: [Compression; 4] = [
        Compression::None,
        Compression::Gzip,
        Compression::Zstd,
        Compression::Lz4,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
        }
    }

    /// The usual file name suffix ("" for none).
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
            Compression::Lz4 => ".lz4",
        }
    }

    /// Guesses from a file name's last suffix: `.gz`/`.gzip`, `.zst`/`.zstd`, `.lz4`, and
    /// `.cpio`/`.img` (none). `None` when the name says nothing.
    pub fn from_file_name(name: &str) -> Option<Compression> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match ext.as_str() {
            "gz" | "gzip" => Compression::Gzip,
            "zst" | "zstd" => Compression::Zstd,
            "lz4" => Compression::Lz4,
            "cpio" => Compression::None,
            _ => return None,
        })
    }

    /// Levels each format accepts, and its default.
    pub fn levels(self) -> (std::ops::RangeInclusive<i32>, i32) {
        match self {
            Compression::None => (0..=0, 0),
            Compression::Gzip => (0..=9, 6),
            Compression::Zstd => (1..=19, 3),
            // lz4_flex has a single (fast) level.
            Compression::Lz4 => (1..=1, 1),
        }
    }

    /// Wraps `out` in an encoder of this format.
    pub fn encoder<W: Write>(self, out: W, options: &CompressOptions) -> io::Result<Encoder<W>> {
        let (range, default) = self.levels();
        let level = options.level.unwrap_or(default);
        if !range.contains(&level) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{self} level {level} is out of range ({}..={})",
                    range.start(),
                    range.end()
                ),
            ));
        }
        let threads = options.threads();
        Ok(match self {
            Compression::None => Encoder::None(out),
            Compression::Gzip => Encoder::Gzip(GzipEncoder::new(out, level as u32, threads)),
            Compression::Zstd => {
                let mut z = zstd::stream::write::Encoder::new(out, level)?;
                z.include_checksum(true)?;
                z.multithread(threads as u32)?;
                Encoder::Zstd(Box::new(z))
            }
            Compression::Lz4 => Encoder::Lz4(Lz4LegacyEncoder::new(out)),
        })
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown compression {s:?} (none, gzip, zstd, lz4)"))
    }
}

/// Level and parallelism of the compressor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompressOptions {
    /// `None`: the format's default (gzip 6, zstd 3).
    pub level: Option<i32>,
    /// Worker threads; 0 means one per available CPU. The output is the same whatever the
    /// number.
    pub threads: usize,
}

impl CompressOptions {
    pub fn threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(16)),
            n => n.min(64),
        }
    }
}

/// A compressing writer; [`Encoder::finish`] completes the stream and returns the output.
pub enum Encoder<W: Write> {
    None(W),
    Gzip(GzipEncoder<W>),
    Zstd(Box<zstd::stream::write::Encoder<'static, W>>),
    Lz4(Lz4LegacyEncoder<W>),
}

impl<W: Write> Encoder<W> {
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(g) => g.finish(),
            Encoder::Zstd(z) => z.finish(),
            Encoder::Lz4(l) => l.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(g) => g.write(buf),
            Encoder::Zstd(z) => z.write(buf),
            Encoder::Lz4(l) => l.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.write_all(buf),
            Encoder::Gzip(g) => g.write_all(buf),
            Encoder::Zstd(z) => z.write_all(buf),
            Encoder::Lz4(l) => l.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(g) => g.flush(),
            Encoder::Zstd(z) => z.flush(),
            Encoder::Lz4(l) => l.flush(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// gzip

/// Input bytes per independently deflated block.
const GZIP_BLOCK: usize = 512 * 1024;
/// Deflate's window: how much of the previous block primes the next one.
const DICT: usize = 32 * 1024;

struct Job {
    level: u32,
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Block>>,
}

struct Block {
    deflated: Vec<u8>,
    crc: Crc,
}

enum Pending {
    Ready(io::Result<Block>),
    Waiting(Receiver<io::Result<Block>>),
}

/// gzip writer compressing blocks on worker threads (see the module documentation).
pub struct GzipEncoder<W: Write> {
    out: W,
    level: u32,
    block: Vec<u8>,
    dict: Vec<u8>,
    crc: Crc,
    header_written: bool,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    pending: VecDeque<Pending>,
    max_pending: usize,
}

impl<W: Write> GzipEncoder<W> {
    /// `level` 0..=9; `threads` 1 compresses on the caller's thread.
    pub fn new(out: W, level: u32, threads: usize) -> Self {
        let level = level.min(9);
        let mut enc = GzipEncoder {
            out,
            level,
            block: Vec::with_capacity(GZIP_BLOCK),
            dict: Vec::new(),
            crc: Crc::new(),
            header_written: false,
            jobs: None,
            workers: Vec::new(),
            pending: VecDeque::new(),
            max_pending: threads.max(1) * 2,
        };
        if threads > 1 {
            let (tx, rx) = sync_channel::<Job>(threads * 2);
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..threads {
                let rx = Arc::clone(&rx);
                let spawned = std::thread::Builder::new()
                    .name("gzip-worker".into())
                    .spawn(move || worker(&rx));
                // Without threads, compress on the caller's thread.
                if let Ok(handle) = spawned {
                    enc.workers.push(handle);
                }
            }
            if !enc.workers.is_empty() {
                enc.jobs = Some(tx);
            }
        }
        enc
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            let xfl = match self.level {
                9 => 2,
                1 => 4,
                _ => 0,
            };
            // Magic, deflate, no flags, mtime 0, extra flags, OS 3 (Unix).
            self.out
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3])?;
            self.header_written = true;
        }
        Ok(())
    }

    /// Hands the current block to a worker (or compresses it here).
    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(GZIP_BLOCK));
        let next_dict = data[data.len().saturating_sub(DICT)..].to_vec();
        let dict = std::mem::replace(&mut self.dict, next_dict);
        let job_result = match &self.jobs {
            Some(jobs) => {
                let (reply, rx) = sync_channel(1);
                let job = Job {
                    level: self.level,
                    dict,
                    data,
                    last,
                    reply,
                };
                match jobs.send(job) {
                    Ok(()) => Pending::Waiting(rx),
                    Err(e) => {
                        let j = e.0;
                        Pending::Ready(deflate_block(j.level, &j.dict, &j.data, j.last))
                    }
                }
            }
            None => Pending::Ready(deflate_block(self.level, &dict, &data, last)),
        };
        self.pending.push_back(job_result);
        while self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(p) = self.pending.pop_front() else {
            return Ok(());
        };
        let block = match p {
            Pending::Ready(r) => r?,
            Pending::Waiting(rx) => rx
                .recv()
                .map_err(|_| io::Error::other("a gzip worker thread died"))??,
        };
        self.write_header()?;
        self.out.write_all(&block.deflated)?;
        self.crc.combine(&block.crc);
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        self.write_header()?;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.out.write_all(&trailer)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for GzipEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = GZIP_BLOCK - self.block.len();
        let n = buf.len().min(room);
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == GZIP_BLOCK {
            self.submit(false)?;
        }
        Ok(n)
    }

    /// Writes out the blocks finished so far (a partial block stays buffered: flushing it
    /// would cost compression for nothing the kernel could use).
    fn flush(&mut self) -> io::Result<()> {
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.out.flush()
    }
}

fn worker(jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let Ok(rx) = jobs.lock() else { return };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let result = deflate_block(job.level, &job.dict, &job.data, job.last);
        let _ = job.reply.send(result);
    }
}

/// One raw deflate segment: ends byte-aligned with a sync flush, or with the final block.
fn deflate_block(level: u32, dict: &[u8], data: &[u8], last: bool) -> io::Result<Block> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == data.len();
        let done = match status {
            Status::StreamEnd => true,
            // A sync flush is complete once zlib stops short of filling the output.
            _ if !last => all_in && out.len() < out.capacity(),
            _ => false,
        };
        if done {
            break;
        }
    }
    let mut crc = Crc::new();
    crc.update(data);
    Ok(Block { deflated: out, crc })
}

// ---------------------------------------------------------------------------------------
// lz4 legacy

const LZ4_LEGACY_MAGIC: u32 = 0x184C_2102;
/// Input bytes per block: the kernel's unlz4 decompresses each block into an 8 MiB buffer.
const LZ4_BLOCK: usize = 8 << 20;

/// Writer of the lz4 legacy frame (see the module documentation).
pub struct Lz4LegacyEncoder<W: Write> {
    out: W,
    block: Vec<u8>,
    compressed: Vec<u8>,
    magic_written: bool,
}

impl<W: Write> Lz4LegacyEncoder<W> {
    pub fn new(out: W) -> Self {
        Lz4LegacyEncoder {
            out,
            block: Vec::new(),
            compressed: Vec::new(),
            magic_written: false,
        }
    }

    fn write_block(&mut self) -> io::Result<()> {
        if !self.magic_written {
            self.out.write_all(&LZ4_LEGACY_MAGIC.to_le_bytes())?;
            self.magic_written = true;
        }
        if self.block.is_empty() {
            return Ok(());
        }
        let bound = lz4_flex::block::get_maximum_output_size(self.block.len());
        self.compressed.resize(bound, 0);
        let n = lz4_flex::block::compress_into(&self.block, &mut self.compressed)
            .map_err(io::Error::other)?;
        self.out.write_all(&(n as u32).to_le_bytes())?;
        self.out.write_all(&self.compressed[..n])?;
        self.block.clear();
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.write_block()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Lz4LegacyEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.block.capacity() == 0 {
            self.block.reserve_exact(LZ4_BLOCK);
        }
        let n = buf.len().min(LZ4_BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == LZ4_BLOCK {
            self.write_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: words with a slowly changing counter.
        let mut v = Vec::with_capacity(len);
        let mut i = 0u64;
        while v.len() < len {
            v.extend_from_slice(
                format!("line {} of {}\n", i, i.wrapping_mul(2654435761) % 977).as_bytes(),
            );
            i += 1;
        }
        v.truncate(len);
        v
    }

    fn gzip(data: &[u8], level: u32, threads: usize) -> Vec<u8> {
        let mut g = GzipEncoder::new(Vec::new(), level, threads);
        for chunk in data.chunks(100_000) {
            g.write_all(chunk).unwrap();
        }
        g.finish().unwrap()
    }

    #[test]
    fn parallel_gzip_round_trips_and_ignores_thread_count() {
        let data = sample(3 * GZIP_BLOCK + 12345);
        let one = gzip(&data, 6, 1);
        let four = gzip(&data, 6, 4);
        assert_eq!(one, four, "output must not depend on the thread count");
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert!(one.len() < data.len() / 3);
    }

    #[test]
    fn gzip_of_nothing_and_level_zero() {
        for level in [0, 1, 9] {
            let out = gzip(b"", level, 2);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert!(back.is_empty());
            let data = sample(GZIP_BLOCK + 7);
            let out = gzip(&data, level, 2);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn lz4_legacy_blocks() {
        let data = sample(LZ4_BLOCK + 1000);
        let mut l = Lz4LegacyEncoder::new(Vec::new());
        l.write_all(&data).unwrap();
        let out = l.finish().unwrap();
        assert_eq!(&out[..4], &[0x02, 0x21, 0x4c, 0x18]);
        // Decode the blocks back by hand.
        let mut at = 4;
        let mut back = Vec::new();
        while at < out.len() {
            let n = u32::from_le_bytes(out[at..at + 4].try_into().unwrap()) as usize;
            let block = lz4_flex::block::decompress(&out[at + 4..at + 4 + n], LZ4_BLOCK).unwrap();
            assert!(block.len() <= LZ4_BLOCK);
            back.extend_from_slice(&block);
            at += 4 + n;
        }
        assert_eq!(back, data);
    }

    #[test]
    fn names_and_levels() {
        for c in Compression::ALL {
            assert_eq!(c.name().parse::<Compression>().unwrap(), c);
        }
        assert!("bzip2".parse::<Compression>().is_err());
        assert_eq!(
            Compression::from_file_name("initrd.cpio.zst"),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::from_file_name("x.cpio"),
            Some(Compression::None)
        );
        assert_eq!(Compression::from_file_name("initrd"), None);
        let bad = CompressOptions {
            level: Some(42),
            threads: 1,
        };
        assert!(Compression::Gzip.encoder(Vec::new(), &bad).is_err());
    }
}
