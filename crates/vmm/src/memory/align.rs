//! Guest RAM placed so that host addresses and guest-physical addresses agree modulo 2 MiB,
//! and advised to use transparent huge pages above its first 16 MiB.
//! KVM maps guest memory with 2 MiB pages (and the host backs it with transparent huge
//! pages) only where they agree; otherwise every 4 KiB page the guest touches first is a
//! nested page fault of its own, which under nested virtualisation costs dearly (QEMU
//! aligns its RAM the same way).
//!
//! vm-memory makes and owns each mapping (mmap with no address); the kernel places a new
//! mapping at the top of the highest free gap that fits. So the gap is prepared: a probe
//! finds room for the region and 2 MiB more, is unmapped, and a small placeholder fills
//! the part above the aligned address; the region then lands right below it. Nothing
//! depends on this working: a region that lands elsewhere is only unaligned.

use vm_memory::{GuestAddress, GuestRegionMmap, MmapRegion};

const HUGE: usize = 2 << 20;

/// An anonymous, private, never-accessible placeholder mapping, unmapped when dropped.
struct Placeholder {
    addr: *mut libc::c_void,
    len: usize,
}

impl Placeholder {
    /// At `addr` when given (it must lie in a gap this thread just freed), else anywhere.
    fn map(addr: Option<usize>, len: usize) -> Option<Placeholder> {
        let (hint, fixed) = match addr {
            Some(a) => (a as *mut libc::c_void, libc::MAP_FIXED_NOREPLACE),
            None => (std::ptr::null_mut(), 0),
        };
        // SAFETY: an anonymous PROT_NONE mapping; MAP_FIXED_NOREPLACE never replaces an
        // existing mapping (it fails instead), so no memory of ours changes.
        let p = unsafe {
            libc::mmap(
                hint,
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | fixed,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED || (addr.is_some() && p != hint) {
            if p != libc::MAP_FAILED {
                // SAFETY: `p` is the mapping just made above, `len` bytes, nothing uses it.
                unsafe { libc::munmap(p, len) };
            }
            return None;
        }
        Some(Placeholder { addr: p, len })
    }
}

impl Drop for Placeholder {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `map` with this length and is used by nothing.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

/// The host address at or above `host` that has the same offset in a 2 MiB page as
/// `guest`.
fn congruent(host: usize, guest: u64) -> usize {
    let want = (guest % HUGE as u64) as usize;
    let have = host % HUGE;
    host + (want + HUGE - have) % HUGE
}

/// An owned anonymous region of `size` bytes for guest-physical `base`, placed congruent
/// to it modulo 2 MiB when the address space allows.
pub fn region(base: GuestAddress, size: usize) -> Result<GuestRegionMmap, String> {
    // A mapping that landed in a higher gap stays there while the next try is made, so
    // that the next one cannot land there too; all go when this returns.
    let mut misplaced = Vec::new();
    let mapping = loop {
        let placeholder = Placeholder::map(None, size + HUGE).and_then(|probe| {
            let start = congruent(probe.addr as usize, base.0);
            let above = start + size;
            let end = probe.addr as usize + probe.len;
            drop(probe);
            if above == end {
                // The region fills the gap's top exactly: nothing to hold.
                return None;
            }
            Placeholder::map(Some(above), end - above)
        });
        let mapping = MmapRegion::<()>::new(size).map_err(|e| e.to_string())?;
        drop(placeholder);
        let congruent_here = mapping.as_ptr() as usize % HUGE == (base.0 % HUGE as u64) as usize;
        if congruent_here || misplaced.len() >= 4 {
            break mapping;
        }
        misplaced.push(mapping);
    };
    drop(misplaced);
    advise_huge_pages(&mapping, base);
    GuestRegionMmap::new(mapping, base)
        .ok_or_else(|| format!("guest memory at {:#x}: {size} bytes overflow", base.0))
}

/// Guest RAM below this stays on small pages: what a small freestanding guest touches
/// there (its code, stack and tables in the first MiBs) stays a few pages of RSS.
const SMALL_PAGES_BELOW: u64 = 16 << 20;

/// Asks for transparent huge pages (MADV_HUGEPAGE) for the region's part above
/// [`SMALL_PAGES_BELOW`], as QEMU does for its RAM: where the host's THP mode is
/// `madvise` this is what enables them, and where it is `always` with `defrag=madvise`
/// (Debian's kernels) it lets a fault wait for compaction instead of falling back to
/// small pages once the host's free memory is fragmented. Advice only: a failure
/// changes nothing.
fn advise_huge_pages(mapping: &MmapRegion<()>, base: GuestAddress) {
    let skip = SMALL_PAGES_BELOW.saturating_sub(base.0);
    let Ok(skip) = usize::try_from(skip) else {
        return;
    };
    if skip >= mapping.size() {
        return;
    }
    // SAFETY: the range lies inside the mapping `mapping` owns (skip < size, and skip is
    // a multiple of the page size since base and SMALL_PAGES_BELOW are); madvise with
    // MADV_HUGEPAGE changes no contents.
    unsafe {
        libc::madvise(
            mapping.as_ptr().add(skip).cast(),
            mapping.size() - skip,
            libc::MADV_HUGEPAGE,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{GuestMemoryRegion, MemoryRegionAddress};

    /// The VmFlags of the mapping that contains `addr` (with a leading space, as smaps
    /// separates them).
    fn vm_flags(addr: usize) -> String {
        format!(
            " {}",
            domboot_testkit::smaps_field(addr, "VmFlags:").unwrap_or_default()
        )
    }

    #[test]
    fn huge_pages_are_advised_above_16_mib() {
        let r = region(GuestAddress(0), 64 << 20).unwrap();
        let host = r.get_host_address(MemoryRegionAddress(0)).unwrap() as usize;
        assert!(!vm_flags(host).contains(" hg"), "{}", vm_flags(host));
        assert!(vm_flags(host + (32 << 20)).contains(" hg"));
        let small = region(GuestAddress(0), 8 << 20).unwrap();
        let host = small.get_host_address(MemoryRegionAddress(0)).unwrap() as usize;
        assert!(!vm_flags(host + (4 << 20)).contains(" hg"));
    }

    #[test]
    fn congruence() {
        assert_eq!(congruent(0x20_0000, 0), 0x20_0000);
        assert_eq!(congruent(0x20_1000, 0), 0x40_0000);
        assert_eq!(congruent(0x20_1000, 0x1_0000_0000), 0x40_0000);
        assert_eq!(congruent(0x20_1000, 0x1000), 0x20_1000);
        assert_eq!(congruent(0x20_2000, 0x1000), 0x40_1000);
    }

    /// Guest RAM regions start at 0 and at 4 GiB. (Newer kernels place large anonymous
    /// mappings 2 MiB-aligned by themselves, so an unaligned base is not checked.)
    #[test]
    fn regions_land_congruent_here() {
        let odd = region(GuestAddress(0x1000), 8 << 20).unwrap();
        assert_eq!(odd.len(), 8 << 20);
        for (base, size) in [(0u64, 512 << 20), (1 << 32, 64 << 20), (0, 3 << 20)] {
            let r = region(GuestAddress(base), size).unwrap();
            let host = r.get_host_address(MemoryRegionAddress(0)).unwrap() as usize;
            assert_eq!(
                host % HUGE,
                (base % HUGE as u64) as usize,
                "{base:#x}: {host:#x}"
            );
            assert_eq!(r.len(), size as u64);
        }
    }
}
