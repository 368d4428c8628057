//! Checks on the plan and the choice of where the boot stub lives.

use crate::ExportError;
use domboot_builder::{BootPlan, CpuMode, E820Type};

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;
pub const PAGE: u64 = 4096;
/// Firmware (SeaBIOS, qboot, QEMU's PVH option ROM) writes below this before the stub runs.
pub const LOW_LIMIT: u64 = MIB;
/// The stub stays below this (the PCI hole starts at 3 GiB on many machines).
pub const STUB_LIMIT: u64 = 3 * GIB;
/// The stub stays out of the top of low RAM, where firmware puts its tables.
pub const TOP_MARGIN: u64 = 4 * MIB;
pub const FOUR_GIB: u64 = 4 * GIB;

pub fn align_up(v: u64, align: u64) -> Option<u64> {
    v.checked_add(align - 1).map(|x| x & !(align - 1))
}

/// A half-open address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

impl Span {
    pub fn overlaps(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// RAM ranges of the plan's e820, sorted and merged.
pub fn plan_ram(plan: &BootPlan) -> Vec<Span> {
    let mut ram: Vec<Span> = plan
        .e820
        .iter()
        .filter(|e| e.kind == E820Type::Ram && e.size > 0)
        .map(|e| Span {
            start: e.address,
            end: e.address.saturating_add(e.size),
        })
        .collect();
    ram.sort_by_key(|s| s.start);
    let mut merged: Vec<Span> = Vec::with_capacity(ram.len());
    for s in ram {
        match merged.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => merged.push(s),
        }
    }
    merged
}

pub fn in_ram(ram: &[Span], span: Span) -> bool {
    ram.iter()
        .any(|r| r.start <= span.start && span.end <= r.end)
}

/// The span of a plan segment, or an overflow error.
pub fn span_of(what: &'static str, name: &str, start: u64, size: u64) -> Result<Span, ExportError> {
    let end = start
        .checked_add(size)
        .ok_or_else(|| ExportError::AddressOverflow {
            what,
            name: name.to_owned(),
            start,
            size,
        })?;
    Ok(Span { start, end })
}

/// Validates segments and reservations against each other and the plan's own RAM.
pub fn validate_plan(plan: &BootPlan, ram: &[Span]) -> Result<(), ExportError> {
    let mut spans: Vec<(Span, &str)> = Vec::with_capacity(plan.segments.len());
    for s in &plan.segments {
        let len = s.data.len() as u64;
        if len > s.mem_size {
            return Err(ExportError::DataLargerThanSegment {
                name: s.name.clone(),
                addr: s.addr,
                data_len: len,
                mem_size: s.mem_size,
            });
        }
        let span = span_of("segment", &s.name, s.addr, s.mem_size)?;
        if s.mem_size == 0 {
            continue;
        }
        if !in_ram(ram, span) {
            return Err(ExportError::NotInPlanRam {
                what: "segment",
                name: s.name.clone(),
                start: span.start,
                end: span.end,
            });
        }
        spans.push((span, &s.name));
    }
    spans.sort_by_key(|(s, _)| s.start);
    for w in spans.windows(2) {
        if w[0].0.overlaps(&w[1].0) {
            return Err(ExportError::SegmentsOverlap {
                first: w[0].1.to_owned(),
                first_start: w[0].0.start,
                first_end: w[0].0.end,
                second: w[1].1.to_owned(),
                second_start: w[1].0.start,
                second_end: w[1].0.end,
            });
        }
    }
    for r in &plan.reservations {
        let span = span_of("reservation", &r.name, r.address, r.size)?;
        if r.size > 0 && !in_ram(ram, span) {
            return Err(ExportError::NotInPlanRam {
                what: "reservation",
                name: r.name.clone(),
                start: span.start,
                end: span.end,
            });
        }
    }
    Ok(())
}

/// Requires `[start, start+len)` to lie inside one segment's memory (data or zero tail).
pub fn require_in_segment(
    plan: &BootPlan,
    what: &'static str,
    start: u64,
    len: u64,
) -> Result<(), ExportError> {
    let end = start.saturating_add(len);
    let inside = plan
        .segments
        .iter()
        .any(|s| s.addr <= start && end <= s.addr.saturating_add(s.mem_size));
    if !inside {
        return Err(ExportError::NotInSegment { what, start, end });
    }
    if end > FOUR_GIB {
        return Err(ExportError::Above4GiB {
            what: what.to_owned(),
            addr: start,
        });
    }
    Ok(())
}

/// Reads guest-physical bytes as the loader would place them (zero in a segment's tail).
pub fn read_plan(plan: &BootPlan, addr: u64, out: &mut [u8]) -> bool {
    let len = out.len() as u64;
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    let Some(seg) = plan
        .segments
        .iter()
        .find(|s| s.addr <= addr && end <= s.addr.saturating_add(s.mem_size))
    else {
        return false;
    };
    let off = (addr - seg.addr) as usize;
    for (i, b) in out.iter_mut().enumerate() {
        *b = seg.data.get(off + i).copied().unwrap_or(0);
    }
    true
}

pub fn read_u64(plan: &BootPlan, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    read_plan(plan, addr, &mut b).then(|| u64::from_le_bytes(b))
}

/// Walks the plan's 4-level page tables.
pub struct PageWalk<'a> {
    plan: &'a BootPlan,
    cr3: u64,
}

