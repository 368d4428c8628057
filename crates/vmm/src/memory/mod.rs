//! Guest RAM: anonymous mappings laid out from the plan's e820 RAM (low RAM below the MMIO
//! gap, the rest from 4 GiB), registered with KVM, and filled with the plan's segments.

mod align;
mod cow;

use crate::VmmError;
use domboot_builder::{BootPlan, E820Type};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{
    Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
    GuestRegionMmap,
};

/// The first MiB is always backed: real-mode trampolines, the EBDA and the BIOS area where
/// the MP table lives are there, whatever the e820 says about them.
pub const LOW_MEMORY_END: u64 = 1 << 20;
/// Start of the 32-bit MMIO gap: nothing but devices between here and 4 GiB.
pub const MMIO_GAP_START: u64 = 3 << 30;
pub const MMIO_GAP_END: u64 = 4 << 30;

/// `[start, end)` guest-physical ranges to back with RAM: the plan's e820 RAM plus the
/// first MiB, merged where they touch or overlap.
pub fn ram_ranges(plan: &BootPlan) -> Result<Vec<(u64, u64)>, VmmError> {
    let mut ranges: Vec<(u64, u64)> = vec![(0, LOW_MEMORY_END)];
    for e in &plan.e820 {
        if e.kind != E820Type::Ram || e.size == 0 {
            continue;
        }
        let end = e.address.checked_add(e.size).ok_or_else(|| {
            VmmError::Layout(format!(
                "e820 RAM entry at {:#x} of size {:#x} wraps around the address space",
                e.address, e.size
            ))
        })?;
        if e.address < MMIO_GAP_END && end > MMIO_GAP_START {
            return Err(VmmError::Layout(format!(
                "e820 RAM {:#x}-{:#x} overlaps the MMIO gap {MMIO_GAP_START:#x}-{MMIO_GAP_END:#x} \
                 where the LAPIC, IOAPIC and KVM's TSS live",
                e.address, end
            )));
        }
        ranges.push((e.address, end));
    }
    ranges.sort();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    // Page-align outward: KVM memory slots are page-granular.
    for r in &mut merged {
        r.0 &= !0xfff;
        r.1 = r.1.next_multiple_of(0x1000);
    }
    Ok(merged)
}

/// Allocates guest memory for `plan` (anonymous, private, lazily populated), each region
/// placed for 2 MiB pages ([`align`]).
pub fn allocate(plan: &BootPlan) -> Result<GuestMemoryMmap, VmmError> {
    let ranges = ram_ranges(plan)?;
    let regions = ranges
        .iter()
        .map(|&(s, e)| align::region(GuestAddress(s), (e - s) as usize))
        .collect::<Result<Vec<_>, _>>()
        .map_err(VmmError::Memory)?;
    GuestMemoryMmap::from_regions(regions).map_err(|e| VmmError::Memory(e.to_string()))
}

/// Allocates guest memory for `plan` that another process can map too: each region is a
/// memfd mapped `MAP_SHARED`, whose fd a vhost-user backend (virtiofsd) receives in
/// SET_MEM_TABLE. Still lazily populated (shmem pages appear on first touch); the
/// segments are copied in rather than mapped copy-on-write (see [`cow`]), since a private
/// page would be one the backend never sees.
pub fn allocate_shared(plan: &BootPlan) -> Result<GuestMemoryMmap, VmmError> {
    let ranges = ram_ranges(plan)?;
    let mut regions = Vec::with_capacity(ranges.len());
    for &(s, e) in &ranges {
        let size = e - s;
        let file = memfd(&format!("domboot-ram-{s:#x}"), size)?;
        let len = usize::try_from(size).map_err(|e| VmmError::Memory(e.to_string()))?;
        regions.push((GuestAddress(s), len, Some(FileOffset::new(file, 0))));
    }
    GuestMemoryMmap::from_ranges_with_files(regions).map_err(|e| VmmError::Memory(e.to_string()))
}

/// An anonymous memory file of `size` bytes (sparse: no memory until touched).
pub(crate) fn memfd(name: &str, size: u64) -> Result<std::fs::File, VmmError> {
    use std::os::fd::FromRawFd;
    let fail = |what: &str| {
        VmmError::Memory(format!(
            "{what} for shareable guest RAM: {}",
            std::io::Error::last_os_error()
        ))
    };
    let cname = std::ffi::CString::new(name).map_err(|e| VmmError::Memory(e.to_string()))?;
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call; memfd_create
    // only reads it and returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(fail("memfd_create"));
    }
    // SAFETY: `fd` was just returned by memfd_create, is open and owned by nobody else.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.set_len(size).map_err(|e| {
        VmmError::Memory(format!("sizing shareable guest RAM to {size} bytes: {e}"))
    })?;
    Ok(file)
}

