//! The MADT ("APIC"): the interrupt controllers, which is how an ACPI guest finds its
//! processors. It says the same as the MP table ([`crate::mptable`]):
//!
//! - local APICs at [`mptable::APIC_ADDR`] (0xFEE00000), `PCAT_COMPAT` (KVM's in-kernel
//!   irqchip has the two 8259s too, which the guest masks when it switches to the APICs);
//! - one enabled Processor Local APIC per vCPU, ACPI processor UID = vCPU index, APIC ID =
//!   the one the vCPU's CPUID reports ([`crate::vcpu::apic_id`]);
//! - one I/O APIC at [`mptable::IOAPIC_ADDR`] (0xFEC00000), GSI base 0, with the MP
//!   table's I/O APIC ID;
//! - LINT1 of every processor is NMI, as the MP table's local interrupt entry says.
//!
//! No interrupt source overrides: KVM's default GSI routing, which domboot keeps, wires
//! ISA IRQ *n* to I/O APIC pin *n* (GSI *n*) — the PIT's IRQ 0 included — and ISA
//! interrupts are edge-triggered and active-high, which is what "no override" means.
//! (QEMU declares IRQ 0 → GSI 2 only because it re-routes the PIT to pin 2 itself.) There
//! is no SCI either: the FADT is hardware-reduced, its `SCI_INT` is 0, and Linux takes an
//! override whose source IRQ equals `SCI_INT` for the SCI's — an IRQ 0 override would turn
//! the timer interrupt level-triggered and active-low.

use super::{OEM_ID, OEM_REVISION, table_id};
use crate::{mptable, vcpu};
use acpi_tables::sdt::Sdt;

const REVISION: u8 = 5;
/// Header (36) + local interrupt controller address (4) + flags (4).
pub const HEADER_LEN: u32 = 44;
const PCAT_COMPAT: u32 = 1;

pub const TYPE_LOCAL_APIC: u8 = 0;
pub const TYPE_IO_APIC: u8 = 1;
pub const TYPE_LOCAL_APIC_NMI: u8 = 4;
pub const LOCAL_APIC_ENABLED: u32 = 1;
/// Processor UID meaning "all processors" in a Local APIC NMI structure.
const ALL_PROCESSORS: u8 = 0xFF;
/// MPS INTI flags: 0 = conforms to the bus (ISA: edge, active-high).
const INTI_CONFORMS: u16 = 0;

/// The MADT for `cpus` vCPUs (1 to [`mptable::MAX_CPUS`], checked by the caller).
pub fn build(cpus: u8) -> Vec<u8> {
    let mut sdt = Sdt::new(
        *b"APIC",
        HEADER_LEN,
        REVISION,
        OEM_ID,
        table_id(b"APIC"),
        OEM_REVISION,
    );
    sdt.write_u32(36, mptable::APIC_ADDR);
    sdt.write_u32(40, PCAT_COMPAT);
    for index in 0..cpus {
        let mut e = [0u8; 8];
        e[0] = TYPE_LOCAL_APIC;
        e[1] = 8;
        e[2] = index;
        e[3] = u8::try_from(vcpu::apic_id(index.into())).unwrap_or(u8::MAX);
        e[4..8].copy_from_slice(&LOCAL_APIC_ENABLED.to_le_bytes());
        sdt.append_slice(&e);
    }
    let mut io = [0u8; 12];
    io[0] = TYPE_IO_APIC;
    io[1] = 12;
    io[2] = mptable::ioapic_id(cpus);
    io[4..8].copy_from_slice(&mptable::IOAPIC_ADDR.to_le_bytes());
    // GSI base 0 (bytes 8..12).
    sdt.append_slice(&io);
    let mut nmi = [0u8; 6];
    nmi[0] = TYPE_LOCAL_APIC_NMI;
    nmi[1] = 6;
    nmi[2] = ALL_PROCESSORS;
    nmi[3..5].copy_from_slice(&INTI_CONFORMS.to_le_bytes());
    nmi[5] = 1; // LINT1
    sdt.append_slice(&nmi);
    sdt.as_slice().to_vec()
}

/// The (type, bytes) structures after the header; stops at a malformed length.
pub fn structures(madt: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut rest = madt.get(HEADER_LEN as usize..).unwrap_or(&[]);
    while rest.len() >= 2 {
        let len = usize::from(rest[1]);
        if len < 2 || len > rest.len() {
            break;
        }
        out.push((rest[0], &rest[..len]));
        rest = &rest[len..];
    }
    out
}
