//! ACPI tables, so that a guest can power the machine off (on x86, Linux needs ACPI for
//! that) and learns its processors the ACPI way.
//!
//! | table | what |
//! |-------|------|
//! | RSDP  | revision 2, at [`RSDP_ADDR`] (16-byte aligned, in the BIOS area the guest scans), pointing at the XSDT only |
//! | XSDT  | FADT, MADT |
//! | FADT  | hardware-reduced; sleep control/status registers = I/O ports 0x600/0x601; reset register = I/O port 0xCF9, value 6; X_DSDT ([`fadt`]) |
//! | MADT  | LAPICs at 0xFEE00000, PCAT_COMPAT, one enabled local APIC per vCPU, the I/O APIC at 0xFEC00000 ([`madt`]) |
//! | DSDT  | `\_S5_` = {5, 0, 0, 0}, COM1 (`PNP0501`) ([`dsdt`]) |
//!
//! All of them go in `[ACPI_START, ACPI_END)`, 0xF8000–0xFFFFF: the top half of the 64 KiB
//! BIOS area the builder's e820 reserves, above the MP table at [`mptable::MPTABLE_START`]
//! (at most 5.3 KiB for [`mptable::MAX_CPUS`] processors) and inside the 0xE0000–0xFFFFF
//! range where a guest looks for the RSDP. The first MiB is always backed by guest RAM
//! ([`crate::memory`]). Besides the scan, the guest is told the RSDP's address directly:
//! `boot_params.acpi_rsdp_addr` for the Linux protocols (boot protocol 2.14 and later
//! read it) and `hvm_start_info.rsdp_paddr` for PVH ([`tell_guest`]).

pub mod dsdt;
pub mod fadt;
pub mod madt;

use crate::device_manager::virtio::Slot;
use crate::{VmmError, mptable};
use acpi_tables::Aml;
use acpi_tables::rsdp::Rsdp;
use acpi_tables::xsdt::XSDT;
use domboot_builder::BootPlan;
use domboot_builder::x86_64::{pvh, zero_page};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Start of the ACPI area; the RSDP is its first structure.
pub const ACPI_START: u64 = 0xF_8000;
/// End (exclusive) of the ACPI area: the end of the BIOS area.
pub const ACPI_END: u64 = mptable::MPTABLE_LIMIT;
pub const RSDP_ADDR: u64 = ACPI_START;
/// Tables start on this boundary (the RSDP must be on a 16-byte one).
const ALIGN: u64 = 16;

pub const OEM_ID: [u8; 6] = *b"DOMBOT";
pub const OEM_REVISION: u32 = 1;

/// The OEM table ID of a table: "DOMBOOT" and the first letter of its signature, so each
/// table's ID differs (the XSDT's entries are told apart by signature anyway).
pub fn table_id(signature: &[u8; 4]) -> [u8; 8] {
    let mut id = *b"DOMBOOT ";
    id[7] = signature[0];
    id
}

/// One table and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// "RSDP", "XSDT", "FACP", "APIC", "DSDT".
    pub name: &'static str,
    pub addr: u64,
    pub bytes: Vec<u8>,
}

impl Table {
    pub fn end(&self) -> u64 {
        self.addr + self.bytes.len() as u64
    }
}

/// Every table, placed.
#[derive(Clone, Debug)]
pub struct AcpiTables {
    pub tables: Vec<Table>,
}

impl AcpiTables {
    /// Where the RSDP is (the first table).
    pub fn rsdp_addr(&self) -> u64 {
        self.tables.first().map_or(RSDP_ADDR, |t| t.addr)
    }

