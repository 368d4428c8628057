//! The Intel MultiProcessor Specification 1.4 table: how a guest without ACPI learns its
//! processors (APIC IDs 0..n, the first one the boot processor), the I/O APIC and the
//! interrupt wiring of all its pins. Linux finds it by scanning the BIOS area for the `_MP_` floating
//! pointer, so it goes at [`MPTABLE_START`] (0xF0000), which the builder's e820 reserves.

use crate::VmmError;

/// Where the floating pointer goes; the configuration table follows it.
pub const MPTABLE_START: u64 = 0xF_0000;
/// End of the BIOS area the table must fit in.
pub const MPTABLE_LIMIT: u64 = 0x10_0000;
pub const IOAPIC_ADDR: u32 = 0xFEC0_0000;
pub const APIC_ADDR: u32 = 0xFEE0_0000;
/// Most vCPUs an MP table can number next to its I/O APIC (IDs are 8 bits, 0xFF is
/// broadcast).
pub const MAX_CPUS: u8 = 254;

const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const CPU_ENABLED: u8 = 1;
const CPU_BOOT_PROCESSOR: u8 = 2;
const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_IO_INTERRUPT: u8 = 3;
const ENTRY_LOCAL_INTERRUPT: u8 = 4;
const INT_TYPE_INT: u8 = 0;
const INT_TYPE_NMI: u8 = 1;
const INT_TYPE_EXTINT: u8 = 3;
/// The pins of KVM's in-kernel I/O APIC (KVM_IOAPIC_NUM_PINS).
const IOAPIC_PINS: u8 = 24;
/// CPUID.1:EDX bits the processor entries advertise: FPU and APIC.
const CPU_FEATURES: u32 = 1 | (1 << 9);

