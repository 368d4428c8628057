//! Code at the x86 reset vector (physical 0xFFFF0, where a CPU starts after reset and where
//! Linux's `machine_real_restart` jumps as its last way to reboot).
//!
//! On a hardware-reduced ACPI platform without EFI, Linux reboots by trying EFI (absent),
//! then the "BIOS" method: back to real mode and a far jump to F000:FFF0. On real hardware
//! the firmware there resets the machine; with nothing there the vCPU runs zeroes forever
//! and `reboot -f` (or `panic=N`) never ends the VM. domboot puts the smallest firmware
//! that does its job there: pulse the reset line through the i8042 (command 0xFE to port
//! 0x64), which the VMM turns into the end of the run.
//!
//! The eight bytes are written out rather than assembled at run time so the VMM binary
//! needs no assembler; a test assembles the same instructions with iced-x86 and compares.

use crate::VmmError;
use domboot_builder::BootPlan;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Where a CPU starts after reset, below 1 MiB (F000:FFF0).
pub const RESET_VECTOR: u64 = 0xF_FFF0;

/// 16-bit code: `mov al, 0xFE; out 0x64, al; cli; hlt; jmp short hlt`.
pub const CODE: [u8; 7] = [0xB0, 0xFE, 0xE6, 0x64, 0xFA, 0xF4, 0xEB];
/// The `jmp short` displacement back to `hlt` (-3 from the end of the 2-byte jump).
const JMP_BACK: u8 = 0xFD;

/// Writes the reset code at [`RESET_VECTOR`], unless one of the plan's segments is there.
pub fn install(mem: &GuestMemoryMmap, plan: &BootPlan) -> Result<(), VmmError> {
    let (start, end) = (RESET_VECTOR, RESET_VECTOR + CODE.len() as u64 + 1);
    if let Some(seg) = plan
        .segments
        .iter()
        .find(|s| s.addr < end && s.end() > start)
    {
        return Err(VmmError::Layout(format!(
            "segment {} at {:#x}-{:#x} overlaps the reset vector at {start:#x}",
            seg.name,
            seg.addr,
            seg.end()
        )));
    }
    let mut bytes = CODE.to_vec();
    bytes.push(JMP_BACK);
    mem.write_slice(&bytes, GuestAddress(start))
        .map_err(|e| VmmError::Memory(format!("writing the reset vector: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::code_asm::*;

    #[test]
    fn the_bytes_are_the_documented_instructions() {
        let mut a = CodeAssembler::new(16).unwrap();
        let mut halt = a.create_label();
        a.mov(al, 0xFEu32).unwrap();
        a.out(0x64u32, al).unwrap();
        a.cli().unwrap();
        a.set_label(&mut halt).unwrap();
        a.hlt().unwrap();
        a.jmp(halt).unwrap();
        let assembled = a.assemble(RESET_VECTOR).unwrap();
        let mut ours = CODE.to_vec();
        ours.push(JMP_BACK);
        assert_eq!(ours, assembled);
    }

    #[test]
    fn refuses_to_overwrite_a_segment() {
        let mut plan = crate::tests::empty_plan();
        plan.segments.push(domboot_builder::Segment {
            name: "bios".into(),
            addr: 0xF_0000,
            mem_size: 0x1_0000,
            data: vec![0u8; 16].into(),
            backing: None,
        });
        let mem = crate::memory::allocate(&plan).unwrap();
        let err = install(&mem, &plan).unwrap_err().to_string();
        assert!(err.contains("reset vector"), "{err}");
    }
}
