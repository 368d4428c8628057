//! Freestanding conformance guests, assembled with iced-x86, and the files and plans that
//! carry them: ELF64 (linux64 entry), ELF32 with a PVH note, a minimal bzImage.
//!
//! Every guest reports over COM1 the way a driver does (it waits for LSR.THRE before each
//! byte) and ends through the debug-exit port: 0x10 when every check passed, 0x11 after
//! printing `FAIL: <check>` otherwise. The same guests run on KVM (crates/vmm/tests) and
//! under QEMU TCG through `domboot run --accel tcg` (crates/cli/tests).

pub mod acpi;
pub mod asm;
pub mod guests;
pub mod images;
pub mod plans;
pub mod smp;

pub use asm::Guest;
pub use guests::{Expect, conformance_bzimage, linux_guest, linux64_elf, pvh_elf, pvh_guest};
pub use images::{bzimage, elf32_pvh, elf64};
pub use plans::{build_plan, checksum, initrd_bytes, ram_total};

pub const OK: u8 = 0x10;
pub const BAD: u8 = 0x11;
pub const MIB: u64 = 1 << 20;

/// Where the ELF guests are linked; the bzImage's protected-mode code goes to [`BZ_LOAD`].
pub const GUEST_ADDR: u64 = 0x20_0000;
pub const BZ_LOAD: u64 = 0x100_0000;
/// Guests put their stack and scratch variables in the zero-filled tail of their image.
pub const IMAGE_MEMSZ: u64 = 0x1_0000;
/// Conformance guests keep code below this offset and data from it.
pub const DATA_OFF: u64 = 0x1800;