/// What loading the segments did, for `--verbose` and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Bytes copied into guest memory.
    pub copied: u64,
    /// Bytes mapped copy-on-write straight from their input file.
    pub mapped: u64,
}

/// Checks that every segment lies in backed RAM, then fills guest memory: file-backed
/// segments are mapped copy-on-write from their file where the page offsets line up (see
/// [`cow`]), everything else is copied (the zero tail needs no writing: fresh anonymous
/// memory is zero). Mappings go first, because mapping replaces whole pages that a
/// neighbouring segment's copied bytes may share.
pub fn load_segments(mem: &GuestMemoryMmap, plan: &BootPlan) -> Result<LoadStats, VmmError> {
    for seg in &plan.segments {
        let len = seg.mem_size.max(seg.data.len() as u64);
        let end = seg.addr.saturating_add(len);
        let inside = mem
            .iter()
            .any(|r| seg.addr >= r.start_addr().0 && end <= r.start_addr().0 + r.len());
        if !inside {
            return Err(VmmError::Layout(format!(
                "segment {} at {:#x}-{:#x} is not inside guest RAM",
                seg.name, seg.addr, end
            )));
        }
    }
    let mut mapped = Vec::with_capacity(plan.segments.len());
    for seg in &plan.segments {
        mapped.push(cow::map_segment(mem, seg)?);
    }
    let mut stats = LoadStats::default();
    for (seg, pages) in plan.segments.iter().zip(mapped) {
        let (head, tail) = match pages {
            Some(r) => {
                stats.mapped += r.end - r.start;
                (r.start - seg.addr, r.end - seg.addr)
            }
            None => (seg.data.len() as u64, seg.data.len() as u64),
        };
        // Bytes outside the mapped pages: all of them, or the partial first and last page.
        for (from, to) in [(0, head), (tail, seg.data.len() as u64)] {
            if to > from {
                let bytes = &seg.data[from as usize..to as usize];
                mem.write_slice(bytes, GuestAddress(seg.addr + from))
                    .map_err(|e| VmmError::Memory(format!("writing segment {}: {e}", seg.name)))?;
                stats.copied += to - from;
            }
        }
    }
    Ok(stats)
}

/// Registers every region of `mem` as a KVM memory slot.
pub fn register(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<(), VmmError> {
    for (slot, region) in mem.iter().enumerate() {
        let r: &GuestRegionMmap = region;
        let host = r
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(|e| VmmError::Memory(e.to_string()))?;
        let desc = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: r.start_addr().0,
            memory_size: r.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: `userspace_addr` is the start of a live anonymous mapping of exactly
        // `memory_size` bytes owned by `mem`. `run` creates `mem` before the VM and drops it
        // after the VM fd on every path (vCPU threads hold their own `Arc` to it), so the
        // slot never outlives the mapping while a vCPU can run.
        unsafe { vm.set_user_memory_region(desc) }.map_err(|e| VmmError::Ioctl {
            what: "KVM_SET_USER_MEMORY_REGION",
            error: e,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domboot_builder::{E820Entry, memory::MemoryMap};

    fn plan_with(e820: Vec<E820Entry>) -> BootPlan {
        let mut plan = crate::tests::empty_plan();
        plan.e820 = e820;
        plan
    }

    #[test]
    fn low_ram_is_one_region_and_high_ram_starts_at_4g() {
        let m = MemoryMap::new(5 << 30).unwrap();
        let r = ram_ranges(&plan_with(m.e820)).unwrap();
        assert_eq!(r, [(0, 3 << 30), (4 << 30, 6 << 30)]);
        let m = MemoryMap::new(64 << 20).unwrap();
        assert_eq!(ram_ranges(&plan_with(m.e820)).unwrap(), [(0, 64 << 20)]);
    }

    #[test]
    fn ram_in_the_mmio_gap_is_refused() {
        let e = vec![E820Entry {
            address: 0,
            size: 0xFFFF_0000,
            kind: E820Type::Ram,
        }];
        let err = ram_ranges(&plan_with(e)).unwrap_err().to_string();
        assert!(err.contains("MMIO gap"), "{err}");
    }
}
