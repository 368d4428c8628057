//! The in-kernel 8259 pair as the guest first sees it: initialised as firmware leaves it
//! (vectors 0x08 and 0x70) but with every line masked.
//!
//! Why: KVM creates the 8259s zeroed, i.e. unmasked with IRQ n at vector n, and the BSP's
//! LAPIC LINT0 accepts ExtINT (see vcpu.rs), so the first ISA interrupt — COM1's IRQ 4 as
//! soon as a driver enables it — would reach the guest at an exception vector. A kernel
//! that drives the 8259 (Linux with the MP table, `--no-acpi`) reprograms it anyway; one
//! told the platform is hardware-reduced ACPI (our tables say so) never touches it and
//! takes its ISA interrupts through the IOAPIC only, which is what masking gives it. The
//! PVH-ELF export's stub masks a firmware-initialised PIC the same way under QEMU.

use crate::VmmError;
use kvm_bindings::{KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, kvm_irqchip};
use kvm_ioctls::VmFd;

/// Vector bases firmware programs: IRQ 0-7 at 0x08, IRQ 8-15 at 0x70.
const VECTOR_BASE: [(u32, u8); 2] = [
    (KVM_IRQCHIP_PIC_MASTER, 0x08),
    (KVM_IRQCHIP_PIC_SLAVE, 0x70),
];

/// Masks every line of both 8259s (and gives them firmware's vector bases).
pub fn mask_8259s(vm: &VmFd) -> Result<(), VmmError> {
    for (chip_id, base) in VECTOR_BASE {
        let mut chip = kvm_irqchip {
            chip_id,
            ..Default::default()
        };
        vm.get_irqchip(&mut chip).map_err(|error| VmmError::Ioctl {
            what: "KVM_GET_IRQCHIP (8259)",
            error,
        })?;
        // SAFETY: KVM_GET_IRQCHIP with a PIC chip_id filled the `pic` member of the union
        // (kvm_pic_state, plain integers: every bit pattern is valid).
        let mut pic = unsafe { chip.chip.pic };
        pic.imr = 0xFF;
        pic.irq_base = base;
        pic.init_state = 0;
        chip.chip.pic = pic;
        vm.set_irqchip(&chip).map_err(|error| VmmError::Ioctl {
            what: "KVM_SET_IRQCHIP (8259)",
            error,
        })?;
    }
    Ok(())
}
