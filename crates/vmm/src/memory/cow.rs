//! Copy-on-write file-backed segments: a segment whose bytes are an unchanged slice of an
//! input file (an initrd, an uncompressed ELF's PT_LOAD) is mapped `MAP_PRIVATE | MAP_FIXED`
//! from that file over its pages of the anonymous guest RAM mapping, instead of copied.
//!
//! Why: a 100 MiB initrd then costs no copy and no anonymous memory at start-up; pages come
//! from the page cache as the guest reads them, and a guest write gets a private copy of
//! that one page (the file never changes). What it takes: the segment's guest address and
//! file offset must agree modulo the page size, since mmap maps whole pages; only the pages
//! wholly inside the segment are mapped, the partial first and last page are copied.
//!
//! Caveat (documented in the crate README): pages the guest has not written yet are the
//! file's pages, so rewriting the input file while the VM runs shows through, and
//! truncating it makes the guest's accesses fail (KVM reports a fault).

use crate::VmmError;
use domboot_builder::Segment;
use std::ops::Range;
use std::os::fd::AsRawFd;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

const PAGE: u64 = 4096;

/// Segments smaller than this are copied: a copy of a few pages is cheaper than an mmap
/// (and the VMA it adds).
pub const MIN_MAPPED: u64 = 64 << 10;

/// Maps the whole pages of `seg` from its backing file, when it has one and the offsets
/// line up; returns the guest range mapped, or `None` when the segment is to be copied.
pub fn map_segment(mem: &GuestMemoryMmap, seg: &Segment) -> Result<Option<Range<u64>>, VmmError> {
    let Some(backing) = &seg.backing else {
        return Ok(None);
    };
    // Shared guest RAM (a vhost-user backend maps it too) must stay one set of pages:
    // a private file page over it would be seen by the guest and not by the backend.
    if mem.iter().any(|r| r.file_offset().is_some()) {
        return Ok(None);
    }
    let len = seg.data.len() as u64;
    if len < MIN_MAPPED || seg.addr % PAGE != backing.offset % PAGE {
        return Ok(None);
    }
    let start = seg.addr.next_multiple_of(PAGE);
    let end = (seg.addr + len) & !(PAGE - 1);
    if end <= start {
        return Ok(None);
    }
    let file_offset = backing.offset + (start - seg.addr);
    let fail = |what: String| VmmError::Memory(format!("segment {}: {what}", seg.name));
    // The file may have shrunk since the plan mapped it; mapping past its end would leave
    // guest pages that fault. Copying would fault the same way, so say so instead.
    let file_len = backing
        .file
        .metadata()
        .map_err(|e| fail(format!("reading its file's size: {e}")))?
        .len();
    if file_offset + (end - start) > file_len {
        return Err(fail(format!(
            "its file is now {file_len} bytes, shorter than the {} bytes at offset {:#x} the \
             plan was made from (was it rewritten while domboot ran?)",
            end - start,
            file_offset
        )));
    }
    let region = mem
        .find_region(GuestAddress(start))
        .filter(|r| end <= r.start_addr().0 + r.len())
        .ok_or_else(|| fail(format!("{start:#x}-{end:#x} is not inside one RAM region")))?;
    let host = region
        .get_host_address(vm_memory::MemoryRegionAddress(
            start - region.start_addr().0,
        ))
        .map_err(|e| fail(e.to_string()))?;
    let length = usize::try_from(end - start).map_err(|e| fail(e.to_string()))?;
    let offset = libc::off_t::try_from(file_offset).map_err(|e| fail(e.to_string()))?;
    // SAFETY: `host..host + length` lies inside the anonymous mapping that `mem`'s region
    // owns (found and bounds-checked just above), so MAP_FIXED replaces pages of our own
    // guest RAM and nothing else. No reference into those pages is live: this runs before
    // the memory is handed to KVM or any vCPU thread, and vm-memory only touches guest RAM
    // through host pointers it computes on each access. The replacement is again private
    // and read-write, so every later access through `mem` stays valid; the region's munmap
    // on drop covers it. The fd is open for reading, which is all MAP_PRIVATE needs.
    let got = unsafe {
        libc::mmap(
            host.cast(),
            length,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_FIXED,
            backing.file.as_raw_fd(),
            offset,
        )
    };
    if got == libc::MAP_FAILED {
        let error = std::io::Error::last_os_error();
        return Err(fail(format!(
            "mapping {length} bytes of its file at offset {file_offset:#x}: {error}"
        )));
    }
    if got != host.cast() {
        return Err(fail(format!(
            "mmap(MAP_FIXED) placed the file at {got:p}, not at {host:p}"
        )));
    }
    Ok(Some(start..end))
}