/// The I/O APIC's ID next to `cpus` processors: the first ID after theirs (the ACPI MADT
/// uses the same).
pub fn ioapic_id(cpus: u8) -> u8 {
    cpus
}

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// Builds the floating pointer and configuration table for `cpus` processors, to be
/// placed at `base`. `signature` is CPUID.1:EAX (family, model, stepping).
pub fn build(cpus: u8, base: u64, signature: u32) -> Result<Vec<u8>, VmmError> {
    if cpus == 0 || cpus > MAX_CPUS {
        return Err(VmmError::Setup(format!(
            "the MP table describes 1 to {MAX_CPUS} processors, not {cpus}"
        )));
    }
    let ioapic_id = ioapic_id(cpus);
    let mut entries: Vec<u8> = Vec::new();
    let mut count: u16 = 0;
    for id in 0..cpus {
        let mut e = [0u8; 20];
        e[0] = ENTRY_PROCESSOR;
        e[1] = id;
        e[2] = APIC_VERSION;
        e[3] = CPU_ENABLED | if id == 0 { CPU_BOOT_PROCESSOR } else { 0 };
        e[4..8].copy_from_slice(&signature.to_le_bytes());
        e[8..12].copy_from_slice(&CPU_FEATURES.to_le_bytes());
        entries.extend_from_slice(&e);
        count += 1;
    }
    entries.extend_from_slice(&[ENTRY_BUS, 0, b'I', b'S', b'A', b' ', b' ', b' ']);
    count += 1;
    let mut io = [0u8; 8];
    io[0] = ENTRY_IOAPIC;
    io[1] = ioapic_id;
    io[2] = IOAPIC_VERSION;
    io[3] = 1;
    io[4..8].copy_from_slice(&IOAPIC_ADDR.to_le_bytes());
    entries.extend_from_slice(&io);
    count += 1;
    // IRQ n → I/O APIC pin n, as KVM's default GSI routing wires them, for every pin: the
    // ISA interrupts and the pins above them (16-23), which the virtio-mmio devices use
    // (device_manager::virtio::GSIS). Without ACPI, Linux allocates an IRQ only for a pin
    // the MP table lists, so a `virtio_mmio.device=...:16` would find no IRQ 16. The
    // entries say "ISA bus", so Linux takes its defaults for them, edge-triggered and
    // active-high, as the irqfds pulse the pins (and as the DSDT describes them); Firecracker
    // lists its devices' interrupts the same way.
    for irq in 0..IOAPIC_PINS {
        entries.extend_from_slice(&[
            ENTRY_IO_INTERRUPT,
            INT_TYPE_INT,
            0,
            0,
            0,
            irq,
            ioapic_id,
            irq,
        ]);
        count += 1;
    }
    // LINT0 = ExtINT on the boot processor, LINT1 = NMI on all (0xFF).
    entries.extend_from_slice(&[ENTRY_LOCAL_INTERRUPT, INT_TYPE_EXTINT, 0, 0, 0, 0, 0, 0]);
    entries.extend_from_slice(&[ENTRY_LOCAL_INTERRUPT, INT_TYPE_NMI, 0, 0, 0, 0, 0xFF, 1]);
    count += 2;

    let table_addr = base + 16;
    let mut header = [0u8; 44];
    header[0..4].copy_from_slice(b"PCMP");
    let length = u16::try_from(44 + entries.len())
        .map_err(|_| VmmError::Setup("MP table too large".into()))?;
    header[4..6].copy_from_slice(&length.to_le_bytes());
    header[6] = 4;
    header[8..16].copy_from_slice(b"DOMBOOT ");
    header[16..28].copy_from_slice(b"KVM VM      ");
    header[34..36].copy_from_slice(&count.to_le_bytes());
    header[36..40].copy_from_slice(&APIC_ADDR.to_le_bytes());
    let mut table = header.to_vec();
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    let mut fp = [0u8; 16];
    fp[0..4].copy_from_slice(b"_MP_");
    fp[4..8].copy_from_slice(
        &u32::try_from(table_addr)
            .map_err(|_| VmmError::Setup("MP table above 4 GiB".into()))?
            .to_le_bytes(),
    );
    fp[8] = 1;
    fp[9] = 4;
    fp[10] = checksum(&fp);
    let mut out = fp.to_vec();
    out.extend_from_slice(&table);
    if base + out.len() as u64 > MPTABLE_LIMIT {
        return Err(VmmError::Setup(
            "MP table does not fit the BIOS area".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn checksums_and_counts() {
        let t = build(4, MPTABLE_START, 0x00A0_0F11).unwrap();
        assert_eq!(&t[0..4], b"_MP_");
        assert_eq!(sum(&t[..16]), 0);
        let ptr = u32::from_le_bytes(t[4..8].try_into().unwrap()) as u64;
        assert_eq!(ptr, MPTABLE_START + 16);
        let table = &t[16..];
        assert_eq!(&table[0..4], b"PCMP");
        let len = u16::from_le_bytes([table[4], table[5]]) as usize;
        assert_eq!(len, table.len());
        assert_eq!(sum(table), 0);
        let count = u16::from_le_bytes([table[34], table[35]]);
        assert_eq!(count, 4 + 1 + 1 + 24 + 2);
        // The I/O interrupt entries: pin n takes bus 0's IRQ n, flags 0 (the bus's
        // defaults), for pins 0 to 23.
        let ints = &table[44 + 4 * 20 + 8 + 8..][..24 * 8];
        for (n, e) in ints.chunks(8).enumerate() {
            assert_eq!(e, [3, 0, 0, 0, 0, n as u8, 4, n as u8], "pin {n}");
        }
        // Processor entries: BSP flag only on the first.
        assert_eq!(table[44 + 3], 3);
        assert_eq!(table[44 + 20 + 3], 1);
        assert_eq!(table[44 + 60 + 1], 3);
    }

    #[test]
    fn limits() {
        assert!(build(0, MPTABLE_START, 0).is_err());
        assert!(build(255, MPTABLE_START, 0).is_err());
        assert!(build(254, MPTABLE_START, 0).is_ok());
    }
}
