//! An opened image and byte ranges of it (partitions) that filesystem crates read through
//! `Read + Seek` or ext4-view's `Ext4Read`. Reads never go past the range's end, so a
//! filesystem claiming more than its partition holds gets an I/O error, not the next
//! partition's bytes.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the image's bytes are: a file, or memory (fuzzing, images already read).
#[derive(Clone, Debug)]
enum Backing {
    File(Arc<File>),
    Memory(Arc<[u8]>),
}

impl Backing {
    /// Reads at most `buf.len()` bytes at `offset` (the caller keeps inside the region).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            Backing::File(f) => f.read_at(buf, offset),
            Backing::Memory(m) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(m.len());
                let n = buf.len().min(m.len() - start);
                buf[..n].copy_from_slice(&m[start..start + n]);
                Ok(n)
            }
        }
    }
}

/// A byte range of an image, with a cursor.
#[derive(Clone, Debug)]
pub struct Region {
    file: Backing,
    /// Bytes reads may still bring in, shared by every region of the image: a filesystem
    /// crate stuck in a loop on corrupt metadata (a FAT cluster chain that cycles through
    /// deleted directory entries never yields one) runs into it and gets an I/O error.
    budget: Arc<AtomicU64>,
    start: u64,
    len: u64,
    pos: u64,
}

impl Region {
    pub fn open(path: &Path) -> io::Result<Region> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::other("is a directory"));
        }
        let len = if meta.file_type().is_file() {
            meta.len()
        } else {
            // A block device reports length 0 in its metadata; ask it by seeking.
            (&file).seek(SeekFrom::End(0))?
        };
        Ok(Region {
            file: Backing::File(Arc::new(file)),
            budget: Arc::new(AtomicU64::new(u64::MAX)),
            start: 0,
            len,
            pos: 0,
        })
    }

    /// An image held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Region {
        Region {
            len: bytes.len() as u64,
            file: Backing::Memory(bytes.into()),
            budget: Arc::new(AtomicU64::new(u64::MAX)),
            start: 0,
            pos: 0,
        }
    }

    /// The sub-range `offset..offset+len` of this region, or None when it does not fit.
    pub fn sub(&self, offset: u64, len: u64) -> Option<Region> {
        let end = offset.checked_add(len)?;
        (end <= self.len).then(|| Region {
            file: self.file.clone(),
            budget: self.budget.clone(),
            start: self.start + offset,
            len,
            pos: 0,
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Allows `bytes` more bytes of reads (for every region of this image) from now on.
    pub fn set_budget(&self, bytes: u64) {
        self.budget.store(bytes, Ordering::Relaxed);
    }

    /// Takes `n` bytes from the budget, or fails when it has fewer left. A read counts as
    /// 512 bytes at least, so a crate looping over 32-byte directory entries runs out soon.
    fn spend(&self, n: usize) -> io::Result<()> {
        let n = (n as u64).max(512);
        self.budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n)
            })
            .map(|_| ())
            .map_err(|_| {
                io::Error::other("read more than this lookup may (its metadata probably loops)")
            })
    }

    /// Fills `buf` from `offset`, failing if the range ends first.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.len) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "read of {} bytes at offset {offset} goes past the end ({} bytes)",
                    buf.len(),
                    self.len
                ),
            ));
        }
        self.spend(buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            match self
                .file
                .read_at(&mut buf[done..], self.start + offset + done as u64)?
            {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => done += n,
            }
        }
        Ok(())
    }
}

impl Read for Region {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.spend(n)?;
        let got = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for Region {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let base = match to {
            SeekFrom::Start(o) => Some(o),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let pos = base.ok_or_else(|| io::Error::other("seek before the start or past 2^64"))?;
        self.pos = pos;
        Ok(pos)
    }
}

/// fatfs wants a writable device; images are only ever read, so every write fails.
impl Write for Region {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "disk images are opened read-only",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ext4_view::Ext4Read for Region {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(self.read_exact_at(start_byte, dst)?)
    }
}