    pub fn get(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// End of the last table.
    pub fn end(&self) -> u64 {
        self.tables
            .iter()
            .map(Table::end)
            .max()
            .unwrap_or(ACPI_START)
    }
}

fn to_bytes(t: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    t.to_aml_bytes(&mut v);
    v
}

fn align(addr: u64) -> u64 {
    addr.next_multiple_of(ALIGN)
}

/// Builds and places the tables for `cpus` vCPUs (1 to [`mptable::MAX_CPUS`]) and the
/// `virtio` devices in the BIOS area, where [`install`] puts them.
pub fn build(cpus: u8, virtio: &[Slot]) -> Result<AcpiTables, VmmError> {
    build_with_links(cpus, virtio, 0)
}

/// [`build`], with the first `serial_links` of COM2-COM4 described too.
pub fn build_with_links(
    cpus: u8,
    virtio: &[Slot],
    serial_links: usize,
) -> Result<AcpiTables, VmmError> {
    let tables = build_at(ACPI_START, cpus, virtio, serial_links)?;
    if tables.end() > ACPI_END {
        return Err(VmmError::Setup(format!(
            "the ACPI tables for {cpus} processors end at {:#x}, past the BIOS area ({ACPI_END:#x})",
            tables.end()
        )));
    }
    Ok(tables)
}

/// Builds the tables with the RSDP at `base` (16-byte aligned) and the others right after
/// it. Besides [`build`], tests use it to hand the same tables to Linux under QEMU, where
/// the BIOS area is firmware's.
pub fn build_at(
    base: u64,
    cpus: u8,
    virtio: &[Slot],
    serial_links: usize,
) -> Result<AcpiTables, VmmError> {
    if base % ALIGN != 0 {
        return Err(VmmError::Setup(format!(
            "the RSDP must be 16-byte aligned, not at {base:#x}"
        )));
    }
    if cpus == 0 || cpus > mptable::MAX_CPUS {
        return Err(VmmError::Setup(format!(
            "the ACPI tables describe 1 to {} processors, not {cpus}",
            mptable::MAX_CPUS
        )));
    }
    let dsdt = dsdt::build(virtio, serial_links);
    let madt = madt::build(cpus);
    // XSDT: header + one 64-bit pointer per table (FADT, MADT).
    const XSDT_ENTRIES: u64 = 2;
    let rsdp_len = Rsdp::len() as u64;
    let xsdt_addr = align(base + rsdp_len);
    let fadt_addr = align(xsdt_addr + 36 + 8 * XSDT_ENTRIES);
    let madt_addr = align(fadt_addr + fadt::LEN as u64);
    let dsdt_addr = align(madt_addr + madt.len() as u64);
    let fadt = fadt::build(dsdt_addr);
    let mut xsdt = XSDT::new(OEM_ID, table_id(b"XSDT"), OEM_REVISION);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);
    let xsdt = to_bytes(&xsdt);
    let rsdp = to_bytes(&Rsdp::new(OEM_ID, xsdt_addr));
    let tables = AcpiTables {
        tables: vec![
            Table {
                name: "RSDP",
                addr: base,
                bytes: rsdp,
            },
            Table {
                name: "XSDT",
                addr: xsdt_addr,
                bytes: xsdt,
            },
            Table {
                name: "FACP",
                addr: fadt_addr,
                bytes: fadt,
            },
            Table {
                name: "APIC",
                addr: madt_addr,
                bytes: madt,
            },
            Table {
                name: "DSDT",
                addr: dsdt_addr,
                bytes: dsdt,
            },
        ],
    };
    Ok(tables)
}

/// The first `[start, end)` range in `ranges` (name, start, end) that overlaps `[lo, hi)`.
fn overlap<'a>(
    ranges: impl IntoIterator<Item = (&'a str, u64, u64)>,
    lo: u64,
    hi: u64,
) -> Option<(&'a str, u64, u64)> {
    ranges.into_iter().find(|&(_, s, e)| s < hi && e > lo)
}

