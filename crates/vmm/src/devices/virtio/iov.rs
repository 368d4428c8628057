//! A descriptor chain's guest buffers, split as the device reads them (the driver's
//! readable descriptors) and writes them (the writable ones), and moved to and from host
//! files in one `preadv`/`pwritev`/`writev` straight from guest memory: no copy through a
//! buffer of domboot's, which matters where every copy is emulated (the nested bench).

use crate::devices::virtio::DeviceError;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use virtio_queue::DescriptorChain;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileSlice};

/// Guest byte ranges, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Segments(Vec<(GuestAddress, usize)>);

impl Segments {
    pub fn len(&self) -> usize {
        self.0.iter().map(|&(_, l)| l).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the first `n` bytes off the front (fewer when there are fewer).
    pub fn split_front(&mut self, n: usize) -> Segments {
        let mut front = Vec::new();
        let mut left = n;
        while left > 0 && !self.0.is_empty() {
            let (addr, len) = self.0[0];
            if len <= left {
                front.push((addr, len));
                self.0.remove(0);
                left -= len;
            } else {
                front.push((addr, left));
                self.0[0] = (GuestAddress(addr.0.wrapping_add(left as u64)), len - left);
                left = 0;
            }
        }
        Segments(front)
    }

    /// Takes the last `n` bytes off the back (fewer when there are fewer).
    pub fn split_back(&mut self, n: usize) -> Segments {
        let total = self.len();
        let mut back = std::mem::take(self);
        *self = back.split_front(total.saturating_sub(n));
        back
    }

    /// Copies the bytes out of guest memory (for small pieces: a header).
    pub fn read_into(&self, mem: &GuestMemoryMmap, buf: &mut [u8]) -> Result<(), DeviceError> {
        let mut at = 0;
        for &(addr, len) in &self.0 {
            let Some(dst) = buf.get_mut(at..at + len) else {
                break;
            };
            mem.read_slice(dst, addr).map_err(malformed)?;
            at += len;
        }
        Ok(())
    }

    /// Copies `buf` into guest memory, as far as the segments reach; returns the bytes
    /// written.
    pub fn write_from(&self, mem: &GuestMemoryMmap, buf: &[u8]) -> Result<usize, DeviceError> {
        let mut at = 0;
        for &(addr, len) in &self.0 {
            let n = len.min(buf.len() - at);
            if n == 0 {
                break;
            }
            mem.write_slice(&buf[at..at + n], addr).map_err(malformed)?;
            at += n;
        }
        Ok(at)
    }

    /// The guest memory the segments cover, as host slices (a segment that crosses from
    /// one memory region into the next gives one slice per region).
    fn slices<'m>(
        &self,
        mem: &'m GuestMemoryMmap,
    ) -> Result<Vec<VolatileSlice<'m, ()>>, DeviceError> {
        let mut out = Vec::with_capacity(self.0.len());
        for &(addr, len) in &self.0 {
            for s in mem.get_slices(addr, len) {
                out.push(s.map_err(malformed)?);
            }
        }
        Ok(out)
    }
}

fn malformed(e: impl std::fmt::Display) -> DeviceError {
    DeviceError(format!("malformed request: {e}"))
}

/// The chain's readable and writable descriptors, each checked to lie in guest RAM.
pub fn split_chain(
    chain: DescriptorChain<&GuestMemoryMmap>,
    mem: &GuestMemoryMmap,
) -> Result<(Segments, Segments), DeviceError> {
    let mut readable = Segments::default();
    let mut writable = Segments::default();
    for desc in chain {
        let (addr, len) = (desc.addr(), desc.len() as usize);
        if len == 0 {
            continue;
        }
        if !mem.check_range(addr, len) {
            return Err(malformed(format!(
                "a buffer of {len} bytes at {:#x} is not guest RAM",
                addr.0
            )));
        }
        let list = if desc.is_write_only() {
            &mut writable
        } else {
            &mut readable
        };
        list.0.push((addr, len));
    }
    Ok((readable, writable))
}

/// At most this many iovecs per system call (Linux's UIO_MAXIOV).
const IOV_MAX: usize = 1024;