const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
const PRESENT: u64 = 1;
const LARGE: u64 = 1 << 7;

/// What one address translates to.
enum Walked {
    /// Mapped by a page of `size` bytes starting at virtual `page` and physical `frame`.
    Mapped { page: u64, frame: u64, size: u64 },
    /// Not mapped; nothing is mapped before `next`.
    Unmapped { next: u64 },
}

impl<'a> PageWalk<'a> {
    pub fn new(plan: &'a BootPlan) -> PageWalk<'a> {
        PageWalk {
            plan,
            cr3: plan.entry.cr3 & ADDR_MASK,
        }
    }

    fn entry(&self, table: u64, index: u64) -> u64 {
        // A table entry outside every segment reads as whatever the RAM holds: assume zero.
        read_u64(self.plan, table + index * 8).unwrap_or(0)
    }

    fn walk(&self, va: u64) -> Walked {
        let levels: [(u32, u64); 4] = [(39, 0), (30, GIB), (21, 2 * MIB), (12, PAGE)];
        let mut table = self.cr3;
        for (shift, large_size) in levels {
            let span = 1u64 << shift;
            let e = self.entry(table, (va >> shift) & 511);
            let base = va & !(span - 1);
            if e & PRESENT == 0 {
                return Walked::Unmapped {
                    next: base.saturating_add(span),
                };
            }
            if shift == 12 || (large_size != 0 && e & LARGE != 0) {
                let frame = e & ADDR_MASK & !(span - 1);
                return Walked::Mapped {
                    page: base,
                    frame,
                    size: span,
                };
            }
            table = e & ADDR_MASK;
        }
        Walked::Unmapped { next: va + PAGE }
    }

    /// `Ok(())` if `[start, end)` is identity-mapped, else the first address that is not
    /// and the first address after it worth trying.
    pub fn identity(&self, start: u64, end: u64) -> Result<(), (u64, u64)> {
        let mut va = start;
        while va < end {
            match self.walk(va) {
                Walked::Mapped { page, frame, size } if page == frame => {
                    va = page.saturating_add(size);
                }
                Walked::Mapped { page, size, .. } => return Err((va, page.saturating_add(size))),
                Walked::Unmapped { next } => return Err((va, next)),
            }
        }
        Ok(())
    }

    /// Checks that the root table is part of the plan.
    pub fn root_loaded(&self) -> bool {
        let mut b = [0u8; 8];
        read_plan(self.plan, self.cr3, &mut b)
    }
}

/// Chooses the stub's base: the lowest 4 KiB-aligned address >= 1 MiB where `size` bytes
/// are RAM in the plan's map, below 3 GiB and the top 4 MiB of low RAM, clear of every
/// segment and reservation, and (for a 64-bit entry) identity-mapped for `mapped_len` bytes.
pub fn place_stub(
    plan: &BootPlan,
    ram: &[Span],
    size: u64,
    mapped_len: u64,
) -> Result<u64, ExportError> {
    let low_top = ram
        .iter()
        .filter(|r| r.start < FOUR_GIB)
        .map(|r| r.end.min(FOUR_GIB))
        .max()
        .unwrap_or(0);
    let limit = STUB_LIMIT.min(low_top.saturating_sub(TOP_MARGIN));
    let long = plan.entry.mode == CpuMode::Long64;
    let walk = PageWalk::new(plan);
    let mut busy: Vec<Span> = Vec::new();
    for s in &plan.segments {
        busy.push(Span {
            start: s.addr,
            end: s.addr.saturating_add(s.mem_size),
        });
    }
    for r in &plan.reservations {
        busy.push(Span {
            start: r.address,
            end: r.address.saturating_add(r.size),
        });
    }
    let no_room = || ExportError::NoRoomForStub {
        size,
        limit,
        extra: if long {
            ", identity-mapped by the plan's page tables"
        } else {
            ""
        },
    };
    for r in ram {
        let Some(mut base) = align_up(r.start.max(LOW_LIMIT), PAGE) else {
            continue;
        };
        let region_end = r.end.min(limit);
        while let Some(end) = base.checked_add(size) {
            if end > region_end {
                break;
            }
            let span = Span { start: base, end };
            if let Some(b) = busy
                .iter()
                .filter(|b| b.overlaps(&span))
                .max_by_key(|b| b.end)
            {
                match align_up(b.end, PAGE) {
                    Some(next) => base = next,
                    None => break,
                }
                continue;
            }
            if long {
                if let Err((_, next)) = walk.identity(base, base + mapped_len) {
                    match align_up(next, PAGE) {
                        Some(next) if next > base => base = next,
                        _ => break,
                    }
                    continue;
                }
            }
            return Ok(base);
        }
    }
    Err(no_room())
}