/// Builds the tables for `cpus` vCPUs, the `virtio` devices and the first `serial_links`
/// of COM2-COM4, writes them to guest memory and tells the guest where the RSDP is.
/// Returns the tables (for logging).
pub fn install(
    mem: &GuestMemoryMmap,
    plan: &BootPlan,
    cpus: u8,
    virtio: &[Slot],
    serial_links: usize,
) -> Result<AcpiTables, VmmError> {
    let tables = build_with_links(cpus, virtio, serial_links)?;
    let (lo, hi) = (ACPI_START, tables.end());
    if let Some((name, s, e)) = overlap(
        plan.segments
            .iter()
            .map(|s| (s.name.as_str(), s.addr, s.end())),
        lo,
        hi,
    ) {
        return Err(VmmError::Layout(format!(
            "segment {name} at {s:#x}-{e:#x} overlaps the ACPI tables at {lo:#x}-{hi:#x}"
        )));
    }
    for t in &tables.tables {
        mem.write_slice(&t.bytes, GuestAddress(t.addr))
            .map_err(|e| VmmError::Memory(format!("writing the ACPI {}: {e}", t.name)))?;
    }
    tell_guest(mem, plan, tables.rsdp_addr())?;
    Ok(tables)
}

/// Writes the RSDP's address where the plan's boot protocol hands it over:
/// `boot_params.acpi_rsdp_addr` (u64 at [`zero_page::ACPI_RSDP_ADDR`]) and
/// `hvm_start_info.rsdp_paddr` (u64 at [`pvh::RSDP_PADDR`]), whichever the plan has.
pub fn tell_guest(mem: &GuestMemoryMmap, plan: &BootPlan, rsdp: u64) -> Result<(), VmmError> {
    let points = [
        (
            "boot_params.acpi_rsdp_addr",
            plan.patch_points.boot_params,
            zero_page::ACPI_RSDP_ADDR,
        ),
        (
            "hvm_start_info.rsdp_paddr",
            plan.patch_points.start_info,
            pvh::RSDP_PADDR,
        ),
    ];
    for (what, base, offset) in points {
        let Some(base) = base else { continue };
        let at = base.checked_add(offset as u64).ok_or_else(|| {
            VmmError::Layout(format!("{what}: the structure at {base:#x} wraps around"))
        })?;
        mem.write_obj(rsdp.to_le(), GuestAddress(at))
            .map_err(|e| VmmError::Memory(format!("writing {what} at {at:#x}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::acpi_sleep;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn checksums_lengths_and_signatures() {
        for cpus in [1, 2, 4, 64, mptable::MAX_CPUS] {
            let t = build(cpus, &[]).unwrap();
            let rsdp = &t.get("RSDP").unwrap().bytes;
            assert_eq!(&rsdp[..8], b"RSD PTR ");
            assert_eq!(rsdp.len(), 36);
            assert_eq!(sum(&rsdp[..20]), 0, "RSDP 20-byte checksum");
            assert_eq!(sum(rsdp), 0, "RSDP extended checksum");
            assert_eq!(rsdp[15], 2, "RSDP revision");
            assert_eq!(u32_at(rsdp, 20), 36, "RSDP length");
            assert_eq!(u32_at(rsdp, 16), 0, "no RSDT");
            for name in ["XSDT", "FACP", "APIC", "DSDT"] {
                let b = &t.get(name).unwrap().bytes;
                assert_eq!(&b[..4], name.as_bytes());
                assert_eq!(u32_at(b, 4) as usize, b.len(), "{name} length");
                assert_eq!(sum(b), 0, "{name} checksum");
            }
            assert_eq!(t.get("FACP").unwrap().bytes.len(), fadt::LEN);
            assert_eq!(t.get("FACP").unwrap().bytes[8], 6, "FADT revision");
        }
    }

    #[test]
    fn pointers_are_consistent_and_aligned() {
        let t = build(4, &[]).unwrap();
        let rsdp = &t.get("RSDP").unwrap().bytes;
        let xsdt = t.get("XSDT").unwrap();
        assert_eq!(t.rsdp_addr(), RSDP_ADDR);
        assert_eq!(RSDP_ADDR % 16, 0);
        assert_eq!(u64_at(rsdp, 24), xsdt.addr, "RSDP → XSDT");
        let entries: Vec<u64> = xsdt.bytes[36..]
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(
            entries,
            [t.get("FACP").unwrap().addr, t.get("APIC").unwrap().addr]
        );
        let f = &t.get("FACP").unwrap().bytes;
        assert_eq!(u64_at(f, fadt::OFF_X_DSDT), t.get("DSDT").unwrap().addr);
        assert_eq!(u32_at(f, fadt::OFF_DSDT), 0, "32-bit DSDT pointer unused");
        for tab in &t.tables {
            assert_eq!(tab.addr % 16, 0, "{} aligned", tab.name);
            assert!(tab.addr >= ACPI_START && tab.end() <= ACPI_END);
        }
        let mut sorted = t.tables.clone();
        sorted.sort_by_key(|t| t.addr);
        for w in sorted.windows(2) {
            assert!(
                w[0].end() <= w[1].addr,
                "{} overlaps {}",
                w[0].name,
                w[1].name
            );
        }
    }

    #[test]
    fn tables_stay_clear_of_the_mp_table() {
        let mp = mptable::build(mptable::MAX_CPUS, mptable::MPTABLE_START, 0).unwrap();
        let mp_end = mptable::MPTABLE_START + mp.len() as u64;
        assert!(mp_end <= ACPI_START, "MP table ends at {mp_end:#x}");
        for cpus in [1, mptable::MAX_CPUS] {
            let t = build(cpus, &[]).unwrap();
            assert!(t.tables.iter().all(|x| x.addr >= mp_end));
            assert!(t.end() <= ACPI_END);
            // The RSDP is where a guest scans for it.
            assert!((0xE_0000..0x10_0000).contains(&t.rsdp_addr()));
        }
    }

    #[test]
    fn fadt_fields() {
        let t = build(1, &[]).unwrap();
        let f = &t.get("FACP").unwrap().bytes;
        let flags = u32_at(f, fadt::OFF_FLAGS);
        assert_ne!(flags & fadt::FLAG_HW_REDUCED_ACPI, 0);
        assert_ne!(flags & fadt::FLAG_RESET_REG_SUP, 0);
        assert_eq!(f[131], 5, "FADT minor version");
        assert_eq!(u16::from_le_bytes([f[46], f[47]]), 0, "no SCI");
        // GAS: SystemIO (1), 8 bits, offset 0, byte access (1), address.
        let gas = |at: usize| (f[at], f[at + 1], f[at + 2], f[at + 3], u64_at(f, at + 4));
        assert_eq!(gas(fadt::OFF_RESET_REG), (1, 8, 0, 1, 0xCF9));
        assert_eq!(f[fadt::OFF_RESET_VALUE], 6);
        assert_eq!(
            gas(fadt::OFF_SLEEP_CONTROL_REG),
            (1, 8, 0, 1, u64::from(acpi_sleep::SLEEP_CONTROL_PORT))
        );
        assert_eq!(
            gas(fadt::OFF_SLEEP_STATUS_REG),
            (1, 8, 0, 1, u64::from(acpi_sleep::SLEEP_STATUS_PORT))
        );
        let iapc =
            u16::from_le_bytes([f[fadt::OFF_IAPC_BOOT_ARCH], f[fadt::OFF_IAPC_BOOT_ARCH + 1]]);
        assert_eq!(iapc, fadt::IAPC_BOOT_ARCH);
        assert_eq!(iapc & fadt::IAPC_8042, 0, "no i8042 to probe");
        assert_ne!(iapc & fadt::IAPC_VGA_NOT_PRESENT, 0);
    }

    #[test]
    fn madt_has_one_enabled_lapic_per_cpu_with_the_cpuid_apic_ids() {
        // A CPUID template with leaf 1, as KVM would give it.
        let template = kvm_bindings::CpuId::from_entries(&[kvm_bindings::kvm_cpuid_entry2 {
            function: 1,
            ..Default::default()
        }])
        .unwrap();
        for cpus in [1u8, 2, 4, 17, mptable::MAX_CPUS] {
            let t = build(cpus, &[]).unwrap();
            let m = &t.get("APIC").unwrap().bytes;
            assert_eq!(u32_at(m, 36), 0xFEE0_0000);
            assert_eq!(u32_at(m, 40) & 1, 1, "PCAT_COMPAT");
            let s = madt::structures(m);
            let total: usize = s.iter().map(|(_, b)| b.len()).sum();
            assert_eq!(
                total + madt::HEADER_LEN as usize,
                m.len(),
                "structures fill the table"
            );
            let lapics: Vec<&[u8]> = s
                .iter()
                .filter(|(ty, _)| *ty == madt::TYPE_LOCAL_APIC)
                .map(|(_, b)| *b)
                .collect();
            assert_eq!(lapics.len(), usize::from(cpus));
            for (i, e) in lapics.iter().enumerate() {
                assert_eq!(e.len(), 8);
                assert_eq!(usize::from(e[2]), i, "processor UID");
                assert_eq!(u32_at(e, 4) & 1, 1, "enabled");
                if i < 4 {
                    let c = crate::vcpu::cpuid_for(&template, i as u32, cpus.into());
                    let leaf1 = c.as_slice().iter().find(|x| x.function == 1).unwrap();
                    assert_eq!(u32::from(e[3]), leaf1.ebx >> 24, "APIC ID = CPUID's");
                }
            }
            let ioapics: Vec<&[u8]> = s
                .iter()
                .filter(|(ty, _)| *ty == madt::TYPE_IO_APIC)
                .map(|(_, b)| *b)
                .collect();
            assert_eq!(ioapics.len(), 1);
            assert_eq!(ioapics[0][2], mptable::ioapic_id(cpus));
            assert_eq!(u32_at(ioapics[0], 4), 0xFEC0_0000);
            assert_eq!(u32_at(ioapics[0], 8), 0, "GSI base");
            // No interrupt source overrides (type 2): identity routing, no SCI.
            assert!(s.iter().all(|(ty, _)| *ty != 2));
        }
    }

    #[test]
    fn dsdt_describes_each_virtio_slot() {
        use crate::device_manager::virtio::Slot;
        let slots: Vec<Slot> = (0..3).map(|i| Slot::nth(i).unwrap()).collect();
        let t = build(1, &slots).unwrap();
        let dsdt = &t.get("DSDT").unwrap().bytes;
        let count = |needle: &[u8]| dsdt.windows(needle.len()).filter(|w| w == &needle).count();
        assert_eq!(count(b"LNRO0005"), 3);
        for (i, s) in slots.iter().enumerate() {
            assert_eq!(count(format!("VR{i:02X}").as_bytes()), 1);
            // Memory32Fixed: base then length, little-endian.
            let mut window = (s.addr as u32).to_le_bytes().to_vec();
            window.extend_from_slice(&(s.len as u32).to_le_bytes());
            assert_eq!(count(&window), 1, "window of slot {i}");
        }
        assert_eq!(slots[0].cmdline(), "virtio_mmio.device=4K@0xd0000000:16");
        assert_eq!(sum(dsdt), 0);
    }

    #[test]
    fn dsdt_declares_s5_and_com1() {
        let t = build(1, &[]).unwrap();
        let d = &t.get("DSDT").unwrap().bytes;
        let find = |needle: &[u8]| d.windows(needle.len()).position(|w| w == needle);
        // NameOp "_S5_" PackageOp len 4 elements BytePrefix 5 Zero Zero Zero.
        let s5 = find(b"_S5_").expect("_S5_");
        assert_eq!(d[s5 - 1], 0x08, "NameOp");
        assert_eq!(&d[s5 + 4..s5 + 12], &[0x12, 0x07, 4, 0x0A, 5, 0, 0, 0]);
        assert!(find(b"COM1").is_some());
        // EISAID("PNP0501") = 0x0105D041.
        assert!(find(&0x0105_D041u32.to_le_bytes()).is_some());
    }

    #[test]
    fn linked_serial_ports_are_declared_and_shared_irqs_say_so() {
        // Extended interrupt descriptor: 0x89, length 6, flags (consumer, edge, bit 3 =
        // shared), one interrupt, the number.
        let irq = |flags: u8, n: u8| [0x89, 6, 0, flags, 1, n, 0, 0, 0];
        let dsdt = |links| {
            build_with_links(1, &[], links)
                .unwrap()
                .get("DSDT")
                .unwrap()
                .bytes
                .clone()
        };
        let has = |d: &[u8], needle: &[u8]| d.windows(needle.len()).any(|w| w == needle);
        let alone = dsdt(0);
        assert!(!has(&alone, b"COM2"));
        assert!(has(&alone, &irq(0x03, 4)), "COM1 alone: exclusive IRQ 4");
        let one = dsdt(1);
        assert!(has(&one, b"COM2") && !has(&one, b"COM3"));
        assert!(has(&one, &irq(0x03, 3)) && has(&one, &irq(0x03, 4)));
        let all = dsdt(3);
        for name in [b"COM2", b"COM3", b"COM4"] {
            assert!(has(&all, name));
        }
        // IO descriptor 0x47: decode16, min = max = the base, alignment 1, 8 ports.
        for base in [0x2F8u16, 0x3E8, 0x2E8] {
            let [lo, hi] = base.to_le_bytes();
            assert!(has(&all, &[0x47, 1, lo, hi, lo, hi, 1, 8]), "{base:#x}");
        }
        assert!(has(&all, &irq(0x0B, 3)) && has(&all, &irq(0x0B, 4)));
        assert!(!has(&all, &irq(0x03, 4)));
        assert_eq!(sum(&all), 0);
    }

    #[test]
    fn cpu_counts_out_of_range_are_errors() {
        assert!(build(0, &[]).is_err());
        assert!(build(255, &[]).is_err());
    }

    #[test]
    fn overlap_finds_the_first_conflict() {
        let segs = [("low", 0x8000, 0xA000), ("bios", 0xF_9000, 0xF_9010)];
        assert_eq!(overlap(segs, 0xF_8000, 0xF_8400), None);
        assert_eq!(overlap(segs, 0xF_8000, 0xF_9001), Some(segs[1]));
        assert_eq!(overlap(segs, 0xA000, 0xB000), None);
    }

    #[test]
    fn install_writes_tables_and_tells_the_guest() {
        let mut plan = crate::tests::empty_plan();
        plan.patch_points.boot_params = Some(0x7000);
        plan.patch_points.start_info = Some(0x6000);
        let mem = crate::memory::allocate(&plan).unwrap();
        let t = install(&mem, &plan, 2, &[], 0).unwrap();
        for tab in &t.tables {
            let mut b = vec![0u8; tab.bytes.len()];
            mem.read_slice(&mut b, GuestAddress(tab.addr)).unwrap();
            assert_eq!(b, tab.bytes, "{}", tab.name);
        }
        let bp: u64 = mem
            .read_obj(GuestAddress(0x7000 + zero_page::ACPI_RSDP_ADDR as u64))
            .unwrap();
        assert_eq!(bp, RSDP_ADDR);
        let si: u64 = mem
            .read_obj(GuestAddress(0x6000 + pvh::RSDP_PADDR as u64))
            .unwrap();
        assert_eq!(si, RSDP_ADDR);
        // A boot structure outside guest memory is an error, not a panic.
        plan.patch_points.boot_params = Some(u64::MAX - 8);
        assert!(install(&mem, &plan, 1, &[], 0).is_err());
    }
}