fn iovecs(slices: &[VolatileSlice<'_, ()>]) -> Vec<libc::iovec> {
    slices
        .iter()
        .map(|s| libc::iovec {
            iov_base: s.ptr_guard_mut().as_ptr().cast(),
            iov_len: s.len(),
        })
        .collect()
}

/// Drops the first `n` bytes of `iov` (those a system call moved).
fn advance(iov: &mut Vec<libc::iovec>, mut n: usize) {
    let mut done = 0;
    for v in iov.iter_mut() {
        if n < v.iov_len {
            // SAFETY: `n` is less than the iovec's length, so the pointer stays inside
            // the same guest memory slice.
            v.iov_base = unsafe { v.iov_base.cast::<u8>().add(n) }.cast();
            v.iov_len -= n;
            break;
        }
        n -= v.iov_len;
        done += 1;
    }
    iov.drain(..done);
}

/// Writes the whole of `segs` to `fd` in one `writev` (a tap takes one frame per write);
/// returns the bytes written.
pub fn writev(
    fd: std::os::fd::RawFd,
    mem: &GuestMemoryMmap,
    segs: &Segments,
) -> Result<io::Result<usize>, DeviceError> {
    let slices = segs.slices(mem)?;
    let iov = iovecs(&slices);
    if iov.len() > IOV_MAX {
        return Ok(Err(io::Error::from(io::ErrorKind::InvalidInput)));
    }
    loop {
        // SAFETY: every iovec describes guest memory vm-memory checked and mapped
        // (borrowed through `slices` for this call); the kernel only reads it.
        let n = unsafe { libc::writev(fd, iov.as_ptr(), iov.len() as libc::c_int) };
        if n >= 0 {
            return Ok(Ok(n as usize));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Ok(Err(e));
        }
    }
}

/// Moves the whole of `segs` between guest memory and `file` at `offset`: reads from the
/// file into guest memory when `into_guest`, writes guest memory to the file otherwise.
pub fn transfer(
    file: &File,
    mem: &GuestMemoryMmap,
    segs: &Segments,
    mut offset: u64,
    into_guest: bool,
) -> Result<io::Result<()>, DeviceError> {
    // `slices` keeps the guest memory borrowed (and so mapped) while the iovecs point
    // into it.
    let slices = segs.slices(mem)?;
    let mut iov = iovecs(&slices);
    while !iov.is_empty() {
        let count = iov.len().min(IOV_MAX) as libc::c_int;
        let Ok(at) = libc::off_t::try_from(offset) else {
            return Ok(Err(io::Error::from(io::ErrorKind::InvalidInput)));
        };
        let n = if into_guest {
            // SAFETY: every iovec describes guest memory vm-memory checked and mapped
            // (borrowed through `slices` for this call); the kernel writes at most their
            // lengths into them.
            unsafe { libc::preadv(file.as_raw_fd(), iov.as_ptr(), count, at) }
        } else {
            // SAFETY: as above; the kernel only reads the iovecs' memory.
            unsafe { libc::pwritev(file.as_raw_fd(), iov.as_ptr(), count, at) }
        };
        match n {
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Ok(Err(e));
                }
            }
            0 => return Ok(Err(io::Error::from(io::ErrorKind::UnexpectedEof))),
            n => {
                advance(&mut iov, n as usize);
                offset += n as u64;
            }
        }
    }
    drop(slices);
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(v: &[(u64, usize)]) -> Segments {
        Segments(v.iter().map(|&(a, l)| (GuestAddress(a), l)).collect())
    }

    #[test]
    fn split_front_and_back() {
        let mut s = segs(&[(0x1000, 10), (0x2000, 6), (0x3000, 1)]);
        assert_eq!(s.split_front(12), segs(&[(0x1000, 10), (0x2000, 2)]));
        assert_eq!(s, segs(&[(0x2002, 4), (0x3000, 1)]));
        assert_eq!(s.split_back(1), segs(&[(0x3000, 1)]));
        assert_eq!(s.split_back(2), segs(&[(0x2004, 2)]));
        assert_eq!(s, segs(&[(0x2002, 2)]));
        assert_eq!(s.split_front(100), segs(&[(0x2002, 2)]));
        assert_eq!(s.len(), 0);
        assert_eq!(s.split_back(1), segs(&[]));
    }

    #[test]
    fn advance_drops_what_moved() {
        let mut buf = [0u8; 8];
        let p = buf.as_mut_ptr();
        let mut iov = vec![
            libc::iovec {
                iov_base: p.cast(),
                iov_len: 3,
            },
            libc::iovec {
                // SAFETY: inside `buf`.
                iov_base: unsafe { p.add(3) }.cast(),
                iov_len: 5,
            },
        ];
        advance(&mut iov, 4);
        assert_eq!(iov.len(), 1);
        assert_eq!(iov[0].iov_len, 4);
        // SAFETY: inside `buf`.
        assert_eq!(iov[0].iov_base, unsafe { p.add(4) }.cast());
        advance(&mut iov, 4);
        assert!(iov.is_empty());
    }
}
